"""Name lookups with a deadline, denied networks and ports, IPv6 forms that embed IPv4, and the
upstream pool's checks (issue 9), against the real hallpass process.

A DNS server runs in the test (UDP on 127.0.0.1, a random port): names under .dnstest are
127.0.0.1 (A; no AAAA records), `nx*.dnstest` do not exist, `silent.dnstest` is never
answered, `slow*.dnstest` is answered after 0.5 s, and the AAAA queries for `noaaaa*` and
`nx-noaaaa*` never. Nothing here sends a packet outside
127.0.0.0/8, and no real external name is used.
"""
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BASE_POLICY, BIN, GUEST, PUPIL, STAFF, TEST_HOSTS, Proxy, PyOrigin, ThreadedServer, curl,  # noqa: E402
                     free_port, raw_request, status_of, wait_for)


class DnsServer:
    """A UDP name server for .dnstest, one thread. Every wait is bounded."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []  # (name, qtype) in arrival order
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()

    def count(self, name, qtype=1):
        with self.lock:
            return sum(1 for n, t in self.queries if n == name and t == qtype)

    def _serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self._answer(data, peer)
            except (ValueError, IndexError, struct.error):
                continue

    def _answer(self, data, peer):
        qid, flags, qdcount = struct.unpack(">HHH", data[:6])
        labels, at = [], 12
        while data[at]:
            n = data[at]
            labels.append(data[at + 1:at + 1 + n].decode("ascii").lower())
            at += 1 + n
        question_end = at + 5
        qtype = struct.unpack(">H", data[at + 1:at + 3])[0]
        name = ".".join(labels)
        with self.lock:
            self.queries.append((name, qtype))
        question = data[12:question_end]
        if name.startswith("silent"):
            return
        if qtype == 28 and name.startswith(("noaaaa", "nx-noaaaa")):
            return  # AAAA queries dropped, as some home routers and old firewalls do
        if name.startswith(("latea", "nx-latea")):
            # AAAA ::1 at once (the origin does not listen there), A 127.0.0.1 0.7 s later; for
            # nx-latea*, A NXDOMAIN at once and AAAA ::1 0.7 s later: a family that answers after
            # family_grace.
            aaaa = self._reply(data, question, 0, [(28, socket.inet_pton(socket.AF_INET6, "::1"))])
            if qtype == 28 and name.startswith("nx-"):
                threading.Timer(0.7, self._send, args=(aaaa, peer)).start()
            elif qtype == 28:
                self._send(aaaa, peer)
            elif qtype == 1 and name.startswith("nx-"):
                self._send(self._reply(data, question, 3, []), peer)
            elif qtype == 1:
                threading.Timer(0.7, self._send, args=(self._reply(data, question, 0, [(1, socket.inet_aton("127.0.0.1"))]),
                                                       peer)).start()
            return
        if name.startswith("servfail"):
            self._send(self._reply(data, question, 2, []), peer)
            return
        rcode, answers = 3, b""  # NXDOMAIN unless below
        if name.endswith(".dnstest") and not name.startswith("nx"):
            rcode = 0
            if qtype == 1 and name.startswith("twoaddr"):
                # A black hole first (SYNs dropped: DroppingListener), then the origin's address.
                for address in ("127.0.0.9", "127.0.0.1"):
                    answers += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
            elif qtype == 1:
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        count = answers.count(b"\xc0\x0c\x00\x01\x00\x01")
        reply = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0) + question + answers
        if name.startswith("slow"):
            threading.Timer(0.5, self._send, args=(reply, peer)).start()
        else:
            self._send(reply, peer)

    @staticmethod
    def _reply(query, question, rcode, records):
        """A reply to `query` with `rcode` and answer `records` [(type, rdata)], each owned by the
        question's name."""
        qid = struct.unpack(">H", query[:2])[0]
        answers = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", t, 1, 60, len(rdata)) + rdata for t, rdata in records)
        return struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(records), 0, 0) + question + answers

    def _send(self, reply, peer):
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass


class DroppingListener:
    """An address that drops every SYN, as a host behind a broken route does: a listener whose
    accept queue is full (never accepted), so that the kernel drops further SYNs."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.fillers = []
        for _ in range(4):  # queue full: connects that complete, then ones that hang (bounded)
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex((host, port))
            self.fillers.append(f)
        time.sleep(0.2)

    def stop(self):
        for f in self.fillers:
            f.close()
        self.sock.close()


class LateBytesOrigin(ThreadedServer):
    """An origin that misbehaves after some responses, on a given 127.0.0.x address.

    /late-204   answers 204, then 0.1 s later sends a whole second response ("smuggled")
    HEAD        answers with a Content-Length, then 0.1 s later sends that many bytes: a response
    anything else: 200 with the request path as the body. Keeps connections alive.
    """

    def _serve(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline(8192)
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                while f.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                if target == "/late-204":
                    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
                    time.sleep(0.1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
                elif method == "HEAD":
                    # A "body" after a HEAD answer, shaped as a whole response.
                    late = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(late))
                    time.sleep(0.1)
                    conn.sendall(late)
                else:
                    body = target.encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (OSError, ValueError):
            return
        finally:
            conn.close()


def policy(upstream_extra="", connect_ports="443", allow_loopback=True):
    """The harness policy, one worker, with more upstream settings and CONNECT ports.
    upstream_extra may set `ports` (the harness's `ports: any` is dropped then)."""
    hosts = "\n".join(f"  {h}: 127.0.0.1" for h in TEST_HOSTS + ["denied.test"])
    text = BASE_POLICY.format(pupil=PUPIL, staff=STAFF, guest=GUEST, hosts=hosts, response_timeout="3s",
                              head_timeout="2s", drain="2s", tls_port=8443, workers=1)
    text = text.replace("  denied.test: 127.0.0.1", "  denied.test: 127.0.0.5")
    text = text.replace("  ports: [443, 8443]", f"  ports: [{connect_ports}]")
    base = "upstream:\n  allow_loopback: true\n  ports: any\n"
    assert base in text
    ours = f"upstream:\n  allow_loopback: {'true' if allow_loopback else 'false'}\n"
    if "ports:" not in upstream_extra:
        ours += "  ports: any\n"
    return text.replace(base, ours + upstream_extra, 1)


def timed_curl(proxy, url, source=PUPIL, timeout=15):
    started = time.monotonic()
    status, body, err = curl(proxy, url, source=source, timeout=timeout)
    return status, body, time.monotonic() - started


class HoldingServer(ThreadedServer):
    """Accepts, reads until the peer closes (at most 10 s), and counts connections."""

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()


class DnsTest(unittest.TestCase):
    """upstream.dns_servers and upstream.dns_timeout, with the name server in the test."""

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer()
        cls.origin = PyOrigin()
        cls.proxy = Proxy(policy_text=policy(f'  dns_servers: ["127.0.0.1:{cls.dns.port}"]\n  dns_timeout: 2s\n'))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.stop()
        cls.dns.stop()

    def test_a_name_is_looked_up_through_the_configured_server(self):
        status, body, _ = timed_curl(self.proxy, f"http://www.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(self.dns.count("www.dnstest"), 1)

    def test_an_address_that_drops_what_is_sent_leaves_time_for_the_next(self):
        # The first address drops SYNs (IPv6 routed at the gateway and dropped upstream): it had
        # the whole connect_timeout (2 s here) and the request got a 504, where a browser falls
        # back to the next address at once (outside-in audit with real clients, 2026-12-07, H2).
        hole = DroppingListener("127.0.0.9", self.origin.port)
        self.addCleanup(hole.stop)
        status, body, took = timed_curl(self.proxy, f"http://twoaddr.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 200, body[:300])
        self.assertLess(took, 1.8)  # a share of connect_timeout (0.5 s here) on the first, not all of it
        self.assertGreater(took, 0.4)  # the share was waited on the dropping address first
        # Another device's first request (its own pooled connections) tries the silent address
        # last now, for a while: it does not wait the share again (review, 2026-12-07).
        status, body, took = timed_curl(self.proxy, f"http://twoaddr.dnstest:{self.origin.port}/echo", source=STAFF)
        self.assertEqual(status, 200, body[:300])
        self.assertLess(took, 0.4)

    def test_a_silent_name_server_delays_only_its_own_name(self):
        failures_before = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "dns"})
        result = {}

        def silent():
            result["silent"] = timed_curl(self.proxy, f"http://silent.dnstest:{self.origin.port}/echo")

        t = threading.Thread(target=silent)
        t.start()
        try:
            # Wait until the proxy has asked for the silent name, then ask for fresh names on
            # the same (only) worker while that lookup is still pending.
            deadline = time.monotonic() + 5
            while self.dns.count("silent.dnstest") == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertGreater(self.dns.count("silent.dnstest"), 0, "the proxy never asked for silent.dnstest")
            for i in range(3):
                status, _, took = timed_curl(self.proxy, f"http://fresh{i}.dnstest:{self.origin.port}/echo")
                self.assertEqual(status, 200)
                self.assertLess(took, 0.5, f"fresh{i}.dnstest waited behind the silent lookup")
            self.assertTrue(t.is_alive(), "the silent request should still be waiting")
        finally:
            t.join(15)
        status, body, took = result["silent"]
        self.assertEqual(status, 504)
        self.assertIn(b"could not be found in time", body)
        self.assertGreater(took, 1.8)
        self.assertLess(took, 3.5)  # dns_timeout 2s, plus slack
        self.assertGreater(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "dns"}), failures_before)

    def test_a_name_whose_servers_never_answered_is_remembered_for_a_while(self):
        # c-ares gives up on an unanswered query after its tries (about 7 s); for 10 s after
        # that, requests for the name get their 504 at once instead of each waiting its own
        # dns_timeout (2 s here). Each of the two workers asks for itself, so a few requests
        # may wait before both have given up.
        url = f"http://silent-remembered.dnstest:{self.origin.port}/echo"
        started = time.monotonic()
        quick = None
        for _ in range(12):
            status, body, took = timed_curl(self.proxy, url)
            self.assertEqual(status, 504)
            self.assertIn(b"could not be found in time", body)
            if took < 0.5:
                quick = time.monotonic() - started
                break
            time.sleep(0.5)
        self.assertIsNotNone(quick, "every request waited for its own deadline: the timeout was not remembered")
        self.assertGreater(quick, 5, "answered at once before c-ares could have given up")

    def test_a_tunnel_to_a_silent_name_gets_504_within_the_deadline(self):
        started = time.monotonic()
        response = raw_request(self.proxy, b"CONNECT silent.dnstest:443 HTTP/1.1\r\nHost: silent.dnstest:443\r\n\r\n",
                               timeout=8)
        took = time.monotonic() - started
        self.assertEqual(status_of(response), 504, response[:200])
        self.assertIn(b"could not be found in time", response)
        self.assertLess(took, 3.5)

    def test_a_tunnel_whose_sni_names_a_silent_name_closes_after_one_lookup(self):
        """A relayed tunnel whose SNI differs from its CONNECT host goes to the SNI's own server
        (tunnel.cpp). A failed lookup of the SNI's name closed the tunnel only after a second
        lookup of it (review of 2026-12-06: 4 s and three queries at dns_timeout 2 s), logged 502;
        now after one, logged 504 as a forwarded request's lookup out of time is."""
        origin = HoldingServer()
        self.addCleanup(origin.stop)
        proxy = Proxy(policy_text=policy(f'  dns_servers: ["127.0.0.1:{self.dns.port}"]\n  dns_timeout: 2s\n',
                                         connect_ports=str(origin.port)))
        self.addCleanup(proxy.stop)
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(PUPIL, 0))
        self.addCleanup(s.close)
        s.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.assertIn(b" 200 ", s.recv(4096))
        ctx = ssl.create_default_context()
        started = time.monotonic()
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(s, server_hostname="silent-sni.dnstest")
        took = time.monotonic() - started
        self.assertGreater(took, 1.8)
        self.assertLess(took, 3.5)  # dns_timeout 2s, plus slack; two lookups took 4 s
        line = [l for l in proxy.log_lines(1) if l["method"] == "CONNECT"][-1]
        self.assertEqual((line["status"], line["action"]), (504, "error"), line)
        self.assertIn("SNI 'silent-sni.dnstest' differs", line["note"])
        self.assertIn("could not be reached", line["note"])
        # An SNI whose name leads to the address already connected keeps that connection, an
        # IPv4-mapped CONNECT address included (it made a second connection: the same review).
        for connect_host in ("127.0.0.1", "[::ffff:127.0.0.1]"):
            with self.subTest(connect_host=connect_host):
                before = origin.connections
                s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(PUPIL, 0))
                self.addCleanup(s.close)
                s.sendall(f"CONNECT {connect_host}:{origin.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                self.assertIn(b" 200 ", s.recv(4096))
                with self.assertRaises((ssl.SSLError, OSError)):
                    ctx.wrap_socket(s, server_hostname="www.dnstest")  # the origin speaks no TLS
                self.assertEqual(origin.connections - before, 1)

    def test_a_name_that_does_not_exist_gets_502_and_is_remembered(self):
        status, body, _ = timed_curl(self.proxy, f"http://nx-missing.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 502)
        # The reason as a sentence, then the address (not "found The address").
        # A misspelt name: check the spelling, not "try again in a minute"; the page asked for
        # (audit of the pages, 2026-12-06).
        self.assertIn(b"This website\xe2\x80\x99s name could not be found. Check the address for spelling mistakes", body)
        self.assertIn(f"The address was http://nx-missing.dnstest:{self.origin.port}/echo.".encode(), body)
        self.assertNotIn(b"Try again in a minute", body)
        asked = self.dns.count("nx-missing.dnstest")
        self.assertGreaterEqual(asked, 1)
        status, _, took = timed_curl(self.proxy, f"http://nx-missing.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 502)
        self.assertEqual(self.dns.count("nx-missing.dnstest"), asked, "the negative answer was not cached")

    def test_a_name_server_that_never_answers_aaaa_queries_costs_a_moment_not_a_504(self):
        """Some home routers and old firewalls drop AAAA queries. A and AAAA went in one c-ares
        lookup that answered only when both had, so every site was a 504 after dns_timeout (2 s
        here) where browsers use the A record (known gap of the eighth session). Each family is
        answered on its own now, the other given dns_resolver::family_grace (500 ms) more."""
        status, body, took = timed_curl(self.proxy, f"http://noaaaa.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 200, body[:300])
        self.assertLess(took, 1.7)
        self.assertGreaterEqual(self.dns.count("noaaaa.dnstest", 28), 1, "no AAAA query was sent")
        self.assertGreaterEqual(self.dns.count("noaaaa.dnstest", 1), 1)
        # A name that does not exist (NXDOMAIN for A) needs no AAAA answer to be called missing.
        status, body, took = timed_curl(self.proxy, f"http://nx-noaaaa.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 502, body[:300])
        self.assertIn(b"name could not be found", body)
        self.assertLess(took, 1.7)

    def test_concurrent_lookups_of_one_name_share_one_query(self):
        results = []

        def fetch():
            results.append(timed_curl(self.proxy, f"http://slow-shared.dnstest:{self.origin.port}/echo"))

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.assertEqual([r[0] for r in results], [200] * 4)
        self.assertEqual(self.dns.count("slow-shared.dnstest"), 1)


class LateFamilyTest(unittest.TestCase):
    """What a family that answers after family_grace, and a failing name server, come to (DNS
    audit, 2026-12-07, D1-D4), with the name server in the test."""

    def setUp(self):
        self.dns = DnsServer()
        self.addCleanup(self.dns.stop)
        self.origin = PyOrigin()
        self.addCleanup(self.origin.stop)
        self.text = policy(f'  dns_servers: ["127.0.0.1:{self.dns.port}"]\n  dns_timeout: 3s\n')
        self.proxy = Proxy(policy_text=self.text)
        self.addCleanup(self.proxy.stop)

    def test_a_family_that_answers_late_reaches_the_cached_answer(self):
        # AAAA (::1, where nothing listens) at once, A 0.7 s later: the first request has ::1
        # only and fails; the A record that came after it is added to the name's cached answer,
        # so the next request falls back to it. It was dropped, and the name failed for
        # upstream.dns_cache (D2).
        url = f"http://latea.dnstest:{self.origin.port}/echo"
        status, _, took = timed_curl(self.proxy, url)
        self.assertNotEqual(status, 200)
        self.assertLess(took, 2.5)
        time.sleep(1.0)
        status, body, _ = timed_curl(self.proxy, url)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(self.dns.count("latea.dnstest", 1), 1, "the late A answer was not kept: asked again")

    def test_a_name_called_missing_is_asked_again_once_a_late_family_gives_an_address(self):
        # A NXDOMAIN at once and AAAA ::1 0.7 s later (an inconsistent server): the lookup says
        # "not found" after family_grace, but the address that came later makes the name be
        # asked again at the next request, not "not found (remembered)" for 10 s (D3).
        url = f"http://nx-latea.dnstest:{self.origin.port}/echo"
        status, _, _ = timed_curl(self.proxy, url)
        self.assertEqual(status, 502)
        self.assertEqual(self.dns.count("nx-latea.dnstest", 1), 1)
        time.sleep(1.0)
        timed_curl(self.proxy, url)
        self.assertEqual(self.dns.count("nx-latea.dnstest", 1), 2, "the NXDOMAIN was remembered against a late address")

    def test_a_failing_name_server_is_not_called_a_misspelt_address(self):
        # SERVFAIL (or REFUSED: a resolver that no longer serves the gateway) got "Check the
        # address for spelling mistakes; ... the website may have closed" (D4).
        status, body, _ = timed_curl(self.proxy, f"http://servfail.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 502, body[:300])
        self.assertNotIn(b"spelling", body)
        self.assertIn(b"name server failed to look the site", body)

    def test_changed_dns_servers_apply_while_a_dropped_aaaa_query_lingers(self):
        # The lookup is answered with A after family_grace while c-ares goes on asking for AAAA
        # (about 7 s): no lookup is open, yet c-ares refuses a change of servers. The reload's
        # servers were not used for as long as such queries kept coming (D1).
        new = DnsServer()
        self.addCleanup(new.stop)
        status, _, _ = timed_curl(self.proxy, f"http://noaaaa-linger.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(self.dns.count("noaaaa-linger.dnstest", 28), 1)
        self.proxy.write_policy(self.text.replace(f"127.0.0.1:{self.dns.port}", f"127.0.0.1:{new.port}"))
        self.proxy.reload()
        status, _, _ = timed_curl(self.proxy, f"http://after-linger.dnstest:{self.origin.port}/echo")
        self.assertEqual(status, 200)
        self.assertEqual(self.dns.count("after-linger.dnstest"), 0, "the old server was asked after the reload")
        self.assertEqual(new.count("after-linger.dnstest"), 1)


class DnsServersReloadTest(unittest.TestCase):
    def test_changed_dns_servers_apply_at_once_while_a_lookup_is_open(self):
        # c-ares 1.18 changes no servers while a query is open; under steady traffic one nearly
        # always is, so a reload's new dns_servers used to wait for a quiet moment (or a
        # restart). Here a lookup the old server never answers is open (about 7 s of c-ares
        # tries) when the reload comes: the next lookup goes to the new server, and so does the
        # open one, asked again there.
        old, new = DnsServer(), DnsServer()
        self.addCleanup(old.stop)
        self.addCleanup(new.stop)
        origin = PyOrigin()
        self.addCleanup(origin.stop)
        text = policy(f'  dns_servers: ["127.0.0.1:{old.port}"]\n  dns_timeout: 5s\n')
        proxy = Proxy(policy_text=text)
        self.addCleanup(proxy.stop)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            silent=timed_curl(proxy, f"http://silent-open.dnstest:{origin.port}/echo")))
        t.start()
        self.addCleanup(t.join, 15)
        deadline = time.monotonic() + 5
        while old.count("silent-open.dnstest") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(old.count("silent-open.dnstest"), 0, "the proxy never asked the old server")
        proxy.write_policy(text.replace(f"127.0.0.1:{old.port}", f"127.0.0.1:{new.port}"))
        proxy.reload()
        self.assertTrue(t.is_alive(), "the silent lookup ended before the reload: the test proves nothing")
        status, _, took = timed_curl(proxy, f"http://after-reload.dnstest:{origin.port}/echo")
        self.assertEqual(status, 200)
        self.assertEqual(new.count("after-reload.dnstest"), 1)
        self.assertEqual(old.count("after-reload.dnstest"), 0, "the old server was asked after the reload")
        self.assertGreaterEqual(new.count("silent-open.dnstest"), 1, "the open lookup was not asked again")
        t.join(15)
        self.assertEqual(result["silent"][0], 504)  # never answered by either: its own deadline


class WhoOrigin(ThreadedServer):
    """Answers every request, kept alive, with the address it was reached at."""

    def _serve(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                while f.readline() not in (b"\r\n", b""):
                    pass
                me = self.sock.getsockname()[0].encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(me) + me)
        except OSError:
            return
        finally:
            conn.close()


class HostsReloadTest(unittest.TestCase):
    def test_a_reload_that_moves_a_name_reaches_kept_alive_and_pooled_connections(self):
        # `hosts:` sends a name to the school's own server. A reload that moved the name left a
        # busy kept-alive client (and its pooled origin connection) on the old address for as
        # long as it stayed busy (outside-in audit of reloads, 2026-12-07, finding 1).
        one = WhoOrigin(host="127.0.0.1")
        self.addCleanup(one.stop)
        five = WhoOrigin(host="127.0.0.5", port=one.port)
        self.addCleanup(five.stop)
        text = policy().replace("hosts:\n", "hosts:\n  moved.test: 127.0.0.1\n", 1)
        proxy = Proxy(policy_text=text)
        self.addCleanup(proxy.stop)
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10, source_address=(PUPIL, 0))
        self.addCleanup(conn.close)

        def who():
            conn.request("GET", f"http://moved.test:{one.port}/", headers={"Host": f"moved.test:{one.port}"})
            return conn.getresponse().read()

        self.assertEqual(who(), b"127.0.0.1")
        self.assertEqual(who(), b"127.0.0.1")
        proxy.write_policy(text.replace("  moved.test: 127.0.0.1\n", "  moved.test: 127.0.0.5\n"))
        proxy.reload()
        self.assertEqual(who(), b"127.0.0.5")  # the same client connection, its next request
        status, body, _ = timed_curl(proxy, f"http://moved.test:{one.port}/")
        self.assertEqual((status, body), (200, b"127.0.0.5"))
        # An entry removed: the name is looked up (here it cannot be: no name server answers).
        proxy.write_policy(text.replace("  moved.test: 127.0.0.1\n", ""))
        proxy.reload()
        conn.request("GET", f"http://moved.test:{one.port}/", headers={"Host": f"moved.test:{one.port}"})
        self.assertIn(conn.getresponse().status, (502, 504))


class DestinationTest(unittest.TestCase):
    """upstream.deny_networks, allow_networks and ports, and IPv6 forms embedding IPv4."""

    @classmethod
    def setUpClass(cls):
        cls.origin = LateBytesOrigin("127.0.0.1")
        cls.denied_origin = LateBytesOrigin("127.0.0.5")
        cls.extra = f"  deny_networks: [127.0.0.5/32]\n  ports: [{cls.origin.port}, {cls.denied_origin.port}]\n"
        cls.proxy = Proxy(policy_text=policy(cls.extra))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.stop()
        cls.denied_origin.stop()

    def setUp(self):
        # Each test starts from the class's policy (some tests reload another).
        if self.proxy.policy_text != policy(self.extra):
            self.proxy.policy_text = policy(self.extra)
            self.proxy.write_policy(self.proxy.policy_text)
            self.proxy.reload()

    def reload(self, text):
        self.proxy.policy_text = text
        self.proxy.write_policy(text)
        self.proxy.reload()

    def test_a_denied_network_is_refused_before_connecting(self):
        before = self.proxy.metric("hallpass_rejected_total", {"reason": "destination_denied"})
        connections = self.denied_origin.connections
        status, body, _ = timed_curl(self.proxy, f"http://127.0.0.5:{self.denied_origin.port}/x")
        self.assertEqual(status, 403)
        self.assertIn(b"network the school does not open", body)
        self.assert_logged_as_explained(f"http://127.0.0.5:{self.denied_origin.port}/x", "destination")
        status, _, _ = timed_curl(self.proxy, f"http://denied.test:{self.denied_origin.port}/x")
        self.assertEqual(status, 403)
        self.assertEqual(self.denied_origin.connections, connections, "a denied destination was connected to")
        self.assertEqual(self.proxy.metric("hallpass_rejected_total", {"reason": "destination_denied"}), before + 2)
        status, body, _ = timed_curl(self.proxy, f"http://127.0.0.1:{self.origin.port}/served")
        self.assertEqual((status, body), (200, b"/served"))

    def test_a_refused_destination_is_logged_without_the_allowing_rule_s_category(self):
        # The policy allows the school's intranet name by its category; the destination rules
        # refuse its address. The line says block by `destination`, and no category: it carried
        # the allowing rule's category beside "block" (a blocked "school intranet" in the weekly
        # report, an alert had the category been watched).
        text = policy(self.extra).replace("categories:\n", "categories:\n  school_intranet: {domains: [denied.test]}\n", 1)
        text = text.replace("      - {action: block, categories: [social_media]}\n",
                            "      - {action: block, categories: [social_media]}\n"
                            "      - {action: allow, categories: [school_intranet]}\n", 1)
        self.assertIn("allow, categories: [school_intranet]", text)
        self.reload(text)
        status, _, _ = timed_curl(self.proxy, f"http://denied.test:{self.denied_origin.port}/intranet")
        self.assertEqual(status, 403)
        line = wait_for(lambda: next((l for l in reversed(self.proxy.log_lines()) if l.get("path") == "/intranet"), None),
                        what="the refusal's line")
        self.assertEqual((line["action"], line["rule"], line["category"]), ("block", "destination", None), line)

    def test_a_denied_network_is_refused_for_connect_too(self):
        self.reload(policy(self.extra, connect_ports=f"443, {self.denied_origin.port}"))
        response = raw_request(self.proxy, f"CONNECT 127.0.0.5:{self.denied_origin.port} HTTP/1.1\r\n"
                               f"Host: 127.0.0.5:{self.denied_origin.port}\r\n\r\n".encode())
        self.assertEqual(status_of(response), 403)

    def test_allow_networks_opens_a_denied_address(self):
        self.reload(policy(self.extra + "  allow_networks: [127.0.0.5/32]\n"))
        status, body, _ = timed_curl(self.proxy, f"http://127.0.0.5:{self.denied_origin.port}/opened")
        self.assertEqual((status, body), (200, b"/opened"))

    def test_a_port_outside_upstream_ports_is_refused(self):
        before = self.proxy.metric("hallpass_rejected_total", {"reason": "port_not_allowed"})
        other = free_port()
        status, body, _ = timed_curl(self.proxy, f"http://127.0.0.1:{other}/x")
        self.assertEqual(status, 403)
        self.assertIn(b"port are not allowed", body)
        self.assertEqual(self.proxy.metric("hallpass_rejected_total", {"reason": "port_not_allowed"}), before + 1)
        # Refused by a setting of the school's, as a CONNECT outside connect.ports is: logged as a
        # block naming the setting, as explain says (it was logged an error: explain audit,
        # 2026-12-07), and as transparent mode logs a refused destination.
        self.assert_logged_as_explained(f"http://127.0.0.1:{other}/x", "upstream.ports")

    def assert_logged_as_explained(self, url, rule):
        u = urllib.parse.urlsplit(url)
        line = wait_for(lambda: next((l for l in reversed(self.proxy.log_lines())
                                      if (l.get("host"), l.get("port"), l.get("path")) == (u.hostname, u.port, u.path)),
                                     None), what="the refusal's line")
        self.assertEqual((line["action"], line["status"], line["rule"]), ("block", 403, rule), line)
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--client", PUPIL, "--json", url],
                           capture_output=True, text=True, timeout=30)
        explained = json.loads(r.stdout)
        self.assertEqual((explained["action"], explained["rule"]), ("block", rule), r.stderr)

    def test_ipv6_forms_of_loopback_are_loopback(self):
        self.reload(policy(self.extra, allow_loopback=False))
        for host in ("[::127.0.0.1]", "[::7f00:1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]"):
            response = raw_request(self.proxy, f"GET http://{host}:{self.origin.port}/x HTTP/1.1\r\n"
                                   f"Host: {host}:{self.origin.port}\r\n\r\n".encode())
            self.assertEqual(status_of(response), 403, f"GET {host}: {response[:200]!r}")
            response = raw_request(self.proxy, f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
            self.assertEqual(status_of(response), 403, f"CONNECT {host}: {response[:200]!r}")

    def test_ipv6_forms_of_the_proxy_itself_are_refused(self):
        port = self.proxy.port
        self.reload(policy(self.extra.replace(f"{self.origin.port},", f"{self.origin.port}, {port},"),
                           connect_ports=f"443, {port}"))
        for host in ("[::127.0.0.1]", "[::7f00:1]"):
            response = raw_request(self.proxy, f"GET http://{host}:{port}/x HTTP/1.1\r\n"
                                   f"Host: {host}:{port}\r\n\r\n".encode())
            self.assertEqual(status_of(response), 403, f"GET {host}: {response[:200]!r}")
            response = raw_request(self.proxy, f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            self.assertEqual(status_of(response), 403, f"CONNECT {host}: {response[:200]!r}")


class PoolTest(unittest.TestCase):
    """Bytes an origin sends after a response never reach another request (issue 9, section 1)."""

    @classmethod
    def setUpClass(cls):
        cls.origin = LateBytesOrigin("127.0.0.1")
        cls.proxy = Proxy(workers=1)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.stop()

    def check_next_request_gets_its_own_answer(self, first_method, first_path):
        for i in range(3):
            extra = ("-I",) if first_method == "HEAD" else ()
            status, _, err = curl(self.proxy, f"http://origin.test:{self.origin.port}{first_path}", source=PUPIL,
                                  extra=extra, timeout=10)
            self.assertIn(status, (200, 204), err)
            time.sleep(0.3)  # the late bytes arrive while the connection sits in the pool
            status, body, err = curl(self.proxy, f"http://origin.test:{self.origin.port}/staff-file-{i}",
                                     source=STAFF, timeout=10)
            self.assertEqual((status, body), (200, f"/staff-file-{i}".encode()), err)

    def test_bytes_after_a_204_are_not_the_next_users_answer(self):
        self.check_next_request_gets_its_own_answer("GET", "/late-204")

    def test_a_body_after_a_head_answer_is_not_the_next_users_answer(self):
        self.check_next_request_gets_its_own_answer("HEAD", "/head")


if __name__ == "__main__":
    unittest.main()
