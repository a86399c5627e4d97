// Which addresses and ports the proxy may connect to on a user's behalf: the destination
// check made before every upstream connection (plain HTTP and CONNECT), after the name is
// resolved and before any packet is sent.
//
// Refused, in this order of reasons:
//  - own_listener: the proxy's own listening ports and its metrics endpoint (a loop), always;
//  - loopback: 127.0.0.0/8, ::1, 0.0.0.0/8 and :: unless `upstream.allow_loopback`;
//  - link_local: 169.254.0.0/16 and fe80::/10 (cloud metadata services), always;
//  - denied_network: an address in `upstream.deny_networks` (the private ranges by default),
//    one of the gateway's own interface addresses, or one in a role's `networks` (the school's
//    own devices: a school numbering its LANs from a global IPv6 prefix is not covered by the
//    private ranges; outside-in audit of IPv6, 2026-12-07), unless it is in
//    `upstream.allow_networks` (a loopback address is judged by allow_loopback alone).
// (Ports are checked before the lookup, by upstream: `upstream.ports`, `connect.ports`.)
// An IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible
// ::a.b.c.d, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32) is
// judged as itself and as the IPv4 address it carries: refused when either is refused, since
// on a network with NAT64, 6to4 or Teredo the packets reach the embedded address.
//
// Pure but gateway_addresses: no I/O, no Asio. A destination_rules is an immutable value; the
// functions are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "proxy/daemon_config.hpp"
#include "rules/host.hpp"
#include "rules/policy.hpp"

namespace hallpass {

enum class destination_verdict : std::uint8_t { allowed, own_listener, loopback, link_local, denied_network };

// A sentence for the 403 page and the log: "the destination is a private network address".
std::string_view describe(destination_verdict v);

struct destination_rules {
  bool allow_loopback = false;
  std::vector<rules::ip_network> deny;       // upstream.deny_networks
  std::vector<rules::ip_network> allow;      // upstream.allow_networks: wins over deny (not over the rest)
  std::vector<rules::ip_address> gateway;    // the gateway's own non-loopback addresses: denied unless allowed
  std::vector<rules::ip_network> school;     // the roles' networks (policy.networks): denied unless allowed
  // The proxy's own listeners and metrics endpoint: (address, port); an unspecified address
  // (0.0.0.0, ::) stands for every address of the machine.
  std::vector<std::pair<rules::ip_address, std::uint16_t>> own_listeners;
};

// The default `upstream.deny_networks`: RFC 1918, CGNAT (RFC 6598), link-local, ULA
// (RFC 4193) and IPv6 link-local. Loopback is not here: allow_loopback decides it.
std::vector<rules::ip_network> default_deny_networks();

// The default `upstream.ports` for plain HTTP.
std::vector<std::uint16_t> default_http_ports();

// The IPv4 address an IPv6 address carries (see above), or nullopt (also for IPv4 input, and
// for :: and ::1, which are IPv6's own unspecified and loopback addresses).
std::optional<rules::ip_address> embedded_ipv4(const rules::ip_address& a);

// The rules from the configuration's upstream settings, the policy's role networks, the
// gateway's own addresses (gateway_addresses) and the proxy's listeners, ("address", port)
// each: what upstream.cpp checks every connection against, and what `explain` checks an
// address against.
destination_rules destination_rules_of(const daemon_config& d, const rules::policy& p,
                                       std::vector<rules::ip_address> gateway,
                                       const std::vector<std::pair<std::string, std::uint16_t>>& own_listeners);

// The machine's own addresses (getifaddrs; the one function here that asks the system), on
// every interface, loopback ones included (a router's management address or router ID is often
// a global address on `lo`), but the loopback addresses themselves (127.0.0.0/8, ::1:
// allow_loopback decides those) and IPv6 link-local ones (always refused). nullopt with *error
// when the system will not say (a sandbox without AF_NETLINK: getifaddrs fails).
// The daemon reads them again every second (server.cpp): an IPv6 gateway gains and loses
// addresses (temporary addresses, a renumbered prefix), and one read at start let pupils reach
// the gateway's pages on an address it gained later (outside-in audit of IPv6, 2026-12-07).
std::optional<std::vector<rules::ip_address>> gateway_addresses(std::string* error = nullptr);

// The check for one resolved address and the port it would be connected on.
destination_verdict check_destination(const rules::ip_address& a, std::uint16_t port, const destination_rules& r);

}  // namespace hallpass
