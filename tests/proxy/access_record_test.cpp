#include "proxy/access_record.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rules/json_writer.hpp"
#include "rules/utf8.hpp"

using namespace std::chrono;
using hallpass::access_record;
using hallpass::format_access_record;
using hallpass::rules::time_zone;

namespace {

// A strict RFC 8259 parser for one flat object (values: string, number, true, false, null), so
// the test does not trust the writer it checks. Keys keep their order. Strings are decoded to
// UTF-8, as any JSON reader does: \uXXXX (a surrogate pair for one character above U+FFFF; a
// lone surrogate is refused) becomes that character's UTF-8.
struct json_value {
  enum kind_t { string, number, boolean, null } kind;
  std::string text;  // decoded string, number as written, "true"/"false"/"null"
};
using json_fields = std::vector<std::pair<std::string, json_value>>;

class strict_parser {
 public:
  explicit strict_parser(std::string_view s) : s_(s) {}

  std::optional<json_fields> object() {
    json_fields out;
    ws();
    if (!eat('{')) return std::nullopt;
    ws();
    if (eat('}')) return finish(out);
    for (;;) {
      ws();
      auto key = string();
      if (!key) return std::nullopt;
      ws();
      if (!eat(':')) return std::nullopt;
      ws();
      auto v = value();
      if (!v) return std::nullopt;
      out.emplace_back(std::move(*key), std::move(*v));
      ws();
      if (eat(',')) continue;
      if (eat('}')) return finish(out);
      return std::nullopt;
    }
  }

 private:
  std::optional<json_fields> finish(json_fields& out) {
    ws();
    if (i_ != s_.size()) return std::nullopt;
    return std::move(out);
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::optional<json_value> value() {
    if (i_ >= s_.size()) return std::nullopt;
    if (s_[i_] == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      return json_value{json_value::string, *s};
    }
    if (literal("true")) return json_value{json_value::boolean, "true"};
    if (literal("false")) return json_value{json_value::boolean, "false"};
    if (literal("null")) return json_value{json_value::null, "null"};
    return number();
  }
  std::optional<json_value> number() {
    const std::size_t start = i_;
    eat('-');
    if (i_ >= s_.size() || !isdigit(s_[i_])) return std::nullopt;
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    if (eat('.')) {
      if (i_ >= s_.size() || !isdigit(s_[i_])) return std::nullopt;
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (!eat('+')) eat('-');
      if (i_ >= s_.size() || !isdigit(s_[i_])) return std::nullopt;
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    return json_value{json_value::number, std::string(s_.substr(start, i_ - start))};
  }
  static bool isdigit(char c) { return c >= '0' && c <= '9'; }
  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  std::optional<std::uint32_t> hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int h = hexval(s_[i_++]);
      if (h < 0) return std::nullopt;
      v = v * 16 + static_cast<std::uint32_t>(h);
    }
    return v;
  }
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt;   // raw control characters are not allowed in JSON strings
      if (c >= 0x80) return std::nullopt;  // the writer promises pure ASCII
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      const char e = s_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          auto v = hex4();
          if (!v || (*v >= 0xDC00 && *v <= 0xDFFF)) return std::nullopt;
          std::uint32_t cp = *v;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!eat('\\') || !eat('u')) return std::nullopt;
            auto low = hex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) return std::nullopt;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
          }
          hallpass::rules::append_utf8(out, cp);  // the encoding only: decoding is this parser's own
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::vector<std::string> keys(const json_fields& f) {
  std::vector<std::string> out;
  for (const auto& [k, v] : f) out.push_back(k);
  return out;
}

const json_value& field(const json_fields& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return v;
  }
  FAIL("no field " << key);
  static json_value none{json_value::null, ""};
  return none;
}

time_zone london() {
  std::string error;
  auto z = time_zone::from_posix("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0", &error);
  REQUIRE_MESSAGE(z, error);
  return *z;
}

// 2026-03-30T08:00:00Z (a Monday in BST) plus `ms`.
system_clock::time_point monday_bst(int ms) {
  return sys_days{year{2026} / March / 30} + hours{8} + milliseconds{ms};
}

access_record typical() {
  access_record r;
  r.start = monday_bst(123);
  r.client = "10.10.4.20";
  r.user = "";
  r.role = "pupils";
  r.method = "GET";
  r.scheme = "http";
  r.host = "www.facebook.com";
  r.port = 80;
  r.path = "/groups/year7";
  r.query = "id=42&ref=home";
  r.status = 403;
  r.action = "block";
  r.rule = "pupils rule 1";
  r.category = "social_media";
  r.reason = "Pupils may not use social media at school.";
  r.bytes_from_client = 412;
  r.bytes_to_client = 2048;
  r.duration_ms = 3;
  r.circumvention = false;
  return r;
}

}  // namespace

TEST_CASE("access record: the exact line for a blocked request") {
  const std::string line = format_access_record(typical(), london(), false);
  CHECK(line ==
        "{\"time\":\"2026-03-30T09:00:00.123+01:00\",\"client\":\"10.10.4.20\",\"user\":null,"
        "\"role\":\"pupils\",\"method\":\"GET\",\"scheme\":\"http\",\"host\":\"www.facebook.com\","
        "\"port\":80,\"path\":\"/groups/"
        "year7\",\"status\":403,\"action\":\"block\",\"rule\":\"pupils rule 1\","
        "\"category\":\"social_media\",\"reason\":\"Pupils may not use social media at school.\","
        "\"bytes_in\":412,\"bytes_out\":2048,\"duration_ms\":3,\"circumvention\":false}\n");
}

TEST_CASE("access record: keys in the documented order, note only when present") {
  auto r = typical();
  const std::vector<std::string> expected = {
      "time",     "client", "user",     "role",      "method",      "scheme",
      "host",     "port",   "path",     "status",    "action",      "rule",
      "category", "reason", "bytes_in", "bytes_out", "duration_ms", "circumvention"};
  auto parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  CHECK(keys(*parsed) == expected);

  r.note = "sni=www.tiktok.com";
  r.circumvention = true;
  parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  auto with_note = expected;
  with_note.push_back("note");
  CHECK(keys(*parsed) == with_note);
  CHECK(field(*parsed, "note").text == "sni=www.tiktok.com");
  CHECK(field(*parsed, "circumvention").text == "true");
}

TEST_CASE("access record: user and category are null when empty, strings when known") {
  auto r = typical();
  auto parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  CHECK(field(*parsed, "user").kind == json_value::null);
  CHECK(field(*parsed, "category").kind == json_value::string);

  r.user = "j.smith";
  r.category = "";
  parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  CHECK(field(*parsed, "user").kind == json_value::string);
  CHECK(field(*parsed, "user").text == "j.smith");
  CHECK(field(*parsed, "category").kind == json_value::null);
}

TEST_CASE("access record: the query string is written only when kept") {
  auto r = typical();
  auto path_of = [&](bool keep) {
    auto parsed = strict_parser(format_access_record(r, time_zone::utc(), keep)).object();
    REQUIRE(parsed);
    return field(*parsed, "path").text;
  };
  CHECK(path_of(false) == "/groups/year7");
  CHECK(path_of(true) == "/groups/year7?id=42&ref=home");
  r.query = "";
  CHECK(path_of(true) == "/groups/year7");  // no dangling '?'
  const std::string line = format_access_record(typical(), time_zone::utc(), false);
  CHECK(line.find("id=42") == std::string::npos);

  // Path parameters carry session tokens as a query does (audit19 D4): gone unless kept.
  r = typical();
  r.path = "/app;jsessionid=SECRET/page;v=2";
  CHECK(path_of(false) == "/app/page");
  CHECK(path_of(true) == "/app;jsessionid=SECRET/page;v=2?id=42&ref=home");
  CHECK(hallpass::rules::path_without_parameters("/;a/b;/c;;d/") == "//b/c/");
  CHECK(hallpass::rules::path_without_parameters("") == "");
}

TEST_CASE("access record: time is school-local ISO 8601 with milliseconds and offset") {
  auto r = typical();
  auto time_of = [&](const time_zone& z) {
    auto parsed = strict_parser(format_access_record(r, z, false)).object();
    REQUIRE(parsed);
    return field(*parsed, "time").text;
  };
  CHECK(time_of(london()) == "2026-03-30T09:00:00.123+01:00");
  CHECK(time_of(time_zone::utc()) == "2026-03-30T08:00:00.123+00:00");
  r.start = monday_bst(0);
  CHECK(time_of(london()) == "2026-03-30T09:00:00.000+01:00");
  r.start = monday_bst(999) + microseconds{999};  // truncated, never rounded into the next second
  CHECK(time_of(london()) == "2026-03-30T09:00:00.999+01:00");
  // Winter: GMT, offset +00:00.
  r.start = sys_days{year{2026} / November / 23} + hours{11} + milliseconds{7};
  CHECK(time_of(london()) == "2026-11-23T11:00:00.007+00:00");
  // Before the epoch the fraction is still 0..999 (floor, not truncation towards zero).
  r.start = sys_days{year{1969} / December / 31} + hours{23} + minutes{59} + seconds{59} +
            milliseconds{250};
  CHECK(time_of(time_zone::utc()) == "1969-12-31T23:59:59.250+00:00");
}

TEST_CASE("access record: numbers are written exactly, including 64-bit byte counts") {
  auto r = typical();
  r.bytes_from_client = 0;
  r.bytes_to_client = 18446744073709551615ull;  // UINT64_MAX: written, not wrapped to negative
  r.port = 65535;
  r.status = 0;
  r.duration_ms = 86400000;
  auto parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  CHECK(field(*parsed, "bytes_in").text == "0");
  CHECK(field(*parsed, "bytes_out").text == "18446744073709551615");
  CHECK(field(*parsed, "port").text == "65535");
  CHECK(field(*parsed, "status").text == "0");
  CHECK(field(*parsed, "duration_ms").text == "86400000");
}

namespace {

// What a reader should get back for logged bytes: each valid UTF-8 sequence (RFC 3629: the
// shortest form, no surrogates, at most U+10FFFF) as it is, every other byte as the Latin-1
// character of that value. Written here from the RFC's table of well-formed sequences, not
// from the writer's code.
std::string as_read(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100u; };
  const auto in = [](unsigned v, unsigned lo, unsigned hi) { return v >= lo && v <= hi; };
  while (i < s.size()) {
    const unsigned b0 = at(0), b1 = at(1), b2 = at(2), b3 = at(3);
    std::size_t n = 0;
    if (b0 < 0x80) n = 1;
    else if (in(b0, 0xC2, 0xDF) && in(b1, 0x80, 0xBF)) n = 2;
    else if (b0 == 0xE0 && in(b1, 0xA0, 0xBF) && in(b2, 0x80, 0xBF)) n = 3;
    else if ((in(b0, 0xE1, 0xEC) || in(b0, 0xEE, 0xEF)) && in(b1, 0x80, 0xBF) && in(b2, 0x80, 0xBF)) n = 3;
    else if (b0 == 0xED && in(b1, 0x80, 0x9F) && in(b2, 0x80, 0xBF)) n = 3;
    else if (b0 == 0xF0 && in(b1, 0x90, 0xBF) && in(b2, 0x80, 0xBF) && in(b3, 0x80, 0xBF)) n = 4;
    else if (in(b0, 0xF1, 0xF3) && in(b1, 0x80, 0xBF) && in(b2, 0x80, 0xBF) && in(b3, 0x80, 0xBF)) n = 4;
    else if (b0 == 0xF4 && in(b1, 0x80, 0x8F) && in(b2, 0x80, 0xBF) && in(b3, 0x80, 0xBF)) n = 4;
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {  // Latin-1: U+0080..U+00FF in UTF-8
      out += static_cast<char>(0xC0 | (b0 >> 6));
      out += static_cast<char>(0x80 | (b0 & 0x3F));
      ++i;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("access record: text outside ASCII is written as its characters, one \\u escape each") {
  const auto escaped = [](std::string_view text) {
    std::string out;
    hallpass::rules::json_escape(out, text);
    return out;
  };
  CHECK(escaped("\xc3\xa9" "cole") == "\\u00e9cole");                 // a search for "école"
  CHECK(escaped("\xe2\x9c\x93 caf\xc3\xa9") == "\\u2713 caf\\u00e9");
  CHECK(escaped("\xf0\x9f\x98\x80") == "\\ud83d\\ude00");           // above U+FFFF: a surrogate pair
  CHECK(escaped("\xe2\x80\xae") == "\\u202e");                     // bidi override: escaped, not shown
  CHECK(escaped("\xe2\x80\xa8") == "\\u2028");
  CHECK(escaped("\xe9t\xe9") == "\\u00e9t\\u00e9");                   // Latin-1 bytes read as Latin-1
  CHECK(escaped("\xc0\xaf") == "\\u00c0\\u00af");                     // overlong: byte by byte
  CHECK(escaped("\xed\xa0\x80") == "\\u00ed\\u00a0\\u0080");           // a surrogate in UTF-8
  CHECK(escaped("\xf4\x90\x80\x80") == "\\u00f4\\u0090\\u0080\\u0080");  // above U+10FFFF
  CHECK(escaped("\xe2\x82") == "\\u00e2\\u0082");                     // cut short
  CHECK(escaped(std::string_view("\0\x1f\x7f", 3)) == "\\u0000\\u001f\\u007f");
}

TEST_CASE("access record: hostile bytes in every field still give one valid JSON line") {
  // Every byte value, plus the usual suspects: quotes, backslashes, newlines that would split
  // the line, a NUL, DEL, invalid and overlong UTF-8, a lone surrogate encoded in UTF-8.
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  const std::vector<std::string> nasty = {
      every_byte,
      "\"},{\"action\":\"allow\"",
      "line1\nline2\r\n{\"forged\":true}\n",
      std::string("nul\0inside", 10),
      "back\\slash\\",
      "\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80",
      "caf\xc3\xa9 \xe2\x80\xa8 \x7f \x1b[31mred",
      "\xf0\x9f\x98\x80 \xe2\x80\xae \xe2\x82 \xf0\x9f",
  };
  for (const auto& bad : nasty) {
    access_record r = typical();
    r.client = bad;
    r.user = bad;
    r.role = bad;
    r.method = bad;
    r.scheme = bad;
    r.host = bad;
    r.path = bad;
    r.query = bad;
    r.action = bad;
    r.rule = bad;
    r.category = bad;
    r.reason = bad;
    r.note = bad;
    for (bool keep : {false, true}) {
      const std::string line = format_access_record(r, time_zone::utc(), keep);
      REQUIRE(!line.empty());
      CHECK(line.back() == '\n');
      CHECK(line.find('\n') == line.size() - 1);  // exactly one newline: the terminator
      CHECK(line.find('\r') == std::string::npos);
      for (unsigned char c : line) CHECK_MESSAGE(((c >= 0x20 && c < 0x7f) || c == '\n'), int(c));
      auto parsed = strict_parser(std::string_view(line).substr(0, line.size() - 1)).object();
      REQUIRE_MESSAGE(parsed, line);
      CHECK(parsed->size() == 19);
      // Decoding gives back the text: valid UTF-8 as it was, any other byte as Latin-1.
      const std::string read = as_read(bad);
      CHECK(field(*parsed, "host").text == read);
      CHECK(field(*parsed, "reason").text == read);
      CHECK(field(*parsed, "note").text == read);
      CHECK(field(*parsed, "path").text ==
            (keep ? read + "?" + read : as_read(hallpass::rules::path_without_parameters(bad))));
    }
  }
}

TEST_CASE("access record: device and mac from the DHCP leases follow user, only when known") {
  auto r = typical();
  auto parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  for (const auto& [k, v] : *parsed) {
    CHECK(k != "device");
    CHECK(k != "mac");
  }

  r.device_name = "pupil-laptop-07";
  r.hardware_address = "3c:22:fb:12:9a:01";
  parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  const auto k = keys(*parsed);
  REQUIRE(k.size() == 20);
  CHECK(k[2] == "user");
  CHECK(k[3] == "device");
  CHECK(k[4] == "mac");
  CHECK(field(*parsed, "device").text == "pupil-laptop-07");
  CHECK(field(*parsed, "mac").text == "3c:22:fb:12:9a:01");

  // A device name is whatever the device sent the DHCP server: escaped like every field.
  r.device_name = "evil\"}\n{\"role\":\"staff";
  parsed = strict_parser(format_access_record(r, time_zone::utc(), false)).object();
  REQUIRE(parsed);
  CHECK(field(*parsed, "device").text == "evil\"}\n{\"role\":\"staff");
  CHECK(field(*parsed, "role").text == "pupils");
}
