// libFuzzer target: a request head through exactly the checks the session makes
// (proxy/http_session.cpp, serve_request) before anything is decided or forwarded:
//   1. Beast's request_parser<buffer_body> reads the head (http::read_header, as
//      async_read_header does; header limit 32 KiB, no body limit: the defaults);
//   2. framing_check over every field, then Host required for HTTP/1.1 and at most 100 fields;
//   3. parse_request_target on the target (CONNECT: authority-form).
// Keep this in step with serve_request: it is a copy of that sequence without the sockets.
//
// Input: the first byte (mod 16, plus 1) is the size of each read, so the same head arrives
// split in different ways; the rest is what the client sends.
//
// Asserted beyond "no crash, no sanitizer report":
//  - the outcome does not depend on how the bytes were split into reads (the same head read in
//    one piece gives the same fields, target, version and verdict);
//  - for an accepted request, Beast frames the body exactly as framing_check says it is framed
//    (chunked, Content-Length and its value, or no body): otherwise the proxy would read one body
//    and forward another label, which is request smuggling;
//  - an accepted request's target gave a non-empty host, a port, and (not CONNECT) a path
//    starting with '/'; every target byte is visible ASCII.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "proxy/request_checks.hpp"
#include "proxy/request_target.hpp"
#include "tests/fuzz/fuzz_require.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using namespace hallpass;

namespace {

constexpr std::size_t header_bytes = 32 * 1024;  // daemon_config limits.header_bytes default
constexpr std::size_t header_count = 100;        // limits.header_count default

// A SyncReadStream that hands out `data` `chunk` bytes per read, then end of stream.
class chunked_input {
 public:
  chunked_input(std::string_view data, std::size_t chunk) : data_(data), chunk_(chunk) {}

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    if (data_.empty()) {
      ec = net::error::eof;
      return 0;
    }
    ec = {};
    const auto n =
        net::buffer_copy(buffers, net::buffer(data_.data(), std::min(chunk_, data_.size())));
    data_.remove_prefix(n);
    return n;
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view data_;
  std::size_t chunk_;
};

enum class verdict { read_error, refused_framing, refused_target, accepted };

struct outcome {
  verdict v = verdict::read_error;
  std::string method, target;
  unsigned version = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::optional<parsed_target> parsed;
};

outcome run(std::string_view bytes, std::size_t chunk) {
  outcome out;
  chunked_input in(bytes, chunk);
  beast::flat_buffer buffer;
  http::request_parser<http::buffer_body> rp;
  rp.header_limit(static_cast<std::uint32_t>(header_bytes));
  rp.body_limit(boost::none);
  boost::system::error_code ec;
  http::read_header(in, buffer, rp, ec);
  if (ec) return out;
  FUZZ_REQUIRE(rp.is_header_done());
  const auto& req = rp.get();
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  out.version = req.version();
  FUZZ_REQUIRE(out.version == 10 || out.version == 11);

  framing_check fc;
  for (const auto& f : req) {
    fc.add(f.name_string(), f.value());
    out.fields.emplace_back(f.name_string(), f.value());
  }
  std::optional<std::string> problem = fc.finish(out.version);
  if (!problem && out.version >= 11 && !fc.has_host())
    problem = "an HTTP/1.1 request without a Host field";
  if (!problem && out.fields.size() > header_count) problem = "too many header fields";
  if (problem) {
    FUZZ_REQUIRE(!problem->empty());
    out.v = verdict::refused_framing;
    return out;
  }

  // The framing the proxy will read the body with (Beast's) is the framing it checked.
  FUZZ_REQUIRE(rp.chunked() == fc.chunked());
  FUZZ_REQUIRE(rp.content_length() == (fc.content_length()
                                           ? boost::optional<std::uint64_t>(*fc.content_length())
                                           : boost::optional<std::uint64_t>()));
  if (!fc.chunked() && !fc.content_length()) FUZZ_REQUIRE(rp.is_done());

  const bool is_connect = req.method() == http::verb::connect;
  std::string error;
  out.parsed = parse_request_target(req.target(), is_connect, error);
  if (!out.parsed) {
    FUZZ_REQUIRE(!error.empty());
    out.v = verdict::refused_target;
    return out;
  }
  for (char c : req.target())
    FUZZ_REQUIRE(static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7E);
  FUZZ_REQUIRE(!out.parsed->host.empty() && out.parsed->port != 0);
  if (!is_connect) FUZZ_REQUIRE(!out.parsed->path.empty() && out.parsed->path.front() == '/');
  out.v = verdict::accepted;
  return out;
}

bool same(const outcome& a, const outcome& b) {
  if (a.v != b.v || a.method != b.method || a.target != b.target || a.version != b.version ||
      a.fields != b.fields)
    return false;
  if (a.parsed.has_value() != b.parsed.has_value()) return false;
  if (!a.parsed) return true;
  return a.parsed->host == b.parsed->host && a.parsed->port == b.parsed->port &&
         a.parsed->path == b.parsed->path && a.parsed->query == b.parsed->query &&
         a.parsed->scheme == b.parsed->scheme;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = (data[0] % 16) + 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const outcome split = run(bytes, chunk);
  const outcome whole = run(bytes, bytes.size() + 1);
  FUZZ_REQUIRE(same(split, whole));
  return 0;
}
