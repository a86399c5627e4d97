"""Hostile input: request smuggling shapes, oversize heads, slow clients, connection limits.
Each bad request gets its error status and the connection closed; nothing reaches the origin."""
import os
import resource
import socket
import time
import unittest
import urllib.request

from harness import PUPIL, STAFF, Origin, Proxy, PyOrigin, SlowDownload, raw_request, status_of, wait_for


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = PyOrigin()
        cls.proxy = Proxy(extra="", head_timeout="2s")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.py.stop()

    def refused(self, request, want=400, source=STAFF):
        """Sends `request`; expects status `want` and the connection closed by the proxy."""
        before = len(self.py.requests)
        start = time.monotonic()
        out = raw_request(self.proxy, request, source=source, timeout=5)
        self.assertEqual(status_of(out), want, out[:300])
        self.assertLess(time.monotonic() - start, 4.5, "the proxy did not close the connection")
        time.sleep(0.05)
        self.assertEqual(len(self.py.requests), before, "a refused request reached the origin")
        return out

    def target(self, path="/echo"):
        return f"http://py.test:{self.py.port}{path}"

    def test_smuggling_shapes_get_400_and_close(self):
        t = self.target()
        shapes = {
            "TE not ending in chunked": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            "TE chunked then identity": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "two TE fields": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "TE with CL": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            "CL with TE": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "duplicate CL": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "differing CL": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "CL list": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5, 5\r\n\r\nhello",
            "CL with sign": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: +5\r\n\r\nhello",
            "CL not a number": f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5x\r\n\r\nhello",
            "chunked on HTTP/1.0": f"POST {t} HTTP/1.0\r\nHost: py.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "space before colon": f"GET {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding : chunked\r\n\r\n",
            "control byte in value": f"GET {t} HTTP/1.1\r\nHost: py.test\r\nX-A: a\x01b\r\n\r\n",
            "NUL in value": f"GET {t} HTTP/1.1\r\nHost: py.test\r\nX-A: a\x00b\r\n\r\n",
            "bad name": f"GET {t} HTTP/1.1\r\nHost: py.test\r\nBad(Name): x\r\n\r\n",
            "HTTP/1.1 without Host": f"GET {t} HTTP/1.1\r\nX-A: b\r\n\r\n",
            "two Host fields": f"GET {t} HTTP/1.1\r\nHost: py.test\r\nHost: other.test\r\n\r\n",
        }
        for name, request in shapes.items():
            with self.subTest(shape=name):
                self.refused(request.encode())

    def test_obsolete_line_folding_never_reaches_the_origin(self):
        # RFC 9112 5.2: reject, or replace the fold with spaces. Either way the origin must
        # never see a folded line it could read differently from us.
        out = raw_request(self.proxy, f"GET {self.target('/headers')} HTTP/1.1\r\nHost: py.test\r\n"
                                      "X-A: a\r\n b\r\nConnection: close\r\n\r\n".encode(), source=STAFF)
        if status_of(out) == 200:
            import json
            headers = json.loads(out.partition(b"\r\n\r\n")[2])
            values = [v for n, v in headers if n.lower() == "x-a"]
            self.assertEqual(len(values), 1)
            self.assertNotIn("\r", values[0])
            self.assertNotIn("\n", values[0])
            self.assertFalse(any(n.strip().lower() == "b" for n, _ in headers))
        else:
            self.assertEqual(status_of(out), 400)

    def test_bad_chunk_size_in_body_gets_400(self):
        out = raw_request(self.proxy, f"POST {self.target()} HTTP/1.1\r\nHost: py.test\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".encode(),
                          source=STAFF)
        self.assertEqual(status_of(out), 400, out[:200])

    def test_oversize_head_and_too_many_fields_get_431(self):
        big = "X-Big: " + "a" * 20000
        self.refused(f"GET {self.target()} HTTP/1.1\r\nHost: py.test\r\n{big}\r\n\r\n".encode(), want=431)
        many = "".join(f"X-H{i}: v\r\n" for i in range(70))
        self.refused(f"GET {self.target()} HTTP/1.1\r\nHost: py.test\r\n{many}\r\n".encode(), want=431)

    def test_slow_client_is_cut_at_the_head_deadline(self):
        before = self.proxy.metric("hallpass_rejected_total", {"reason": "head_timeout"})
        s = socket.socket()
        s.bind((PUPIL, 0))
        s.settimeout(8)
        s.connect(("127.0.0.1", self.proxy.port))
        start = time.monotonic()
        s.sendall(b"GET http://py.test/ HTTP/1.1\r\nHost: py.test\r\n")
        # Trickle a byte every half second: the deadline is for the whole head, not each read.
        closed = False
        answer = b""
        for _ in range(6):
            time.sleep(0.5)
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            try:
                s.settimeout(0.5)
                while chunk := s.recv(4096):
                    answer += chunk
                closed = True
                break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - start
        s.close()
        self.assertTrue(closed, "the slow client was not cut")
        self.assertLess(elapsed, 3.5)
        # Answered before the close (the read deadline cancels the read, the socket stays open).
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:200])
        wait_for(lambda: self.proxy.metric("hallpass_rejected_total", {"reason": "head_timeout"}) > before,
                 what="the head timeout to be counted")

    def test_connections_per_client_are_limited(self):
        # A head timeout far beyond the test's length: with the harness's 2 s, a CI machine that
        # stalled the test for 2 s let the three connections time out, the extra one was let in
        # and closed by its own head timeout 2 s later, and the counter read 0 (CI, 2026-12-06).
        proxy = Proxy(extra="", head_timeout="60s")
        try:
            proxy.write_policy(proxy.policy_text.replace("  header_count: 60", "  header_count: 60\n  connections_per_client: 3"))
            proxy.reload()
            socks = []
            for _ in range(3):
                s = socket.socket()
                s.bind((PUPIL, 0))
                s.connect(("127.0.0.1", proxy.port))
                socks.append(s)
            # The three are accepted (each worker accepts from its own queue, in its own time)
            # before the extra one comes, or the extra one could be let in ahead of one of them.
            wait_for(lambda: proxy.metric("hallpass_active_connections") >= 3, timeout=10,
                     what="the three connections accepted")
            extra = socket.socket()
            extra.bind((PUPIL, 0))
            extra.settimeout(3)
            extra.connect(("127.0.0.1", proxy.port))
            self.assertEqual(extra.recv(1), b"")  # closed at once
            extra.close()
            # Another client is not affected.
            other = socket.socket()
            other.bind((STAFF, 0))
            other.settimeout(3)
            other.connect(("127.0.0.1", proxy.port))
            other.sendall(f"GET {self.target('/chunked')} HTTP/1.1\r\nHost: py.test\r\nConnection: close\r\n\r\n".encode())
            self.assertIn(b"200", other.recv(100))
            other.close()
            self.assertGreaterEqual(proxy.metric("hallpass_rejected_total", {"reason": "connection_limit"}), 1)
            # Said on standard error, naming the device and the limit: the refusal has no
            # access-log line (a device's 257th connection was a metric only: eighth session).
            said = wait_for(lambda: [l for l in proxy.stderr_lines if "refused a connection from" in l] or None,
                            what="the refusal said on standard error")
            self.assertEqual(len(said), 1, said)
            self.assertIn(f"refused a connection from {PUPIL}: that device is at limits.connections_per_client "
                          "(3 connections open at once)", said[0])
            # A second refusal within the minute is counted, not said again.
            extra = socket.socket()
            extra.bind((PUPIL, 0))
            extra.settimeout(3)
            extra.connect(("127.0.0.1", proxy.port))
            self.assertEqual(extra.recv(1), b"")
            extra.close()
            # Counted (the metric) before the check, and time for a line to come: the warning is
            # written by a thread of its own and read by the test's reader thread.
            wait_for(lambda: proxy.metric("hallpass_rejected_total", {"reason": "connection_limit"}) >= 2,
                     what="the second refusal counted")
            time.sleep(0.5)
            self.assertEqual(len([l for l in proxy.stderr_lines if "refused a connection from" in l]), 1)
            for s in socks:
                s.close()
        finally:
            proxy.stop()

    def test_devices_at_their_limit_leave_the_last_tenth_of_the_connections_to_others(self):
        """Resource audit, 2026-12-06: 40 addresses at the per-client limit (256 of the 10,000
        in all) filled limits.connections and every other device was refused. The last tenth is
        kept for devices holding fewer than 16: here limits.connections 100, one device stops
        at 90 and another still gets in."""
        proxy = Proxy(extra="", head_timeout="30s")
        socks = []
        try:
            proxy.write_policy(proxy.policy_text.replace("  header_count: 60", "  header_count: 60\n  connections: 100"))
            proxy.reload()
            for _ in range(100):
                s = socket.socket()
                s.bind((PUPIL, 0))
                s.connect(("127.0.0.1", proxy.port))
                socks.append(s)
            wait_for(lambda: proxy.metric("hallpass_rejected_total", {"reason": "connection_limit"}) >= 10,
                     timeout=10, what="the pupil's connections beyond 90 refused")
            self.assertEqual(proxy.metric("hallpass_active_connections"), 90)
            said = wait_for(lambda: [l for l in proxy.stderr_lines if "refused a connection from" in l] or None,
                            what="the refusal said on standard error")
            self.assertIn(f"from {PUPIL}: the proxy is within a tenth of limits.connections (100), which is kept for "
                          "devices holding fewer than 1 connections", said[0])
            out = raw_request(proxy, f"GET {self.target('/chunked')} HTTP/1.1\r\nHost: py.test\r\n"
                                     "Connection: close\r\n\r\n".encode(), source=STAFF, timeout=10)
            self.assertEqual(status_of(out), 200, out[:300])
        finally:
            for s in socks:
                s.close()
            proxy.stop()

    def test_descriptors_the_limit_raised_at_start_and_a_shortage_is_the_proxys_503(self):
        """Resource audit, 2026-12-06: under a shell's soft limit of 1024 descriptors one device's
        167 tunnels left every other device a 502 that blamed the site, and nothing said why.
        Now the soft limit is raised to the hard one at start (and a start whose limit is short
        of limits.connections warns); a shortage is a 503 "the web filter is too busy", counted
        in hallpass_descriptor_shortages_total and said on standard error."""
        if os.environ.get("HALLPASS_SANITIZED", "0") == "1":
            # UBSan's vptr check tests memory with a pipe (sanitizer_common's
            # IsAccessibleMemoryRange): with no descriptor left it reports any object as having
            # an invalid vptr and the daemon stops (CI at e0f8501, Beast's parser constructor).
            self.skipTest("the sanitizers need descriptors of their own: this test takes them all")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 2048:
            self.skipTest(f"the hard descriptor limit here is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))  # the proxy inherits soft 512
        try:
            proxy = Proxy(extra="", head_timeout="30s")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        socks = []
        try:
            pid = proxy.proc.pid
            self.assertEqual(resource.prlimit(pid, resource.RLIMIT_NOFILE)[0], hard)
            # Then a limit far below what limits.connections needs, set from outside.
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (160, 160))
            free = 160 - len(os.listdir(f"/proc/{pid}/fd"))
            self.assertGreater(free, 20)
            before = proxy.metric("hallpass_active_connections")
            for _ in range(free - 1):  # (the scrape's own connection is closed by now)
                s = socket.socket()
                s.bind((PUPIL, 0))
                s.connect(("127.0.0.1", proxy.port))
                socks.append(s)
            wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= 159, timeout=10,
                     what="the pupil's connections accepted")
            # 159 of 160 in use: the staff device's connection takes the last; its origin's finds none.
            out = raw_request(proxy, f"GET {self.target('/chunked')} HTTP/1.1\r\nHost: py.test\r\n"
                                     "Connection: close\r\n\r\n".encode(), source=STAFF, timeout=10)
            self.assertEqual(status_of(out), 503, out[:300])
            self.assertIn(b"too busy", out)
            for s in socks:
                s.close()
            socks = []
            wait_for(lambda: any("no file descriptor left" in l for l in proxy.stderr_lines),
                     what="the shortage said on standard error")
            wait_for(lambda: proxy.metric("hallpass_active_connections") <= before, timeout=10,
                     what="the pupil's connections closed")
            self.assertGreaterEqual(proxy.metric("hallpass_descriptor_shortages_total"), 1)
            line = wait_for(lambda: next((l for l in proxy.log_lines() if l["status"] == 503), None),
                            what="the 503's line")
            self.assertIn("no file descriptor left", line["reason"], line)
        finally:
            for s in socks:
                s.close()
            proxy.stop()

    def test_a_slow_but_steady_reader_is_not_cut_as_idle(self):
        # Reading 30 KB/s, steadily: the proxy's writes into a send buffer of megabytes woke only
        # after half of it had gone, and upstream.idle_timeout (10 s here) cut the download as one
        # that "stopped reading" (outside-in audit with real clients, 2026-12-07, M3). 16 s of it.
        nginx = Origin()
        self.addCleanup(nginx.stop)
        download = SlowDownload(self.proxy, f"http://origin.test:{nginx.port}/big", STAFF, rate=30 * 1024, timeout=16)
        download.start()
        download.join(40)
        self.assertEqual(download.status, 200, download.error)
        self.assertEqual(download.error, "")
        self.assertGreater(download.size, 14 * 30 * 1024)  # still reading at the end, never cut
        self.assertLess(download.size, download.length)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("path") == "/big"] or None,
                        what="the download's line")[-1]
        self.assertNotIn("stopped reading", line.get("note", ""))

    def test_idle_connections_cost_little_memory(self):
        """2,000 connections that send nothing: the daemon's resident memory grows by at most
        6 KiB for each (issue 5's target is 10 KiB; about 3 KiB measured). Under the address
        sanitizer every allocation carries red zones, so only the plain build is held to it."""
        proxy = Proxy(head_timeout="30s")
        socks = []
        try:
            def rss_kib():
                with open(f"/proc/{proxy.proc.pid}/status") as f:
                    return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            curl_ok = raw_request(proxy, f"GET {self.target('/chunked')} HTTP/1.1\r\nHost: py.test\r\n"
                                         "Connection: close\r\n\r\n".encode(), source=STAFF)
            self.assertEqual(status_of(curl_ok), 200)  # warm: the workers have run a request
            before = rss_kib()
            for i in range(2000):  # 200 per address: under the 256 each client may hold
                s = socket.socket()
                s.bind((f"127.0.1.{1 + i // 200}", 0))
                s.connect(("127.0.0.1", proxy.port))
                socks.append(s)
            wait_for(lambda: proxy.metric("hallpass_active_connections") >= 2000, timeout=30,
                     what="the daemon to accept 2,000 connections")
            per_connection = (rss_kib() - before) / 2000
            if os.environ.get("HALLPASS_SANITIZED", "0") != "1":
                self.assertLessEqual(per_connection, 6.0, f"{per_connection:.1f} KiB per idle connection")
        finally:
            for s in socks:
                s.close()
            proxy.stop()

    def test_loopback_destinations_refused_unless_allowed(self):
        proxy = Proxy()
        try:
            proxy.write_policy(proxy.policy_text.replace("allow_loopback: true", "allow_loopback: false")
                               .replace("  header_count: 60", "  header_count: 60\n  body_bytes: 1000"))
            proxy.reload()
            before = len(self.py.requests)
            for target in (f"http://py.test:{self.py.port}/echo", f"http://127.0.0.1:{self.py.port}/echo",
                           f"http://[::1]:{self.py.port}/echo", f"http://2130706433:{self.py.port}/echo"):
                with self.subTest(target=target):
                    out = raw_request(proxy, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                                      source=STAFF)
                    self.assertEqual(status_of(out), 403, out[:200])
            self.assertEqual(len(self.py.requests), before)
            self.assertGreaterEqual(proxy.metric("hallpass_rejected_total", {"reason": "loopback_refused"}), 4)
        finally:
            proxy.stop()

    def test_the_proxy_itself_its_metrics_and_link_local_are_never_destinations(self):
        # Even with allow_loopback (as here, for the test origins): the proxy's own port, its
        # metrics endpoint (however the address is written) and link-local addresses such as
        # the cloud metadata address are refused.
        targets = [f"http://127.0.0.1:{self.proxy.port}/", f"http://127.0.0.1:{self.proxy.metrics_port}/metrics",
                   f"http://[::ffff:127.0.0.1]:{self.proxy.metrics_port}/metrics",
                   f"http://0x7f000001:{self.proxy.metrics_port}/metrics",
                   "http://169.254.169.254/latest/meta-data/", f"http://[fe80::1]:{self.py.port}/"]
        for target in targets:
            with self.subTest(target=target):
                out = raw_request(self.proxy, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                  .encode(), source=STAFF)
                self.assertEqual(status_of(out), 403, out[:300])
                self.assertNotIn(b"hallpass_requests_total", out)
        # The same metrics port on its own, without the proxy, does answer: the refusal is the proxy's.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.proxy.metrics_port}/metrics", timeout=5) as r:
            self.assertIn(b"hallpass_requests_total", r.read())

    def test_request_body_limit_gives_413(self):
        proxy = Proxy()
        try:
            proxy.write_policy(proxy.policy_text.replace("  header_count: 60", "  header_count: 60\n  body_bytes: 1000"))
            proxy.reload()
            t = f"http://py.test:{self.py.port}/echo"
            out = raw_request(proxy, f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 2000\r\n\r\n".encode()
                              + b"x" * 2000, source=STAFF)
            self.assertEqual(status_of(out), 413)
            chunked = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
            out = raw_request(proxy, f"POST {t} HTTP/1.1\r\nHost: py.test\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                              + chunked, source=STAFF)
            self.assertEqual(status_of(out), 413)
            out = raw_request(proxy, f"POST {t} HTTP/1.1\r\nHost: py.test\r\nContent-Length: 500\r\n"
                                     "Connection: close\r\n\r\n".encode() + b"z" * 500, source=STAFF)
            self.assertEqual(status_of(out), 200)
        finally:
            proxy.stop()

    def test_zz_good_requests_still_work_after_all_the_bad_ones(self):
        # "zz": unittest runs a class's tests in name order, so this one runs after every
        # refused request above has been sent to the same proxy.
        out = raw_request(self.proxy, f"GET {self.target('/chunked')} HTTP/1.1\r\nHost: py.test\r\nConnection: close\r\n\r\n".encode(),
                          source=STAFF)
        self.assertEqual(status_of(out), 200)


if __name__ == "__main__":
    unittest.main()
