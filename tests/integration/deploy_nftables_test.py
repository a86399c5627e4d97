"""deploy/nftables-hallpass.nft: checked with `nft -c`, then loaded in a small network made of
network namespaces created here (a LAN device, the gateway, "the internet"), where forwarded
packets show that the default deny holds: DNS reaches the school's resolver but no other,
SSH and QUIC do not get out, NTP does. Needs root (CI runs as root); every address used lives
only inside the namespaces this test creates and deletes."""
import os
import shutil
import subprocess
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HALLPASS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
RULES = os.path.join(SRC, "deploy", "nftables-hallpass.nft")

TAG = f"hp{os.getpid() % 100000}"
LAN, GW, NET = f"{TAG}-lan", f"{TAG}-gw", f"{TAG}-net"
SCHOOL_DNS = "192.0.2.53"  # on "the internet" side, so that DNS to it is forwarded
OTHER_DNS = "192.0.2.99"  # an outside resolver (8.8.8.8 in real life)

# Listens on "the internet": UDP 53, 123, 443 on each address given and TCP 22, 853 on all; answers each
# datagram with "ok" and accepts connections. Ends by itself after 60 s at the latest.
SERVER = textwrap.dedent("""
    import selectors, socket, sys, time
    sel = selectors.DefaultSelector()
    for addr in sys.argv[1:]:  # one socket per address, so each answer comes from the address asked
        for port in (53, 123, 443):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port)); sel.register(s, selectors.EVENT_READ, "udp")
    for port in (22, 853):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen(8)
        sel.register(s, selectors.EVENT_READ, "tcp")
    print("ready", flush=True)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        for key, _ in sel.select(0.5):
            if key.data == "udp":
                data, peer = key.fileobj.recvfrom(512); key.fileobj.sendto(b"ok", peer)
            else:
                conn, _ = key.fileobj.accept(); conn.sendall(b"ok"); conn.close()
""")

# From the LAN device: one probe (a UDP datagram of `size` bytes, or a TCP connection), prints
# "pass" when the server answered, else "blocked".
PROBE = textwrap.dedent("""
    import socket, sys
    proto, host, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        if proto == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
            s.connect((host, port)); s.send(b"q" * size); ok = s.recv(16) == b"ok"
        else:
            s = socket.create_connection((host, port), timeout=1.5); ok = s.recv(16) == b"ok"
    except OSError:
        ok = False
    print("pass" if ok else "blocked")
""")

# From the LAN device: `count` NTP-sized datagrams 20 ms apart from one socket; prints how many
# were answered (within 2 s of the last).
FLOOD = textwrap.dedent("""
    import socket, sys, time
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((host, port)); s.settimeout(0.02)
    answers = 0
    for _ in range(count):
        s.send(b"q" * 48)
        try:
            answers += s.recv(16) == b"ok"
        except OSError:
            pass
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            answers += s.recv(16) == b"ok"
        except OSError:
            pass
    print(answers)
""")


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


def in_ns(ns, *cmd, check=True):
    return sh("ip", "netns", "exec", ns, *cmd, check=check)


@unittest.skipUnless(os.geteuid() == 0, "creates network namespaces and loads nftables rules: needs root "
                                        "(CI runs as root)")
@unittest.skipUnless(shutil.which("nft"), "needs nft (deploy/install-deps.sh installs nftables)")
class NftablesRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = None
        try:
            for ns in (LAN, GW, NET):
                sh("ip", "netns", "add", ns)
            # LAN device c0 10.10.0.2 <-> eth1 10.10.0.1 [gateway] eth0 192.0.2.1 <-> n0 "the internet"
            sh("ip", "link", "add", "c0", "netns", LAN, "type", "veth", "peer", "name", "eth1", "netns", GW)
            sh("ip", "link", "add", "n0", "netns", NET, "type", "veth", "peer", "name", "eth0", "netns", GW)
            for ns, dev, addr in ((LAN, "c0", "10.10.0.2/24"), (GW, "eth1", "10.10.0.1/24"),
                                  (GW, "eth0", "192.0.2.1/24"), (NET, "n0", SCHOOL_DNS + "/24"),
                                  (NET, "n0", OTHER_DNS + "/24")):
                in_ns(ns, "ip", "addr", "add", addr, "dev", dev)
            for ns, dev in ((LAN, "c0"), (LAN, "lo"), (GW, "eth1"), (GW, "eth0"), (GW, "lo"), (NET, "n0"), (NET, "lo")):
                in_ns(ns, "ip", "link", "set", dev, "up")
            in_ns(LAN, "ip", "route", "add", "default", "via", "10.10.0.1")
            in_ns(NET, "ip", "route", "add", "default", "via", "192.0.2.1")
            in_ns(GW, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            cls.server = subprocess.Popen(["ip", "netns", "exec", NET, "python3", "-c", SERVER, SCHOOL_DNS, OTHER_DNS],
                                          stdout=subprocess.PIPE, text=True)
            if cls.server.stdout.readline().strip() != "ready":
                raise RuntimeError("the test server in the namespace did not start")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.kill()
            cls.server.wait(10)
        for ns in (LAN, GW, NET):
            sh("ip", "netns", "del", ns, check=False)

    def probe(self, proto, host, port, size=1):
        return in_ns(LAN, "python3", "-c", PROBE, proto, host, str(port), str(size)).stdout.strip()

    def load_rules(self):
        in_ns(GW, "nft", "-f", RULES)
        # As deploy/README.md tells the school: its resolver goes in school_dns_v4.
        in_ns(GW, "nft", "add", "element", "inet", "hallpass_gateway", "school_dns_v4", "{", SCHOOL_DNS, "}")

    def test_the_file_passes_nft_check(self):
        r = in_ns(GW, "nft", "-c", "-f", RULES, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_default_deny_forwarding_from_the_lan(self):
        in_ns(GW, "nft", "flush", "ruleset")
        # Without the rules everything gets through: the probes themselves work.
        self.assertEqual(self.probe("udp", OTHER_DNS, 53), "pass")
        self.assertEqual(self.probe("tcp", OTHER_DNS, 22), "pass")
        self.load_rules()
        try:
            self.assertEqual(self.probe("udp", SCHOOL_DNS, 53), "pass")   # the school's resolver
            self.assertEqual(self.probe("udp", OTHER_DNS, 53), "blocked")  # any other resolver
            self.assertEqual(self.probe("udp", OTHER_DNS, 123, size=48), "pass")  # an NTP request
            self.assertEqual(self.probe("udp", OTHER_DNS, 123, size=148), "blocked")  # a VPN handshake on 123
            # At most 6 a minute per device after a burst of 8: 48-byte datagrams to any host
            # were a channel a tunnel could use (outside-in audit, 2026-12-06, L4).
            answered = int(in_ns(LAN, "python3", "-c", FLOOD, OTHER_DNS, "123", "40").stdout.strip())
            self.assertGreaterEqual(answered, 4)
            self.assertLessEqual(answered, 10)
            self.assertEqual(self.probe("tcp", OTHER_DNS, 22), "blocked")  # SSH
            self.assertEqual(self.probe("tcp", OTHER_DNS, 853), "blocked")  # DNS over TLS
            self.assertEqual(self.probe("udp", OTHER_DNS, 443), "blocked")  # QUIC
            self.assertEqual(self.probe("udp", SCHOOL_DNS, 443), "blocked")  # QUIC, whatever the host
            listing = in_ns(GW, "nft", "list", "chain", "inet", "hallpass_gateway", "from_lan").stdout
            self.assertRegex(listing, r"udp dport \{ 80, 443 \} counter packets [1-9]")
            # Reloading the file replaces the rules (and the school's additions: it is the source).
            in_ns(GW, "nft", "-f", RULES)
            self.assertEqual(self.probe("udp", SCHOOL_DNS, 53), "blocked")
        finally:
            in_ns(GW, "nft", "flush", "ruleset")


if __name__ == "__main__":
    unittest.main()
