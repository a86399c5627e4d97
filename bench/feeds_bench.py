#!/usr/bin/env python3
"""Issue 11's feeds bench (bench/README.md, "Issue 11: feeds"): the shipped policy with the full
UT1 feed in force, and the bench's synthetic domains as the adult list stand-in.

  load    `hallpass run` from exec to "serving" and its resident memory (VmRSS, VmHWM), and
          `hallpass check` wall time; with the feed in force and, for comparison, without it.
  reload  a running hallpass (the daemon's bench sections, bench/configs/hallpass-daemon.yaml)
          serving wrk keep-alive GETs of a 1 KiB object from a local nginx: p50/p99 of wrk
          windows without a reload (baseline) and of windows in which a reload of a changed feed
          happens. Two kinds of reload window:
            sighup   `hallpass feeds update` installs a changed feed first (with the daemon's pid
                     file moved aside so that it does not signal), then the window starts and
                     the bench sends the same SIGHUP the command sends: the window is the reload.
            update   the window covers the whole `hallpass feeds update` (download from the local
                     nginx, unpack, verify, diff, switch) and the reload it asks for.
          The reload's duration is from SIGHUP to the daemon's "reloaded" line.

Nothing here is run by CTest. Writes a Markdown report (--out) and prints it. Uses only
127.0.0.1. Every wait is bounded."""
import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Daemon:
    """`hallpass run`, its stderr read on a thread with the time each line arrived."""

    def __init__(self, args, config, state, port, metrics_port, timeout=600):
        self.lines = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [args.daemon or args.hallpass, "run", "--config", str(config), "--state-dir", str(state), "--listen",
             f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{metrics_port}", "--access-log", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.serving_s = self.wait_line("serving", timeout) - self.started

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line))

    def wait_line(self, word, timeout, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in self.lines[after:]:
                if word in line:
                    return t
            if self.proc.poll() is not None:
                raise SystemExit("hallpass exited: " + "".join(l for _, l in self.lines[-30:]))
            time.sleep(0.005)
        raise SystemExit(f"no '{word}' from hallpass within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def layout_feed(args, home, synthetic):
    """STATE/feeds/ut1/v1 from the UT1 folder (real list folders only, as `feeds update` keeps
    them), adult/domains = the synthetic list; current -> v1."""
    version = home / "v1"
    bl = version / "blacklists"
    count = 0
    for cat in sorted(os.listdir(args.ut1)):
        src = Path(args.ut1) / cat
        if src.is_symlink() or not src.is_dir():
            continue
        for name in ("domains", "urls"):
            f = src / name
            if f.is_file() and not f.is_symlink():
                (bl / cat).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, bl / cat / name)
                count += 1
    (bl / "adult").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(synthetic, bl / "adult" / "domains")
    (version / "feed.info").write_text(f"fetched_at: {int(time.time())}\nurl: bench\n")
    os.symlink("v1", home / "current")
    return version, count + 1


def make_tarball(version_dir, out, extra_adult):
    """A UT1-layout tarball of version_dir with `extra_adult` new adult domains and the first
    hundred gambling domains gone: a changed feed."""
    with tarfile.open(out, "w:gz", compresslevel=1) as t:
        for cat in sorted(os.listdir(version_dir / "blacklists")):
            for name in ("domains", "urls"):
                f = version_dir / "blacklists" / cat / name
                if not f.exists():
                    continue
                data = f.read_bytes()
                if cat == "gambling" and name == "domains":
                    data = b"".join(data.splitlines(keepends=True)[100:])
                if cat == "adult" and name == "domains":
                    data += "".join(f"changed-{extra_adult}-{i}.example\n" for i in range(1000)).encode()
                info = tarfile.TarInfo(f"blacklists/{cat}/{name}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))


def wrk(args, proxy_port, origin_port, seconds, lua):
    r = subprocess.run(["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{seconds}s", "--timeout", "5s",
                        "-s", str(lua), f"http://127.0.0.1:{proxy_port}"],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"WRK_RESULT (\{.*\})", r.stdout)
    if not m:
        raise SystemExit("wrk gave no result: " + r.stdout + r.stderr)
    j = json.loads(m.group(1))
    j["failed"] = j["connect"] + j["read"] + j["write"] + j["status"] + j["timeout"]
    return j


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hallpass", default=str(ROOT / "build" / "hallpass"))
    p.add_argument("--daemon", default="", help="the hallpass binary that serves (default: --hallpass); "
                   "`feeds update` and `check` always run --hallpass")
    p.add_argument("--skip-load", action="store_true", help="only the reload rounds")
    p.add_argument("--ut1", default="/work/shared/ut1/blacklists")
    p.add_argument("--synthetic", default="/tmp/hallpass-bench/synthetic-domains.txt",
                   help="the synthetic list `bench_rules domains` writes (run it first)")
    p.add_argument("--workdir", default="/tmp/hallpass-feeds-bench")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=0, help="wrk window (default: reload time + 3 s)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--out", default="")
    args = p.parse_args()
    if not Path(args.synthetic).is_file():
        raise SystemExit(f"{args.synthetic} is missing: run `bench_rules domains` first (bench/README.md)")
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    procs = []
    report = []
    try:
        # nginx origin: /small (1 KiB) and the changed feeds.
        www = work / "www"
        www.mkdir()
        (www / "small").write_bytes(b"s" * 1024)
        origin_port = free_port()
        conf = (ROOT / "bench" / "configs" / "nginx-origin.conf").read_text()
        for k, v in {"@DIR@": str(work), "@PORT@": str(origin_port), "@WORKERS@": "1", "@NOFILE@": "4096"}.items():
            conf = conf.replace(k, v)
        (work / "nginx.conf").write_text(conf)
        nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL)
        procs.append(nginx)

        state = work / "state"
        home = state / "feeds" / "ut1"
        home.mkdir(parents=True)
        t0 = time.monotonic()
        version, files = layout_feed(args, home, args.synthetic)
        lines = sum(1 for f in version.rglob("*") if f.is_file() and f.name in ("domains", "urls")
                    for _ in open(f, "rb"))
        print(f"feed laid out: {files} list files, {lines} lines, in {time.monotonic() - t0:.1f} s", flush=True)
        for n, name in enumerate(("ut1-a.tar.gz", "ut1-b.tar.gz")):
            make_tarball(version, www / name, n)
        os.symlink("ut1-a.tar.gz", www / "ut1.tar.gz")

        policy = (ROOT / "rules" / "school.yaml").read_text()
        policy, n = re.subn(r"(\n  ut1:\n(?:    .*\n)*?    url: ).*\n", rf"\g<1>http://127.0.0.1:{origin_port}/ut1.tar.gz\n",
                            policy, count=1)
        if n != 1:
            raise SystemExit("rules/school.yaml: no feeds.ut1.url line to point at the local origin")
        policy += (ROOT / "bench" / "configs" / "hallpass-daemon.yaml").read_text().replace("@ORIGIN_PORT@",
                                                                                          str(origin_port))
        config = work / "policy.yaml"
        config.write_text(policy)
        lua = work / "wrk.lua"
        lua.write_text((ROOT / "bench" / "configs" / "wrk.lua").read_text()
                       .replace("@PATH@", f"http://127.0.0.1:{origin_port}/small")
                       .replace("@HOST@", f"127.0.0.1:{origin_port}").replace("@EXTRA_HEADERS@", ""))

        report.append(f"machine: {os.cpu_count()} cores, load average at start {loadavg()}; "
                      f"hallpass {args.hallpass}; feed: {files} list files, {lines:,} lines "
                      f"(UT1 from {args.ut1} plus {args.synthetic} as adult/domains)\n")

        # ---- load ------------------------------------------------------------------------
        empty_state = work / "state-nofeed"
        empty_state.mkdir()
        rows = []
        for label, st in () if args.skip_load else (("with the UT1 feed + synthetic adult list", state), ("no feed (missing)", empty_state)):
            for _ in range(args.rounds):
                d = Daemon(args, config, st, free_port(), free_port())
                rss, hwm = status_kb(d.proc.pid, "VmRSS"), status_kb(d.proc.pid, "VmHWM")
                d.stop()
                before = os.times()
                c0 = time.monotonic()
                subprocess.run([args.hallpass, "check", "--quiet", "--config", str(config), "--state-dir", str(st)],
                               capture_output=True, timeout=600)
                check_s = time.monotonic() - c0
                rows.append((label, d.serving_s, rss / 1024, hwm / 1024, check_s))
                print(rows[-1], flush=True)
        if not args.skip_load:
            report.append("### Load: `hallpass run` to \"serving\", and `hallpass check`\n")
            report.append("| policy | run: exec to serving (s) | VmRSS serving (MB) | VmHWM (MB) | check (s) |")
            report.append("|---|---|---|---|---|")
            for r in rows:
                report.append(f"| {r[0]} | {r[1]:.2f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.2f} |")
            report.append("")

        # ---- reload under load -------------------------------------------------------------
        port = free_port()
        d = Daemon(args, config, state, port, free_port())
        procs.append(d.proc)
        pid_file = state / "hallpass.pid"
        serving_s = d.serving_s
        seconds = args.seconds or max(5, int(serving_s + 3.5))
        tarball = ["ut1-b.tar.gz", "ut1-a.tar.gz"]
        results = []
        rss_rounds = [(status_kb(d.proc.pid, "VmRSS") / 1024, status_kb(d.proc.pid, "VmHWM") / 1024)]
        next_tar = 0

        def switch_tarball():
            nonlocal next_tar
            link = www / "ut1.tar.gz"
            tmp = www / "ut1.tar.gz.tmp"
            os.symlink(tarball[next_tar % 2], tmp)
            os.replace(tmp, link)
            next_tar += 1

        def update(signal_daemon):
            switch_tarball()
            if not signal_daemon:
                os.rename(pid_file, str(pid_file) + ".aside")
            try:
                r = subprocess.run([args.hallpass, "feeds", "update", "--config", str(config), "--state-dir",
                                    str(state)], capture_output=True, text=True, timeout=900)
            finally:
                if not signal_daemon:
                    os.rename(str(pid_file) + ".aside", pid_file)
            if r.returncode != 0 or "updated" not in r.stdout:
                raise SystemExit("feeds update failed: " + r.stdout + r.stderr)
            return r

        wrk(args, port, origin_port, 3, lua)  # warm-up
        for rnd in range(args.rounds):
            b = wrk(args, port, origin_port, seconds, lua)
            results.append(("baseline", rnd, b, None, None))
            print(results[-1], flush=True)

            u0 = time.monotonic()
            update(signal_daemon=False)
            quiet_update_s = time.monotonic() - u0
            mark = len(d.lines)
            box = {}
            th = threading.Thread(target=lambda: box.update(r=wrk(args, port, origin_port, seconds, lua)))
            th.start()
            time.sleep(1.0)
            sent = time.monotonic()
            d.proc.send_signal(signal.SIGHUP)
            reload_s = d.wait_line("reloaded", 600, after=mark) - sent
            th.join(seconds + 120)
            results.append(("sighup", rnd, box["r"], reload_s, quiet_update_s))
            print(results[-1], flush=True)

            mark = len(d.lines)
            box = {}
            # Covers the whole update (as long as the last one took) and the reload it asks for.
            upd_seconds = int(quiet_update_s + reload_s + 4)
            th = threading.Thread(target=lambda: box.update(r=wrk(args, port, origin_port, upd_seconds, lua)))
            th.start()
            time.sleep(1.0)
            u0 = time.monotonic()
            update(signal_daemon=True)
            update_s = time.monotonic() - u0
            reloaded_at = d.wait_line("reloaded", 600, after=mark)
            th.join(upd_seconds + 120)
            results.append(("update", rnd, box["r"], reloaded_at - u0 - update_s, update_s))
            print(results[-1], flush=True)
            rss_rounds.append((status_kb(d.proc.pid, "VmRSS") / 1024, status_kb(d.proc.pid, "VmHWM") / 1024))
        rss = status_kb(d.proc.pid, "VmRSS") / 1024
        hwm = status_kb(d.proc.pid, "VmHWM") / 1024
        d.stop()

        base_p99 = sorted(r[2]["p99_us"] for r in results if r[0] == "baseline")
        median_base = base_p99[len(base_p99) // 2]
        report.append(f"### Reload under load: wrk -t1 -c{args.connections}, keep-alive GET of 1 KiB through hallpass, "
                      f"{seconds} s windows, daemon {args.daemon or args.hallpass}; the `update` windows as long as the round's first update plus its reload\n")
        report.append("| window | round | req/s | p50 (ms) | p99 (ms) | max (ms) | p99 / median baseline p99 | "
                      "failed requests | reload (s) | feeds update (s) |")
        report.append("|---|---|---|---|---|---|---|---|---|---|")
        for kind, rnd, j, rel, upd in results:
            rps = j["requests"] / (j["duration_us"] / 1e6)
            report.append(f"| {kind} | {rnd + 1} | {rps:,.0f} | {j['p50_us'] / 1000:.2f} | {j['p99_us'] / 1000:.2f} | "
                          f"{j['max_us'] / 1000:.1f} | {j['p99_us'] / median_base:.2f} | {j['failed']} | "
                          f"{'' if rel is None else f'{rel:.2f}'} | {'' if upd is None else f'{upd:.1f}'} |")
        report.append("\nreload: `sighup` rows from the SIGHUP to the daemon's \"reloaded\" line; `update` rows from "
                      "the end of `feeds update` (which sent the SIGHUP) to that line. feeds update: on the `sighup` "
                      "rows the update done before the window (no reload asked), on `update` rows the one inside it.\n")
        report.append("The daemon's memory (MB, VmRSS / VmHWM) at start and after each round's two reloads: " +
                      ", ".join(f"{a:.0f} / {b:.0f}" for a, b in rss_rounds) + f". Load average at the end: {loadavg()}.\n")
        text = "\n".join(report)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(20)
                except subprocess.TimeoutExpired:
                    pr.kill()


if __name__ == "__main__":
    main()
