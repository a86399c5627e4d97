// libFuzzer target: parse_form(), the block page's access request form body
// (application/x-www-form-urlencoded; proxy/access_request_form.hpp).
//
// Asserted beyond "no crash, no sanitizer report":
//  - no more fields than '&'-separated parts, and the decoded names and values together are
//    no longer than the body (decoding never grows text);
//  - the fields written back, every byte outside the unreserved set percent-encoded, parse to
//    exactly the same fields (names and values survive any byte, '&', '=', '+' and '%'
//    included).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/access_request_form.hpp"
#include "tests/fuzz/fuzz_require.hpp"
#include "rules/utf8.hpp"

using namespace hallpass;

namespace {

std::string encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto fields = parse_form(body);

  std::size_t parts = 1, decoded = 0;
  for (char c : body) parts += c == '&';
  FUZZ_REQUIRE(fields.size() <= parts);
  for (const auto& [name, value] : fields) {
    decoded += name.size() + value.size();
    FUZZ_REQUIRE(rules::is_valid_utf8(value));  // stored and sent as JSON: never invalid UTF-8
  }
  FUZZ_REQUIRE(decoded <= 3 * body.size());  // a byte that is not UTF-8 becomes U+FFFD, three bytes

  std::string again;
  for (const auto& [name, value] : fields) {
    if (!again.empty()) again += '&';
    again += encode(name) + "=" + encode(value);
  }
  const auto round_trip = parse_form(again);
  // An empty name with an empty value is written as "=", which parses back as the same field;
  // a part with no '=' at all ("name") parses as name with an empty value, written "name=".
  FUZZ_REQUIRE(round_trip == fields);
  return 0;
}
