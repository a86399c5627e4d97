// Proxy auto-configuration for the school network: every web request goes through hallpass.
// Serve this file as http://wpad.<school domain>/wpad.dat (WPAD) or at any URL given to
// devices by policy, with Content-Type: application/x-ns-proxy-autoconfig. See deploy/README.md.
// hallpass can serve one itself instead, generated from its configuration and regenerated on
// every reload (`pac.listen`); this file is the static alternative for another web server.
//
// Edit the four settings below: the proxy, the school's internal domain, and the school's own
// networks (the addresses in the policy's role `networks:`, rules/school.yaml). Only those go
// DIRECT; every other address, IPv4 or IPv6, and every other name goes through the filter.
// Test a change with tests/integration/deploy_pac_test.py (node evaluates this file).
//
// There is deliberately no "; DIRECT" fallback: if the proxy is down, browsing stops rather
// than going out unfiltered (the gateway firewall blocks direct traffic anyway).
//
// Plain ES5 and only the standard PAC functions: browsers' PAC engines are old JavaScript.

var PROXY = "PROXY proxy.school.internal:3128";
var SCHOOL_DOMAIN = "school.internal";
// [address, mask]: the school's IPv4 networks. 127.0.0.0/8 is the device itself.
var SCHOOL_IPV4 = [["10.0.0.0", "255.0.0.0"], ["127.0.0.0", "255.0.0.0"]];
// "prefix/length": the school's IPv6 networks. ::1/128 is the device itself.
var SCHOOL_IPV6 = ["fd00:10::/64", "fd00:20::/64", "fd00:30::/64", "fd00:99::/64", "::1/128"];

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

function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) === ".") host = host.substring(0, host.length - 1);

  // IPv6 literals first, with or without brackets: they have no dots, so isPlainHostName
  // would call them intranet names and send DNS-over-HTTPS resolvers such as
  // [2606:4700:4700::1111] around the filter.
  if (host.indexOf(":") >= 0) {
    var v6 = host.charAt(0) === "[" && host.charAt(host.length - 1) === "]" ? host.substring(1, host.length - 1) : host;
    var groups = ipv6Groups(v6);
    if (groups !== null) {
      for (var i = 0; i < SCHOOL_IPV6.length; i++) {
        if (inIpv6Net(groups, SCHOOL_IPV6[i])) return "DIRECT";
      }
    }
    return PROXY;
  }

  // IPv4 literals: isInNet on an address does no DNS lookup (on a name it would, which is
  // why names are never given to it here). Without leading zeros: "010.0.0.1" is 8.0.0.1 to
  // some clients (octal), so it must not be judged as 10.0.0.1; it goes to the proxy.
  if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) {
    if (/(^|\.)0\d/.test(host)) return PROXY;
    for (var j = 0; j < SCHOOL_IPV4.length; j++) {
      if (isInNet(host, SCHOOL_IPV4[j][0], SCHOOL_IPV4[j][1])) return "DIRECT";
    }
    return PROXY;
  }

  // Intranet names without a dot ("intranet", "printer", "localhost"), but not a bare number
  // (http://167772161/ is an address that some clients would connect to as is).
  if (isPlainHostName(host) && /^[a-z0-9-]+$/.test(host) && !/^(\d+|0x[0-9a-f]+)$/.test(host)) {
    return "DIRECT";
  }

  // The school's own domain and its subdomains.
  if (host === SCHOOL_DOMAIN || dnsDomainIs(host, "." + SCHOOL_DOMAIN)) {
    return "DIRECT";
  }

  // Everything else, http and https (and ws/wss), through the filter.
  return PROXY;
}
