// A minimal JSON object writer for log lines and --json output: flat objects of strings,
// numbers, booleans and nested raw values. Escapes per RFC 8259 (json_escape below) so that a
// hostile URL can never break a log line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rules/utf8.hpp"

namespace hallpass::rules {

// The output is always printable ASCII: whatever a client sent, a log line stays one line and
// a terminal shows it as it is (no control or bidi characters reach the reader's screen).
// - Valid UTF-8 (a search for "école", a name) is written as its characters' \uXXXX escapes
//   (a surrogate pair above U+FFFF), which every JSON reader turns back into the text.
// - A byte that is not valid UTF-8 is read as Latin-1, \u00XX, as browsers read legacy text:
//   the reader sees a character for it, never a broken line.
inline void json_escape(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto u = [&](std::uint32_t v) {
    out += "\\u";
    out += hex[(v >> 12) & 15];
    out += hex[(v >> 8) & 15];
    out += hex[(v >> 4) & 15];
    out += hex[v & 15];
  };
  // Runs of characters that need no escape (nearly all of a host or a path) go in at once.
  auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; };
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && plain(static_cast<unsigned char>(s[j]))) ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size()) break;
    const auto c = static_cast<unsigned char>(s[j]);
    std::size_t used = 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        std::uint32_t cp = c;  // an invalid byte: its Latin-1 character
        if (c >= 0x80) {
          if (const auto n = utf8_sequence(s, j, cp)) used = n;
        }
        if (cp >= 0x10000) {
          cp -= 0x10000;
          u(0xD800 + (cp >> 10));
          u(0xDC00 + (cp & 0x3FF));
        } else {
          u(cp);
        }
      }
    }
    i = j + used;
  }
}

class json_object {
 public:
  json_object() {
    s_.reserve(512);  // an access log line, usually, without growing
    s_ = "{";
  }
  json_object& str(std::string_view key, std::string_view value) {
    key_(key);
    s_ += '"';
    json_escape(s_, value);
    s_ += '"';
    return *this;
  }
  json_object& num(std::string_view key, std::int64_t value) {
    key_(key);
    s_ += std::to_string(value);
    return *this;
  }
  json_object& boolean(std::string_view key, bool value) {
    key_(key);
    s_ += value ? "true" : "false";
    return *this;
  }
  json_object& null(std::string_view key) {
    key_(key);
    s_ += "null";
    return *this;
  }
  json_object& raw(std::string_view key, std::string_view json) {
    key_(key);
    s_ += json;
    return *this;
  }
  std::string done() {
    s_ += '}';
    return std::move(s_);
  }

 private:
  void key_(std::string_view k) {
    if (s_.size() > 1) s_ += ',';
    s_ += '"';
    json_escape(s_, k);
    s_ += "\":";
  }
  std::string s_;
};

}  // namespace hallpass::rules
