"""The gateway's own addresses are never a destination, as the machine has them now: in a network
namespace made here (a "gateway" with a veth uplink and its loopback), the real hallpass, and an
origin listening on every address of the namespace (a gateway service: the router's page). An
address the gateway gains after the start (an IPv6 temporary address, a renumbered prefix, a new
DHCP lease), on its uplink or on its loopback interface, is refused within seconds; read once at
start, it was an open destination (outside-in audit of IPv6, 2026-12-07, F1 and F2). The
addresses are from the documentation ranges (192.0.2.0/24, 2001:db8::/32), outside the default
`upstream.deny_networks`, so only the gateway rule can refuse them. Needs root; every address
lives only inside the namespace, and every wait is bounded."""
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
import unittest

from harness import LESSON_ALL_WEEK, start_daemon, stop_process

BIN = os.environ.get("HALLPASS_BIN", "")
NS = f"gwa{os.getpid() % 100000}"
PORT = 8080

POLICY = """
school:
  name: Gateway Address Test School
  timezone: Europe/London
""" + LESSON_ALL_WEEK.replace("{{", "{").replace("}}", "}") + """
roles:
  pupils:
    networks: [127.0.0.0/8, "203.0.113.0/24"]
    default: allow
upstream:
  connect_timeout: 2s
  ports: [8080]
"""

# Answers every request with "gateway service"; ends by itself after 120 s at the latest.
ORIGIN = textwrap.dedent("""
    import socket, sys, threading, time
    def serve(s):
        while True:
            c, _ = s.accept()
            c.settimeout(5)
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 15\\r\\nConnection: close\\r\\n\\r\\ngateway service")
            except OSError:
                pass
            c.close()
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, int(sys.argv[1])))
        s.listen(16)
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(120)
""")


def sh(*cmd, check=True, timeout=30):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def in_ns(*cmd, check=True, timeout=30):
    return sh("ip", "netns", "exec", NS, *cmd, check=check, timeout=timeout)


@unittest.skipUnless(os.geteuid() == 0, "creates a network namespace: needs root (CI runs as root)")
@unittest.skipUnless(BIN, "needs HALLPASS_BIN (ctest sets it)")
class GatewayAddressesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hallpass-gateway-")
        cls.origin = cls.proxy = None
        cls.stderr_lines = []
        try:
            sh("ip", "netns", "add", NS)
            in_ns("ip", "link", "set", "lo", "up")
            # The uplink: one end of a veth pair (the other end, wan1, stays in the namespace too).
            in_ns("ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
            in_ns("ip", "link", "set", "wan0", "up")
            in_ns("ip", "link", "set", "wan1", "up")
            in_ns("ip", "addr", "add", "192.0.2.1/24", "dev", "wan0")
            in_ns("ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "wan0", "nodad")
            cls.origin = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", ORIGIN, str(PORT)],
                                          stdout=subprocess.PIPE, text=True)
            if cls.origin.stdout.readline().strip() != "ready":
                raise RuntimeError("the origin in the namespace did not start")
            config = os.path.join(cls.tmp, "policy.yaml")
            with open(config, "w") as f:
                f.write(POLICY)
            cls.proxy = start_daemon(
                ["ip", "netns", "exec", NS, BIN, "run", "--config", config, "--listen", "127.0.0.1:3128",
                 "--access-log", "off", "--metrics-listen", "off", "--state-dir", os.path.join(cls.tmp, "state")],
                cls.stderr_lines)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in (cls.proxy, cls.origin):
            if p and p.poll() is None:
                stop_process(p)
        sh("ip", "netns", "del", NS, check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, host):
        """(status, body) of a GET of http://HOST:8080/ through the proxy, in the namespace."""
        r = in_ns("curl", "-sS", "--max-time", "8", "-x", "http://127.0.0.1:3128", "-o", "-", "-w", "\n%{http_code}",
                  f"http://{host}:{PORT}/", check=False, timeout=20)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def refused_within(self, host, seconds):
        """Waits (bounded) until the proxy refuses `host` as a destination; the status seen last."""
        deadline = time.monotonic() + seconds
        status, body = self.get(host)
        while time.monotonic() < deadline and status != 403:
            time.sleep(0.2)
            status, body = self.get(host)
        return status, body

    def test_an_address_the_gateway_has_at_start_is_refused(self):
        status, body = self.get("192.0.2.1")
        self.assertEqual(status, 403, body)
        self.assertNotIn("gateway service", body)
        status, body = self.get("[2001:db8:1::1]")
        self.assertEqual(status, 403, body)

    def test_addresses_gained_after_the_start_on_the_uplink_or_loopback_are_refused(self):
        for address, dev, family in (("192.0.2.50/32", "wan0", "-4"), ("2001:db8:1::beef/128", "wan0", "-6"),
                                     ("192.0.2.60/32", "lo", "-4"), ("2001:db8:77::1/128", "lo", "-6")):
            with self.subTest(address=address, dev=dev):
                extra = ["nodad"] if family == "-6" else []
                in_ns("ip", family, "addr", "add", address, "dev", dev, *extra)
                host = address.split("/")[0]
                host = f"[{host}]" if ":" in host else host
                status, body = self.refused_within(host, 5)
                self.assertEqual(status, 403, body)
                self.assertNotIn("gateway service", body)

    def test_explain_agrees_and_refuses_a_role_network_as_a_destination(self):
        # 203.0.113.0/24 is the pupils' network (a school numbering a LAN from a public range,
        # as schools on IPv6 do): its devices are no destination for the proxy's users.
        config = os.path.join(self.tmp, "policy.yaml")
        r = in_ns(BIN, "explain", "--config", config, "--client", "127.0.0.1", f"http://203.0.113.9:{PORT}/")
        self.assertIn("BLOCK", r.stdout, r.stdout + r.stderr)
        self.assertIn("a network the school does not open", r.stdout)
        status, body = self.get("203.0.113.9")
        self.assertEqual(status, 403, body)
        r = in_ns(BIN, "explain", "--config", config, "--client", "127.0.0.1", f"http://192.0.2.1:{PORT}/")
        self.assertIn("BLOCK", r.stdout, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
