#include "proxy/destination.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <tuple>

namespace hallpass {
namespace {

rules::ip_address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  rules::ip_address r;
  r.bytes[0] = a;
  r.bytes[1] = b;
  r.bytes[2] = c;
  r.bytes[3] = d;
  return r;
}

bool starts_with(const rules::ip_address& a, std::initializer_list<std::uint8_t> prefix) {
  std::size_t i = 0;
  for (auto b : prefix) {
    if (a.bytes[i++] != b) return false;
  }
  return true;
}

bool is_loopback_or_unspecified(const rules::ip_address& a) {
  if (!a.v6) return a.bytes[0] == 127 || a.bytes[0] == 0;  // 127/8; 0/8 ("this network") reaches the host itself
  for (std::size_t i = 0; i < 15; ++i) {
    if (a.bytes[i] != 0) return false;
  }
  return a.bytes[15] <= 1;  // :: or ::1
}

bool is_unspecified(const rules::ip_address& a) {
  for (auto b : a.bytes) {
    if (b != 0) return false;
  }
  return true;
}

bool is_link_local(const rules::ip_address& a) {
  if (!a.v6) return a.bytes[0] == 169 && a.bytes[1] == 254;
  return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80;
}

bool in_any(const rules::ip_address& a, const std::vector<rules::ip_network>& nets) {
  for (const auto& n : nets) {
    if (n.contains(a)) return true;
  }
  return false;
}

bool is_own_listener(const rules::ip_address& a, std::uint16_t port, const destination_rules& r) {
  for (const auto& [listen, listen_port] : r.own_listeners) {
    if (port != listen_port) continue;
    // A listener on 0.0.0.0 or :: is on every address of the machine; loopback reaches any listener.
    if (listen == a || is_unspecified(listen) || is_loopback_or_unspecified(a)) return true;
    for (const auto& g : r.gateway) {
      if (g == a) return true;
    }
  }
  return false;
}

destination_verdict check_one(const rules::ip_address& a, std::uint16_t port, const destination_rules& r) {
  if (is_own_listener(a, port, r)) return destination_verdict::own_listener;
  // allow_loopback opens loopback to the lists below (deny_networks may still name 127.0.0.5/32).
  if (!r.allow_loopback && is_loopback_or_unspecified(a)) return destination_verdict::loopback;
  if (is_link_local(a)) return destination_verdict::link_local;
  if (in_any(a, r.allow)) return destination_verdict::allowed;
  if (in_any(a, r.deny)) return destination_verdict::denied_network;
  for (const auto& g : r.gateway) {
    if (g == a) return destination_verdict::denied_network;
  }
  if (!is_loopback_or_unspecified(a) && in_any(a, r.school)) return destination_verdict::denied_network;
  return destination_verdict::allowed;
}

}  // namespace

std::string_view describe(destination_verdict v) {
  switch (v) {
    case destination_verdict::allowed: return "the destination is allowed";
    case destination_verdict::own_listener: return "the destination is the web filter itself";
    case destination_verdict::loopback: return "the destination is the gateway's loopback address";
    case destination_verdict::link_local: return "the destination is a link-local address";
    case destination_verdict::denied_network: return "the destination is on a network the school does not open to the web filter's users";
  }
  return "the destination is not allowed";
}

std::vector<rules::ip_network> default_deny_networks() {
  std::vector<rules::ip_network> out;
  // fec0::/10: IPv6's deprecated site-local range (RFC 3879), still routed inside some networks.
  for (const char* text : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                           "fc00::/7", "fe80::/10", "fec0::/10"}) {
    out.push_back(*rules::ip_network::parse(text));
  }
  return out;
}

std::vector<std::uint16_t> default_http_ports() { return {80, 443, 8080}; }

std::optional<rules::ip_address> embedded_ipv4(const rules::ip_address& a) {
  if (!a.v6) return std::nullopt;
  // Mapped, compatible and NAT64: the address a connection reaches (rules/host.hpp).
  if (auto reached = rules::ipv4_reached_by(a)) return reached;
  const auto& b = a.bytes;
  auto tail = [&](std::size_t at) { return v4(b[at], b[at + 1], b[at + 2], b[at + 3]); };
  // 6to4, RFC 3056: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16-47.
  if (starts_with(a, {0x20, 0x02})) return tail(2);
  // Teredo, RFC 4380: 2001:0000::/32; the client's address is the last 32 bits inverted.
  if (starts_with(a, {0x20, 0x01, 0x00, 0x00})) {
    auto r = tail(12);
    for (std::size_t i = 0; i < 4; ++i) r.bytes[i] = static_cast<std::uint8_t>(~r.bytes[i]);
    return r;
  }
  return std::nullopt;
}

destination_verdict check_destination(const rules::ip_address& a, std::uint16_t port, const destination_rules& r) {
  const auto verdict = check_one(a, port, r);
  if (verdict != destination_verdict::allowed) return verdict;
  if (auto inner = embedded_ipv4(a)) return check_one(*inner, port, r);
  return verdict;
}

std::optional<std::vector<rules::ip_address>> gateway_addresses(std::string* error) {
  std::vector<rules::ip_address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    if (error) *error = std::string("getifaddrs: ") + std::strerror(errno);
    return std::nullopt;
  }
  for (auto* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    rules::ip_address a;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      std::memcpy(a.bytes.data(), &sin->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)) continue;
      a.v6 = true;
      std::memcpy(a.bytes.data(), &sin6->sin6_addr, 16);
    } else {
      continue;
    }
    // The loopback addresses (not the loopback interface: a global address on `lo` is the
    // gateway's as much as one on eth0).
    if (is_loopback_or_unspecified(a)) continue;
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeifaddrs(list);
  std::sort(out.begin(), out.end(), [](const rules::ip_address& x, const rules::ip_address& y) {
    return std::tie(x.v6, x.bytes) < std::tie(y.v6, y.bytes);
  });
  return out;
}

destination_rules destination_rules_of(const daemon_config& d, const rules::policy& p,
                                       std::vector<rules::ip_address> gateway,
                                       const std::vector<std::pair<std::string, std::uint16_t>>& own_listeners) {
  const auto& u = d.upstream;
  destination_rules r;
  r.allow_loopback = u.allow_loopback;
  r.deny = u.deny_networks_set ? u.deny_networks : default_deny_networks();
  r.allow = u.allow_networks;
  r.gateway = std::move(gateway);
  // The roles' networks, but one wider than the largest private range (0.0.0.0/0, ::/0: a role
  // for "every other device", which check warns of), which would refuse the whole internet (the
  // review of the session, 2026-12-07).
  for (const auto& n : p.networks) {
    if (n.prefix >= (n.base.v6 ? 7 : 8)) r.school.push_back(n);
  }
  // Never the proxy itself, whatever the configuration says: that would loop.
  for (const auto& [addr, port] : own_listeners) {
    if (auto ip = rules::ip_address::parse(addr)) r.own_listeners.emplace_back(*ip, port);
  }
  return r;
}

}  // namespace hallpass
