#include "proxy/request_checks.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace hallpass {

namespace {

constexpr std::array<bool, 256> make_tchar_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto tchar = make_tchar_table();

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// A printable rendering of a field name for error messages: never echo control bytes.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40))
    out += (c > 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

bool list_has(std::string_view list, std::string_view token) {
  return for_each_list_item(list, [&](std::string_view item) { return ascii_iequals(item, token); });
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_http_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!tchar[c]) return false;
  return true;
}

bool is_field_value(std::string_view s) {
  for (unsigned char c : s) {
    // field-vchar = VCHAR / obs-text; plus SP and HTAB inside a value.
    if (c == ' ' || c == '\t' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) continue;
    return false;
  }
  return true;
}

void framing_check::fail(std::string reason) {
  if (!error_) error_ = std::move(reason);
}

void framing_check::add(std::string_view name, std::string_view value) {
  if (!is_http_token(name)) {
    fail("invalid header field name");
    return;
  }
  if (!is_field_value(value)) {
    fail("invalid byte in header field " + printable(name));
    return;
  }
  value = trim_ows(value);
  if (ascii_iequals(name, "transfer-encoding")) {
    add_transfer_encoding(value);
  } else if (ascii_iequals(name, "content-length")) {
    add_content_length(value);
  } else if (ascii_iequals(name, "host")) {
    ++host_count_;
  } else if (ascii_iequals(name, "connection") || ascii_iequals(name, "proxy-connection")) {
    add_connection(value);
  }
}

void framing_check::add_transfer_encoding(std::string_view value) {
  if (++te_count_ > 1) {
    fail("Transfer-Encoding given more than once");
    return;
  }
  if (value.empty()) {
    fail("empty Transfer-Encoding");
    return;
  }
  if (!ascii_iequals(value, "chunked")) fail("Transfer-Encoding other than chunked");
}

void framing_check::add_connection(std::string_view value) {
  // connection-option tokens in a comma list; empty elements ignored (RFC 9110 5.6.1).
  while (true) {
    const auto comma = value.find(',');
    const auto option = trim_ows(value.substr(0, comma));
    if (ascii_iequals(option, "content-length") || ascii_iequals(option, "transfer-encoding") ||
        (kind_ == message_kind::request && ascii_iequals(option, "host"))) {
      fail("Connection names a framing field (" + printable(option) + ")");
      return;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

void framing_check::add_content_length(std::string_view value) {
  ++cl_count_;
  if (value.empty()) {
    fail("empty Content-Length");
    return;
  }
  std::uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      fail("malformed Content-Length");
      return;
    }
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
      fail("Content-Length too large");
      return;
    }
    v = v * 10 + d;
  }
  if (content_length_ && *content_length_ != v) {
    fail("conflicting Content-Length values");
    return;
  }
  content_length_ = v;
}

std::optional<std::string> framing_check::finish(unsigned http_version) const {
  if (error_) return error_;
  if (kind_ == message_kind::request && host_count_ > 1) return "more than one Host field";
  if (kind_ == message_kind::request && cl_count_ > 1) return "Content-Length given more than once";
  if (te_count_ > 0) {
    if (http_version < 11) return "Transfer-Encoding in an HTTP/1.0 message";
    if (cl_count_ > 0) return "both Transfer-Encoding and Content-Length";
  }
  return std::nullopt;
}

head_scan scan_head(std::string_view b, std::size_t from) {
  // Every line end is an LF: each new one either ends the head (CR LF CR LF), is bare, or is an
  // ordinary CR LF. The bytes before `from` may be looked back at, never scanned again.
  for (std::size_t i = b.find('\n', from); i != std::string_view::npos; i = b.find('\n', i + 1)) {
    if (i == 0 || b[i - 1] != '\r') return head_scan::bare_lf;
    if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r') return head_scan::whole;
  }
  return head_scan::incomplete;
}

std::size_t leading_empty_lines(std::string_view b) {
  std::size_t n = 0;
  while (n < b.size() && (b[n] == '\n' || (b[n] == '\r' && n + 1 < b.size() && b[n + 1] == '\n'))) {
    n += b[n] == '\r' ? 2 : 1;
  }
  return n;
}

std::optional<std::string> check_chunk_size_line(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && hex_digit_value(line[i]) >= 0) ++i;
  if (i == 0) return "chunk size is not hexadecimal";
  if (i > 16) return "chunk size too large";
  // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
  auto skip_bws = [&] {
    while (i < line.size() && is_ows(line[i])) ++i;
  };
  auto token = [&] {
    auto start = i;
    while (i < line.size() && tchar[static_cast<unsigned char>(line[i])]) ++i;
    return i > start;
  };
  while (true) {
    skip_bws();
    if (i == line.size()) return std::nullopt;
    if (line[i] != ';') return "malformed chunk size line";
    ++i;
    skip_bws();
    if (!token()) return "malformed chunk extension";
    skip_bws();
    if (i == line.size()) return std::nullopt;
    if (line[i] != '=') continue;
    ++i;
    skip_bws();
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        auto c = static_cast<unsigned char>(line[i]);
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\') {
          ++i;
          if (i == line.size()) break;
          c = static_cast<unsigned char>(line[i]);
          if (!(c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80))
            return "malformed chunk extension";
        } else if (!(c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80)) {
          return "malformed chunk extension";
        }
        ++i;
      }
      if (!closed) return "malformed chunk extension";
    } else if (!token()) {
      return "malformed chunk extension";
    }
  }
}

std::optional<std::uint32_t> max_forwards_value(std::string_view value) {
  value = trim_ows(value);
  if (value.empty()) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = std::min<std::uint64_t>(n * 10 + static_cast<std::uint64_t>(c - '0'), 0xFFFFFFFFu);
  }
  return static_cast<std::uint32_t>(n);
}

bool is_method_override_field(std::string_view name) {
  return ascii_iequals(name, "X-HTTP-Method-Override") || ascii_iequals(name, "X-HTTP-Method") ||
         ascii_iequals(name, "X-Method-Override");
}

void add_method_override(std::vector<std::string>& methods, std::string_view method, std::string_view value) {
  // Each comma-separated item: Express's method-override acts on the first of "DELETE, GET",
  // which was dropped whole as not a token (review, 2026-12-05). An item that is not a token
  // is kept as written (trimmed): decided as a method no rule names, which blocks nothing a
  // server could act on, rather than dropped.
  for_each_list_item(value, [&](std::string_view item) {
    if (ascii_iequals(item, method)) return false;
    std::string upper(item);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char ch) { return static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch); });
    if (std::find(methods.begin(), methods.end(), upper) == methods.end()) methods.push_back(std::move(upper));
    return false;
  });
}

}  // namespace hallpass
