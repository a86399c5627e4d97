"""The PAC file hallpass serves (pac.listen): fetched from the running daemon with curl and
evaluated by node with the standard PAC functions (pac_shim.js), once as Firefox and Safari run
it (no isInNetEx: the script's own IPv6 parser) and once as Chrome, Edge and Windows do
(isInNetEx, here node's own address matching). Only the school's networks (the roles'
`networks:`), loopback, intranet names and pac.direct_domains go DIRECT; every other address,
IPv4 or IPv6, and every other name goes to the proxy; there is no DIRECT fallback. A policy
change and SIGHUP change the file. The endpoint is strict: two paths, GET and HEAD, limits."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Proxy, free_port, status_of, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))

# The pupils' network gets IPv4 and IPv6 school networks besides the test's loopback address.
SCHOOL_NETWORKS = '[{pupil}/32, 10.10.0.0/16, "fd00:10::/64"]'


def with_school_networks(text):
    return text.replace("networks: [127.0.0.2/32]", "networks: " + SCHOOL_NETWORKS.format(pupil="127.0.0.2"))


def fetch(port, path="/proxy.pac", host="127.0.0.1", method="GET"):
    """(status, headers by lower-case name, body) with curl."""
    url = f"http://{host}:{port}{path}" if ":" not in host else f"http://[{host}]:{port}{path}"
    cmd = ["curl", "-sS", "--max-time", "10", "--noproxy", "*", "-D", "-", "-o", "-"]
    cmd += ["-I"] if method == "HEAD" else ["-X", method]
    r = subprocess.run(cmd + [url], capture_output=True, timeout=20)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def raw(port, data, timeout=10):
    """Sends raw bytes; returns everything read until the server closes (bounded by timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def evaluate(script, hosts, native_ipv6):
    """What FindProxyForURL returns for each host, and how many isInNetEx calls were made."""
    with tempfile.NamedTemporaryFile("wb", suffix=".pac", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        env = dict(os.environ, PAC_SHIM_ISINNETEX="1" if native_ipv6 else "0")
        cases = [[f"https://{h}/", h] for h in hosts]
        r = subprocess.run(["node", os.path.join(HERE, "pac_shim.js"), path], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=30, env=env)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise AssertionError("node: " + r.stderr)
    calls = 0
    for line in r.stderr.splitlines():
        if line.startswith("isInNetEx calls: "):
            calls = int(line.split(": ")[1])
    return json.loads(r.stdout), calls


def expected_cases(proxy):
    return {
        # IPv4: the roles' networks and loopback are the school's; nothing else is.
        "10.10.4.20": "DIRECT",
        "10.10.255.255": "DIRECT",
        "127.0.0.1": "DIRECT",
        "127.0.0.2": "DIRECT",
        "10.11.0.1": proxy,
        "10.0.0.1": proxy,              # the gateway is in no role's network (pac.direct_networks adds it)
        "1.1.1.1": proxy,               # a DNS-over-HTTPS resolver
        "192.168.1.1": proxy,
        "010.10.0.1": proxy,            # octal to some clients: never judged as 10.10.0.1
        "10.10.4.20.": "DIRECT",
        # IPv6, with and without brackets
        "[fd00:10::1234]": "DIRECT",
        "fd00:10::1": "DIRECT",
        "[FD00:10:0:0:0:0:0:9]": "DIRECT",
        "[fd00:10:0:1::1]": proxy,      # the next /64
        "[fd00:11::1]": proxy,
        "[2606:4700:4700::1111]": proxy,
        "2001:4860:4860::8888": proxy,
        "[::1]": "DIRECT",
        "[::2]": proxy,
        "[::ffff:1.1.1.1]": proxy,
        "[::ffff:10.10.0.1]": proxy,    # a mapped school address: the proxy decides (fail closed)
        "[64:ff9b::101:101]": proxy,
        "[fe80::1%25eth0]": proxy,
        "[1:2:3:4:5:6:7:8:9]": proxy,
        "[fd00:10::1::2]": proxy,
        # names
        "intranet": "DIRECT",
        "printer-2": "DIRECT",
        "www.school.internal": "DIRECT",
        "school.internal": "DIRECT",
        "moodle.school.internal": "DIRECT",
        "evilschool.internal": proxy,
        "school.internal.example.com": proxy,
        "www.bbc.co.uk": proxy,
        "dns.google": proxy,
        "WWW.FACEBOOK.COM": proxy,
        "167772161": proxy,
        "0x7f000001": proxy,
    }


@unittest.skipUnless(shutil.which("node"), "needs node (deploy/install-deps.sh installs nodejs)")
class PacServedTest(unittest.TestCase):
    def start(self, pac_extra="", **kw):
        self.pac_port = free_port()
        extra = f"\npac:\n  listen: 127.0.0.1:{self.pac_port}\n  direct_domains: [school.internal]\n" + pac_extra
        proxy = Proxy(extra=extra, policy_edit=with_school_networks, **kw)
        self.addCleanup(proxy.stop)
        return proxy

    def check_cases(self, script, cases):
        hosts = list(cases)
        for native in (False, True):
            got, calls = evaluate(script, hosts, native)
            wrong = {h: g for h, g in zip(hosts, got) if g != cases[h]}
            self.assertEqual(wrong, {}, f"host -> what the served PAC returned, where wrong (isInNetEx: {native})")
            if native:
                self.assertGreater(calls, 0, "the script did not use the browser's isInNetEx")
            else:
                self.assertEqual(calls, 0)

    def test_served_file_sends_only_the_school_direct_ipv4_ipv6_and_names(self):
        proxy = self.start()
        status, headers, body = fetch(self.pac_port, "/proxy.pac")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), "application/x-ns-proxy-autoconfig")
        self.assertEqual(int(headers.get("content-length")), len(body))
        self.check_cases(body, expected_cases(f"PROXY 127.0.0.1:{proxy.port}"))
        # WPAD's name for the same file.
        status, headers, wpad = fetch(self.pac_port, "/wpad.dat")
        self.assertEqual((status, wpad), (200, body))
        self.assertEqual(headers.get("content-type"), "application/x-ns-proxy-autoconfig")
        # No DIRECT fallback anywhere: a proxy that is down stops browsing instead.
        self.assertNotIn(b"; DIRECT", body)
        for result in evaluate(body, ["www.example.com", "[2001:db8::1]", "203.0.113.9"], False)[0]:
            self.assertNotIn("DIRECT", result)
        self.assertGreaterEqual(proxy.metric("hallpass_pac_requests_total", {"result": "served"}), 2)

    def test_ipv6_literal_proxies_in_brackets(self):
        # pac.proxy given: the PAC names exactly those, IPv6 in brackets (written without the
        # brackets in a PAC result, "PROXY fd00::1:3128" would be a different host and port).
        self.start(pac_extra='  proxy: ["[FD00::1]:3128", "10.0.0.1:3128", proxy.school.internal:8080]\n')
        _, _, body = fetch(self.pac_port)
        proxy = "PROXY [fd00::1]:3128; PROXY 10.0.0.1:3128; PROXY proxy.school.internal:8080"
        got, _ = evaluate(body, ["www.bbc.co.uk", "[2001:db8::1]", "fd00:10::1"], False)
        self.assertEqual(got, [proxy, proxy, "DIRECT"])

    def test_proxy_derived_from_every_listen_address_ipv6_in_brackets(self):
        # Without pac.proxy: every listen address in order. (A wildcard listener, 0.0.0.0 or ::,
        # is named by the address the PAC was fetched on: tests/proxy/pac_script_test.cpp; the
        # tests bind nothing outside loopback.)
        v6_port = free_port()
        proxy = self.start(args=("--listen", f"[::1]:{v6_port}"))
        _, _, body = fetch(self.pac_port)
        got, _ = evaluate(body, ["www.bbc.co.uk", "[fd00:10::1]"], True)
        self.assertEqual(got, [f"PROXY 127.0.0.1:{proxy.port}; PROXY [::1]:{v6_port}", "DIRECT"])

    def test_policy_change_and_sighup_change_the_file(self):
        proxy = self.start()
        _, _, before = fetch(self.pac_port)
        self.assertEqual(evaluate(before, ["10.30.0.5", "[fd00:30::5]", "www.school.internal"], False)[0],
                         [f"PROXY 127.0.0.1:{proxy.port}"] * 2 + ["DIRECT"])
        # A new role with its own networks, and the school's domain renamed.
        text = proxy.policy_text.replace("direct_domains: [school.internal]", "direct_domains: [lunsford.internal]")
        text = text.replace("  guests:\n", '  office:\n    networks: [10.30.0.0/24, "fd00:30::/64"]\n'
                                           "    default: allow\n  guests:\n")
        proxy.write_policy(text)
        proxy.reload()
        _, _, after = fetch(self.pac_port)
        self.assertNotEqual(before, after)
        got, _ = evaluate(after, ["10.30.0.5", "[fd00:30::5]", "www.school.internal", "www.lunsford.internal"], True)
        self.assertEqual(got, ["DIRECT", "DIRECT", f"PROXY 127.0.0.1:{proxy.port}", "DIRECT"])
        # A broken policy changes nothing: the file in force stays.
        proxy.write_policy(text + "\npac: {listen: nonsense}\n")
        proxy.reload(expect_ok=False)
        self.assertEqual(fetch(self.pac_port)[2], after)

    def test_endpoint_is_strict(self):
        proxy = self.start()
        self.assertEqual(fetch(self.pac_port, "/")[0], 404)
        self.assertEqual(fetch(self.pac_port, "/proxy.pac.bak")[0], 404)
        status, headers, body = fetch(self.pac_port, "/proxy.pac", method="HEAD")
        self.assertEqual(status, 200)
        self.assertGreater(int(headers["content-length"]), 1000)
        status, headers, _ = fetch(self.pac_port, "/proxy.pac", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertEqual(status_of(raw(self.pac_port, b"GET http://wpad/wpad.dat HTTP/1.1\r\nHost: wpad\r\n\r\n")), 404)
        # A body, an oversized head, garbage: 400 and closed.
        self.assertEqual(status_of(raw(self.pac_port, b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\n"
                                                      b"Content-Length: 5\r\n\r\nhello")), 400)
        self.assertEqual(status_of(raw(self.pac_port, b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\nX: " +
                                       b"a" * 20000 + b"\r\n\r\n")), 400)
        self.assertEqual(status_of(raw(self.pac_port, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")), 400)
        # One request per connection: a second one on it is not answered.
        two = raw(self.pac_port, b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\n\r\nGET /wpad.dat HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(two.count(b"HTTP/1.1 200 OK"), 1)
        # A client that sends nothing is closed after the head timeout (5 s), unanswered.
        t0 = time.monotonic()
        self.assertEqual(raw(self.pac_port, b"", timeout=15), b"")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertGreaterEqual(proxy.metric("hallpass_pac_requests_total", {"result": "refused"}), 8)
        # The PAC endpoint is never a destination through the proxy.
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-x",
                            f"http://127.0.0.1:{proxy.port}", f"http://127.0.0.1:{self.pac_port}/proxy.pac"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "403")

    def test_one_device_cannot_hold_every_connection_of_the_endpoint(self):
        # 256 connections in all, and no share per client: one device holding them made every
        # other device's fetch fail (audit3, 2026-12-05, F4). At most 16 from one address.
        proxy = self.start()
        held = []
        try:
            for _ in range(16):
                s = socket.socket()
                s.bind(("127.0.0.3", 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", self.pac_port))
                held.append(s)
            refused = proxy.metric("hallpass_pac_requests_total", {"result": "refused"})
            extra = socket.socket()
            extra.bind(("127.0.0.3", 0))
            extra.settimeout(5)
            extra.connect(("127.0.0.1", self.pac_port))
            t0 = time.monotonic()
            try:
                self.assertEqual(extra.recv(1), b"")  # closed unanswered at once, not after 5 s
            except ConnectionResetError:
                pass
            self.assertLess(time.monotonic() - t0, 2)
            extra.close()
            wait_for(lambda: proxy.metric("hallpass_pac_requests_total", {"result": "refused"}) > refused,
                     what="the refusal counted")
            # Another device is served meanwhile.
            self.assertEqual(fetch(self.pac_port, "/proxy.pac")[0], 200)
        finally:
            for s in held:
                s.close()

    def test_devices_at_their_share_cannot_hold_every_connection_of_the_endpoint(self):
        # Sixteen addresses at their 16 filled all 256 places and every other device's fetch of
        # wpad.dat failed (resource audit, 2026-12-06). The last quarter only takes clients
        # holding fewer than two.
        proxy = self.start()
        held = []
        try:
            for a in range(16):
                for _ in range(16):
                    s = socket.socket()
                    s.bind((f"127.0.9.{10 + a}", 0))
                    s.settimeout(5)
                    s.connect(("127.0.0.1", self.pac_port))
                    held.append(s)
            self.assertEqual(fetch(self.pac_port, "/proxy.pac")[0], 200)
        finally:
            for s in held:
                s.close()

    def test_bad_pac_settings_are_errors_with_their_place(self):
        pac_port = free_port()
        d = tempfile.mkdtemp(prefix="hallpass-pac-")
        self.addCleanup(shutil.rmtree, d, True)
        from harness import BASE_POLICY, TEST_HOSTS, PUPIL, STAFF, GUEST, BIN
        hosts = "\n".join(f"  {h}: 127.0.0.1" for h in TEST_HOSTS)
        text = BASE_POLICY.format(pupil=PUPIL, staff=STAFF, guest=GUEST, hosts=hosts, response_timeout="3s",
                                  head_timeout="2s", drain="1s", tls_port=8443, workers=1)
        text += (f"pac:\n  listen: 127.0.0.1:{pac_port}\n  proxy: [fd00::1:3128]\n"
                 "  direct_networks: [10.0.0.1/8]\n  direct_domains: [\"not a domain\"]\n  colour: blue\n"
                 "dhcp_leases: {path: leases.txt, format: windows}\n")
        path = os.path.join(d, "policy.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([BIN, "check", "--config", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        for part in ["pac.proxy: 'fd00::1:3128': write an IPv6 address in brackets",
                     "pac.direct_networks: '10.0.0.1/8' has address bits set after the prefix",
                     "pac.direct_domains: 'not a domain' is not a domain name",
                     "colour",
                     "dhcp_leases.format 'windows' must be dnsmasq"]:
            self.assertIn(part, out)
        # A relative leases path is read beside the policy file, as every path in it.
        self.assertNotIn("dhcp_leases.path", out)
        self.assertIn(path + ":", out)  # FILE:LINE:COL


if __name__ == "__main__":
    unittest.main()
