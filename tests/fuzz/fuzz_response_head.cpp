// libFuzzer target: parse_response_head() and write_client_response_head()
// (proxy/response_head.hpp), the origin's response head as the proxy reads it and the head it
// writes for the client.
//
// Asserted beyond "no crash, no sanitizer report":
//  - the result does not depend on how the bytes arrive: every prefix of a complete head asks
//    for more (or fails), and the complete head parses the same with bytes after it;
//  - a complete head's size is within the input and ends with an empty line (CRLF, or a bare
//    LF: RFC 9112 2.2); fields are tokens; the head written for the client has CRLFs only;
//  - the head written for the client parses again, strictly, to the same status, with exactly
//    the framing fields the proxy chose (one Content-Length or one Transfer-Encoding: chunked)
//    and none of the origin's framing or hop-by-hop fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/request_checks.hpp"
#include "proxy/response_head.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x += 32;
    if (y >= 'A' && y <= 'Z') y += 32;
    if (x != y) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned mode = data[0];  // picks the client's version and framing
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::size_t max_bytes = 4096, max_fields = 32;
  response_head head;
  std::string error;
  const auto r = parse_response_head(input, max_bytes, max_fields, head, error);
  if (r != head_parse::complete) return 0;

  FUZZ_REQUIRE(head.size >= 4 && head.size <= input.size() && head.size <= max_bytes);
  // The head ends with an empty line: CRLF or a bare LF (RFC 9112 2.2), after a line's end.
  FUZZ_REQUIRE(input.compare(head.size - 2, 2, "\n\n") == 0 || input.compare(head.size - 3, 3, "\n\r\n") == 0);
  FUZZ_REQUIRE(head.status >= 100 && head.status <= 599);
  FUZZ_REQUIRE(head.fields.size() <= max_fields);
  for (const auto& f : head.fields) FUZZ_REQUIRE(is_http_token(f.name) && is_field_value(f.value));
  const unsigned status = head.status;
  const std::size_t fields = head.fields.size(), whole = head.size;

  // Split-independence: every shorter prefix is incomplete or wrong, never a different head.
  for (std::size_t cut = 0; cut < whole; ++cut) {
    response_head partial;
    std::string e;
    FUZZ_REQUIRE(parse_response_head(std::string_view(input).substr(0, cut), max_bytes, max_fields, partial, e) !=
                 head_parse::complete);
  }
  {
    response_head again;
    std::string e;
    const std::string longer = input.substr(0, whole) + "GET / HTTP/1.1\r\n\r\n";
    FUZZ_REQUIRE(parse_response_head(longer, max_bytes, max_fields, again, e) == head_parse::complete);
    FUZZ_REQUIRE(again.size == whole && again.status == status && again.fields.size() == fields);
  }

  // The head written for the client reads back strictly.
  client_head_options o;
  o.version = (mode & 1) ? 10 : 11;
  o.framing = static_cast<client_framing>((mode >> 1) % 5);
  o.content_length = mode * 977u;
  o.keep_alive = (mode & 16) != 0;
  o.upgrade = (mode & 32) != 0 && status == 101;
  const std::string out = write_client_response_head(head, o);
  // CRLF line ends only, whatever the origin's were.
  for (std::size_t i = 0; i < out.size(); ++i) FUZZ_REQUIRE(out[i] != '\n' || (i > 0 && out[i - 1] == '\r'));
  FUZZ_REQUIRE(out.compare(out.size() - 4, 4, "\r\n\r\n") == 0);
  response_head back;
  std::string e;
  FUZZ_REQUIRE(parse_response_head(out, out.size() + 1, fields + 8, back, e) == head_parse::complete);
  FUZZ_REQUIRE(back.size == out.size() && back.status == status && back.version == o.version);
  unsigned cl = 0, te = 0;
  for (const auto& f : back.fields) {
    if (iequals(f.name, "content-length")) {
      ++cl;
      FUZZ_REQUIRE(f.value == std::to_string(o.content_length));
    }
    if (iequals(f.name, "transfer-encoding")) {
      ++te;
      FUZZ_REQUIRE(f.value == "chunked");
    }
    FUZZ_REQUIRE(!iequals(f.name, "keep-alive") && !iequals(f.name, "te") && !iequals(f.name, "trailer") &&
                 !iequals(f.name, "proxy-connection"));
    if (!o.upgrade) FUZZ_REQUIRE(!iequals(f.name, "upgrade"));
  }
  const bool want_cl = o.framing == client_framing::length || o.framing == client_framing::length_info;
  FUZZ_REQUIRE(cl == (want_cl ? 1u : 0u));
  FUZZ_REQUIRE(te == (o.framing == client_framing::chunked ? 1u : 0u));
  framing_check fc(message_kind::response);
  for (const auto& f : back.fields) fc.add(f.name, f.value);
  FUZZ_REQUIRE(!fc.finish(o.version == 10 && te == 0 ? 10 : 11).has_value());
  return 0;
}
