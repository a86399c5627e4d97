#!/usr/bin/env python3
"""An origin that sends its response head a byte at a time: what it costs hallpass's worker.

A hostile or broken origin controls how its answer arrives. Until 2026-12-06 hallpass parsed
an incomplete response head again from its start after every read, so a head of 120 KiB sent
in single bytes cost the worker quadratic time (bench/README.md, "A response head sent a byte
at a time"). This starts `hallpass run` (the binary given) on the shipped rules/school.yaml
with the bench's daemon sections, an origin in this script that sends such a head (`--size`
bytes of valid fields, one byte per send with TCP_NODELAY, then an empty body), and measures:

- the proxy's CPU seconds for the whole dribbled response (utime + stime from /proc), and
- the slowest of the GETs another client makes through the same single worker meanwhile (a
  small answer from a second origin, one every 10 ms), which shows an event loop held.

    python3 bench/slow_head.py --hallpass build-release/hallpass [--size 122880] [--rounds 3] [--limit 131072]

Nothing here is a test: the figures go to bench/README.md with the command that made them.
"""
import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(sock, done):
    """Reads from `sock` until done(bytes so far) or the peer closes; returns what came."""
    got = b""
    while not done(got):
        more = sock.recv(65536)
        if not more:
            break
        got += more
    return got


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Origin:
    """Serves every connection with `answer(conn)` on a thread of its own."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            if b"\r\n\r\n" in read_until(conn, lambda got: b"\r\n\r\n" in got):
                self.answer(conn)
        except OSError:
            pass
        finally:
            conn.close()


def dribbled_head(size):
    head = b"HTTP/1.1 200 OK\r\n"
    while len(head) < size:
        head += b"X-Filler: " + b"a" * 50 + b"\r\n"
    return head + b"Content-Length: 0\r\nConnection: close\r\n\r\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hallpass", required=True)
    ap.add_argument("--size", type=int, default=120 * 1024, help="the head's bytes (default 120 KiB)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=131072, help="limits.response_header_bytes (default 128 KiB; "
                    "the largest a school may set is 1 MiB)")
    args = ap.parse_args()

    head = dribbled_head(args.size)

    def dribble(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(head)):
            conn.sendall(head[i:i + 1])

    def small(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    slow, quick = Origin(dribble), Origin(small)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hallpass-slowhead-"))
    policy = (ROOT / "rules" / "school.yaml").read_text() + "\n" + (
        "workers: 1\n"
        "upstream:\n  allow_loopback: true\n  ports: any\n  response_timeout: 120s\n"
        f"limits:\n  response_header_bytes: {args.limit}\n  response_header_count: 10000\n")
    (tmp / "policy.yaml").write_text(policy)
    port, metrics = free_port(), free_port()
    proc = subprocess.Popen([args.hallpass, "run", "--config", str(tmp / "policy.yaml"), "--listen",
                             f"127.0.0.1:{port}", "--access-log", str(tmp / "access.log"), "--state-dir", str(tmp / "state"),
                             "--metrics-listen", f"127.0.0.1:{metrics}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        results = []
        for r in range(args.rounds):
            stop = threading.Event()
            waits = []

            def others():
                while not stop.is_set() and len(waits) < 100000:
                    t0 = time.monotonic()
                    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                        s.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % quick.port)
                        read_until(s, lambda got: got.endswith(b"ok"))
                    waits.append(time.monotonic() - t0)
                    time.sleep(0.01)

            bg = threading.Thread(target=others, daemon=True)
            bg.start()
            time.sleep(0.5)
            before = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
                s.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % slow.port)
                got = read_until(s, lambda got: b"\r\n\r\n" in got)
            took = time.monotonic() - t0
            cpu = cpu_seconds(proc.pid) - before
            stop.set()
            bg.join(timeout=35)
            status = got.split(b"\r\n", 1)[0].decode(errors="replace")
            line = (f"round {r + 1}: {status!r} after {took:.2f} s; hallpass CPU {cpu:.2f} s; others' GETs: "
                    f"{len(waits)}, median {statistics.median(waits) * 1000:.1f} ms, "
                    f"slowest {max(waits) * 1000:.1f} ms")
            print(line, flush=True)
            results.append(cpu)
        print(f"median CPU {statistics.median(results):.2f} s for a {len(head)}-byte head sent a byte at a time")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
