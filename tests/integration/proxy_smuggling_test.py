"""Request smuggling, response splitting and cross-user responses: a table test.

The table is generated from the published Transfer-Encoding / Content-Length mutation
techniques (obfuscated names and values, white space and control bytes around them, duplicates,
line folding, bare LF and CR, chunk extensions, oversize and signed chunk sizes, HTTP/1.0), for
requests and for responses. Every case goes through the real proxy to an origin in this test
that reads what it receives with a strict RFC 9112 reader and records it. For each case:

- requests: the proxy refuses it (4xx and close), or the origin can read the bytes it received
  only one way (`ambiguous` counts those it could not), and never receives a request the client
  hid in a body (`smuggled` counts requests for www.facebook.test, a site the pupil is blocked
  from, that reached the origin);
- responses: the client receives a 502, or a response it can read only one way;
- afterwards a follow-up request on the same client connection and a request from another
  client (staff, on a new connection, so through the proxy's upstream pool) each get their own
  answer (`cross_user` counts those that did not).

The counts are printed at the end; the targets are zero.
"""
import concurrent.futures
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import PUPIL, STAFF, Proxy, ThreadedServer  # noqa: E402

SMUGGLED = (b"GET http://www.facebook.test/ HTTP/1.1\r\nHost: www.facebook.test\r\n\r\n")
SMUGGLED_ORIGIN_FORM = b"GET /smuggled HTTP/1.1\r\nHost: www.facebook.test\r\n\r\n"


class Ambiguous(Exception):
    pass


class StrictReader:
    """An RFC 9112 message reader that accepts only what can be read one way."""

    def __init__(self, sock, timeout=3.0):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        self.closed = False

    def _fill(self):
        if self.closed:
            return False
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no bytes in time")
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def line(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise Ambiguous("line too long")
            if not self._fill():
                if self.buf:
                    raise Ambiguous("truncated line")
                raise EOFError()
        i = self.buf.index(b"\n")
        if i == 0 or self.buf[i - 1:i] != b"\r":
            raise Ambiguous("bare LF")
        line, self.buf = self.buf[:i - 1], self.buf[i + 1:]
        if b"\r" in line:
            raise Ambiguous("bare CR")
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise Ambiguous(f"body cut short ({len(self.buf)} of {n})")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until_close(self):
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def fields(self):
        out = []
        while True:
            line = self.line()
            if line == b"":
                return out
            if line[:1] in (b" ", b"\t"):
                raise Ambiguous("obs-fold")
            m = re.fullmatch(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*", line)
            if not m:
                raise Ambiguous(f"bad field line {line[:40]!r}")
            if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", m.group(2)):
                raise Ambiguous("control byte in a field value")
            out.append((m.group(1).decode().lower(), m.group(2)))

    def body(self, fields, version, no_content, allow_close):
        """The body, read the only way the framing allows (RFC 9112 6.3)."""
        te = [v for n, v in fields if n == "transfer-encoding"]
        cl = [v for n, v in fields if n == "content-length"]
        conn = b",".join(v for n, v in fields if n == "connection").lower()
        if re.search(rb"(^|,)\s*(content-length|transfer-encoding|host)\s*(,|$)", conn):
            raise Ambiguous("Connection names a framing field")
        if no_content:
            return b""
        if te:
            if len(te) != 1 or te[0].lower() != b"chunked" or cl or version != b"HTTP/1.1":
                raise Ambiguous(f"transfer-encoding {te!r} with content-length {cl!r} on {version!r}")
            return self.chunked()
        if cl:
            if len(cl) != 1 or not re.fullmatch(rb"[0-9]{1,18}", cl[0]):
                raise Ambiguous(f"content-length {cl!r}")
            return self.exactly(int(cl[0]))
        if allow_close:
            return self.until_close()
        return b""

    def chunked(self):
        data = b""
        while True:
            line = self.line()
            m = re.fullmatch(rb"([0-9a-fA-F]{1,16})((?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:=[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?)*)",
                             line)
            if not m:
                raise Ambiguous(f"chunk size line {line[:40]!r}")
            size = int(m.group(1), 16)
            if size == 0:
                while self.line() != b"":
                    pass
                return data
            data += self.exactly(size)
            if self.exactly(2) != b"\r\n":
                raise Ambiguous("chunk data without CRLF")

    def request(self):
        line = self.line()
        m = re.fullmatch(rb"([A-Z]+) (\S+) (HTTP/1\.[01])", line)
        if not m:
            raise Ambiguous(f"request line {line[:60]!r}")
        fields = self.fields()
        body = self.body(fields, m.group(3), False, False)
        return m.group(1), m.group(2), fields, body

    def response(self, method=b"GET"):
        """The next final response (interim 1xx responses are collected and skipped)."""
        interim = []
        while True:
            line = self.line()
            m = re.fullmatch(rb"(HTTP/1\.[01]) ([1-5][0-9][0-9]) ?(.*)", line)
            if not m:
                raise Ambiguous(f"status line {line[:60]!r}")
            status = int(m.group(2))
            fields = self.fields()
            if 100 <= status < 200 and status != 101:
                interim.append(status)
                continue
            no_content = method == b"HEAD" or status in (101, 204, 304)
            body = self.body(fields, m.group(1), no_content, True)
            return status, fields, body, interim


class RecordingOrigin(ThreadedServer):
    """An origin that reads requests strictly and records them.

    /req/<id>: answers 200 with the body "answer:<target>", keeping the connection open.
    /resp/<case>: answers with the raw bytes registered for <case>, then keeps reading.
    Anything it cannot read one way is counted in `ambiguous`, and the connection closed.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []        # (target, host) of every request read
        self.ambiguous = []   # (reason, first bytes of the connection)
        self.responses = {}   # case -> (bytes, late bytes or None)
        super().__init__(backlog=256)

    def _serve(self, conn):
        reader = StrictReader(conn, timeout=15)
        try:
            while True:
                try:
                    method, target, fields, body = reader.request()
                except EOFError:
                    return
                except Ambiguous as e:
                    with self.lock:
                        self.ambiguous.append((str(e), reader.buf[:80]))
                    return
                host = b"".join(v for n, v in fields if n == "host")
                with self.lock:
                    self.seen.append((target, host))
                path = re.sub(rb"^http://[^/]*", b"", target)
                if path.startswith(b"/resp/"):
                    raw, late = self.responses[path[6:].decode()]
                    if raw.endswith(b"#close"):  # a body ended by closing the connection
                        conn.sendall(raw[:-len(b"#close")])
                        conn.shutdown(socket.SHUT_WR)
                        return
                    conn.sendall(raw)
                    if late is not None:
                        time.sleep(0.05)
                        conn.sendall(late)
                else:
                    answer = b"answer:" + path
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
        except (OSError, TimeoutError):
            return
        finally:
            conn.close()


# ---- the request table ---------------------------------------------------------------------

def te_values():
    """Transfer-Encoding values: the obfuscations published for TE.CL and CL.TE desync."""
    vals = [b"chunked", b"Chunked", b"CHUNKED", b" chunked", b"chunked ", b"\tchunked", b"chunked\t",
            b"xchunked", b"chunkedx", b"chunk", b"chunked;", b"chunked;x=1", b"\"chunked\"", b"'chunked'",
            b"identity, chunked", b"chunked, identity", b"gzip, chunked", b"deflate, chunked", b",chunked",
            b"chunked,", b", chunked", b"chunked, chunked", b"identity", b"gzip", b"", b"\x0bchunked",
            b"chunked\x0b", b"chu\x00nked", b"chunked\x00", b"\xa0chunked", b"ch\xc3\xbcnked", b"chunked\r",
            b"c\x68unked", b"chunked\x0c", b"\x0cchunked", b"cHuNkEd", b"chunked, gzip", b"x-custom, chunked"]
    return vals


def te_names():
    return [b"Transfer-Encoding", b"transfer-encoding", b"Transfer-Encoding ", b"Transfer-Encoding\t",
            b" Transfer-Encoding", b"\tTransfer-Encoding", b"Transfer_Encoding", b"Transfer-Encoding\x00",
            b"Transfer\x0bEncoding", b"X-Dummy: x\r\nTransfer-Encoding", b"Transfer-Encodin", b"Transfer-Encodings",
            b"Content-Encoding", b"TE"]


def cl_values():
    return [b"5", b"05", b"010", b"+5", b"-5", b" 5", b"5 ", b"5,5", b"5, 5", b"0x5", b"5\x00", b"5.0", b"1e1",
            b"99999999999999999999", b"\xd9\xa5", b""]


def request_cases(port):
    """(name, raw request bytes). Each hides SMUGGLED where a desynchronised reader would see it."""
    url = f"http://origin.test:{port}".encode()
    cases = []
    smuggle_chunked = b"0\r\n\r\n" + SMUGGLED_ORIGIN_FORM  # TE.CL: chunked readers stop after "0"

    def add(name, head_fields, body, version=b"HTTP/1.1", method=b"POST"):
        n = len(cases)
        raw = (method + b" " + url + b"/req/%d " % n + version + b"\r\nHost: origin.test\r\n" + head_fields + b"\r\n"
               + body)
        cases.append((name, raw))

    # TE values alone, with a chunked body that hides a request after the last chunk.
    for v in te_values():
        add(f"te-value {v!r}", b"Transfer-Encoding: " + v + b"\r\n", smuggle_chunked)
    # TE values with Content-Length, in either order (CL.TE and TE.CL).
    for v in te_values():
        body = b"0\r\n\r\n" + SMUGGLED_ORIGIN_FORM
        add(f"te+cl {v!r}", b"Transfer-Encoding: " + v + b"\r\nContent-Length: %d\r\n" % len(body), body)
        add(f"cl+te {v!r}", b"Content-Length: %d\r\nTransfer-Encoding: " % len(body) + v + b"\r\n", body)
    # Obfuscated TE names, with a Content-Length that covers the whole body.
    for name in te_names():
        body = b"0\r\n\r\n" + SMUGGLED_ORIGIN_FORM
        add(f"te-name {name!r}", name + b": chunked\r\nContent-Length: %d\r\n" % len(body), body)
        add(f"te-name-no-cl {name!r}", name + b": chunked\r\n", smuggle_chunked)
    # Duplicated TE fields.
    for a, b in [(b"chunked", b"identity"), (b"identity", b"chunked"), (b"chunked", b"chunked"), (b"gzip", b"chunked"),
                 (b"chunked", b""), (b"", b"chunked")]:
        add(f"te-twice {a!r} {b!r}", b"Transfer-Encoding: " + a + b"\r\nTransfer-Encoding: " + b + b"\r\n",
            smuggle_chunked)
    # Content-Length values, then duplicates.
    for v in cl_values():
        add(f"cl-value {v!r}", b"Content-Length: " + v + b"\r\n", b"hello" + SMUGGLED_ORIGIN_FORM)
    for a, b in [(b"5", b"5"), (b"5", b"6"), (b"6", b"5"), (b"0", b"5")]:
        add(f"cl-twice {a!r} {b!r}", b"Content-Length: " + a + b"\r\nContent-Length: " + b + b"\r\n",
            b"hello" + SMUGGLED_ORIGIN_FORM)
    # Framing fields named by Connection: a hop-by-hop strip would drop the framing.
    smuggled_body = SMUGGLED
    add("connection names content-length", b"Connection: Content-Length\r\nContent-Length: %d\r\n" % len(smuggled_body),
        smuggled_body)
    add("connection names transfer-encoding",
        b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n",
        b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n")
    add("connection names host", b"Connection: Host\r\n", b"")
    add("proxy-connection names content-length",
        b"Proxy-Connection: keep-alive, content-length\r\nContent-Length: %d\r\n" % len(smuggled_body), smuggled_body)
    # HTTP/1.0 with chunked.
    add("http/1.0 chunked", b"Transfer-Encoding: chunked\r\n", smuggle_chunked, version=b"HTTP/1.0")
    add("http/1.0 chunked+cl", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n", version=b"HTTP/1.0")
    # Line folding, bare LF and bare CR around the framing fields.
    add("obs-fold te", b"Transfer-Encoding: identity\r\n chunked\r\n", smuggle_chunked)
    add("obs-fold cl", b"Content-Length: 0\r\n 5\r\n", b"hello" + SMUGGLED_ORIGIN_FORM)
    add("bare LF after te", b"Transfer-Encoding: chunked\n", smuggle_chunked)
    add("bare CR in te", b"Transfer-Encoding: chunked\rX: y\r\n", smuggle_chunked)
    add("bare LF header end", b"Content-Length: 5\n\n", b"hello" + SMUGGLED_ORIGIN_FORM)
    # Chunk bodies: sizes, extensions, line ends.
    chunk_bodies = {
        "chunk ext": b"5;name=value\r\nhello\r\n0\r\n\r\n",
        "chunk ext quoted": b"5;name=\"v a l\"\r\nhello\r\n0\r\n\r\n",
        "chunk ext bad": b"5;\x00\r\nhello\r\n0\r\n\r\n",
        "chunk size signed +": b"+5\r\nhello\r\n0\r\n\r\n",
        "chunk size signed -": b"-0\r\n\r\n",
        "chunk size 0x": b"0x5\r\nhello\r\n0\r\n\r\n",
        "chunk size space before": b" 5\r\nhello\r\n0\r\n\r\n",
        "chunk size space after": b"5 \r\nhello\r\n0\r\n\r\n",
        "chunk size oversize": b"10000000000000005\r\nhello\r\n0\r\n\r\n",
        "chunk size 64-bit wrap": b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "chunk size leading zeros": b"0000000000000005\r\nhello\r\n0\r\n\r\n",
        "chunk size bare LF": b"5\nhello\r\n0\r\n\r\n",
        "chunk data bare LF": b"5\r\nhello\n0\r\n\r\n",
        "chunk data too long": b"3\r\nhello\r\n0\r\n\r\n",
        "chunk last bare LF": b"5\r\nhello\r\n0\n\n",
        "chunk trailer": b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
        "chunk trailer smuggle": b"0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunk empty body": b"0\r\n\r\n",
        "chunk empty body then request": b"0\r\n\r\n" + SMUGGLED_ORIGIN_FORM,
        "chunk size hex upper": b"A\r\nhellohello\r\n0\r\n\r\n",
    }
    for name, body in chunk_bodies.items():
        add(name, b"Transfer-Encoding: chunked\r\n", body)
        add(name + " (GET)", b"Transfer-Encoding: chunked\r\n", body, method=b"GET")
    # Request targets the proxy must not pass on as they are.
    cases.append(("non-ascii target", b"GET " + url + b"/req/\xe9t\xe9 HTTP/1.1\r\nHost: origin.test\r\n\r\n"))
    cases.append(("control byte in target", b"GET " + url + b"/req/a\x01b HTTP/1.1\r\nHost: origin.test\r\n\r\n"))
    cases.append(("space in target", b"GET " + url + b"/req/a b HTTP/1.1\r\nHost: origin.test\r\n\r\n"))
    return cases


# ---- the response table --------------------------------------------------------------------

RESPONSE_CASES = {
    # name: (raw response, late bytes sent 50 ms later or None, request method)
    "te gzip + te chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected", None, b"GET"),
    "te chunked twice": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"2\r\nok\r\n0\r\n\r\n", None, b"GET"),
    "te identity, chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                             None, b"GET"),
    "te + cl": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected", None, b"GET"),
    "connection names content-length": (b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
                                         None, b"GET"),
    "http/1.0 chunked": (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                         b"2\r\nok\r\n0\r\n\r\n", None, b"GET"),
    "cl twice equal": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "cl twice different": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\nokinjected", None, b"GET"),
    "cl leading zeros": (b"HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok", None, b"GET"),
    "cl signed": (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", None, b"GET"),
    "status without reason": (b"HTTP/1.1 301\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", None, b"GET"),
    "empty line before status": (b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "bare LF head": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", None, b"GET"),
    "bare CR head": (b"HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok", None, b"GET"),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "space before colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", None, b"GET"),
    "chunk ext": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b\r\nok\r\n0\r\n\r\n", None, b"GET"),
    "chunk signed size": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n", None, b"GET"),
    "chunk oversize": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nok\r\n0\r\n\r\n",
                       None, b"GET"),
    "chunk bare LF": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", None, b"GET"),
    "chunk trailer": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Late: 1\r\n\r\n",
                      None, b"GET"),
    "chunk extra after last": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                               b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected", None, b"GET"),
    "late body after 204": (b"HTTP/1.1 204 No Content\r\n\r\n",
                            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned", b"GET"),
    "body with 204": (b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\npoisoned", None, b"GET"),
    "body after HEAD": (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned", None, b"HEAD"),
    "late bytes after 304": (b"HTTP/1.1 304 Not Modified\r\n\r\n",
                             b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned", b"GET"),
    "unsolicited 101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned", None, b"GET"),
    "close-delimited empty": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n#close", None, b"GET"),
    "close-delimited": (b"HTTP/1.1 200 OK\r\n\r\nuntil-the-end#close", None, b"GET"),
    "103 then 200": (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "100 then 200": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "http/1.0 keep-alive cl": (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "status 600": (b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
    "nul in field": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", None, b"GET"),
}


def connect(proxy, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", proxy.port))
    return s


class SmugglingTable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = RecordingOrigin()
        cls.proxy = Proxy(workers=1)
        cls.counts = {"cases": 0, "refused": 0, "forwarded": 0, "ambiguous": 0, "smuggled": 0, "cross_user": 0,
                      "no_answer": 0}
        cls.problems = []
        cls.lock = threading.Lock()

    @classmethod
    def tearDownClass(cls):
        c = cls.counts
        print(f"\nsmuggling table: {c['cases']} cases, {c['refused']} refused, {c['forwarded']} forwarded, "
              f"{c['ambiguous']} forwarded-ambiguous, {c['smuggled']} smuggled, {c['cross_user']} cross-user, "
              f"{c['no_answer']} still waiting for an announced body after 3 s",
              file=sys.stderr)
        cls.proxy.stop()
        cls.origin.stop()

    def count(self, key, problem=None):
        with self.lock:
            self.counts[key] += 1
            if problem:
                self.problems.append(problem)

    def own_answer(self, source, tag, keep=None):
        """A request on `keep` (an open connection) or a new one. Returns "own" when it got its
        own answer, "closed" when the proxy closed `keep` first, else what it got instead."""
        s = keep or connect(self.proxy, source)
        try:
            url = f"http://origin.test:{self.origin.port}/req/{tag}".encode()
            s.sendall(b"GET " + url + b" HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            reader = StrictReader(s, timeout=5)
            status, _, body, _ = reader.response()
            return "own" if status == 200 and body == b"answer:/req/" + tag.encode() else f"{status} {body[:60]!r}"
        except (EOFError, OSError):
            return "closed" if keep is not None else "no answer"
        except (Ambiguous, TimeoutError) as e:
            return repr(e)
        finally:
            if keep is None:
                s.close()

    def run_request_case(self, index, name, raw):
        own = {b"answer:" + u for u in re.findall(rb"/req/\S*", raw)} | {b"answer:/req/followup-%d" % index}
        s = connect(self.proxy, PUPIL)
        try:
            s.sendall(raw)
            reader = StrictReader(s, timeout=3)
            try:
                status, _, body, _ = reader.response(b"POST")
            except EOFError:
                self.count("refused")  # closed without an answer: nothing was forwarded
                return
            except TimeoutError:
                # Still reading a body the request announced (a chunk of 2^64-1 bytes, say):
                # nothing was answered, so nothing was answered wrongly.
                self.count("no_answer")
                return
            except Ambiguous as e:
                self.count("ambiguous", f"request {name}: the client read an ambiguous answer: {e}")
                return
            self.count("refused" if status in (400, 403, 411, 413, 431, 501) else "forwarded")
            if body.startswith(b"answer:") and body not in own:
                self.count("cross_user", f"request {name}: answered with {body[:60]!r}")
            # The same connection, if the proxy kept it open: every origin answer this client
            # reads must be for one of its own requests (what it pipelined, then a follow-up).
            if reader.closed:
                return
            try:
                s.sendall(b"GET http://origin.test:%d/req/followup-%d HTTP/1.1\r\nHost: origin.test\r\n\r\n"
                          % (self.origin.port, index))
                for _ in range(4):
                    status, _, body, _ = reader.response()
                    if body.startswith(b"answer:") and body not in own:
                        self.count("cross_user", f"request {name}: follow-up answered with {body[:60]!r}")
                    if body == b"answer:/req/followup-%d" % index:
                        break
            except (EOFError, TimeoutError, OSError):
                pass  # closed or still waiting for a body the client announced: nobody else's answer
            except Ambiguous as e:
                self.count("ambiguous", f"request {name}: follow-up answer ambiguous: {e}")
        finally:
            s.close()
            got = self.own_answer(STAFF, f"staff-{index}")
            if got != "own":
                self.count("cross_user", f"request {name}: staff request answered {got}")

    def run_response_case(self, name, raw, late, method):
        key = f"c{abs(hash(name)) % 10**8}"
        self.origin.responses[key] = (raw, late)
        s = connect(self.proxy, PUPIL)
        try:
            url = f"http://origin.test:{self.origin.port}/resp/{key}".encode()
            s.sendall(method + b" " + url + b" HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            reader = StrictReader(s, timeout=5)
            try:
                status, fields, body, interim = reader.response(method)
            except (Ambiguous, EOFError, TimeoutError) as e:
                self.count("ambiguous", f"response {name}: the client could not read the answer one way: {e!r}")
                return
            if status == 502:
                self.count("refused")
            else:
                self.count("forwarded")
                if b"injected" in body or b"poisoned" in body:
                    self.count("smuggled", f"response {name}: injected bytes reached the client")
            if not reader.closed:
                time.sleep(0.15)  # late bytes, if any, have reached the proxy's upstream connection
                if reader.buf:
                    self.count("cross_user", f"response {name}: bytes after the answer: {reader.buf[:60]!r}")
                else:
                    got = self.own_answer(PUPIL, f"after-{key}", keep=s)
                    if got not in ("own", "closed"):
                        self.count("cross_user", f"response {name}: follow-up on the same connection answered {got}")
        finally:
            s.close()
        time.sleep(0.1)
        got = self.own_answer(STAFF, f"staff-after-{key}")
        if got != "own":
            self.count("cross_user", f"response {name}: staff request answered {got}")
        return True

    def test_1_request_table(self):
        cases = request_cases(self.origin.port)
        self.counts["cases"] += len(cases)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda ic: self.run_request_case(ic[0], *ic[1]), enumerate(cases)))
        smuggled = [s for s in self.origin.seen if b"facebook" in s[0] or b"facebook" in s[1] or b"smuggled" in s[0]]
        self.counts["smuggled"] += len(smuggled)
        self.counts["ambiguous"] += len(self.origin.ambiguous)
        self.assertEqual(smuggled, [], "requests hidden in bodies reached the origin")
        self.assertEqual(self.origin.ambiguous, [], "the origin received bytes it could read more than one way")
        self.assertEqual([p for p in self.problems if p.startswith("request")], [])
        self.assertGreater(self.counts["refused"], 100)
        self.assertGreater(self.counts["forwarded"], 20)

    def test_2_response_table(self):
        self.counts["cases"] += len(RESPONSE_CASES)
        # One at a time: the late-bytes cases depend on which pooled connection is reused next.
        for name, (raw, late, method) in RESPONSE_CASES.items():
            with self.subTest(name):
                self.run_response_case(name, raw, late, method)
        self.assertEqual([p for p in self.problems if p.startswith("response")], [])
        self.assertEqual(self.counts["smuggled"], 0)

    def test_3_no_cross_user_answers_in_total(self):
        self.assertEqual(self.counts["cross_user"], 0, "\n".join(self.problems))


if __name__ == "__main__":
    unittest.main()
