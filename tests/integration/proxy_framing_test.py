"""How the proxy frames what it forwards: streamed chunks both ways, interim responses,
trailers, HTTP/1.0 clients, normalised lengths, the 502 page for broken chunk framing.

Real hallpass, an origin in the test that scripts each answer byte by byte, raw sockets.
"""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import PUPIL, Proxy, ThreadedServer, free_port, recv_head, wait_for  # noqa: E402
from proxy_smuggling_test import StrictReader  # noqa: E402


class ScriptOrigin(ThreadedServer):
    """Accepts connections; each is handed to `self.script(conn, head_bytes)`."""

    def __init__(self, script):
        self.script = script
        self.received = []  # raw bytes of each connection, as they arrived
        super().__init__(backlog=16)

    def _serve(self, conn):
        conn.settimeout(10)
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                data = conn.recv(65536)
                if not data:
                    return
                got += data
            self.received.append(got)
            self.script(conn, got)
        except OSError:
            pass
        finally:
            conn.close()


def client(proxy, source=PUPIL):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", proxy.port))
    return s


def recv_until(s, marker, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            more = s.recv(65536)
        except socket.timeout:
            break
        if not more:
            break
        data += more
    return data


def send_in_background(s, pieces):
    """Sends each of `pieces` on `s` from a thread, until the proxy closes."""
    def upload():
        try:
            for piece in pieces:
                s.sendall(piece)
        except OSError:
            pass  # the proxy closes while the rest is still on its way

    threading.Thread(target=upload, daemon=True).start()


class Framing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def log_line_for(self, port):
        """The access log line of the (only) request to `port`, once the writer has written it."""
        return wait_for(lambda: next((l for l in self.proxy.log_lines() if l["port"] == port), None),
                        timeout=5, what=f"the log line for port {port}")

    def connected(self, proxy=None):
        """A client socket connected to the proxy (the class's own unless given), closed at the end."""
        s = client(proxy or self.proxy)
        self.addCleanup(s.close)
        return s

    def origin(self, script):
        o = ScriptOrigin(script)
        self.addCleanup(o.stop)
        return o

    def origin_that_answers_and_stops_reading(self, answer):
        """An origin that sends `answer` from the request head, then reads nothing and keeps
        the connection open (until the test ends, at most 15 s)."""
        release = threading.Event()

        def script(conn, _):
            conn.sendall(answer)
            release.wait(15)

        o = self.origin(script)
        self.addCleanup(release.set)
        return o

    def test_server_sent_events_stream_chunk_by_chunk(self):
        release = threading.Event()

        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"d\r\ndata: first\n\n\r\n")
            release.wait(10)  # the second event only after the client has seen the first
            conn.sendall(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/events HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        first = recv_until(s, b"data: first", timeout=3)
        self.assertIn(b"data: first", first, "the first event must arrive before the origin sends the second")
        self.assertNotIn(b"data: second", first)
        release.set()
        rest = recv_until(s, b"0\r\n\r\n", timeout=5)
        self.assertIn(b"data: second", rest)
        self.assertTrue(rest.endswith(b"0\r\n\r\n"))

    def test_chunked_upload_streams_to_the_origin(self):
        first_seen = threading.Event()
        done = threading.Event()
        bodies = []

        def script(conn, got):
            buf = got
            deadline = time.monotonic() + 5
            while b"part-one" not in buf and time.monotonic() < deadline:
                buf += conn.recv(65536)
            if b"part-one" in buf:
                first_seen.set()
            while not buf.endswith(b"0\r\n\r\n") and time.monotonic() < deadline + 5:
                more = conn.recv(65536)
                if not more:
                    break
                buf += more
            bodies.append(buf)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            done.set()

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/upload HTTP/1.1\r\nHost: origin.test\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n8\r\npart-one\r\n" % o.port)
        self.assertTrue(first_seen.wait(3), "the first chunk must reach the origin before the upload ends")
        s.sendall(b"8;ext=1\r\npart-two\r\n0\r\nX-Trailer: t\r\n\r\n")
        reply = recv_until(s, b"ok")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:80])
        self.assertTrue(done.wait(5))
        head, _, body = bodies[0].partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        # Our own chunks: no extension, no trailer, one last chunk.
        self.assertEqual(body, b"8\r\npart-one\r\n8\r\npart-two\r\n0\r\n\r\n")

    def test_interim_responses_reach_http11_clients_only(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        for version, expect_103 in ((b"HTTP/1.1", True), (b"HTTP/1.0", False)):
            s = client(self.proxy)
            s.sendall(b"GET http://origin.test:%d/ %s\r\nHost: origin.test\r\n\r\n" % (o.port, version))
            data = recv_until(s, b"\r\n\r\nok")
            s.close()
            self.assertEqual(data.startswith(b"HTTP/1.1 103 Early Hints\r\n"), expect_103, data[:120])
            self.assertIn(b"Link: </style.css>; rel=preload", data) if expect_103 else None
            self.assertIn(b" 200 OK\r\n", data)

    def test_trailers_are_dropped_and_never_moved_into_the_head(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                         b"2\r\nok\r\n0\r\nX-Checksum: abc\r\n\r\n")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        reader = StrictReader(s)
        status, fields, body, _ = reader.response()
        self.assertEqual((status, body), (200, b"ok"))
        names = [n for n, _ in fields]
        self.assertNotIn("x-checksum", names)
        self.assertNotIn("trailer", names)

    def test_http10_client_gets_a_chunked_answer_as_plain_bytes_and_a_close(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.0\r\nHost: origin.test\r\nConnection: keep-alive\r\n\r\n" % o.port)
        data = recv_until(s, b"never", timeout=5)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200 OK\r\n"), head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertEqual(body, b"hello world")

    def read_to_end(self, s, timeout=5.0):
        """Everything until the connection ends: (bytes, 'reset' or 'closed' or 'open')."""
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                more = s.recv(65536)
            except ConnectionResetError:
                return data, "reset"
            except socket.timeout:
                return data, "open"
            if not more:
                return data, "closed"
            data += more
        return data, "open"

    def test_an_answer_the_origin_cut_short_ends_with_a_reset_not_a_clean_close(self):
        # An orderly close is what a complete body read until the close looks like: a body
        # without framing that the origin reset, or a chunked body cut short to an HTTP/1.0
        # client, must not look complete (the audit of 2026-12-03: curl exited 0).
        def reset_unframed(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close-body")
            time.sleep(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

        def chunked_cut(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.3)

        def complete_unframed(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nwhole-body")

        for script, version, body, end in ((reset_unframed, b"1.1", b"until-close-body", "reset"),
                                           (chunked_cut, b"1.0", b"hello", "reset"),
                                           (complete_unframed, b"1.1", b"whole-body", "closed")):
            with self.subTest(script=script.__name__):
                o = self.origin(script)
                s = client(self.proxy)
                self.addCleanup(s.close)
                s.sendall(b"GET http://origin.test:%d/ HTTP/%s\r\nHost: origin.test\r\n\r\n" % (o.port, version))
                data, how = self.read_to_end(s)
                self.assertEqual(data.partition(b"\r\n\r\n")[2], body, data[:300])
                self.assertEqual(how, end)

    def test_expect_100_continue_is_the_origins_to_answer(self):
        # RFC 9110 10.1.1: the proxy forwards the expectation, so the origin can refuse an upload
        # before it is sent; its 100 (or its refusal) is what the client gets.
        def refuses(conn, got):
            assert b"expect: 100-continue" in got.lower(), got
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nauth")
            time.sleep(0.5)

        def continues(conn, got):
            assert b"expect: 100-continue" in got.lower(), got
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = got.partition(b"\r\n\r\n")[2]
            while len(body) < 5:
                body += conn.recv(100)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

        o = self.origin(refuses)
        s = self.connected()
        started = time.monotonic()
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 100000000\r\n\r\n" % o.port)
        data = recv_until(s, b"auth", timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:200])  # no 100 first: the body is not wanted
        self.assertLess(time.monotonic() - started, 0.9, "answered only after the wait for the origin")
        self.assertIn(b"Connection: close", data)  # the body the client may still send is not a request
        line = self.log_line_for(o.port)
        self.assertEqual(line["status"], 401)
        self.assertIn("before the request body was sent", line.get("note", ""))

        o = self.origin(continues)
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 5\r\n\r\n" % o.port)
        interim = recv_until(s, b"\r\n\r\n", timeout=5)
        self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim)
        self.assertIn(b"Via: 1.1 hallpass", interim)  # the origin's 100, passed on
        s.sendall(b"hello")
        data = recv_until(s, b"hello", timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])
        self.assertNotIn(b"100 Continue", data)  # one 100 only

    def test_an_origin_that_stops_reading_a_large_upload_is_heard(self):
        # A body of more than 128 KiB goes by splice(2). An origin that answers from the head
        # and stops reading, without closing, used to get the client nothing at all after
        # idle_timeout (the log blamed the client and counted 241 bytes of 16 MiB).
        proxy = Proxy(policy_edit=lambda t: t.replace("idle_timeout: 10s", "idle_timeout: 2s"))
        self.addCleanup(proxy.stop)
        o = self.origin_that_answers_and_stops_reading(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
        s = self.connected(proxy)
        size = 16 << 20
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %d\r\n\r\n"
                  % (o.port, size))
        send_in_background(s, [b"u" * size])
        data = recv_until(s, b"early", timeout=10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])
        self.assertTrue(data.endswith(b"early"), data[-100:])
        line = wait_for(lambda: next((l for l in proxy.log_lines() if l["port"] == o.port), None), timeout=5,
                        what="the upload's log line")
        self.assertEqual(line["status"], 200)
        self.assertIn("answered before the request was sent whole", line.get("note", ""))
        self.assertGreater(line["bytes_in"], 128 * 1024)  # what did move is counted

    def test_an_origin_that_refuses_a_chunked_upload_and_stops_reading_is_heard_at_once(self):
        # The origin answers 413 from the head and then reads nothing, without closing. A
        # chunked body is relayed through the proxy's buffers (never spliced), so the upload's
        # write stalls; the answer, read alongside it, stops the upload and reaches the client
        # at once. Before, the stalled write closed the socket after upstream.idle_timeout (10 s
        # here) with the answer unread, and the client got a 502.
        o = self.origin_that_answers_and_stops_reading(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % o.port)
        started = time.monotonic()
        # At most 32 MiB: far more than the buffers on the way hold.
        send_in_background(s, [b"10000\r\n" + b"c" * 0x10000 + b"\r\n"] * 512)
        data = recv_until(s, b"too large", timeout=8)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:200])
        self.assertTrue(data.endswith(b"too large"), data[-100:])
        self.assertLess(time.monotonic() - started, 4, "heard only when the stalled write gave up")
        self.assertIn(b"Connection: close", data)  # the rest of the body is not a request
        line = self.log_line_for(o.port)
        self.assertEqual(line["status"], 413)
        self.assertIn("the origin answered while the body was on its way", line.get("note", ""))

    def test_a_refusal_after_interim_responses_or_a_malformed_head_stops_the_upload(self):
        # The watch steps over interim responses (103 Early Hints, an origin's late 100) and
        # reads on for the final answer; a malformed head stops the upload too (502). The
        # origins then read nothing and do not close: each answer must come at once, not after
        # upstream.idle_timeout (10 s here). The interim responses reach the client first.
        cases = [
            ("103 then 413", [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                              b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large"],
             b"413", b"103 Early Hints", "the origin answered while the body was on its way"),
            ("100 then 401", [b"HTTP/1.1 100 Continue\r\n\r\n",
                              b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n\r\ntoo large"],
             b"401", b"100 Continue", "the origin answered while the body was on its way"),
            ("malformed", [b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\ntoo large"], b"502", None, None),
        ]
        for name, answers, status, interim, note in cases:
            with self.subTest(name):
                release = threading.Event()

                def script(conn, _, answers=answers, release=release):
                    for answer in answers:
                        conn.sendall(answer)
                        time.sleep(0.3)
                    release.wait(15)

                o = self.origin(script)
                self.addCleanup(release.set)
                malformed = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"})
                reset = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"})
                s = self.connected()
                s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" % o.port)
                started = time.monotonic()
                send_in_background(s, [b"10000\r\n" + b"c" * 0x10000 + b"\r\n"] * 512)
                data = recv_until(s, b"Connection: close\r\n\r\n" if note is None else b"too large", timeout=8)
                self.assertLess(time.monotonic() - started, 4, data[:300])
                final = data[data.rfind(b"HTTP/1.1 "):]
                self.assertTrue(final.startswith(b"HTTP/1.1 " + status), data[:400])
                if interim:
                    self.assertTrue(data.startswith(b"HTTP/1.1 " + interim), data[:200])
                line = self.log_line_for(o.port)
                self.assertEqual(line["status"], int(status), line)
                if note:
                    self.assertIn(note, line.get("note", ""))
                else:  # said as what it is, not as a failed send (hostile-input audit, 2026-12-05, F2)
                    self.assertEqual(line["reason"], "the site's answer was malformed", line)
                # Counted as a malformed answer, not as a reset (hostile-input audit, 2026-12-05, F2).
                self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"}) - malformed,
                                 1 if status == b"502" else 0)
                self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"}), reset)
                release.set()

    def test_a_refusal_reaches_a_slow_uploader_before_its_body_ends(self):
        # RFC 9112 9.5: a client sending a body watches for an error answer. The origin here
        # refuses from the head and goes on reading; the client has sent a tenth of its body
        # and waits. Before, the proxy waited for the rest of the body before it read the answer.
        def refuses_and_drains(conn, _):
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nauth")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and conn.recv(65536):
                pass

        o = self.origin(refuses_and_drains)
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 100000\r\n\r\n"
                  % o.port + b"x" * 10000)
        data = recv_until(s, b"auth", timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:200])
        self.assertTrue(data.endswith(b"auth"), data[-100:])
        self.assertIn(b"Connection: close", data)
        line = self.log_line_for(o.port)
        self.assertEqual(line["status"], 401)
        self.assertIn("the origin answered while the body was on its way", line.get("note", ""))

    def test_a_success_answered_while_the_body_goes_up_leaves_the_upload_going(self):
        # Full duplex: the origin sends its 200 head first, reads the whole body, then says how
        # much it read. A success is no refusal: the body goes on whole and the connection is
        # kept alive.
        size = 300000

        def answers_while_reading(conn, got):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            body = got.partition(b"\r\n\r\n")[2]
            while len(body) < size:
                more = conn.recv(65536)
                if not more:
                    return
                body += more
            count = b"%d" % len(body)
            conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(count), count))

        o = self.origin(answers_while_reading)
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %d\r\n\r\n"
                  % (o.port, size))
        for _ in range(size // 10000):
            s.sendall(b"y" * 10000)
            time.sleep(0.002)
        data = recv_until(s, b"0\r\n\r\n", timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])
        self.assertIn(b"\r\n300000\r\n", data)
        self.assertNotIn(b"Connection: close", data)
        line = self.log_line_for(o.port)
        self.assertEqual(line["status"], 200, line)
        self.assertGreaterEqual(line["bytes_in"], size, line)  # the whole body (and the head)
        self.assertNotIn("answered before", line.get("note", ""))

    def test_a_long_malformed_head_the_origin_closes_on_is_malformed_not_a_close(self):
        # Past 8 KiB a head is parsed again only when it may have ended, doubled, or passed the
        # limit (head_reparse_gate); when the origin closes first, the bytes it sent are still
        # parsed once: a broken line is a malformed answer, not "closed without answering".
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 9000 + b"\r\n")
            time.sleep(0.3)  # a read of its own, past 8 KiB
            conn.sendall(b"a broken line\r\n")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/long HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        data = recv_until(s, b"</html>", timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 502 "), data[:200])
        line = self.log_line_for(o.port)
        self.assertEqual(line["reason"], "the site's answer was malformed", line)

    def test_interim_responses_keep_a_slow_request_waiting(self):
        # upstream.response_timeout is 3 s here: an origin that says "102 Processing" every
        # second is still at work, and its answer after 5 s reaches the client (a 504 before).
        def slow(conn, _):
            for _ in range(5):
                conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
                time.sleep(1)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")

        o = self.origin(slow)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/slow HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        data = recv_until(s, b"done", timeout=10)
        self.assertIn(b"HTTP/1.1 200 OK", data, data[:300])
        self.assertTrue(data.endswith(b"done"), data[-100:])
        self.assertEqual(data.count(b"102 Processing"), 5)

    def test_empty_lines_before_a_request_line_are_ignored(self):
        """RFC 9112 2.2: a server should ignore at least one empty line before a request line
        (older clients send a CRLF after a POST's body). A pipelined request after empty lines
        is served; a connection that sends nothing but empty lines is not kept open by them."""
        def script(conn, _):  # answers the head already read, then each following one
            while True:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                if b"\r\n\r\n" not in recv_head(conn):
                    return

        o = self.origin(script)
        s = self.connected()
        request = b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port
        s.sendall(b"\r\n" + request + b"\r\n\r\n\n" + request)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"\r\n\r\nok") < 2 and time.monotonic() < deadline:
            more = recv_until(s, b"\r\n\r\nok", timeout=max(0.1, deadline - time.monotonic()))
            if not more:
                break
            data += more
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 2, data)
        # Only empty lines, read after read: closed after a few reads, well before keep-alive's end.
        e = client(self.proxy)
        self.addCleanup(e.close)
        e.settimeout(5)
        closed = False
        for _ in range(10):
            try:
                e.sendall(b"\r\n")
                time.sleep(0.05)
                e.setblocking(False)
                try:
                    if e.recv(1) == b"":
                        closed = True
                        break
                except BlockingIOError:
                    pass
                finally:
                    e.setblocking(True)
            except OSError:
                closed = True
                break
        self.assertTrue(closed, "a stream of empty lines kept the connection open")

    def test_an_answer_whose_head_lines_end_in_a_bare_lf_is_read_as_browsers_read_it(self):
        """RFC 9112 2.2 lets a recipient take a bare LF as a line end, and browsers do in an
        answer (old embedded servers, printers' pages, hand-written CGI). Such an answer was a
        502 (known gap, eighth session). The client gets the proxy's own head, CRLF throughout,
        and the connection stays in step: the next answer on it is its own."""
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\nContent-Type: text/plain\nX-Printer: ok\r\nContent-Length: 5\n\nhello")
            if b"\r\n\r\n" not in recv_head(conn):
                return
            conn.sendall(b"\nHTTP/1.0 200 OK\nContent-Length: 6\n\nsecond")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/lf-answer HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        answer = recv_until(s, b"\r\n\r\nhello", timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:300])
        head = answer.split(b"\r\n\r\n", 1)[0]
        self.assertNotIn(b"\n", head.replace(b"\r\n", b""), head)
        self.assertIn(b"\r\nX-Printer: ok\r\n", head)
        self.assertIn(b"\r\nContent-Type: text/plain\r\n", head)
        s.sendall(b"GET http://origin.test:%d/again HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        answer = recv_until(s, b"\r\n\r\nsecond", timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:300])
        self.assertTrue(answer.endswith(b"second"), answer[-100:])
        line = self.log_line_for(o.port)
        self.assertEqual((line["status"], line["action"]), (200, "allow"), line)

    def test_a_head_with_a_line_ended_by_a_bare_lf_is_refused_at_once(self):
        """RFC 9112 2.2: a bare LF is not taken as a line end, and such a head is refused with a
        400 at once. It waited for the head timeout (2 s here) and got a 408 "did not arrive in
        time" (audit of the request path, 2026-12-06). Sent in one piece and split across reads."""
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        shapes = [
            [b"GET http://origin.test:%d/lf HTTP/1.1\nHost: origin.test\n\n" % o.port],
            [b"GET http://origin.test:%d/mixed HTTP/1.1\r\n" % o.port, b"Host: origin.test\n", b"\r\n"],
        ]
        for pieces in shapes:
            s = self.connected()
            started = time.monotonic()
            for piece in pieces:
                s.sendall(piece)
                time.sleep(0.1)
            answer = recv_until(s, b"</html>", timeout=5)
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer[:200])
            self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(o.received, [])
        lines = wait_for(lambda: [l for l in self.proxy.log_lines() if "bare LF" in l.get("note", "")] or None,
                         what="the 400s' lines")
        self.assertEqual([(l["status"], l["action"]) for l in lines], [(400, "error")] * 2, lines)

    def test_an_empty_line_split_between_reads_and_a_short_version_are_read_as_in_one_piece(self):
        """Found by the request-head fuzz target once it read heads as the session does
        (2026-12-06, fifth session): an empty line before a request whose CR and LF arrived in
        two reads was not dropped, and Beast refused the request with a 400 that the same bytes
        in one read did not get; a whole head whose request line ends in a version shorter than
        "HTTP/1.1" ("GET / 1") made Beast wait for more bytes, with no 408 deadline, until the
        client sent some or the stream's timeout closed the connection: now a 400 at once."""
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"\r")
        time.sleep(0.2)
        s.sendall(b"\nGET http://origin.test:%d/split HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        answer = recv_until(s, b"\r\n\r\nok", timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])

        s = self.connected()
        started = time.monotonic()
        s.sendall(b"GET http://origin.test:%d/short 1\r\nHost: origin.test\r\n\r\n" % o.port)
        answer = recv_until(s, b"</html>", timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer[:200])
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(len(o.received), 1)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("path") == "/short"] or None,
                        what="the 400's line")[-1]
        self.assertIn("does not end in HTTP/1.0 or HTTP/1.1", line.get("reason", "") + line.get("note", ""), line)

    def test_requests_refused_for_their_framing_are_logged_with_their_method_and_site(self):
        """Refused before their target was read (by Beast's parser, or by hallpass's framing
        checks), these were logged with no method, host or path: the smuggling attempts a
        technician most wants to trace to a site (audit of the request path, 2026-12-06)."""
        shapes = {
            "/plus": "POST {url}/plus HTTP/1.1\r\nHost: origin.test\r\nContent-Length: +3\r\n\r\nabc",
            "/clte": "POST {url}/clte HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "/lf": "POST {url}/lf HTTP/1.1\nHost: origin.test\n\n",
        }
        port = free_port()
        for path, request in shapes.items():
            s = self.connected()
            s.sendall(request.format(url=f"http://origin.test:{port}").encode())
            self.assertTrue(recv_until(s, b"</html>").startswith(b"HTTP/1.1 400 "), path)
        lines = wait_for(lambda: [l for l in self.proxy.log_lines() if l["port"] == port] or None,
                         what="the lines naming the port")
        if len(lines) < 3:
            time.sleep(1)  # the writer writes every 50 ms: all three are there by now
            lines = [l for l in self.proxy.log_lines() if l["port"] == port]
        self.assertEqual(sorted((l["method"], l["host"], l["path"], l["status"]) for l in lines),
                         sorted(("POST", "origin.test", p, 400) for p in shapes), lines)

    def test_a_method_longer_than_any_known_is_refused_and_logged_cut_short(self):
        """A 10,000-byte method was forwarded and written whole into the log line (audit,
        2026-12-06). Over 32 bytes it gets a 501 (RFC 9112 3), and the line holds 32 bytes of it."""
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"A" * 10000 + b" http://origin.test:%d/x HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        answer = recv_until(s, b"</html>", timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 501 "), answer[:200])
        line = wait_for(lambda: next((l for l in self.proxy.log_lines() if l["status"] == 501), None),
                        what="the 501's line")
        self.assertEqual(line["method"], "A" * 32 + "...", line)
        self.assertEqual(o.received, [])
        # 32 bytes is still forwarded: an unregistered method of a reasonable length is not refused.
        s = self.connected()
        s.sendall(b"B" * 32 + b" http://origin.test:%d/y HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        self.assertTrue(recv_until(s, b"\r\n\r\nok").startswith(b"HTTP/1.1 200 "))

    def test_the_proxy_sends_its_own_version_and_one_content_length(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        data = recv_until(s, b"\r\n\r\nok")
        head = data.partition(b"\r\n\r\n")[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        self.assertEqual(head.lower().count(b"content-length"), 1)

    def test_content_length_is_forwarded_normalised(self):
        def script(conn, got):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"POST http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 010\r\n\r\n0123456789"
                  % o.port)
        self.assertIn(b"ok", recv_until(s, b"ok"))
        head = o.received[0].partition(b"\r\n\r\n")[0].lower()
        self.assertIn(b"content-length: 10\r\n", head + b"\r\n")
        self.assertNotIn(b"010", head)

    def test_broken_chunk_framing_gets_a_502_page_when_nothing_was_sent(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbroken\r\n0\r\n\r\n")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        data = recv_until(s, b"</html>")
        self.assertTrue(data.startswith(b"HTTP/1.1 502"), data[:80])
        self.assertNotIn(b"broken", data)
        line = self.log_line_for(o.port)
        self.assertEqual((line["action"], line["status"]), ("error", 502))

    def test_broken_chunk_framing_after_part_of_the_answer_cuts_it_short_counted_as_malformed(self):
        def script(conn, _):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.3)  # the head and the first chunk are on their way to the client
            conn.sendall(b"zz\r\nbroken\r\n0\r\n\r\n")
            time.sleep(1)

        malformed = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"})
        reset = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"})
        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % o.port)
        data = recv_until(s, b"\r\n0\r\n\r\n", timeout=5)  # never comes: the proxy closes first
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:80])
        self.assertIn(b"hello", data)
        self.assertNotIn(b"broken", data)
        self.assertFalse(data.endswith(b"\r\n0\r\n\r\n"), data[-40:])  # no last chunk: cut short
        self.log_line_for(o.port)
        # The origin's chunks were malformed, not reset (review, 2026-12-05).
        self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"}) - malformed, 1)
        self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"}), reset)

    def test_an_empty_chunked_request_body_is_sent_once(self):
        def script(conn, got):
            time.sleep(0.3)  # anything extra the proxy sent has arrived by now
            try:
                conn.settimeout(0.2)
                more = conn.recv(65536)
            except socket.timeout:
                more = b""
            o.received[-1] = got + more
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = self.origin(script)
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n" % o.port)
        self.assertIn(b"ok", recv_until(s, b"ok"))
        body = o.received[0].partition(b"\r\n\r\n")[2]
        self.assertEqual(body, b"0\r\n\r\n")

    def test_failed_requests_are_logged_as_errors(self):
        port = free_port()  # nothing listens there
        s = self.connected()
        s.sendall(b"GET http://origin.test:%d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n" % port)
        data = recv_until(s, b"</html>")
        self.assertTrue(data.startswith(b"HTTP/1.1 502"), data[:60])
        line = self.log_line_for(port)
        self.assertEqual((line["action"], line["status"]), ("error", 502))


class BodyPace(unittest.TestCase):
    """limits.body_min_rate: a request body trickled slower than the school's bound gets a 408
    once body_grace has been spent waiting for it, on every way a body goes up (copied, spliced,
    chunked); an origin slow to take an upload does not count against its client."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy(policy_edit=lambda t: t.replace(
            "limits:\n", "limits:\n  body_min_rate: 1000\n  body_grace: 1s\n"))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def origin_that_reads(self):
        """An origin that reads the body to its declared end (or the close), then answers 200;
        `ended` records whether it saw the whole body."""
        ended = []

        def script(conn, got):
            head, _, body = got.partition(b"\r\n\r\n")
            length = int(next((l.split(b":")[1] for l in head.split(b"\r\n")
                               if l.lower().startswith(b"content-length:")), b"-1"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (length < 0 or len(body) < length):
                more = conn.recv(65536)
                if not more:
                    break
                body += more
                if length < 0 and body.endswith(b"0\r\n\r\n"):
                    break
            ended.append(len(body) >= length if length >= 0 else body.endswith(b"0\r\n\r\n"))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        o = ScriptOrigin(script)
        self.addCleanup(o.stop)
        return o, ended

    def trickle(self, head, piece, every, stop):
        """Sends `head`, then `piece` every `every` seconds until `stop` is set or the proxy
        closes (at most 15 s). Returns the client socket."""
        s = client(self.proxy)
        self.addCleanup(s.close)
        s.sendall(head)

        def drip():
            deadline = time.monotonic() + 15
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    s.sendall(piece)
                    time.sleep(every)
            except OSError:
                pass

        threading.Thread(target=drip, daemon=True).start()
        self.addCleanup(stop.set)
        return s

    def assert_refused_as_too_slow(self, s, o, ended, started):
        data = recv_until(s, b"closed the connection", timeout=10)
        took = time.monotonic() - started
        self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data[:200])
        self.assertIn(b"The upload came too slowly", data)
        # 1 s of grace and the little the trickle earned, not the 10 s idle timeout.
        self.assertLess(took, 6, data[:200])
        line = wait_for(lambda: next((l for l in self.proxy.log_lines() if l["port"] == o.port), None),
                        timeout=5, what="the upload's log line")
        self.assertEqual(line["status"], 408, line)
        self.assertEqual(line["action"], "error", line)
        self.assertEqual(line["reason"], "the request body came too slowly", line)
        self.assertIn("limits.body_min_rate", line.get("note", ""), line)
        # The origin's connection ends with the client's (it is never kept for reuse).
        wait_for(lambda: len(ended) == 1, timeout=5, what="the origin to see the connection end")

    def test_a_trickled_body_is_refused_on_every_way_up(self):
        before = self.proxy.metric("hallpass_rejected_total", {"reason": "body_too_slow"})
        cases = [
            ("copied", b"Content-Length: 100000\r\n", b"x" * 20),
            ("spliced (over 128 KiB)", b"Content-Length: 1048576\r\n", b"x" * 20),
            ("chunked", b"Transfer-Encoding: chunked\r\n", b"14\r\n" + b"x" * 20 + b"\r\n"),
        ]
        for name, framing, piece in cases:
            with self.subTest(name):
                o, ended = self.origin_that_reads()
                started = time.monotonic()
                s = self.trickle(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\n%s\r\n"
                                 % (o.port, framing), piece, 0.25, threading.Event())
                self.assert_refused_as_too_slow(s, o, ended, started)
        self.assertEqual(self.proxy.metric("hallpass_rejected_total", {"reason": "body_too_slow"}), before + 3)

    def test_a_body_that_keeps_the_pace_goes_through_slowly(self):
        # 40 bytes every 10 ms (up to 4,000 bytes a second, four times the bound) for 2.5 s: past
        # the grace, never behind.
        o, ended = self.origin_that_reads()
        size = 40 * 250
        s = client(self.proxy)
        self.addCleanup(s.close)
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %d\r\n\r\n"
                  % (o.port, size))
        for _ in range(250):
            s.sendall(b"y" * 40)
            time.sleep(0.01)
        data = recv_until(s, b"ok", timeout=10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])
        self.assertEqual(ended, [True])

    def test_an_origin_slow_to_take_an_upload_does_not_count_against_its_client(self):
        # 32 MiB against a bound of 50 MB a second: the body earns 0.7 s, the grace 1 s. The
        # origin reads nothing for 3 s: the proxy waits to write, not to read, and the upload
        # then completes. (Counted as Apache counts it, all the time since the start, this
        # would be a 408.)
        proxy = Proxy(policy_edit=lambda t: t.replace(
            "limits:\n", "limits:\n  body_min_rate: 50000000\n  body_grace: 1s\n"))
        self.addCleanup(proxy.stop)
        size = 32 << 20

        def stalls_then_reads(conn, got):
            time.sleep(3)
            body = len(got.partition(b"\r\n\r\n")[2])
            deadline = time.monotonic() + 20
            while body < size and time.monotonic() < deadline:
                more = conn.recv(1 << 20)
                if not more:
                    break
                body += len(more)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(b"%d" % body), body))

        o = ScriptOrigin(stalls_then_reads)
        self.addCleanup(o.stop)
        s = client(proxy)
        self.addCleanup(s.close)
        s.sendall(b"POST http://origin.test:%d/up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %d\r\n\r\n"
                  % (o.port, size))
        send_in_background(s, [b"z" * size])
        data = recv_until(s, b"%d" % size, timeout=20)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK"), data[:200])
        self.assertTrue(data.endswith(b"%d" % size), data[-100:])


if __name__ == "__main__":
    unittest.main()
