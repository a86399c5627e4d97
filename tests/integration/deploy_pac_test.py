"""deploy/proxy.pac evaluated by node with the standard PAC functions (pac_shim.js): only the
school's own networks, intranet names and the school's domain go DIRECT; every other IPv4 or
IPv6 address (DNS-over-HTTPS resolvers included) and every other name goes to the proxy."""
import json
import os
import shutil
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HALLPASS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
PAC = os.path.join(SRC, "deploy", "proxy.pac")
PROXY = "PROXY proxy.school.internal:3128"

CASES = {
    # IPv4
    "10.0.0.1": "DIRECT",              # the gateway
    "10.10.4.20": "DIRECT",            # a pupil device
    "127.0.0.1": "DIRECT",
    "1.1.1.1": PROXY,                  # Cloudflare DNS over HTTPS
    "8.8.8.8": PROXY,
    "192.168.1.1": PROXY,              # not the school's
    "100.64.0.1": PROXY,
    "10.0.0.1.": "DIRECT",             # trailing dot
    "11.0.0.1": PROXY,
    "010.0.0.1": PROXY,                # octal to some clients: 8.0.0.1
    "10.0.0.010": PROXY,
    # IPv6, with and without brackets (browsers differ)
    "2606:4700:4700::1111": PROXY,     # Cloudflare DoH: once DIRECT (no dots: "plain host name")
    "[2606:4700:4700::1111]": PROXY,
    "[2001:4860:4860::8888]": PROXY,   # Google DoH
    "2001:4860:4860::8888": PROXY,
    "[fd00:10::1234]": "DIRECT",       # the pupils' network (rules/school.yaml)
    "fd00:20::1": "DIRECT",
    "[FD00:30:0:0:0:0:0:9]": "DIRECT",
    "[fd00:10:0:1::1]": PROXY,         # the next /64: not the school's
    "[fd00:11::1]": PROXY,
    "[::1]": "DIRECT",
    "::1": "DIRECT",
    "[::2]": PROXY,
    "[::]": PROXY,
    "[::ffff:1.1.1.1]": PROXY,         # v4-mapped DoH address
    "[::ffff:10.0.0.1]": PROXY,        # mapped school address: the proxy decides (fail closed)
    "[64:ff9b::101:101]": PROXY,       # NAT64
    "[fe80::1]": PROXY,                # link-local
    "[fe80::1%25eth0]": PROXY,         # with a zone
    "[1:2:3:4:5:6:7:8:9]": PROXY,      # malformed: never DIRECT
    "[fd00:10::1::2]": PROXY,
    # names
    "intranet": "DIRECT",
    "localhost": "DIRECT",
    "printer-2": "DIRECT",
    "www.school.internal": "DIRECT",
    "school.internal": "DIRECT",
    "evilschool.internal": PROXY,
    "school.internal.example.com": PROXY,
    "www.bbc.co.uk": PROXY,
    "dns.google": PROXY,
    "cloudflare-dns.com": PROXY,
    "WWW.FACEBOOK.COM": PROXY,
    "167772161": PROXY,                # 10.0.0.1 as one number: an address, not a name
    "0x7f000001": PROXY,
}


@unittest.skipUnless(shutil.which("node"), "needs node (deploy/install-deps.sh installs nodejs)")
class ProxyPacTest(unittest.TestCase):
    def evaluate(self, hosts):
        cases = [[f"https://{h}/", h] for h in hosts]
        r = subprocess.run(["node", os.path.join(HERE, "pac_shim.js"), PAC], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_only_the_schools_networks_and_names_go_direct(self):
        hosts = list(CASES)
        got = self.evaluate(hosts)
        wrong = {h: g for h, g in zip(hosts, got) if g != CASES[h]}
        self.assertEqual(wrong, {}, "host -> what the PAC file returned, where it is wrong")

    def test_no_direct_fallback(self):
        # If the proxy is down, browsing stops rather than going out unfiltered.
        for result in self.evaluate(["www.example.com", "[2001:db8::1]", "203.0.113.9"]):
            self.assertNotIn("DIRECT", result)


if __name__ == "__main__":
    unittest.main()
