// Proxy auto-configuration for the school network: every web request goes through hallpass.
// Serve this file as http://wpad.<school domain>/wpad.dat (WPAD) or at any URL given to
// devices by policy, with Content-Type: application/x-ns-proxy-autoconfig. See deploy/README.md.
//
// Replace proxy.school.internal with the gateway's LAN name or address, and the school
// networks and domains below with your own.
//
// There is deliberately no "; DIRECT" fallback: if the proxy is down, browsing stops rather
// than going out unfiltered (the gateway firewall blocks direct traffic anyway).

function FindProxyForURL(url, host) {
  host = host.toLowerCase();

  // Names without a dot (intranet servers) and the school's own internal domain.
  if (isPlainHostName(host) || dnsDomainIs(host, ".school.internal")) {
    return "DIRECT";
  }

  // Loopback and the school's private address literals, matched as text: no DNS lookup here
  // (isInNet would resolve every host name, which is slow and leaks names to DNS twice).
  if (/^127\.\d+\.\d+\.\d+$/.test(host) || host === "localhost" || host === "[::1]" || host === "::1") {
    return "DIRECT";
  }
  if (/^10\.\d+\.\d+\.\d+$/.test(host)) {
    return "DIRECT";
  }

  // Everything else, http and https (and ws/wss), through the filter.
  return "PROXY proxy.school.internal:3128";
}
