#include "proxy/request_target.hpp"

#include <charconv>

#include "rules/explain.hpp"
#include "rules/host.hpp"

namespace hallpass {
namespace {

bool starts_with_http_scheme(std::string_view target) {
  constexpr std::string_view scheme = "http://";
  if (target.size() < scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    char c = target[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i]) return false;
  }
  return true;
}

std::string hex_byte(unsigned char b) {
  static constexpr char digits[] = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}


bool visible_ascii(std::string_view target, std::string& error) {
  for (std::size_t i = 0; i < target.size(); ++i) {
    const auto b = static_cast<unsigned char>(target[i]);
    if (b < 0x21 || b > 0x7E) {
      error = "the request target has byte " + hex_byte(b) + " at offset " + std::to_string(i) +
              ": only visible ASCII is allowed (percent-encode anything else)";
      return false;
    }
  }
  return true;
}

// Splits "/path?query#fragment" into t.path and t.query (the fragment dropped).
void split_path(std::string_view pq, parsed_target& t) {
  if (const auto hash = pq.find('#'); hash != std::string_view::npos) pq = pq.substr(0, hash);
  if (pq.empty() || pq.front() != '/') {
    t.path = "/";
    if (!pq.empty() && pq.front() == '?') t.query = std::string(pq.substr(1));
  } else if (auto q = pq.find('?'); q != std::string_view::npos) {
    t.path = std::string(pq.substr(0, q));
    t.query = std::string(pq.substr(q + 1));
  } else {
    t.path = std::string(pq);
  }
}

// Host names compare without case, a trailing dot, or an IPv6 literal's brackets (the tunnel's
// host is kept normalised, "::1", while a Host field writes "[::1]").
std::string_view bare_host(std::string_view h) {
  h = without_brackets(h);
  if (h.ends_with('.')) h.remove_suffix(1);
  return h;
}

bool same_host(std::string_view a, std::string_view b) {
  a = bare_host(a);
  b = bare_host(b);
  if (rules::ascii_iequals(a, b)) return true;
  // Two spellings of one IPv6 address ("2001:DB8:2:0::10", "2001:db8:2::10"): compared as
  // addresses (outside-in audit of IPv6, 2026-12-07, F8: a 421 for the tunnel's own address).
  if (a.find(':') == std::string_view::npos || b.find(':') == std::string_view::npos) return false;
  const auto x = rules::ip_address::parse(a), y = rules::ip_address::parse(b);
  return x && y && *x == *y;
}

// "host", "host:port", "[v6]" or "[v6]:port" -> host and port (default_port when none);
// false when the port is not 1-65535.
bool split_authority(std::string_view a, std::uint16_t default_port, std::string_view& host, std::uint16_t& port) {
  std::string_view p;
  if (!a.empty() && a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos) return false;
    host = a.substr(0, close + 1);
    // Brackets hold an IPv6 literal (RFC 3986 3.2.2), never a name: "[allowed.test]" is malformed.
    if (host.find(':') == std::string_view::npos) return false;
    if (close + 1 < a.size()) {
      if (a[close + 1] != ':') return false;
      p = a.substr(close + 2);
    }
  } else if (const auto colon = a.rfind(':'); colon != std::string_view::npos) {
    host = a.substr(0, colon);
    p = a.substr(colon + 1);
  } else {
    host = a;
  }
  port = default_port;
  if (p.empty()) return !host.empty();
  unsigned n = 0;
  auto r = std::from_chars(p.data(), p.data() + p.size(), n);
  if (r.ec != std::errc() || r.ptr != p.data() + p.size() || n == 0 || n > 65535) return false;
  port = static_cast<std::uint16_t>(n);
  return !host.empty();
}

// Origin-form with a Host field that is there but empty: the request names no site.
bool names_no_site(std::string_view target, std::optional<std::string_view> host_field, std::string& error) {
  if (!host_field || host_field->find_first_not_of(" \t") != std::string_view::npos || !target.starts_with('/')) {
    return false;
  }
  error = "the request's Host field is empty";
  return true;
}

}  // namespace

std::optional<parsed_target> parse_tunnel_request_target(std::string_view target,
                                                         std::optional<std::string_view> host_field,
                                                         std::string_view tunnel_host, std::uint16_t tunnel_port,
                                                         std::string& error, bool tls, bool* other_site) {
  const std::string_view scheme = tls ? "https" : "http";
  if (!visible_ascii(target, error) || names_no_site(target, host_field, error)) return std::nullopt;
  parsed_target t;
  std::string_view authority = host_field.value_or("");
  if (target == "*") {
    t.path = "/";
    t.no_path = true;
  } else if (target.starts_with("/")) {
    split_path(target, t);
  } else {
    const std::size_t prefix = scheme.size() + 3;  // "https://" or "http://"
    if (target.size() <= prefix || !same_host(target.substr(0, scheme.size()), scheme) ||
        target.substr(scheme.size(), 3) != "://") {
      error = tls ? "inside an HTTPS tunnel only paths (origin-form) and https:// URLs can be requested"
                  : "inside a tunnel only paths (origin-form) and http:// URLs can be requested";
      return std::nullopt;
    }
    const std::string_view rest = target.substr(prefix);
    const auto end = rest.find_first_of("/?#");
    authority = rest.substr(0, end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) authority = authority.substr(at + 1);
    split_path(end == std::string_view::npos ? std::string_view{} : rest.substr(end), t);
    t.no_path = end == std::string_view::npos || rest[end] == '#';
  }
  std::string_view host = tunnel_host;
  std::uint16_t port = tunnel_port;
  if (!authority.empty() && !split_authority(authority, tls ? 443 : 80, host, port)) {
    error = "the request names '" + std::string(authority) + "', which is not host[:port]";
    return std::nullopt;
  }
  if (!same_host(host, tunnel_host) || port != tunnel_port) {
    if (other_site != nullptr) *other_site = true;
    error = "the request names '" + std::string(authority) + "' inside the tunnel to '" + std::string(tunnel_host) +
            ":" + std::to_string(tunnel_port) + "'";
    return std::nullopt;
  }
  t.scheme = std::string(scheme);
  t.host = host_for_url(tunnel_host);
  t.port = tunnel_port;
  return t;
}

std::optional<parsed_target> parse_transparent_request_target(std::string_view target,
                                                              std::optional<std::string_view> host_field,
                                                              std::string_view destination_host,
                                                              std::uint16_t destination_port, std::string& error) {
  if (!visible_ascii(target, error) || names_no_site(target, host_field, error)) return std::nullopt;
  parsed_target t;
  std::string_view authority = host_field.value_or("");
  if (target == "*") {
    t.path = "/";
    t.no_path = true;
  } else if (target.starts_with("/")) {
    split_path(target, t);
  } else if (target.size() > 7 && starts_with_http_scheme(target)) {
    const std::string_view rest = target.substr(7);
    const auto end = rest.find_first_of("/?#");
    authority = rest.substr(0, end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) authority = authority.substr(at + 1);
    split_path(end == std::string_view::npos ? std::string_view{} : rest.substr(end), t);
    t.no_path = end == std::string_view::npos || rest[end] == '#';
  } else {
    error = "a transparent listener takes paths (origin-form) or http:// URLs";
    return std::nullopt;
  }
  std::string_view host = destination_host;  // no Host (HTTP/1.0): the address the client connected to
  if (!authority.empty()) {
    // Only a host and a port: "a.test/x?" or "user@a.test" would change how the URL is read.
    bool plain = true;
    for (const char ch : authority) {
      const auto b = static_cast<unsigned char>(ch);
      if (b < 0x21 || b > 0x7E || ch == '/' || ch == '?' || ch == '#' || ch == '@' || ch == '\\') plain = false;
    }
    std::uint16_t written = 0;  // 0: no port written
    if (!plain || !split_authority(authority, 0, host, written) ||
        (host.front() != '[' && host.find(':') != std::string_view::npos)) {
      error = "the request names '" + std::string(authority) + "', which is not host[:port]";
      return std::nullopt;
    }
    if (written != 0 && written != destination_port) {
      error = "the request names port " + std::to_string(written) + ", but the connection was to port " +
              std::to_string(destination_port);
      return std::nullopt;
    }
  }
  t.scheme = "http";
  t.host = host_for_url(host);
  t.port = destination_port;
  return t;
}

std::optional<parsed_target> parse_request_target(std::string_view target, bool connect,
                                                  std::string& error) {
  if (!visible_ascii(target, error)) return std::nullopt;
  parsed_target t;
  if (connect) {
    std::string_view host, port;
    if (!target.empty() && target.front() == '[') {
      const auto close = target.find(']');
      if (close == std::string_view::npos || close + 1 >= target.size() ||
          target[close + 1] != ':') {
        error = "CONNECT needs host:port";
        return std::nullopt;
      }
      host = target.substr(0, close + 1);
      port = target.substr(close + 2);
      // Brackets hold an IPv6 literal (RFC 3986 3.2.2), never a name: "[allowed.test]:443".
      if (host.find(':') == std::string_view::npos) {
        error = "the CONNECT target is not host:port (a port from 1 to 65535)";
        return std::nullopt;
      }
    } else {
      const auto colon = target.rfind(':');
      if (colon == std::string_view::npos) {
        error = "CONNECT needs host:port";
        return std::nullopt;
      }
      host = target.substr(0, colon);
      port = target.substr(colon + 1);
    }
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (host.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 ||
        p > 65535) {
      // The target is not quoted: it is the client's text, and whatever it carries (a path, a
      // query, a password) must not reach the log's note (audit19 D3).
      error = "the CONNECT target is not host:port (a port from 1 to 65535)";
      return std::nullopt;
    }
    if (host.find('@') != std::string_view::npos) {
      // user:password@host: no browser sends one; refused, and the host field stays empty
      // rather than log the password (audit19 D3).
      error = "the CONNECT target names a user (name@host), which is never sent on";
      return std::nullopt;
    }
    t.scheme = "https";
    t.host = std::string(host);
    t.port = static_cast<std::uint16_t>(p);
    return t;
  }
  if (target == "*") {
    error = "asterisk-form";
    return std::nullopt;
  }
  if (target.size() < 8 || !starts_with_http_scheme(target)) {
    error = target.starts_with("/") ? "origin-form"
                                    : "only http:// URLs can be forwarded; use CONNECT for https";
    return std::nullopt;
  }
  auto parts = rules::split_url(target, &error);  // the scheme without case, as checked above
  if (!parts) return std::nullopt;
  t.scheme = "http";
  t.host = std::string(parts->host);
  t.port = parts->port ? parts->port : 80;
  split_path(parts->path, t);  // split_url has dropped the fragment already
  const auto end = target.find_first_of("/?#", 7);
  t.no_path = end == std::string_view::npos || target[end] == '#';
  return t;
}

std::string host_for_url(std::string_view host) {
  if (host.find(':') == std::string_view::npos || host.starts_with('[')) return std::string(host);
  std::string s;
  s.reserve(host.size() + 2);
  s.append("[").append(host).append("]");
  return s;
}

std::string_view without_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

std::string authority_of(std::string_view scheme, std::string_view host, std::uint16_t port) {
  std::string s = host_for_url(host);
  if (port != (scheme == "https" ? 443 : 80)) s.append(":").append(std::to_string(port));
  return s;
}

std::string url_of(std::string_view scheme, std::string_view host, std::uint16_t port,
                   std::string_view path_and_query) {
  std::string s(scheme);
  s.append("://").append(authority_of(scheme, host, port)).append(path_and_query);
  return s;
}

}  // namespace hallpass
