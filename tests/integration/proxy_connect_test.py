"""CONNECT tunnels through the real proxy, with real TLS (openssl s_server, curl, s_client)."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import BIN, PUPIL, STAFF, Proxy, curl, free_port, status_of, wait_for, _can_connect


class TlsOrigin:
    """openssl s_server with a throwaway certificate for allowed.test and facebook.test."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-tls-")
        self.port = free_port()
        key, cert = os.path.join(self.dir, "k.pem"), os.path.join(self.dir, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=allowed.test",
                        "-addext", "subjectAltName=DNS:allowed.test,DNS:facebook.test"],
                       check=True, capture_output=True, timeout=30)
        self.proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", cert,
                                      "-key", key, "-www", "-quiet"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_for(lambda: _can_connect(self.port), what="openssl s_server")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def connect_tunnel(proxy, target, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", proxy.port))
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def closed_by_peer(sock):
    """True when the peer closed or reset the connection; False if it sent data or stayed
    silent until the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


BODY_CLIENT = "127.0.0.61"  # the fallback role's (pupils)


class ConnectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tls = TlsOrigin()
        cls.proxy = Proxy(tls_port=cls.tls.port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.tls.stop()

    def test_allowed_tunnel_carries_real_tls(self):
        status, body, err = curl(self.proxy, f"https://allowed.test:{self.tls.port}/", source=PUPIL, extra=["-k"])
        self.assertEqual(status, 200, err)
        self.assertIn(b"s_server", body)
        # Staff may reach facebook.test; the tunnel is relayed.
        status, _, err = curl(self.proxy, f"https://facebook.test:{self.tls.port}/", source=STAFF, extra=["-k"])
        self.assertEqual(status, 200, err)

    def test_blocked_tunnel_gets_403_before_anything_is_relayed(self):
        s, head = connect_tunnel(self.proxy, f"facebook.test:{self.tls.port}", PUPIL)
        self.assertEqual(status_of(head), 403)
        self.assertIn(b"Blocked", s.recv(4096) if b"Blocked" not in head else head)
        s.close()
        r = subprocess.run(["curl", "-sS", "-k", "-x", f"http://127.0.0.1:{self.proxy.port}", "--interface", PUPIL,
                            "-o", "/dev/null", "-w", "%{http_connect}", f"https://facebook.test:{self.tls.port}/"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "403")

    def test_blocked_circumvention_hosts_are_flagged_over_connect_and_http(self):
        before = self.proxy.metric("hallpass_circumvention_attempts_total")
        s, head = connect_tunnel(self.proxy, f"vpn.test:{self.tls.port}", PUPIL)
        self.assertEqual(status_of(head), 403)
        s.close()
        status, _, _ = curl(self.proxy, "http://vpn.test/", source=STAFF)
        self.assertEqual(status, 403)
        lines = wait_for(lambda: [l for l in self.proxy.log_lines() if l["host"] == "vpn.test"] if len(
            [l for l in self.proxy.log_lines() if l["host"] == "vpn.test"]) >= 2 else None, what="two vpn.test lines")
        self.assertEqual([(l["method"], l["action"], l["circumvention"]) for l in lines],
                         [("CONNECT", "block", True), ("GET", "block", True)])
        wait_for(lambda: self.proxy.metric("hallpass_circumvention_attempts_total") >= before + 2,
                 what="two circumvention attempts counted")
        # A blocked site that is not a way round the filter is not flagged.
        s, head = connect_tunnel(self.proxy, f"facebook.test:{self.tls.port}", PUPIL)
        s.close()
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["host"] == "facebook.test"
                                 and l["method"] == "CONNECT" and l["action"] == "block"] or None)[-1]
        self.assertFalse(line["circumvention"])

    def test_a_blocked_name_with_two_trailing_dots_is_not_opened(self):
        # audit18 D2: "facebook.test.." was kept as "facebook.test.", which matched no rule,
        # while the resolver found facebook.test: the tunnel opened. One trailing dot is the
        # same name (blocked by its category); two are no name at all (blocked as invalid).
        for target, reason in ((f"facebook.test..:{self.tls.port}", b"not valid"),
                               (f"facebook.test.:{self.tls.port}", b"social"),
                               (f"FACEBOOK.test..:{self.tls.port}", b"not valid")):
            with self.subTest(target=target):
                s, head = connect_tunnel(self.proxy, target, PUPIL)
                s.close()
                self.assertEqual(status_of(head), 403, head)
                self.assertIn(reason, head.lower())
        status, body, _ = curl(self.proxy, f"http://facebook.test..:{self.tls.port}/", source=PUPIL)
        self.assertEqual(status, 403)
        self.assertIn(b"not valid", body)
        self.assertNotIn(b"s_server", body)

    def test_a_connect_announcing_a_body_is_refused(self):
        # A CONNECT has no content (RFC 9110 9.3.6): a "body" would be the tunnel's first bytes
        # here and a body to a proxy in front (audit of the CONNECT path, 2026-12-06). A
        # Content-Length of 0 says nothing and is served.
        # A device of its own: refused framing counts towards the automatic ban (bans.threshold),
        # which must not fall on the address the class's other tests use (CI, 2026-12-06).
        target = f"allowed.test:{self.tls.port}"
        for framing in ("Content-Length: 5", "Transfer-Encoding: chunked"):
            s = socket.socket()
            s.bind((BODY_CLIENT, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", self.proxy.port))
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{framing}\r\n\r\nhello".encode())
            head = s.recv(4096)
            s.close()
            self.assertEqual(status_of(head), 400, (framing, head[:200]))
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["method"] == "CONNECT" and l["status"] == 400]
                        or None, what="the refused CONNECT's line")[-1]
        self.assertIn("a CONNECT announcing a body", line.get("note", "") + line.get("reason", ""), line)
        s = socket.socket()
        s.bind((BODY_CLIENT, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nContent-Length: 0\r\n\r\n".encode())
        self.assertEqual(status_of(s.recv(4096)), 200)
        s.close()

    def test_ports_other_than_allowed_are_refused(self):
        s, head = connect_tunnel(self.proxy, "allowed.test:25", STAFF)
        self.assertEqual(status_of(head), 403)
        s.close()
        # Refused by connect.ports, not by the policy: the line names the setting as its rule, as
        # explain does (no policy rule: explain audit, 2026-12-06, L2), and the role stays.
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["method"] == "CONNECT"
                                 and l.get("port") == 25] or None, what="the refused CONNECT's line")[-1]
        self.assertEqual((line["action"], line["reason"], line["role"]),
                         ("block", "tunnels to this port are not allowed", "staff"))
        self.assertEqual(line.get("rule"), "connect.ports", line)
        # explain says so too, where the policy alone would allow it.
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--client", STAFF, "--json",
                            "https://allowed.test:25/"], capture_output=True, text=True, timeout=30)
        got = json.loads(r.stdout)
        self.assertEqual((got["action"], got["rule"]), ("block", "connect.ports"), r.stdout)
        self.assertTrue(any("connect.ports" in n for n in got["notes"]), got["notes"])
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--client", STAFF, "--json",
                            f"https://allowed.test:{self.tls.port}/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(json.loads(r.stdout)["action"], "allow", r.stdout)

    def test_sni_that_differs_from_connect_host_is_decided_again(self):
        # openssl s_client through the proxy: CONNECT allowed.test, SNI facebook.test.
        # The client address is 127.0.0.1: the fallback role (pupils), for whom facebook.test is blocked.
        r = subprocess.run(["openssl", "s_client", "-proxy", f"127.0.0.1:{self.proxy.port}", "-connect",
                            f"allowed.test:{self.tls.port}", "-servername", "facebook.test"],
                           input="", capture_output=True, text=True, timeout=30)
        self.assertNotIn("BEGIN CERTIFICATE", r.stdout)  # no handshake was relayed
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["method"] == "CONNECT"
                                 and l["circumvention"] and "facebook.test" in l.get("note", "")] or None,
                        what="a circumvention log line")[-1]
        self.assertEqual(line["action"], "block")
        self.assertEqual(line["category"], "social_media")
        # Staff: facebook.test is allowed, so the handshake goes through but is flagged.
        s, head = connect_tunnel(self.proxy, f"allowed.test:{self.tls.port}", STAFF)
        self.assertEqual(status_of(head), 200)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s, server_hostname="facebook.test") as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertIn(b"HTTP/1.0 200", t.recv(4096))
        flagged = wait_for(lambda: [l for l in self.proxy.log_lines() if l["method"] == "CONNECT"
                                    and l["client"] == STAFF and l["circumvention"]
                                    and "facebook.test" in l.get("note", "")] or None,
                           what="the staff tunnel's flagged log line")
        self.assertEqual([l["action"] for l in flagged], ["allow"])
        self.assertEqual(flagged[0]["host"], "allowed.test")

    def test_missing_sni_and_non_tls_streams_are_blocked_and_flagged(self):
        before = self.proxy.metric("hallpass_circumvention_attempts_total")
        s, head = connect_tunnel(self.proxy, f"allowed.test:{self.tls.port}", STAFF)
        self.assertEqual(status_of(head), 200)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(s, server_hostname=None).sendall(b"x")
        s.close()
        # An IP address as the SNI names no host either (RFC 6066 3 forbids it): refused as none,
        # whatever host the requests inside would name (outside-in audit, 2026-12-05).
        for sni in ("127.0.0.1", "2130706433", "::1"):
            r = subprocess.run(["openssl", "s_client", "-proxy", f"127.0.0.1:{self.proxy.port}", "-connect",
                                f"allowed.test:{self.tls.port}", "-servername", sni],
                               input="", capture_output=True, text=True, timeout=30)
            self.assertNotIn("BEGIN CERTIFICATE", r.stdout, sni)  # no handshake was relayed
        s, head = connect_tunnel(self.proxy, f"allowed.test:{self.tls.port}", STAFF)
        s.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        self.assertTrue(closed_by_peer(s))
        s.close()
        # Plain HTTP inside is no way round the filter: it is read as requests, each decided and
        # held to the tunnel's host (a browser's ws:// WebSocket comes this way).
        s, head = connect_tunnel(self.proxy, f"allowed.test:{self.tls.port}", STAFF)
        s.sendall(b"GET / HTTP/1.1\r\nHost: facebook.test\r\n\r\n")
        self.assertIn(b" 421 ", s.recv(4096))
        s.close()
        wait_for(lambda: self.proxy.metric("hallpass_circumvention_attempts_total") >= before + 2,
                 what="two circumvention attempts counted")
        def lines_with(note):
            return [l for l in self.proxy.log_lines() if l["circumvention"] and l.get("note") == note]
        no_sni = wait_for(lambda: lines_with("TLS without a server name (SNI)") or None,
                          what="the log line for TLS without SNI")
        not_tls = wait_for(lambda: lines_with("the tunnel does not carry TLS") or None,
                           what="the log line for a tunnel that does not carry TLS")
        self.assertEqual([l["action"] for l in no_sni + not_tls], ["block", "block"])
        self.assertEqual(no_sni[-1]["rule"], "connect.require_sni")  # the setting, as explain names it
        ip_sni = wait_for(lambda: [l for l in self.proxy.log_lines() if l["circumvention"]
                                   and "as its server name" in l.get("note", "")] or None,
                          what="the log lines for TLS with an address as its SNI")
        self.assertEqual({l["action"] for l in ip_sni}, {"block"})
        self.assertIn("SNI '127.0.0.1'", ip_sni[0]["note"])

    def test_tunnel_log_line_has_bytes_both_ways(self):
        before = len(self.proxy.log_lines())
        status, body, err = curl(self.proxy, f"https://allowed.test:{self.tls.port}/", source=STAFF, extra=["-k"])
        self.assertEqual(status, 200, err)
        # Lines from earlier tests may still be arriving: wait for this tunnel's own line.
        mine = wait_for(lambda: [l for l in self.proxy.log_lines()[before:] if l["method"] == "CONNECT"
                                 and l["client"] == STAFF and l["host"] == "allowed.test"] or None,
                        what="the tunnel's log line")
        self.assertEqual(len(mine), 1, mine)
        line = mine[0]
        self.assertEqual(line["action"], "allow")
        self.assertGreater(line["bytes_out"], 1000)
        self.assertGreater(line["bytes_in"], 200)
        self.assertEqual(line["scheme"], "https")
        self.assertEqual(line["status"], 200)


if __name__ == "__main__":
    unittest.main()
