// The proxy auto-configuration file (PAC) hallpass serves as /proxy.pac and /wpad.dat: plain
// ES5 JavaScript that browsers run to choose a proxy for each URL, generated from the
// configuration. Everything goes to the proxy except the school's own networks (DIRECT),
// intranet names without a dot and the school's own domains; there is no DIRECT fallback, so a
// device whose proxy is down stops browsing rather than going out unfiltered
// (deploy/README.md, "Pointing devices at the proxy").
//
// IPv6 literals are judged as addresses, never as intranet names (they have no dots): with
// isInNetEx where the browser has it (Chrome, Edge, Windows), else with the script's own
// parser (Firefox, Safari), the same one as deploy/proxy.pac. Malformed literals, zones,
// IPv4-mapped and NAT64 addresses go to the proxy. The script never looks a name up in DNS.
//
// Pure functions of their arguments (no I/O, no clock); thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/host.hpp"
#include "rules/policy.hpp"

namespace hallpass {

struct daemon_config;

struct pac_script_inputs {
  // What the PAC returns for everything not DIRECT, in order: "HOST:PORT" with IPv6 literals
  // in brackets ("10.0.0.1:3128", "[fd00::1]:3128", "proxy.school.internal:3128").
  // REQUIRES: not empty (pac_server answers 503 when there is no proxy to name).
  std::vector<std::string> proxies;
  std::vector<rules::ip_network> direct_networks;  // IPv4 and IPv6
  std::vector<std::string> direct_domains;         // canonical names: the domain and its subdomains
};

std::string make_pac_script(const pac_script_inputs& in);

// A pac.proxy entry, "HOST:PORT": an IPv4 address, an IPv6 address in brackets or a DNS name,
// and a port from 1 to 65535. Returns it in canonical form ("[fd00::1]:3128", names in lower
// case), or nullopt with *why set.
std::optional<std::string> parse_pac_proxy(std::string_view text, std::string* why = nullptr);

// The inputs for the configuration in force, for a PAC request that arrived on `local` (the
// server's own address of that connection):
// - proxies: pac.proxy when set; else every `listen:` address, where a wildcard (0.0.0.0, ::)
//   is named by `local` when it is of the same family and left out otherwise.
// - direct_networks: pac.direct_networks when set, else every role's `networks:` in the policy;
//   always with 127.0.0.0/8 and ::1/128 (the device itself: nothing leaves it).
// - direct_domains: pac.direct_domains.
pac_script_inputs pac_inputs_for(const daemon_config& d, const rules::policy& p,
                                 const std::optional<rules::ip_address>& local);

}  // namespace hallpass
