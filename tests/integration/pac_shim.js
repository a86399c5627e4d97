// Evaluates a PAC file the way a browser's PAC engine does: a fresh context with the standard
// PAC functions (Mozilla's definitions), then FindProxyForURL for each case.
// usage: node pac_shim.js FILE.pac < cases.json   (cases: [[url, host], ...])
// Prints [result, ...] as JSON. Any DNS use (dnsResolve, or isInNet on a name) is an error:
// the school's PAC must never look names up.
// With PAC_SHIM_ISINNETEX=1 the context also has isInNetEx (Chrome's and Windows' IPv6 PAC
// extension), implemented with node's own address matching (net.BlockList), not the PAC's;
// the number of calls is written to standard error as "isInNetEx calls: N".
"use strict";
const fs = require("fs");
const net = require("net");
const vm = require("vm");

function ipv4ToInt(a) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (!m) return null;
  return ((+m[1] << 24) >>> 0) + (+m[2] << 16) + (+m[3] << 8) + +m[4];
}

const dnsCalls = [];
const context = {
  isPlainHostName: (host) => host.indexOf(".") < 0,
  dnsDomainIs: (host, domain) => host.length >= domain.length && host.substring(host.length - domain.length) === domain,
  localHostOrDomainIs: (host, hostdom) => host === hostdom || hostdom.lastIndexOf(host + ".", 0) === 0,
  isResolvable: (host) => { dnsCalls.push(host); return false; },
  dnsResolve: (host) => { dnsCalls.push(host); return null; },
  myIpAddress: () => "10.10.4.20",
  dnsDomainLevels: (host) => host.split(".").length - 1,
  isInNet: (host, pattern, mask) => {
    const h = ipv4ToInt(host);
    if (h === null) { dnsCalls.push(host); return false; }  // a browser would resolve it
    const p = ipv4ToInt(pattern), m = ipv4ToInt(mask);
    return ((h & m) >>> 0) === ((p & m) >>> 0);
  },
  shExpMatch: (str, shexp) => {
    const re = shexp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + re + "$").test(str);
  },
  weekdayRange: () => true, dateRange: () => true, timeRange: () => true,
  alert: () => {},
};
let isInNetExCalls = 0;
if (process.env.PAC_SHIM_ISINNETEX === "1") {
  // isInNetEx(ipAddress, ipPrefix): false for anything that is not an address (no lookup).
  context.isInNetEx = (address, prefix) => {
    isInNetExCalls++;
    const slash = prefix.indexOf("/");
    const base = prefix.substring(0, slash), bits = +prefix.substring(slash + 1);
    const family = net.isIPv6(base) ? "ipv6" : "ipv4";
    const kind = net.isIPv6(address) ? "ipv6" : net.isIPv4(address) ? "ipv4" : null;
    if (kind === null || kind !== family) return false;
    const list = new net.BlockList();
    list.addSubnet(base, bits, family);
    return list.check(address, kind);
  };
}
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), context, { filename: process.argv[2] });
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const results = cases.map(([url, host]) => context.FindProxyForURL(url, host));
if (dnsCalls.length) {
  process.stderr.write("the PAC file looked up names: " + JSON.stringify(dnsCalls) + "\n");
  process.exit(3);
}
if (process.env.PAC_SHIM_ISINNETEX === "1") process.stderr.write("isInNetEx calls: " + isInNetExCalls + "\n");
process.stdout.write(JSON.stringify(results) + "\n");
