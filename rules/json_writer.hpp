// A minimal JSON object writer for log lines and --json output: flat objects of strings,
// numbers, booleans and nested raw values. Escapes per RFC 8259; invalid UTF-8 bytes are
// written as \u00XX so a hostile URL can never break a log line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hallpass::rules {

inline void json_escape(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  // Runs of characters that need no escape (nearly all of a host or a path) go in at once.
  auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; };
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && plain(static_cast<unsigned char>(s[j]))) ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size()) break;
    const auto c = static_cast<unsigned char>(s[j]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // Non-ASCII is escaped byte by byte: log readers see exactly what was sent.
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    i = j + 1;
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
