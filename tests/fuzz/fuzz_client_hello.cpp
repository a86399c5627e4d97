// libFuzzer target: parse_client_hello() (proxy/client_hello.hpp), and the same bytes as
// header fields through framing_check and as a chunk-size line (proxy/request_checks.hpp).
// Built with -DHALLPASS_FUZZ=ON (tests/fuzz/CMakeLists.txt); docs/fuzzing.md says how to run it.
//
// Properties checked beyond "no crash, no sanitizer report":
//  - not_tls and ok do not change when more bytes follow (they are decided on a prefix);
//  - with max_client_hello_bytes or more input the answer is never need_more;
//  - an ok hello re-framed into one-byte records parses to the same SNI and ALPN.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/client_hello.hpp"
#include "proxy/request_checks.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

namespace {

std::string reframe_one_byte_records(std::string_view handshake) {
  std::string out;
  for (char c : handshake) {
    out += "\x16\x03\x01";
    out += '\0';
    out += '\x01';
    out += c;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto r = parse_client_hello(bytes);
  if (size >= max_client_hello_bytes) FUZZ_REQUIRE(r.status != hello_status::need_more);
  if (r.status == hello_status::not_tls) {
    FUZZ_REQUIRE(parse_client_hello(std::string(bytes) + "more").status == hello_status::not_tls);
  }
  if (r.status == hello_status::ok) {
    // Reassemble the handshake message from the records to re-frame it.
    std::string handshake;
    std::size_t pos = 0;
    while (pos + 5 <= size) {
      std::size_t len = static_cast<std::size_t>(data[pos + 3]) << 8 | data[pos + 4];
      handshake.append(bytes.substr(pos + 5, len));
      pos += 5 + len;
    }
    std::size_t body = static_cast<std::size_t>(static_cast<unsigned char>(handshake[1])) << 16 |
                       static_cast<std::size_t>(static_cast<unsigned char>(handshake[2])) << 8 |
                       static_cast<unsigned char>(handshake[3]);
    handshake.resize(body + 4);
    if (handshake.size() * 6 < max_client_hello_bytes) {
      auto again = parse_client_hello(reframe_one_byte_records(handshake));
      FUZZ_REQUIRE(again.status == hello_status::ok);
      FUZZ_REQUIRE(again.hello.sni == r.hello.sni);
      FUZZ_REQUIRE(again.hello.alpn == r.hello.alpn);
    }
    FUZZ_REQUIRE(parse_client_hello(std::string(bytes) + "trailing").status == hello_status::ok);
  }

  // The same bytes as header fields: "name\0value" pairs separated by '\n'.
  framing_check check;
  std::string_view rest = bytes;
  while (!rest.empty()) {
    auto line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    auto nul = line.find('\0');
    check.add(line.substr(0, nul), nul == std::string_view::npos ? "" : line.substr(nul + 1));
  }
  auto verdict = check.finish(11);
  if (!verdict && check.chunked()) FUZZ_REQUIRE(!check.content_length().has_value());
  (void)check_chunk_size_line(bytes.substr(0, 64));
  return 0;
}
