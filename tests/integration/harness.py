"""Test harness: real processes on loopback only.

- Origin: nginx from Debian serving static files (1 KiB, 1 MiB, a sparse 1 GiB file).
- PyOrigin: an origin in the test process for what nginx cannot do on demand (echo bodies,
  chunked responses, WebSocket, an origin that resets or never answers).
- Proxy: the real `hallpass run` with a generated policy file.
Clients bind to different 127.0.0.x source addresses to be different roles.
Every wait here is bounded.
"""
import base64
import hashlib
import html
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.environ.get("HALLPASS_BIN", "")
SRC = os.environ.get("HALLPASS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

PUPIL = "127.0.0.2"
STAFF = "127.0.0.3"
GUEST = "127.0.0.4"
UNKNOWN = "127.0.0.9"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_until_closed(sock, seconds):
    """Waits at most `seconds` for the other end to close `sock` (a TLS alert or a reset counts);
    returns how long that took, or None when it was still open. Closes `sock` either way."""
    sock.settimeout(seconds)
    start = time.monotonic()
    try:
        if sock.recv(1) != b"":
            return None  # data, not a close
    except (ssl.SSLError, ConnectionError):
        pass
    except socket.timeout:
        return None
    finally:
        sock.close()
    return time.monotonic() - start


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Origin:
    """nginx serving /small (1 KiB), /medium (1 MiB), /big (32 MiB, sparse) and /huge (1 GiB, sparse)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-nginx-")
        os.chmod(self.dir, 0o755)  # nginx's workers run as www-data
        self.port = free_port()
        root = os.path.join(self.dir, "www")
        os.makedirs(root, mode=0o755)
        with open(os.path.join(root, "small"), "wb") as f:
            f.write(b"s" * 1024)
        with open(os.path.join(root, "medium"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        with open(os.path.join(root, "big"), "wb") as f:
            f.truncate(32 * 1024 * 1024)
        with open(os.path.join(root, "huge"), "wb") as f:
            f.truncate(1024 * 1024 * 1024)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body;
  proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi;
  uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
    location / {{ }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _can_connect(self.port), what="nginx to listen")

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(proc, timeout=10):
    """Ends a helper server the test started: SIGTERM, then SIGKILL if it is not gone in `timeout` s."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def start_daemon(command, stderr_lines, timeout=20):
    """Starts `command` (a hallpass run, perhaps under `ip netns exec`), copies its standard error
    into `stderr_lines` as it comes, and returns the process once it says "serving" (bounded);
    raises RuntimeError with what it said when it exits or stays silent."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [stderr_lines.append(l) for l in proc.stderr], daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any("serving" in l for l in stderr_lines):
            return proc
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("hallpass did not start: " + "".join(stderr_lines))

def _can_connect(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def recv_head(sock, limit=65536):
    """Reads from `sock` until a message head's end (CRLF CRLF) has arrived, the peer closed,
    or `limit` bytes; returns what was read (body bytes after the head included)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class SlowDownload(threading.Thread):
    """GET `url` through the proxy from `source`, reading about `rate` bytes a second with a
    small receive buffer, so that the transfer really is in flight for about size/rate
    seconds (curl's --limit-rate lets bursts through). After join(): status, size, error."""

    def __init__(self, proxy, url, source, rate, timeout=60):
        super().__init__(daemon=True)
        self.proxy, self.url, self.source, self.rate, self.timeout = proxy, url, source, rate, timeout
        self.status, self.size, self.length, self.error = 0, 0, None, ""
        self.started_body = threading.Event()

    def run(self):
        host = self.url.split("/")[2]
        deadline = time.monotonic() + self.timeout
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
                s.bind((self.source, 0))
                s.settimeout(10)
                s.connect(("127.0.0.1", self.proxy.port))
                s.sendall(f"GET {self.url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = recv_head(s)
                head, _, body = data.partition(b"\r\n\r\n")
                self.status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                self.length = int(m.group(1)) if m else None
                self.size = len(body)
                self.started_body.set()
                begin = time.monotonic()
                while (self.length is None or self.size < self.length) and time.monotonic() < deadline:
                    ahead = self.size / self.rate - (time.monotonic() - begin)
                    if ahead > 0:
                        time.sleep(min(ahead, 0.05))
                        continue
                    chunk = s.recv(16 * 1024)
                    if not chunk:
                        break
                    self.size += len(chunk)
        except OSError as e:
            self.error = str(e)
        finally:
            self.started_body.set()


class ThreadedServer:
    """A listening TCP socket on loopback whose connections are each served on a thread by the
    subclass's `_serve(conn)`. Port 0: the system picks a free one."""

    def __init__(self, host="127.0.0.1", backlog=128, port=0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        raise NotImplementedError


def read_request_head(f):
    """Reads one request head from a binary file object: (method, target, version, headers by
    lower-case name, [name, value] pairs as sent), or None at the end of the stream."""
    line = f.readline(65536)
    if not line:
        return None
    method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = {}
    raw_headers = []
    while True:
        h = f.readline(65536).decode("latin-1")
        if h in ("\r\n", "\n", ""):
            break
        name, _, value = h.partition(":")
        headers[name.strip().lower()] = value.strip()
        raw_headers.append([name.strip(), value.strip()])
    return method, target, version, headers, raw_headers


class PyOrigin(ThreadedServer):
    """A small HTTP/1.1 origin in the test, one thread per connection.

    /echo       responds with the request body (Content-Length)
    /chunked    responds with a chunked body of 3 chunks
    /headers    responds with the request headers as JSON
    /close      responds without length, ends the body by closing
    /cookies?n=N  N Set-Cookie fields (about 100 bytes each), then "ok"
    /close-cut  the same, but over TLS the connection ends without a close_notify (cut short)
    /early-413  answers 413 from the head alone and closes without reading the body
    /early-413-open  the same, but then keeps the connection open for 6 s, reading nothing
    /truncated  declares Content-Length 4096, sends 2048 bytes and closes (/truncated-big:
                1 MiB declared, 300 KiB sent: the spliced path)
    /then-close answers "ok" as if keeping the connection alive, then closes it 0.2 s later
    /drop-next  answers "ok" as if keeping the connection alive, then closes it, unanswered, as
                the next request on it arrives: the origin's close of an idle connection in the
                instant a request went out on it, which no check before reuse can see
    /form-drop-next  the same with an HTML page whose form POSTs its two fields to /echo (for a
                browser: its POST goes out on the pooled connection the page came on)
    /reset      closes the connection at once (RST)
    /hang       never answers
    /ws         WebSocket handshake, then echoes frames' payloads back as text frames
    /cl0        answers "ok" from the head alone, leaving a request body unread, so that the
                body is read as the next request (an origin that ignores Content-Length)
    /secret-slow  answers "SECRET" after 0.3 s
    /h2c        an origin that takes an HTTP/2 cleartext upgrade (RFC 7540 3.2) when `Upgrade`
                offers h2c, or always with `?always`: 101 to h2c, then echoes what it reads
                after "h2c:"; otherwise 200 with the Upgrade it received as the body
    """

    def __init__(self):
        self.requests = []
        super().__init__()

    def _serve(self, conn):
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            while True:
                head = read_request_head(f)
                if head is None:
                    return
                method, target, version, headers, raw_headers = head
                if target.split("?")[0] == "/cl0":
                    # The body is left unread: the next loop reads it as a request.
                    self.requests.append({"method": method, "target": target, "headers": raw_headers, "body_len": 0})
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                if target.split("?")[0] == "/early-413-open":
                    # Refuses the upload from its head and stops reading without closing: the
                    # proxy's upload stalls, and only reading the answer alongside it hears it.
                    self.requests.append({"method": method, "target": target, "headers": raw_headers, "body_len": 0})
                    conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
                    time.sleep(6)
                    return
                if target.split("?")[0] == "/early-413":
                    # Refuses the upload from its head alone and closes without reading the
                    # body (RFC 9110 15.5.14); the unread body makes the close a reset. The
                    # pause first lets the answer leave: a reset right after the send can make
                    # the origin's own kernel drop it unsent (seen over TLS, whose session
                    # tickets were still queued), and no client, direct or proxied, gets it then.
                    self.requests.append({"method": method, "target": target, "headers": raw_headers, "body_len": 0})
                    conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                                 b"too large")
                    time.sleep(0.3)
                    return
                body = b""
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int(f.readline().split(b";")[0], 16)
                        if size == 0:
                            while f.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        body += f.read(size)
                        f.readline()
                elif "content-length" in headers:
                    body = f.read(int(headers["content-length"]))
                self.requests.append({"method": method, "target": target, "headers": raw_headers, "body_len": len(body)})
                path = target.split("?")[0]
                if path == "/echo":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                elif path == "/chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
                elif path == "/headers":
                    data = json.dumps(raw_headers).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 b"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\r\n"
                                 % len(data) + data)
                elif path == "/cookies":
                    # ?n=N Set-Cookie fields of 100 bytes each, then "ok": a site with many cookies.
                    n = int(target.partition("?n=")[2] or "1")
                    cookies = b"".join(b"Set-Cookie: c%d=%s\r\n" % (i, b"v" * 80) for i in range(n))
                    conn.sendall(b"HTTP/1.1 200 OK\r\n" + cookies + b"Content-Length: 2\r\n\r\nok")
                elif path in ("/close", "/close-cut"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close")
                    if path == "/close" and hasattr(conn, "unwrap"):
                        conn = conn.unwrap()  # over TLS a clean end is a close_notify first
                    # /close-cut over TLS: the TCP connection ends with no close_notify, as
                    # when a connection is cut short (RFC 8446 6.1: a truncation, not an end).
                    conn.shutdown(socket.SHUT_WR)
                    return
                elif path in ("/truncated", "/truncated-big"):
                    # Promises more than it sends, then closes: 2 KiB of 4 KiB, or 300 KiB of 1 MiB.
                    sent, promised = (2048, 4096) if path == "/truncated" else (300 * 1024, 1024 * 1024)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % promised + b"t" * sent)
                    conn.shutdown(socket.SHUT_WR)
                    return
                elif path == "/drop-next":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    read_request_head(f)  # the next request arrives (its body unread) ...
                    conn.close()          # ... and the connection closes without an answer
                    return
                elif path == "/form-drop-next":
                    # As /drop-next, for a browser. The icon is inline, so that no favicon request
                    # is the "next request" that takes the drop instead of the form's POST.
                    page = (b'<!doctype html><html><head><title>form</title><link rel="icon" href="data:,">'
                            b'</head><body><form method="post" action="/echo">'
                            b'<input name="pupil" value="Ben"><input name="note" value="trip photos">'
                            b'</form></body></html>')
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                                 b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(page) + page)
                    read_request_head(f)  # the next request arrives (its body unread) ...
                    conn.close()          # ... and the connection closes without an answer
                    return
                elif path == "/then-close":
                    # Answers as if keeping the connection alive, then closes it a moment later:
                    # the proxy's pooled connection to this origin goes stale.
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    time.sleep(0.2)
                    return
                elif path == "/ambiguous-te":
                    # Framing a proxy must not pass on: Transfer-Encoding without chunked plus
                    # Content-Length (RFC 9112 6.1: read as close-delimited or 5 bytes?).
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"
                                 b"hello" + b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
                    return
                elif path == "/ambiguous-cl":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhellosmuggled")
                    return
                elif path == "/reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
                    return
                elif path == "/hang":
                    time.sleep(60)
                    return
                elif path == "/secret-slow":
                    time.sleep(0.3)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET")
                elif path == "/h2c":
                    offered = [t.strip().lower() for t in headers.get("upgrade", "").split(",")]
                    if "h2c" in offered or target.endswith("?always"):
                        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                        data = conn.recv(4096)
                        conn.sendall(b"h2c:" + data)
                        return
                    got = headers.get("upgrade", "").encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(got) + got)
                elif path == "/ws":
                    key = headers.get("sec-websocket-key", "")
                    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                    while True:
                        payload = ws_read_frame(f)
                        if payload is None:
                            return
                        conn.sendall(ws_frame(b"echo:" + payload, mask=False))
                else:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ValueError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass


def ws_frame(payload, mask=True):
    header = bytes([0x81])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        header += bytes([mbit | n])
    else:
        header += bytes([mbit | 126]) + n.to_bytes(2, "big")
    if mask:
        key = os.urandom(4)
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + payload


def ws_read_frame(f):
    head = f.read(2)
    if len(head) < 2:
        return None
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(f.read(2), "big")
    key = f.read(4) if head[1] & 0x80 else None
    data = f.read(n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return data


# A lesson all day, every day: so that a test's decisions do not depend on when it runs. A piece
# of a str.format() template (braces doubled), under `school:`.
LESSON_ALL_WEEK = '''  timetable:
    weekdays:
      - {{name: Lesson, kind: lesson, from: "00:00", to: "23:59"}}
    saturday:
      - {{name: Lesson, kind: lesson, from: "00:00", to: "23:59"}}
    sunday:
      - {{name: Lesson, kind: lesson, from: "00:00", to: "23:59"}}
'''

BASE_POLICY = """
school:
  name: Integration Test School
  timezone: Europe/London
""" + LESSON_ALL_WEEK + """categories:
  social_media: {{domains: [facebook.test, instagram.test]}}
  circumvention: {{domains: [vpn.test]}}
everyone:
  rules:
    - {{action: block, categories: [circumvention]}}
roles:
  pupils:
    networks: [{pupil}/32]
    default: allow
    rules:
      - {{action: block, categories: [social_media]}}
      - {{name: no uploads, action: block, domains: [noupload.test], methods: [POST]}}
  staff:
    networks: [{staff}/32]
    default: allow
  guests:
    networks: [{guest}/32]
    audience: adults
    default: allow
    rules:
      - {{action: block, categories: [social_media]}}
fallback_role: pupils
upstream:
  allow_loopback: true
  ports: any
  connect_timeout: 2s
  response_timeout: {response_timeout}
  idle_timeout: 10s
hosts:
{hosts}
limits:
  head_timeout: {head_timeout}
  keepalive_timeout: 5s
  header_bytes: 16384
  header_count: 60
connect:
  ports: [443, {tls_port}]
  hello_timeout: 3s
drain: {drain}
workers: {workers}
"""


def alias_bomb_categories(levels=10, uses=0):
    """Category lines for a policy's `categories:` whose YAML aliases expand without bound
    (rules/yaml_load.hpp). `uses` 0: "billion laughs", `levels` lists of ten aliases of the one
    before, 10^levels entries from 1 KB. Else the 783 KB file of outside-in audit H: one
    anchored list of 1000 domains named by `uses` categories (28 s and 2.3 GB for 30000)."""
    if uses:
        first = ",".join(f"d{i}.lol.test" for i in range(1000))
        return f"  amp0: {{domains: &D [{first}]}}\n" + "".join(f"  amp{i}: {{domains: *D}}\n" for i in range(1, uses))
    lines = ["  bomb0: {domains: &b0 [" + ", ".join(["lol.test"] * 10) + "]}\n"]
    for i in range(1, levels):
        lines.append(f"  bomb{i}: {{domains: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]}\n")
    return "".join(lines)


TEST_HOSTS = ["origin.test", "py.test", "facebook.test", "www.facebook.test", "instagram.test",
              "noupload.test", "vpn.test", "allowed.test"]


class Proxy:
    def __init__(self, extra="", response_timeout="3s", head_timeout="2s", drain="5s", tls_port=8443,
                 policy_text=None, args=(), workers=2, policy_edit=None, access_log=None):
        self.dir = tempfile.mkdtemp(prefix="hallpass-it-")
        os.chmod(self.dir, 0o711)  # a daemon that drops privileges must still reach its state dir
        self.port = free_port()
        self.metrics_port = free_port()
        self.access_log = access_log or os.path.join(self.dir, "access.log")
        self.config = os.path.join(self.dir, "policy.yaml")
        hosts = "\n".join(f"  {h}: 127.0.0.1" for h in TEST_HOSTS)
        self.policy_text = policy_text or BASE_POLICY.format(
            pupil=PUPIL, staff=STAFF, guest=GUEST, hosts=hosts, response_timeout=response_timeout,
            head_timeout=head_timeout, drain=drain, tls_port=tls_port, workers=workers) + extra
        if policy_edit:
            self.policy_text = policy_edit(self.policy_text)  # a test's own changes to the base policy
        self.write_policy(self.policy_text)
        # free_port's port can be taken before the daemon binds it: by another suite's daemon, or
        # as the local port of a client connection (loopback connects draw from the same range).
        # Such a start is tried again on other ports, at most three times in all.
        for attempt in range(3):
            self.stderr_lines = []
            self.proc = subprocess.Popen(
                [BIN, "run", "--config", self.config, "--listen", f"127.0.0.1:{self.port}", "--access-log",
                 self.access_log, "--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--state-dir",
                 os.path.join(self.dir, "state"), *args],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self._reader = threading.Thread(target=self._read_stderr, daemon=True)
            self._reader.start()
            wait_for(lambda: any("serving" in l for l in self.stderr_lines) or self.proc.poll() is not None,
                     timeout=20, what="hallpass to start")
            if self.proc.poll() is None:
                return
            self._reader.join(5)
            self.proc.stderr.close()
            if attempt < 2 and any("Address already in use" in l for l in self.stderr_lines):
                self.port = free_port()
                self.metrics_port = free_port()
                continue
            raise AssertionError("hallpass exited: " + "".join(self.stderr_lines))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def write_policy(self, text):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, expect_ok=True, timeout=10):
        marker = "reloaded" if expect_ok else "reload failed"
        before = sum(marker in l for l in self.stderr_lines)
        self.signal(signal.SIGHUP)
        wait_for(lambda: sum(marker in l for l in self.stderr_lines) > before, timeout=timeout,
                 what=f"'{marker}' in hallpass output")

    def stop(self, timeout=15):
        if self.proc.poll() is not None and self.proc.returncode not in (0, -signal.SIGKILL):
            # It died under the test: show why, or the failure that follows is a riddle.
            sys.stderr.write(f"hallpass exited with {self.proc.returncode} during the test; its stderr:\n")
            sys.stderr.write("".join(self.stderr_lines[-200:]))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)  # the pipe is at its end once the process has exited
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_lines(self, count=None, timeout=5):
        def read():
            try:
                with open(self.access_log) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                lines = []
            return lines if count is None or len(lines) >= count else None
        if count is None:
            return read()
        return wait_for(read, timeout=timeout, what=f"{count} access log lines")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name, labels=None):
        """The value of one sample, or 0.0 when absent."""
        text = self.metrics()
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if labels and any(got.get(k) != v for k, v in labels.items()):
                continue
            return float(m.group(3))
        return 0.0

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def curl(proxy, url, source=PUPIL, extra=(), timeout=30):
    """Runs curl through the proxy from `source`. Returns (status, body bytes, stderr)."""
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-x", f"http://127.0.0.1:{proxy.port}", "--interface", source,
           "-o", "-", "-w", "\n%{http_code}", *extra, url]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body, r.stderr.decode()


def raw_request(proxy, data, source=PUPIL, timeout=5, read_all=True):
    """Sends raw bytes from `source`; returns everything read until close or timeout."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", proxy.port))
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not read_all:
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return b"".join(chunks)


def person_block_page(proxy, page, source=PUPIL, headers=""):
    """The person's page behind a plain-HTTP block page (`page`, the proxy's 403 as bytes), which
    names nobody and has no form: follows its "Ask for this page" link to the proxy's own address
    (http://hallpass.invalid/blocked?url=...) from `source`, with `headers` ("Name: value\r\n"
    lines) added. Returns the whole answer."""
    m = re.search(rb'href="(http://hallpass\.invalid/blocked\?[^"]*)"', page)
    assert m, page[:600]
    link = html.unescape(m.group(1).decode())
    return raw_request(proxy, f"GET {link} HTTP/1.1\r\nHost: hallpass.invalid\r\n{headers}Connection: close\r\n\r\n"
                       .encode(), source=source)


def status_of(response):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(m.group(1)) if m else None


def read_answer_status(f):
    """Reads one answer with a Content-Length body from the file `f`: its status, or None when
    the connection closed before it (closed unanswered)."""
    line = f.readline()
    if not line:
        return None
    length = 0
    while (h := f.readline()) not in (b"\r\n", b""):
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":")[1])
    f.read(length)
    return int(line.split()[1])


class TlsInTunnel:
    """TLS over an open tunnel's socket (a relayed CONNECT), trusting `cafile`; get() sends
    GET `path` and returns the answer's status, or None once the tunnel has closed."""

    def __init__(self, sock, host, cafile):
        import ssl
        self.host = host
        self.tls = ssl.create_default_context(cafile=cafile).wrap_socket(sock, server_hostname=host)
        self.f = self.tls.makefile("rb")

    def get(self, path="/"):
        import ssl
        try:
            self.tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            return read_answer_status(self.f)
        except (OSError, ssl.SSLError, ValueError, IndexError):
            return None

    def get_until_closed(self, seconds, pause=0.25):
        """Sends GETs until the tunnel closes or `seconds` pass: (the last status, seconds taken)."""
        started = time.monotonic()
        status = self.get()
        while status is not None and time.monotonic() - started < seconds:
            time.sleep(pause)
            status = self.get()
        return status, time.monotonic() - started
