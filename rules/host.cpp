#include "rules/host.hpp"

#include <arpa/inet.h>
#include <idn2.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <vector>

namespace hallpass::rules {
namespace {

void set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// WHATWG "IPv4 number parser": decimal, 0x hex, 0 octal. Returns nullopt if not a number.
std::optional<std::uint64_t> parse_ipv4_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  if (s.empty()) return 0;
  std::uint64_t value = 0;
  for (char c : s) {
    int d = hex_value(c);
    if (d < 0 || d >= base) return std::nullopt;
    value = value * base + d;
    if (value > 0xFFFFFFFFull) return value;  // too large; caller rejects, keep it bounded
  }
  return value;
}

bool ends_in_number(std::string_view host) {
  // WHATWG: the host is an IPv4 candidate when its last non-empty label is numeric.
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  auto dot = host.rfind('.');
  std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  bool all_digits = true;
  for (char c : last) all_digits = all_digits && c >= '0' && c <= '9';
  if (all_digits) return true;
  return parse_ipv4_number(last).has_value();
}

std::optional<std::uint32_t> parse_whatwg_ipv4(std::string_view host, std::string* error) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::array<std::uint64_t, 5> parts{};  // a fifth part means "too many"
  std::size_t count = 0;
  std::size_t start = 0;
  while (true) {
    auto dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
    auto n = parse_ipv4_number(part);
    if (!n || part.empty()) {
      set_error(error, "'" + std::string(host) + "' looks like an IPv4 address but is not one");
      return std::nullopt;
    }
    parts[count++] = *n;
    if (count > 4) break;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (count > 4) {
    set_error(error, "'" + std::string(host) + "' has too many parts for an IPv4 address");
    return std::nullopt;
  }
  for (std::size_t i = 0; i + 1 < count; ++i) {
    if (parts[i] > 255) {
      set_error(error, "'" + std::string(host) + "' has an IPv4 part over 255");
      return std::nullopt;
    }
  }
  std::uint64_t last = parts[count - 1];
  if (last >= (1ull << (8 * (5 - count)))) {
    set_error(error, "'" + std::string(host) + "' is out of range for an IPv4 address");
    return std::nullopt;
  }
  std::uint64_t value = last;
  for (std::size_t i = 0; i + 1 < count; ++i) value += parts[i] << (8 * (3 - i));
  return static_cast<std::uint32_t>(value);
}

// The characters of a canonical host name, without the dot.
constexpr std::array<bool, 256> name_chars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  t['-'] = t['_'] = true;
  return t;
}();

bool is_name_char(unsigned char c) { return name_chars[c] || c == '.'; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "1.2.3.4" ("1.2.3.4." too) when it is the canonical dotted-decimal form: four decimal parts
// of at most 255 without leading zeros (a leading zero would make a part octal). Returns the
// text without the trailing dot, which is then exactly what the full parse would print.
std::optional<std::string_view> canonical_ipv4(std::string_view raw) {
  if (!raw.empty() && raw.back() == '.') raw.remove_suffix(1);
  if (raw.size() < 7 || raw.size() > 15) return std::nullopt;
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= raw.size() || raw[i] != '.') return std::nullopt;
      ++i;
    }
    const std::size_t start = i;
    unsigned value = 0;
    while (i < raw.size() && is_digit(raw[i]) && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(raw[i] - '0');
      ++i;
    }
    const std::size_t len = i - start;
    if (len == 0 || value > 255 || (len > 1 && raw[start] == '0')) return std::nullopt;
  }
  if (i != raw.size()) return std::nullopt;
  return raw;
}

// The fast path of normalize_host: `raw` already is a canonical host name (lower-case letters,
// digits, '-', '_'; labels of 1 to 63 characters; at most 253 characters once one trailing dot
// is removed) whose last label the full path would not read as an IPv4 number. Returns it
// without the trailing dot; nullopt sends the host down the full path, which gives the same
// answer for every host this one accepts.
std::optional<std::string_view> canonical_name(std::string_view raw) {
  if (!raw.empty() && raw.back() == '.') raw.remove_suffix(1);
  if (raw.empty() || raw.size() > 253) return std::nullopt;
  std::size_t label = 0, last_label = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      last_label = i + 1;
    } else if (!name_chars[c] || ++label > 63) {
      return std::nullopt;
    }
  }
  if (label == 0) return std::nullopt;
  // A last label that does not start with a digit is never read as a number ("com").
  if (is_digit(raw[last_label]) && ends_in_number(raw)) return std::nullopt;
  return raw;
}

char* format_ipv4(const std::uint8_t* b, char* out) {
  for (int i = 0; i < 4; ++i) {
    if (i > 0) *out++ = '.';
    const unsigned v = b[i];
    if (v >= 100) *out++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *out++ = static_cast<char>('0' + v / 10 % 10);
    *out++ = static_cast<char>('0' + v % 10);
  }
  return out;
}

// The text inet_ntop(AF_INET6) gives (RFC 5952 style, as glibc prints it): lower-case hex
// words without leading zeros, the longest run of two or more zero words as "::" (the first
// such run on a tie), and "::a.b.c.d" / "::ffff:a.b.c.d" for IPv4-compatible and -mapped
// addresses. Without inet_ntop's sprintf it costs a fraction.
char* format_ipv6(const std::array<std::uint8_t, 16>& b, char* out) {
  std::array<unsigned, 8> words{};
  for (int i = 0; i < 8; ++i) words[i] = (static_cast<unsigned>(b[2 * i]) << 8) | b[2 * i + 1];
  int best_base = -1, best_len = 0, cur_base = -1, cur_len = 0;
  for (int i = 0; i < 8; ++i) {
    if (words[i] == 0) {
      if (cur_base == -1) {
        cur_base = i;
        cur_len = 1;
      } else {
        ++cur_len;
      }
    } else if (cur_base != -1) {
      if (best_base == -1 || cur_len > best_len) best_base = cur_base, best_len = cur_len;
      cur_base = -1;
    }
  }
  if (cur_base != -1 && (best_base == -1 || cur_len > best_len)) best_base = cur_base, best_len = cur_len;
  if (best_base != -1 && best_len < 2) best_base = -1;
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    if (best_base != -1 && i >= best_base && i < best_base + best_len) {
      if (i == best_base) *out++ = ':';
      continue;
    }
    if (i != 0) *out++ = ':';
    if (i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))) {
      return format_ipv4(b.data() + 12, out);
    }
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned d = (words[i] >> shift) & 0xF;
      if (d != 0 || started || shift == 0) {
        *out++ = hex[d];
        started = true;
      }
    }
  }
  if (best_base != -1 && best_base + best_len == 8) *out++ = ':';
  return out;
}

}  // namespace

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  // inet_pton reads a C string: an embedded NUL would cut "127.0.0.61\0x" to an address.
  if (text.empty() || text.size() > 45 || text.find('\0') != std::string_view::npos) return std::nullopt;
  char buf[64];
  text.copy(buf, text.size());
  buf[text.size()] = '\0';
  ip_address a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.v6 = true;
    return a;
  }
  return std::nullopt;
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  char* end = v6 ? format_ipv6(bytes, buf) : format_ipv4(bytes.data(), buf);
  return std::string(buf, end);
}

std::optional<ip_address> ipv4_mapped(const ip_address& a) {
  static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a.v6 || !std::equal(std::begin(prefix), std::end(prefix), a.bytes.begin())) return std::nullopt;
  ip_address out;
  std::copy(a.bytes.begin() + 12, a.bytes.end(), out.bytes.begin());
  return out;
}

std::optional<ip_address> ipv4_reached_by(const ip_address& a) {
  if (auto v4 = ipv4_mapped(a)) return v4;
  if (!a.v6) return std::nullopt;
  const auto& b = a.bytes;
  const auto starts = [&](std::initializer_list<std::uint8_t> prefix) {
    return std::equal(prefix.begin(), prefix.end(), b.begin());
  };
  const bool compatible = starts({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) &&
                          !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1);  // not :: or ::1
  const bool nat64 = starts({0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}) ||
                     starts({0x00, 0x64, 0xff, 0x9b, 0x00, 0x01});
  if (!compatible && !nat64) return std::nullopt;
  ip_address out;
  std::copy(b.begin() + 12, b.end(), out.bytes.begin());
  return out;
}

// Out of line on purpose: inlined where the length is known to be at most 253, GCC copies
// with "rep movsq", whose start-up cost is a third of the fast path; memcpy is quicker.
[[gnu::noinline]] static normalized_host copy_host(std::string_view text, host_kind kind) {
  return normalized_host{std::string(text), kind};
}

std::optional<normalized_host> normalize_host(std::string_view raw, std::string* error) {
  // Most hosts arrive already canonical: one pass to check, one copy.
  if (auto name = canonical_name(raw)) return copy_host(*name, host_kind::name);
  if (auto v4 = canonical_ipv4(raw)) return copy_host(*v4, host_kind::ipv4);
  return normalize_host_full(raw, error);
}

std::optional<normalized_host> normalize_host_full(std::string_view raw, std::string* error) {
  if (raw.empty()) {
    set_error(error, "the host name is empty");
    return std::nullopt;
  }
  if (raw.size() > 1024) {
    set_error(error, "the host name is longer than 1024 characters");
    return std::nullopt;
  }
  // IPv6 literal.
  if (raw.front() == '[') {
    if (raw.back() != ']') {
      set_error(error, "'" + std::string(raw) + "' opens an IPv6 address with '[' but does not close it");
      return std::nullopt;
    }
    auto ip = ip_address::parse(raw);
    if (!ip || !ip->v6) {
      set_error(error, "'" + std::string(raw) + "' is not a valid IPv6 address");
      return std::nullopt;
    }
    return normalized_host{ip->to_string(), host_kind::ipv6};
  }
  if (raw.find(':') != std::string_view::npos) {
    auto ip = ip_address::parse(raw);
    if (ip && ip->v6) return normalized_host{ip->to_string(), host_kind::ipv6};
    set_error(error, "'" + std::string(raw) + "' contains ':' but is not an IPv6 address");
    return std::nullopt;
  }

  // Percent-decode, lower-case ASCII, note whether anything is non-ASCII.
  std::string s;
  s.reserve(raw.size());
  bool non_ascii = false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c == '%') {
      int hi = i + 2 < raw.size() ? hex_value(raw[i + 1]) : -1;
      int lo = i + 2 < raw.size() ? hex_value(raw[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        set_error(error, "'" + std::string(raw) + "' has a broken percent-encoding");
        return std::nullopt;
      }
      c = static_cast<unsigned char>(hi * 16 + lo);
      i += 2;
    }
    if (c >= 0x80) non_ascii = true;
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    s.push_back(static_cast<char>(c));
  }

  if (non_ascii) {
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(s.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
      // Fall back to transitional processing, which maps some characters (like U+00DF) that
      // non-transitional rejects; both are what browsers have shipped.
      rc = idn2_to_ascii_8z(s.c_str(), &out, IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
    }
    if (rc != IDN2_OK) {
      set_error(error, "'" + std::string(raw) + "' is not a valid internationalised name: " +
                           idn2_strerror(rc));
      return std::nullopt;
    }
    s = out;
    std::free(out);
    for (auto& c : s) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }

  if (ends_in_number(s)) {
    auto v4 = parse_whatwg_ipv4(s, error);
    if (!v4) return std::nullopt;
    ip_address a;
    a.bytes[0] = static_cast<std::uint8_t>(*v4 >> 24);
    a.bytes[1] = static_cast<std::uint8_t>(*v4 >> 16);
    a.bytes[2] = static_cast<std::uint8_t>(*v4 >> 8);
    a.bytes[3] = static_cast<std::uint8_t>(*v4);
    return normalized_host{a.to_string(), host_kind::ipv4};
  }

  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty() || s.front() == '.') {
    set_error(error, "'" + std::string(raw) + "' is not a valid host name");
    return std::nullopt;
  }
  if (s.size() > 253) {
    set_error(error, "'" + std::string(raw) + "' is longer than 253 characters");
    return std::nullopt;
  }
  std::size_t label = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (!is_name_char(c)) {
      set_error(error, "'" + std::string(raw) + "' contains the character '" + std::string(1, static_cast<char>(c)) +
                           "', which is not allowed in a host name");
      return std::nullopt;
    }
    if (c == '.') {
      if (label == 0) {
        set_error(error, "'" + std::string(raw) + "' has an empty label ('..')");
        return std::nullopt;
      }
      label = 0;
    } else if (++label > 63) {
      set_error(error, "'" + std::string(raw) + "' has a label longer than 63 characters");
      return std::nullopt;
    }
  }
  if (label == 0) {
    // "social.test.." : one trailing dot is the root, a second is an empty label. Kept, it
    // matched no rule while DNS still found social.test (audit18 D2: a blocked site opened).
    set_error(error, "'" + std::string(raw) + "' has an empty label ('..')");
    return std::nullopt;
  }
  return normalized_host{std::move(s), host_kind::name};
}

bool is_same_or_subdomain(std::string_view host, std::string_view domain) {
  if (host.size() == domain.size()) return host == domain;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

namespace {

bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Percent-escapes normalised: unreserved characters decoded, other escapes in upper case, a
// '%' that starts no valid escape kept as it is.
// `slash`: %2F is decoded too (the path: most servers, nginx among them, read it as "/", so a
// rule or a block for "/a/b" must also match "/a%2Fb"; the request is still sent as written).
void normalize_escapes(std::string_view in, std::string& out, bool slash = false) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
        if (is_unreserved(decoded) || (slash && decoded == '/')) {
          out.push_back(static_cast<char>(decoded));
        } else {
          out.push_back('%');
          out.push_back(hex[hi]);
          out.push_back(hex[lo]);
        }
        i += 2;
        continue;
      }
    }
    out.push_back(c);
  }
}

// RFC 3986 5.2.4 on a path that starts with '/', with runs of '/' taken as one.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view seg = path.substr(i, j - i);
    trailing_slash = j < path.size() || seg.empty() || seg == "." || seg == "..";
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    i = j;
  }
  std::string out;
  out.reserve(path.size());
  for (auto seg : segments) out.append("/").append(seg);
  if (out.empty() || trailing_slash) out.push_back('/');
  return out;
}

}  // namespace

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
    if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
    if (x != y) return false;
  }
  return true;
}

std::string canonical_entry_path(std::string_view typed) {
  std::string path;
  path.reserve(typed.size());
  for (const char ch : typed) {
    const auto b = static_cast<unsigned char>(ch);
    if (b > 0x20 && b < 0x7F) {
      path.push_back(ch);
    } else {
      static constexpr char hex[] = "0123456789ABCDEF";
      path.push_back('%');
      path.push_back(hex[b >> 4]);
      path.push_back(hex[b & 15]);
    }
  }
  if (path.empty() || path.front() == '?') path.insert(path.begin(), '/');
  std::string canonical;
  if (normalize_path(path, canonical)) return canonical;
  return path;
}

bool path_starts_with(std::string_view path, std::string_view prefix, bool path_without_case) {
  if (path.size() < prefix.size()) return false;
  const std::size_t folded = path_without_case ? std::min(prefix.find('?'), prefix.size()) : 0;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = prefix[i], b = path[i];
    if (i < folded) {
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    }
    if (a != b) return false;
  }
  return true;
}

std::string path_without_parameters(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  bool in_parameters = false;
  for (const char c : path) {
    if (c == '/') {
      in_parameters = false;
    } else if (c == ';') {
      in_parameters = true;
    }
    if (!in_parameters) out.push_back(c);
  }
  return out;
}

std::string path_resolved_without_parameters(std::string_view path) {
  std::string out = path_without_parameters(path);
  if (std::string canonical; normalize_path(out, canonical)) out = std::move(canonical);
  return out;
}

namespace {
// "%3A" / "%3a" and "%24" at `i`: the escapes of ':' and '$', which canonical form keeps.
char windows_escape_at(std::string_view s, std::size_t i) {
  if (i + 3 > s.size()) return 0;
  if (s[i] != '%') return 0;
  if (s[i + 1] == '3' && (s[i + 2] == 'A' || s[i + 2] == 'a')) return ':';
  if (s[i + 1] == '2' && s[i + 2] == '4') return '$';
  return 0;
}
}  // namespace

bool windows_reads_differently(std::string_view path) {
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '$' || windows_escape_at(path, i)) return true;
    const bool segment_end = i + 1 == path.size() || path[i + 1] == '/';
    if (segment_end && (c == '.' || c == ' ' || (c == '0' && i >= 2 && path[i - 1] == '2' && path[i - 2] == '%')))
      return true;
  }
  return false;
}

std::string path_as_windows_reads_it(std::string_view path) {
  // IIS decodes ':' and '$' before the file system sees the name: "%3A%3A%24DATA" is "::$DATA".
  std::string decoded;
  decoded.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (const char e = windows_escape_at(path, i)) {
      decoded.push_back(e);
      i += 2;
    } else {
      decoded.push_back(path[i]);
    }
  }
  std::string_view rest = decoded;
  std::string out;
  out.reserve(decoded.size());
  auto trimmed = [](std::string_view seg) {
    const std::string_view whole = seg;
    for (bool changed = true; changed && !seg.empty();) {
      changed = false;
      constexpr std::string_view stream = "::$data";
      if (seg.size() > stream.size() && ascii_iequals(seg.substr(seg.size() - stream.size()), stream)) {
        seg.remove_suffix(stream.size());
        changed = true;
      }
      while (!seg.empty() && (seg.back() == '.' || seg.back() == ' ')) {
        seg.remove_suffix(1);
        changed = true;
      }
      // A space stays encoded in canonical form ("%20"); a dot does not ("%2e" is ".").
      while (seg.ends_with("%20")) {
        seg.remove_suffix(3);
        changed = true;
      }
    }
    return seg.empty() ? whole : seg;
  };
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    out.append(trimmed(rest.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    out.push_back('/');
    rest.remove_prefix(slash + 1);
  }
  return out;
}

std::string page_path(std::string_view path) {
  std::string out = path_resolved_without_parameters(path);
  if (windows_reads_differently(out)) out = path_as_windows_reads_it(out);  // most paths: no second copy
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool normalize_path(std::string_view raw, std::string& out) {
  const std::size_t q = raw.find('?');
  const std::string_view path = raw.substr(0, q);
  const bool needs = raw.find('%') != std::string_view::npos || path.find("//") != std::string_view::npos ||
                     path.find("/.") != std::string_view::npos || (!path.empty() && path.front() != '/');
  if (!needs) return false;
  std::string p;
  p.reserve(path.size() + 1);
  if (path.empty() || path.front() != '/') p.push_back('/');
  normalize_escapes(path, p, true);
  std::string result = remove_dot_segments(p);
  if (q != std::string_view::npos) {
    result.push_back('?');
    normalize_escapes(raw.substr(q + 1), result);
  }
  if (result == raw) return false;
  out = std::move(result);
  return true;
}

bool feed_entry_is_registry_suffix(std::string_view host,
                                   const std::function<bool(std::string_view)>& is_registry_suffix) {
  if (host.empty() || ip_address::parse(host)) return false;
  return is_registry_suffix ? is_registry_suffix(host) : host.find('.') == std::string_view::npos;
}

}  // namespace hallpass::rules
