#include "proxy/pac_script.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "proxy/daemon_config.hpp"
#include "proxy/request_target.hpp"
#include "rules/json_writer.hpp"

namespace hallpass {

namespace {

// A JavaScript string literal: JSON's escaping (only printable ASCII, the rest as \uXXXX)
// is valid ES5. Only canonical addresses and names reach here; the escaping is belt and braces.
void js_string(std::string& out, std::string_view s) {
  out += '"';
  rules::json_escape(out, s);
  out += '"';
}

std::string ipv4_mask(int prefix) {
  const std::uint32_t m = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return std::to_string(m >> 24) + "." + std::to_string((m >> 16) & 255) + "." +
         std::to_string((m >> 8) & 255) + "." + std::to_string(m & 255);
}

// The functions of the script: the same logic as deploy/proxy.pac (which explains each case),
// with isInNetEx used where the browser has it.
constexpr std::string_view pac_functions = R"js(
// The eight 16-bit groups of an IPv6 address, or null when `text` is not one. Accepts "::"
// compression and a dotted IPv4 tail (::ffff:10.0.0.1); no zone (fe80::1%eth0): not school.
function ipv6Groups(text) {
  if (!/^[0-9a-f:.]+$/.test(text) || text.indexOf(":::") >= 0) return null;
  var halves = text.split("::");
  if (halves.length > 2) return null;
  function parse(part) {
    if (part === "") return [];
    var out = [];
    var fields = part.split(":");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (i === fields.length - 1 && f.indexOf(".") >= 0) {
        var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(f);
        if (!m || +m[1] > 255 || +m[2] > 255 || +m[3] > 255 || +m[4] > 255) return null;
        out.push(+m[1] * 256 + +m[2], +m[3] * 256 + +m[4]);
      } else if (/^[0-9a-f]{1,4}$/.test(f)) {
        out.push(parseInt(f, 16));
      } else {
        return null;
      }
    }
    return out;
  }
  var head = parse(halves[0]);
  var tail = halves.length === 2 ? parse(halves[1]) : [];
  if (head === null || tail === null) return null;
  var missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  var groups = head;
  for (var z = 0; z < missing; z++) groups.push(0);
  return groups.concat(tail);
}

// True when the IPv6 groups lie in "prefix/length".
function inIpv6Net(groups, net) {
  var slash = net.indexOf("/");
  var prefix = ipv6Groups(net.substring(0, slash));
  var bits = parseInt(net.substring(slash + 1), 10);
  for (var i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    var mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if ((groups[i] & mask) !== (prefix[i] & mask)) return false;
  }
  return true;
}

// A well-formed IPv6 literal (already checked by ipv6Groups) in the school's networks: the
// browser's own isInNetEx where it has one (Chrome, Edge, Windows), else the parser above.
function directIpv6(text, groups) {
  var native = typeof isInNetEx === "function";
  for (var i = 0; i < DIRECT_IPV6.length; i++) {
    if (native ? isInNetEx(text, DIRECT_IPV6[i]) : inIpv6Net(groups, DIRECT_IPV6[i])) return true;
  }
  return false;
}

function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) === ".") host = host.substring(0, host.length - 1);

  // IPv6 literals first, with or without brackets: they have no dots, so isPlainHostName
  // would call them intranet names.
  if (host.indexOf(":") >= 0) {
    var v6 = host.charAt(0) === "[" && host.charAt(host.length - 1) === "]" ? host.substring(1, host.length - 1) : host;
    var groups = ipv6Groups(v6);
    if (groups !== null && directIpv6(v6, groups)) return "DIRECT";
    return PROXY;
  }

  // IPv4 literals, without leading zeros ("010.0.0.1" is 8.0.0.1 to some clients). isInNet
  // on an address does no DNS lookup.
  if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) {
    if (/(^|\.)0\d/.test(host)) return PROXY;
    for (var j = 0; j < DIRECT_IPV4.length; j++) {
      if (isInNet(host, DIRECT_IPV4[j][0], DIRECT_IPV4[j][1])) return "DIRECT";
    }
    return PROXY;
  }

  // Intranet names without a dot, but not a bare number (http://167772161/ is an address).
  if (isPlainHostName(host) && /^[a-z0-9-]+$/.test(host) && !/^(\d+|0x[0-9a-f]+)$/.test(host)) {
    return "DIRECT";
  }

  // The school's own domains and their subdomains.
  for (var k = 0; k < DIRECT_DOMAINS.length; k++) {
    if (host === DIRECT_DOMAINS[k] || dnsDomainIs(host, "." + DIRECT_DOMAINS[k])) return "DIRECT";
  }

  // Everything else, http and https (and ws/wss), through the filter.
  return PROXY;
}

// Windows (WinHTTP, IE, Edge legacy) calls this one where it exists, for IPv6-aware answers.
function FindProxyForURLEx(url, host) {
  return FindProxyForURL(url, host);
}
)js";

}  // namespace

std::string make_pac_script(const pac_script_inputs& in) {
  std::string out;
  out.reserve(6 * 1024);
  out +=
      "// Proxy auto-configuration, generated by hallpass from its configuration (pac: and "
      "listen:;\n"
      "// the school's networks from the policy's roles). Every web request goes through the "
      "filter\n"
      "// except the school's own networks, intranet names and the school's own domains. There is "
      "no\n"
      "// DIRECT fallback on purpose: if the proxy is down, browsing stops rather than going out\n"
      "// unfiltered. Plain ES5 and only the standard PAC functions.\n\n";
  out += "var PROXY = ";
  std::string proxy;
  for (const auto& p : in.proxies) {
    if (!proxy.empty()) proxy += "; ";
    proxy += "PROXY " + p;
  }
  js_string(out, proxy);
  out += ";\nvar DIRECT_DOMAINS = [";
  for (std::size_t i = 0; i < in.direct_domains.size(); ++i) {
    if (i) out += ", ";
    js_string(out, in.direct_domains[i]);
  }
  out += "];\n// [address, mask]\nvar DIRECT_IPV4 = [";
  bool first = true;
  for (const auto& n : in.direct_networks) {
    if (n.base.v6) continue;
    if (!first) out += ", ";
    first = false;
    out += '[';
    js_string(out, n.base.to_string());
    out += ", ";
    js_string(out, ipv4_mask(n.prefix));
    out += ']';
  }
  out += "];\n// \"prefix/length\"\nvar DIRECT_IPV6 = [";
  first = true;
  for (const auto& n : in.direct_networks) {
    if (!n.base.v6) continue;
    if (!first) out += ", ";
    first = false;
    js_string(out, n.base.to_string() + "/" + std::to_string(n.prefix));
  }
  out += "];\n";
  out += pac_functions;
  return out;
}

std::optional<std::string> parse_pac_proxy(std::string_view text, std::string* why) {
  const auto fail = [&](std::string reason) -> std::optional<std::string> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return fail(
        "'" + std::string(text) +
        "' must be HOST:PORT, like 10.0.0.1:3128, [fd00::1]:3128 or proxy.school.internal:3128");
  }
  const std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  unsigned p = 0;
  const auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
    return fail("'" + std::string(text) + "': the port must be a number from 1 to 65535");
  }
  const std::string port_text = ":" + std::to_string(p);
  if (host.starts_with('[')) {
    const auto ip = host.ends_with(']') ? rules::ip_address::parse(host) : std::nullopt;
    if (!ip || !ip->v6)
      return fail("'" + std::string(text) + "': '" + std::string(host) +
                  "' is not an IPv6 address");
    return host_for_url(ip->to_string()) + port_text;
  }
  if (host.find(':') != std::string_view::npos) {
    return fail("'" + std::string(text) +
                "': write an IPv6 address in brackets, like [fd00::1]:3128");
  }
  if (const auto ip = rules::ip_address::parse(host)) return ip->to_string() + port_text;
  // A name: letters, digits, '-' and '.', which every PAC engine passes on unchanged.
  const bool plain = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.';
  });
  std::string err;
  const auto name = plain && !host.empty() ? rules::normalize_host(host, &err) : std::nullopt;
  if (!name || name->kind != rules::host_kind::name) {
    return fail("'" + std::string(text) + "': '" + std::string(host) +
                "' is not an IP address or a plain DNS name" +
                (err.empty() ? "" : " (" + err + ")"));
  }
  return name->text + port_text;
}

pac_script_inputs pac_inputs_for(const daemon_config& d, const rules::policy& p,
                                 const std::optional<rules::ip_address>& local) {
  pac_script_inputs in;
  if (!d.pac.proxy.empty()) {
    in.proxies = d.pac.proxy;
  } else {
    // Only listeners a browser can be pointed at belong here: not a transparent one (it takes
    // only what nftables redirected, and reads no proxy requests).
    for (const auto& l : d.listen) {
      if (l.transparent) continue;
      auto ip = rules::ip_address::parse(l.host);
      if (!ip) continue;
      const bool wildcard =
          std::all_of(ip->bytes.begin(), ip->bytes.end(), [](std::uint8_t b) { return b == 0; });
      if (wildcard) {
        if (!local || local->v6 != ip->v6) continue;
        ip = local;
      }
      std::string entry = host_for_url(ip->to_string());
      entry += ":" + std::to_string(l.port);
      if (std::find(in.proxies.begin(), in.proxies.end(), entry) == in.proxies.end())
        in.proxies.push_back(entry);
    }
  }
  const auto add_network = [&](const rules::ip_network& n) {
    for (const auto& have : in.direct_networks) {
      if (have.base == n.base && have.prefix == n.prefix) return;
    }
    in.direct_networks.push_back(n);
  };
  if (d.pac.direct_networks_set) {
    for (const auto& n : d.pac.direct_networks) add_network(n);
  } else {
    // In policy order (the policy keeps them longest prefix first; order does not matter here).
    for (const auto& n : p.networks) add_network(n);
  }
  add_network(*rules::ip_network::parse("127.0.0.0/8"));
  add_network(*rules::ip_network::parse("::1/128"));
  in.direct_domains = d.pac.direct_domains;
  return in;
}

}  // namespace hallpass
