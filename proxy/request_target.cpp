#include "proxy/request_target.hpp"

#include <charconv>

#include "rules/explain.hpp"

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

}  // namespace

std::optional<parsed_target> parse_request_target(std::string_view target, bool connect,
                                                  std::string& error) {
  for (std::size_t i = 0; i < target.size(); ++i) {
    const auto b = static_cast<unsigned char>(target[i]);
    if (b < 0x21 || b > 0x7E) {
      error = "the request target has byte " + hex_byte(b) + " at offset " + std::to_string(i) +
              ": only visible ASCII is allowed (percent-encode anything else)";
      return std::nullopt;
    }
  }
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
      error = "CONNECT target '" + std::string(target) + "' is not host:port";
      return std::nullopt;
    }
    t.scheme = "https";
    t.host = std::string(host);
    t.port = static_cast<std::uint16_t>(p);
    return t;
  }
  if (target.size() < 8 || !starts_with_http_scheme(target)) {
    error = target.starts_with("/") ? "origin-form"
                                    : "only http:// URLs can be forwarded; use CONNECT for https";
    return std::nullopt;
  }
  // split_url compares the scheme case-sensitively.
  const std::string lowered = "http" + std::string(target.substr(4));
  auto parts = rules::split_url(lowered, &error);
  if (!parts) return std::nullopt;
  t.scheme = "http";
  t.host = std::string(parts->host);
  t.port = parts->port ? parts->port : 80;
  const std::string_view pq = parts->path;
  if (pq.empty() || pq.front() != '/') {
    t.path = "/";
    if (!pq.empty() && pq.front() == '?') t.query = std::string(pq.substr(1));
  } else if (auto q = pq.find('?'); q != std::string_view::npos) {
    t.path = std::string(pq.substr(0, q));
    t.query = std::string(pq.substr(q + 1));
  } else {
    t.path = std::string(pq);
  }
  return t;
}

}  // namespace hallpass
