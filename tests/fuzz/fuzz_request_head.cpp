// libFuzzer target: a request head through exactly the reads and checks the session makes
// (proxy/http_session.cpp, session_loop and serve_request) before anything is decided or
// forwarded:
//   0. the connection's first read takes at most 16 bytes (worker.hpp's first_bytes), later
//      reads at most 4 KiB; empty lines before the request line are dropped
//      (leading_empty_lines), and more than two reads in a row of nothing else close it;
//   1. the head is read until scan_head finds it whole or a line ended by a bare LF (a 400),
//      or until it is over the header limit;
//   2. Beast's request_parser<buffer_body> parses the head from the buffer with no read
//      (parse_buffered_head; header limit 32 KiB, no body limit: the defaults);
//   3. framing_check over every field, then Host required for HTTP/1.1 and at most 100 fields;
//   4. parse_request_target on the target (CONNECT: authority-form).
// Keep this in step with session_loop and serve_request: it is a copy of that sequence without
// the sockets.
//
// Input: the first byte (mod 16, plus 1) is the size of each read, so the same head arrives
// split in different ways; the rest is what the client sends.
//
// Asserted beyond "no crash, no sanitizer report":
//  - the outcome does not depend on how the bytes were split into reads (the same head read in
//    one piece gives the same fields, target, version and verdict), except for a connection
//    closed for sending only empty lines (that limit counts reads, by design);
//  - scan_head fed a read at a time says what one scan of all the bytes says;
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
#include "proxy/request_parser.hpp"
#include "proxy/request_target.hpp"
#include "tests/fuzz/fuzz_require.hpp"

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

constexpr std::size_t first_read_bytes = 16;  // worker.hpp: client_connection::first_bytes
constexpr std::size_t read_bytes = 4096;      // the session's later reads
constexpr int max_empty_reads = 2;            // session_loop


enum class verdict { closed_empty_lines, read_error, bare_lf, refused_framing, refused_target, accepted };

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
  boost::system::error_code ec;
  // session_loop: the first bytes, with empty lines before the request line dropped.
  bool first = true;
  int empty_reads = 0;
  while (no_request_line_yet(buffered(buffer))) {
    const std::size_t n = in.read_some(buffer.prepare(first ? first_read_bytes : read_bytes), ec);
    if (ec) return out;
    first = false;
    buffer.commit(n);
    buffer.consume(leading_empty_lines(buffered(buffer)));
    if (no_request_line_yet(buffered(buffer)) && ++empty_reads > max_empty_reads) {
      out.v = verdict::closed_empty_lines;
      return out;
    }
  }
  // serve_request: read until the head is whole or a line ends in a bare LF.
  head_scan scan = scan_head(buffered(buffer), 0);
  std::size_t scanned = buffer.size();
  while (scan == head_scan::incomplete && buffer.size() <= header_bytes) {
    const std::size_t n = in.read_some(buffer.prepare(read_bytes), ec);
    if (ec) return out;  // end of stream: the session's read error
    buffer.commit(n);
    scan = scan_head(buffered(buffer), scanned);
    scanned = buffer.size();
  }
  FUZZ_REQUIRE(scan == scan_head(buffered(buffer), 0));
  if (scan == head_scan::bare_lf) {
    out.v = verdict::bare_lf;
    return out;
  }
  request_parser rp;
  rp.header_limit(static_cast<std::uint32_t>(header_bytes));
  rp.body_limit(boost::none);
  std::size_t used = 0;
  ec = parse_buffered_head(rp, buffer, scan == head_scan::whole, used);
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
  if (split.v != verdict::closed_empty_lines && whole.v != verdict::closed_empty_lines)
    FUZZ_REQUIRE(same(split, whole));
  return 0;
}
