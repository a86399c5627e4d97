#!/usr/bin/env python3
"""hallpass against peer proxies, side by side, on one machine, in one run (issue 5).

Starts an nginx origin on 127.0.0.1, then for each round and each peer (hallpass, squid,
tinyproxy, privoxy, e2guardian, and nginx direct as the ceiling) starts that proxy once with a
minimal forward-proxy configuration written into a temporary directory, runs the loads
against it, and stops it. Writes bench/results/latest.md and bench/results/latest.json.
Python 3 standard library only. How to run it and what each load does: bench/README.md,
section "Peer comparison (issue 5)". Normally started by bench/run.sh.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import pwd
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "bench" / "configs"
PEERS = ["hallpass", "squid", "tinyproxy", "privoxy", "e2guardian", "direct"]
LOADS = ["small50", "small500", "close", "medium", "connect", "idle", "reload", "engine"]
NOFILE = 65536  # open files for every process; lowered to the hard limit where it cannot be raised
CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1024 ** 3


class PeerError(Exception):
    """A peer or a load failed; the message goes into the results."""


# ---------------------------------------------------------------------------------------
# Processes: everything started is registered and stopped, whatever happens.


class Processes:
    """Starts, records and stops every process of the run, so that none outlives it."""

    def __init__(self):
        self.live = []
        self.commands = []  # (label, command line) in the order they ran
        self.label = "setup"

    def note(self, argv):
        """Records a command line under the current label (round and peer)."""
        self.commands.append((self.label, shlex.join(str(a) for a in argv)))

    def start(self, argv, log, cwd=None, fd_limit=True):
        """Starts argv in its own process group, output into the file `log`."""
        argv = [str(a) for a in argv]
        if fd_limit:
            argv = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"] + argv
        self.note(argv)
        with open(log, "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                 start_new_session=True, env=clean_env())
        self.live.append(p)
        return p

    def run(self, argv, timeout, record=True):
        """Runs argv to completion (bounded); returns the CompletedProcess."""
        argv = [str(a) for a in argv]
        if record:
            self.note(argv)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean_env(),
                              stdin=subprocess.DEVNULL)

    def stop(self, p, timeout=10.0):
        """SIGTERM to the process group, SIGKILL after `timeout` seconds, then SIGKILL to what is
        left of the group, and only then reap the leader (see exit_status)."""
        how = f"had already ended: {describe_exit(exit_status(p))}"
        if p.returncode is None:
            if exit_status(p) is None:
                how = "SIGTERM"
                _killpg(p.pid, signal.SIGTERM)
                if not wait_exit(p, timeout):
                    how = f"SIGKILL after {timeout:g} s"
                    _killpg(p.pid, signal.SIGKILL)
                    wait_exit(p, 5)
            _killpg(p.pid, signal.SIGKILL)  # children that outlived the leader
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                print(f"peers: pid {p.pid} did not exit after SIGKILL", file=sys.stderr)
        if p in self.live:
            self.live.remove(p)
        return how

    def stop_all(self):
        """Stops everything still running (the finally of the whole run)."""
        for p in list(reversed(self.live)):
            try:
                self.stop(p, timeout=5)
            except Exception as e:  # keep going: every other process must still be stopped
                print(f"peers: could not stop pid {p.pid}: {e}", file=sys.stderr)


def exit_status(p):
    """p's exit status if it has ended, else None, without reaping it: until the leader is
    reaped its process group id cannot be reused, so killpg() never reaches another group."""
    if p.returncode is not None:
        return p.returncode
    try:
        r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -1
    if r is None:
        return None
    return r.si_status if r.si_code == os.CLD_EXITED else -r.si_status


def describe_exit(status):
    """'exited with status 1' or 'was killed by signal 10 (SIGUSR1)'."""
    if status is not None and status < 0:
        try:
            return f"was killed by signal {-status} ({signal.Signals(-status).name})"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def wait_exit(p, timeout):
    """Waits (bounded, without reaping) until p has ended; True if it has."""
    deadline = time.monotonic() + timeout
    while exit_status(p) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def send(p, sig):
    """Sends a signal to p (not reaped yet, so its pid is still its own); PeerError if it ended."""
    if exit_status(p) is not None:
        raise PeerError(f"not running: {describe_exit(exit_status(p))}")
    os.kill(p.pid, sig)


def _killpg(pgid, sig):
    """Signals a process group; one that is gone already is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def clean_env():
    """The environment for children: no proxy variables (curl would obey them)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def raise_fd_limit():
    """Raises this process's open-file limit to NOFILE, or to the hard limit where raising the
    hard limit is not permitted (no CAP_SYS_RESOURCE); the proxies get the same."""
    global NOFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(hard, NOFILE)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        NOFILE = hard
    return NOFILE


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    """True if 127.0.0.1:port accepts a connection now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def tail(path, lines=15):
    """The last lines of a log file, for error messages."""
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.rstrip() for l in f.readlines()[-lines:])
    except OSError:
        return ""


def wait_listening(port, proc, log, timeout):
    """Waits (bounded) until the port accepts; raises PeerError if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and exit_status(proc) is not None:
            raise PeerError(f"{describe_exit(exit_status(proc))} before listening: {tail(log)}")
        if can_connect(port):
            return
        time.sleep(0.05)
    raise PeerError(f"not listening on port {port} after {timeout} s: {tail(log)}")


def render(template, **values):
    """A template from bench/configs with every @KEY@ replaced."""
    text = (CONFIGS / template).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"{template}: no value for {left}")
    return text


def own_dir(path, user):
    """Creates a directory owned by `user` (a proxy that drops to that user writes there)."""
    path.mkdir(parents=True, exist_ok=True)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


# ---------------------------------------------------------------------------------------
# /proc: the CPU time, memory and sockets of a process and all its descendants.


def process_tree(pid):
    """pid and every descendant (for multi-process peers)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """utime + stime of the tree, in seconds (all threads included)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def rss_kib(pid):
    """Sum of VmRSS over the tree, KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine_jiffies():
    """(busy, steal) CPU time of the whole machine since boot, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]  # user nice system irq softirq; steal


def own_jiffies():
    """CPU time of this process and everything it started, in clock ticks: the live ones'
    utime+stime, plus cutime+cstime for the children each has already reaped."""
    total = 0
    for p in process_tree(os.getpid()):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            pass
    return total


def other_work_since(snapshot):
    """How much of the machine other work took since snapshot = (time, busy, steal, own):
    CPU used by processes this bench did not start, and CPU stolen by the hypervisor, each in
    percent of all cores over the interval."""
    t0, busy0, steal0, own0 = snapshot
    busy1, steal1 = machine_jiffies()
    own1 = own_jiffies()
    capacity = (time.monotonic() - t0) * CLK_TCK * (os.cpu_count() or 1)
    return {"other_pct": round(100 * max(0, (busy1 - busy0) - (own1 - own0)) / capacity, 1),
            "steal_pct": round(100 * (steal1 - steal0) / capacity, 1)}


def work_snapshot():
    """The starting point for other_work_since."""
    return (time.monotonic(), *machine_jiffies(), own_jiffies())


def socket_fds(pid):
    """Open sockets over the tree (each accepted client connection is one)."""
    n = 0
    for p in process_tree(pid):
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"):
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
    return n


# ---------------------------------------------------------------------------------------
# The origin and the hallpass policy.


def start_origin(ctx):
    """nginx serving /small (1 KiB), /medium (1 MiB) and /huge (1 GiB sparse)."""
    d = ctx.tmp / "origin"
    www = d / "www"
    www.mkdir(parents=True)
    for p in (d, www):
        os.chmod(p, 0o755)  # nginx's workers run as www-data
    (www / "small").write_bytes(b"s" * 1024)
    (www / "medium").write_bytes(random.Random(1).randbytes(1024 * 1024))
    with open(www / "huge", "wb") as f:
        f.truncate(GIB)
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(render("nginx-origin.conf", DIR=d, PORT=port, WORKERS=ctx.args.origin_workers, NOFILE=NOFILE))
    proc = ctx.procs.start(["nginx", "-c", conf], d / "stdout.log")
    wait_listening(port, proc, d / "error.log", 15)
    return port, proc


SYLLABLE_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
                   "br", "cr", "dr", "fr", "gr", "kr", "pr", "tr", "bl", "cl", "fl", "gl", "pl", "sl", "st",
                   "sk", "sp", "th", "sh", "ch", "qu"]
SYLLABLE_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "io", "y"]
SYLLABLE_CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "k", "sk", "st", "x", "nd", "lt"]
TLDS = ["com"] * 6 + ["co.uk"] * 3 + ["net", "org", "org.uk", "uk", "io", "info", "eu", "biz"]


def generate_domains(path, count, seed):
    """Writes `count` distinct pronounceable domains (kavorimel.com, trelbask-7.co.uk)."""
    rnd = random.Random(seed)
    seen = set()
    with open(path, "w") as f:
        f.write(f"# {count} synthetic domains, seed {seed}, written by bench/peers.py\n")
        while len(seen) < count:
            label = "".join(rnd.choice(SYLLABLE_ONSETS) + rnd.choice(SYLLABLE_VOWELS) + rnd.choice(SYLLABLE_CODAS)
                            for _ in range(rnd.randint(2, 4)))
            if rnd.random() < 0.2:
                label += f"-{rnd.randint(1, 99)}"
            name = f"{label}.{rnd.choice(TLDS)}"
            if name not in seen:
                seen.add(name)
                f.write(name + "\n")
    with open(path) as f:
        f.readline()
        return f.readline().strip()  # the first domain, to check that it is blocked


def ut1_categories(ut1_dir):
    """Every UT1 folder that has a `domains` file, sorted."""
    return sorted(p.name for p in Path(ut1_dir).iterdir() if p.is_dir() and (p / "domains").is_file())


def category_name(ut1_name):
    """The policy's category for a UT1 folder (audio-video: ut1_audio_video)."""
    return "ut1_" + ut1_name.replace("-", "_")


def hallpass_policy(ctx, synthetic_file):
    """The shipped rules/school.yaml plus the synthetic and UT1 categories, blocked for pupils,
    plus the daemon sections from bench/configs/hallpass-daemon.yaml. Generated as text."""
    text = (ROOT / "rules" / "school.yaml").read_text()
    cats = ut1_categories(ctx.args.ut1)
    added = ("  bench_synthetic:\n"
             "    description: Synthetic blocked domains generated by bench/peers.py.\n"
             f"    domain_files: [{synthetic_file}]\n")
    added += "".join(f"  {category_name(c)}: {{ut1: [{c}]}}\n" for c in cats)
    head = "\ncategories:\n"
    if text.count(head) != 1:
        raise PeerError("rules/school.yaml: no unique top-level 'categories:' line")
    text = text.replace(head, f"\nut1_dir: {ctx.args.ut1}\n{head}{added}", 1)
    # A rule at the end of the pupils' rules (the fallback role, which 127.0.0.x gets).
    roles = text.index("\nroles:\n")
    staff = text.index("\n  staff:\n", roles)
    names = ", ".join(["bench_synthetic"] + [category_name(c) for c in cats])
    rule = (f"      - name: bench lists\n        action: block\n        categories: [{names}]\n"
            "        reason: Listed by the benchmark.\n")
    text = text[:staff + 1] + rule + text[staff + 1:]
    text += render("hallpass-daemon.yaml", ORIGIN_PORT=ctx.origin_port)
    return text, cats


def first_domain(path):
    """The first entry of a UT1 domains file (to check that UT1 is really loaded)."""
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,}", line):
                return line
    return None


# ---------------------------------------------------------------------------------------
# The peers. Each start_* returns a Running; `direct` is the origin itself.


class Running:
    """A started peer: where it listens, which process to measure, how to reload it."""

    def __init__(self, name, port, proc, log, measure_pid, reload=None, reload_how="n/a", stop=None, out=None):
        self.name, self.port, self.proc, self.log = name, port, proc, log  # port None: direct
        self.out = out or log  # the file its standard output and error go to
        self.measure_pid, self.reload, self.reload_how = measure_pid, reload, reload_how
        self._stop = stop
        self.checks = {}  # what start_peer verified

    def stop(self):
        """Stops the peer; returns how ("SIGTERM", "SIGKILL after 5 s", ...)."""
        return self._stop() if self._stop else "not stopped (the origin)"

    def alive(self):
        return self.proc is None or exit_status(self.proc) is None


def peer_dir(ctx, name, rnd, user=None):
    """A fresh directory for one peer in one round (owned by the user it drops to)."""
    d = ctx.tmp / f"{name}-round{rnd}"
    if user:
        own_dir(d, user)
    else:
        d.mkdir(parents=True)
    os.chmod(d, 0o755)
    return d


def start_hallpass(ctx, rnd):
    """hallpass run with the generated policy, access log to a file."""
    d = peer_dir(ctx, "hallpass", rnd)
    port, metrics = free_port(), free_port()
    log = d / "stderr.log"
    proc = ctx.procs.start([ctx.hallpass, "run", "--config", ctx.policy, "--listen", f"127.0.0.1:{port}",
                            "--access-log", d / "access.log", "--state-dir", d / "state", "--metrics-listen",
                            f"127.0.0.1:{metrics}"], log)
    return Running("hallpass", port, proc, log, proc.pid, reload=lambda: send(proc, signal.SIGHUP),
                   reload_how="SIGHUP to the daemon", stop=lambda: ctx.procs.stop(proc, 20))


def start_squid(ctx, rnd):
    """squid -N with configs/squid.conf."""
    d = peer_dir(ctx, "squid", rnd, user="proxy")
    port = free_port()
    conf = d / "squid.conf"
    conf.write_text(render("squid.conf", DIR=d, PORT=port, ORIGIN_PORT=ctx.origin_port, NOFILE=NOFILE))
    log = d / "stdout.log"
    proc = ctx.procs.start(["squid", "-N", "-f", conf], log)

    def reload():
        r = ctx.procs.run(["squid", "-k", "reconfigure", "-f", conf], timeout=10, record=False)
        if r.returncode != 0:
            raise PeerError(f"squid -k reconfigure: {r.stderr.strip()}")
    return Running("squid", port, proc, d / "cache.log", proc.pid, reload=reload, out=log,
                   reload_how=f"squid -k reconfigure -f {conf}", stop=lambda: ctx.procs.stop(proc, 15))


def start_tinyproxy(ctx, rnd):
    """tinyproxy -d with configs/tinyproxy.conf."""
    d = peer_dir(ctx, "tinyproxy", rnd, user="tinyproxy")
    port = free_port()
    conf = d / "tinyproxy.conf"
    conf.write_text(render("tinyproxy.conf", DIR=d, PORT=port, ORIGIN_PORT=ctx.origin_port))
    log = d / "tinyproxy.log"
    proc = ctx.procs.start(["tinyproxy", "-d", "-c", conf], d / "stdout.log")
    return Running("tinyproxy", port, proc, log, proc.pid, reload=lambda: send(proc, signal.SIGUSR1),
                   out=d / "stdout.log",
                   reload_how="SIGUSR1 (tinyproxy(8): reload the config file and filter list)",
                   stop=lambda: ctx.procs.stop(proc, 5))


def start_privoxy(ctx, rnd):
    """privoxy --no-daemon with configs/privoxy.conf and privoxy.action."""
    d = peer_dir(ctx, "privoxy", rnd, user="privoxy")
    port = free_port()
    conf = d / "config"
    conf.write_text(render("privoxy.conf", DIR=d, PORT=port))
    (d / "bench.action").write_text(render("privoxy.action", ORIGIN_PORT=ctx.origin_port))
    proc = ctx.procs.start(["privoxy", "--no-daemon", "--user", "privoxy", conf], d / "stdout.log")
    return Running("privoxy", port, proc, d / "stdout.log", proc.pid, reload=None,
                   reload_how="n/a: privoxy has no reload command (it re-reads changed files when it accepts "
                              "a new connection)", stop=lambda: ctx.procs.stop(proc, 5))


E2G_CHANGES = [  # (key, value): the only lines changed in Debian's /etc/e2guardian/e2guardian.conf
    ("filterip", "127.0.0.1"),  # Debian's: all addresses
    ("filterports", "{port}"),
    ("transparenthttpsport", None),  # Debian's 8443 on every address; commented out = off
    ("loglocation", "'{dir}/access.log'"),
    ("pidfilename", "'{dir}/e2guardian.pid'"),
    ("nodaemon", "on"),
]


def start_e2guardian(ctx, rnd):
    """e2guardian -N with Debian's configuration, changed only as E2G_CHANGES says."""
    d = peer_dir(ctx, "e2guardian", rnd, user="e2guardian")
    port = free_port()
    text = Path("/etc/e2guardian/e2guardian.conf").read_text()
    for key, value in E2G_CHANGES:
        line = f"#{key} (off for the bench)" if value is None else f"{key} = {value.format(port=port, dir=d)}"
        text, n = re.subn(rf"^#?\s*{key}\s*=.*$", lambda _: line, text, count=1, flags=re.M)
        if n != 1 and value is not None:
            text += f"\n{line}\n"
    conf = d / "e2guardian.conf"
    conf.write_text(text)
    # e2guardian reads the filter group's file from the main file's directory: Debian's, unchanged.
    shutil.copy("/etc/e2guardian/e2guardianf1.conf", d / "e2guardianf1.conf")
    proc = ctx.procs.start(["e2guardian", "-N", "-c", conf], d / "stdout.log")
    # e2guardian 5.3.5 sometimes takes SIGTERM and does not exit (seen here for minutes): 5 s, then SIGKILL.
    return Running("e2guardian", port, proc, d / "stdout.log", proc.pid,
                   reload=lambda: send(proc, signal.SIGUSR1),
                   reload_how="SIGUSR1 (what `e2guardian -g` sends: gentle reload of lists and filter groups)",
                   stop=lambda: ctx.procs.stop(proc, 5))


def start_direct(ctx, rnd):
    """No proxy: the loads go to the origin itself."""
    return Running("direct", None, None, ctx.tmp / "origin" / "error.log", ctx.origin_proc.pid,
                   reload=lambda: send(ctx.origin_proc, signal.SIGHUP),
                   reload_how="SIGHUP to the origin nginx (nginx -s reload)")


STARTERS = {"hallpass": start_hallpass, "squid": start_squid, "tinyproxy": start_tinyproxy,
            "privoxy": start_privoxy, "e2guardian": start_e2guardian, "direct": start_direct}


def origin_url(ctx, path):
    """The origin's URL for a path."""
    return f"http://127.0.0.1:{ctx.origin_port}{path}"


def fetch(ctx, run, url):
    """One request with curl, through the peer unless direct: 'CODE BYTES'."""
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code} %{size_download}"]
    if run.port:
        argv += ["-x", f"http://127.0.0.1:{run.port}"]
    r = ctx.procs.run(argv + [url], timeout=20)
    return r.stdout.strip()


def start_peer(ctx, name, rnd):
    """Starts a peer, waits until it answers, and checks it really forwards (and filters)."""
    run = STARTERS[name](ctx, rnd)
    try:
        if run.port:
            wait_listening(run.port, run.proc, run.log, ctx.args.start_timeout)
        checks = {}
        got = fetch(ctx, run, origin_url(ctx, "/small"))
        checks["origin /small"] = got
        if got != "200 1024":
            raise PeerError(f"GET {origin_url(ctx, '/small')} through {name}: expected '200 1024', got '{got}'"
                            f"; log: {tail(run.log)}")
        if name == "hallpass":
            for what, host in (("synthetic", ctx.synthetic_probe), ("ut1", ctx.ut1_probe)):
                if not host:
                    continue
                got = fetch(ctx, run, f"http://{host}/")
                checks[f"{what} {host}"] = got
                if not got.startswith("403 "):
                    raise PeerError(f"GET http://{host}/ ({what} list) through hallpass: expected 403, got '{got}'")
        run.checks = checks
        return run
    except BaseException:
        run.stop()
        raise


# ---------------------------------------------------------------------------------------
# The loads. Each returns a dict of figures for one round, or raises PeerError.


def wrk_script(ctx, run, path, close):
    """The Lua file for wrk: absolute-form target through a proxy, origin-form direct."""
    host = f"127.0.0.1:{ctx.origin_port}"
    target = f"http://{host}{path}" if run.port else path
    key = f"wrk-{'proxy' if run.port else 'direct'}-{path.strip('/')}{'-close' if close else ''}.lua"
    f = ctx.tmp / key
    if not f.exists():
        f.write_text(render("wrk.lua", PATH=target, HOST=host,
                            EXTRA_HEADERS='wrk.headers["Connection"] = "close"' if close else ""))
    return f


def wrk(ctx, run, path, conns, duration, close=False, background=False):
    """Runs wrk against the peer (or starts it, with background=True); returns the figures."""
    port = run.port or ctx.origin_port
    threads = min(conns, ctx.args.wrk_threads)
    argv = ["wrk", "-t", threads, "-c", conns, "-d", f"{duration}s", "--timeout", f"{ctx.args.wrk_timeout}s",
            "--latency", "-s", wrk_script(ctx, run, path, close), f"http://127.0.0.1:{port}/"]
    if background:
        log = ctx.tmp / f"wrk-{run.name}-{time.monotonic_ns()}.log"
        return ctx.procs.start(argv, log, fd_limit=False), log
    r = ctx.procs.run(argv, timeout=duration + 60)
    return parse_wrk(r.stdout, r.stderr)


def parse_wrk(stdout, stderr=""):
    """The figures from the WRK_RESULT line that configs/wrk.lua prints."""
    m = re.search(r"^WRK_RESULT (\{.*\})$", stdout, re.M)
    if not m:
        raise PeerError(f"wrk printed no result: {(stdout + stderr).strip()[-400:]}")
    w = json.loads(m.group(1))
    secs = w["duration_us"] / 1e6
    socket_errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    return {
        "rps": w["requests"] / secs,
        "mb_s": w["bytes"] / secs / 1e6,
        "p50_ms": w["p50_us"] / 1000,
        "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "requests": w["requests"],
        "non2xx": w["status"],
        "socket_errors": socket_errors,
        "errors": {k: w[k] for k in ("connect", "read", "write", "timeout", "status")},
    }


def measured_wrk(ctx, run, path, conns, close=False):
    """A discarded warm-up run, then the measured one, with the peer's CPU time per request
    (direct: the origin nginx's)."""
    if ctx.args.warmup > 0:
        wrk(ctx, run, path, conns, ctx.args.warmup, close)
    cpu0 = cpu_seconds(run.measure_pid)
    out = wrk(ctx, run, path, conns, ctx.args.duration, close)
    cpu = cpu_seconds(run.measure_pid) - cpu0
    if out["requests"]:
        out["cpu_us_per_req"] = cpu / out["requests"] * 1e6
    return out


def load_small50(ctx, run):
    """Keep-alive 1 KiB GETs, 50 connections."""
    return measured_wrk(ctx, run, "/small", 50)


def load_small500(ctx, run):
    """Keep-alive 1 KiB GETs, 500 connections."""
    return measured_wrk(ctx, run, "/small", 500)


def load_close(ctx, run):
    """1 KiB GETs with Connection: close: a new connection per request, 50 at a time."""
    return measured_wrk(ctx, run, "/small", 50, close=True)


def load_medium(ctx, run):
    """Keep-alive 1 MiB GETs, 10 connections."""
    return measured_wrk(ctx, run, "/medium", 10)


def load_connect(ctx, run):
    """1 GiB through a CONNECT tunnel with curl (direct: the same without a proxy)."""
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", ctx.args.connect_timeout, "-w",
            "%{speed_download} %{size_download} %{http_code}"]
    if run.port:
        argv += ["--proxytunnel", "-x", f"http://127.0.0.1:{run.port}"]
    argv.append(origin_url(ctx, "/huge"))
    cpu0 = cpu_seconds(run.measure_pid) if run.port else None
    r = ctx.procs.run(argv, timeout=ctx.args.connect_timeout + 30)
    cpu1 = cpu_seconds(run.measure_pid) if run.port else None
    try:
        speed, size, code = r.stdout.split()
        speed, size = float(speed), int(size)
    except ValueError:
        raise PeerError(f"curl exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    if r.returncode != 0 or size != GIB or code != "200":
        raise PeerError(f"curl exit {r.returncode}, HTTP {code}, {size} of {GIB} bytes at {speed / 1e6:.1f} MB/s "
                        f"{r.stderr.strip()}")
    out = {"mb_s": speed / 1e6, "bytes": size}
    if cpu0 is not None:
        out["cpu_s"] = cpu1 - cpu0
        out["cpu_s_per_gb"] = (cpu1 - cpu0) / (size / 1e9)
    return out


def fd_count(pid):
    """Open file descriptors over the tree (cheap: no readlink)."""
    n = 0
    for p in process_tree(pid):
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def open_idle(port, n, pid, timeout):
    """Opens n TCP connections from 127.0.0.2 ... 127.0.0.41 and sends nothing, in batches
    of 250: after each batch, waits (at most 0.5 s) until the peer has accepted it, so that a
    peer with a short listen backlog is not measured on connections still in the kernel's
    queue. Returns (sockets, how many completed the handshake within `timeout` seconds)."""
    socks, pending = [], {}
    poller = select.poll()
    deadline = time.monotonic() + timeout
    base = fd_count(pid)
    try:
        for i in range(n):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            s.bind((f"127.0.0.{2 + i % 40}", 0))
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
            poller.register(s, select.POLLOUT)
            if (i + 1) % 250 == 0 or i + 1 == n:
                batch_end = min(time.monotonic() + 0.5, deadline)
                while fd_count(pid) - base < i + 1 and time.monotonic() < batch_end:
                    time.sleep(0.01)
        connected = 0
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(200):
                s = pending.pop(fd)
                poller.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected += 1
        return socks, connected
    except BaseException:
        for s in socks:
            s.close()
        raise


def still_open(s):
    """True if the peer has neither closed the connection nor sent anything on it."""
    try:
        s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # EOF, or an answer (an error page before closing)


def load_idle(ctx, run):
    """Memory per idle client connection: RSS after minus before, over the connections the
    peer accepted and still holds after the wait."""
    port = run.port or ctx.origin_port
    n = ctx.args.idle_connections
    time.sleep(0.5)
    rss0, fds0 = rss_kib(run.measure_pid), socket_fds(run.measure_pid)
    socks, connected = open_idle(port, n, run.measure_pid, timeout=30)
    try:
        time.sleep(ctx.args.idle_wait)
        open_now = sum(still_open(s) for s in socks)
        rss1, fds1 = rss_kib(run.measure_pid), socket_fds(run.measure_pid)
    finally:
        for s in socks:
            s.close()
    held = fds1 - fds0
    counted = min(open_now, held)
    out = {"opened": n, "connected": connected, "still_open": open_now, "held_by_peer": held,
           "rss_before_kib": rss0, "rss_after_kib": rss1}
    if counted <= 0:
        raise PeerError(f"no idle connection held: {json.dumps(out)}")
    out["kib_per_conn"] = (rss1 - rss0) / counted
    out["counted"] = counted
    return out


def load_reload(ctx, run):
    """wrk keep-alive /small at 50 connections while the peer reloads every second."""
    if run.reload is None:
        return {"na": run.reload_how}
    before = run.log.read_text(errors="replace") if run.name == "hallpass" else ""
    duration = ctx.args.reload_duration
    proc, log = wrk(ctx, run, "/small", 50, duration, background=True)
    sent, tick, reload_errors = 0, 0, []
    try:
        start = time.monotonic()
        while exit_status(proc) is None and time.monotonic() < start + duration - 0.5:
            tick += 1
            time.sleep(max(0.0, start + tick - time.monotonic()))
            if time.monotonic() >= start + duration - 0.5:
                break
            try:
                run.reload()
                sent += 1
            except (PeerError, subprocess.TimeoutExpired, OSError) as e:
                reload_errors.append(str(e))
        wait_exit(proc, duration + 60)
    finally:
        ctx.procs.stop(proc, 5)
    out = parse_wrk(log.read_text(errors="replace"))
    out["failed"] = out["non2xx"] + out["socket_errors"]
    out["reloads_sent"] = sent
    out["how"] = run.reload_how
    if reload_errors:
        out["reload_errors"] = {"count": len(reload_errors), "first": reload_errors[0]}
    if run.name == "hallpass":
        # Reloads still in flight when wrk ended: wait (at most 10 s) until every signal is answered.
        def answered():
            after = run.log.read_text(errors="replace")[len(before):]
            return after.count("hallpass: reloaded"), after.count("reload failed")
        deadline = time.monotonic() + 10
        while sum(answered()) < sent and time.monotonic() < deadline and run.alive():
            time.sleep(0.1)
        out["reloads_done"], out["reloads_failed"] = answered()
    return out


LOAD_FUNCS = {"small50": load_small50, "small500": load_small500, "close": load_close, "medium": load_medium,
              "connect": load_connect, "idle": load_idle, "reload": load_reload}


def load_engine(ctx):
    """bench_rules school rules/school.yaml: its JSON line."""
    r = ctx.procs.run([ctx.bench_rules, "school", ROOT / "rules" / "school.yaml"], timeout=600)
    line = next((l for l in r.stdout.splitlines() if l.startswith("{")), None)
    if r.returncode != 0 or line is None:
        raise PeerError(f"bench_rules exit {r.returncode}: {(r.stdout + r.stderr).strip()[-400:]}")
    data = json.loads(line)
    return {"decide_median_ns": data["ns"]["decide_all_cases_in_turn"]["median"],
            "decide_p99_ns": data["ns"]["decide_all_cases_in_turn"]["p99"], "all_met": data.get("all_met"),
            "json": line}


# ---------------------------------------------------------------------------------------
# The run.


def run_round(ctx, rnd):
    """One round: the engine benchmark, then every peer in turn (order rotated per round)."""
    peers = ctx.peers[(rnd - 1) % len(ctx.peers):] + ctx.peers[:(rnd - 1) % len(ctx.peers)]
    if "engine" in ctx.loads and "hallpass" in ctx.peers:
        ctx.procs.label = f"round {rnd}: engine"
        log(f"round {rnd}/{ctx.args.rounds}: policy engine")
        record(ctx, "hallpass", "engine", rnd, lambda: load_engine(ctx))
    for name in peers:
        ctx.procs.label = f"round {rnd}: {name}"
        log(f"round {rnd}/{ctx.args.rounds}: {name}")
        loads = [l for l in ctx.loads if l != "engine"]
        try:
            run = start_peer(ctx, name, rnd)
        except (PeerError, OSError, subprocess.TimeoutExpired) as e:
            for load in loads:
                record(ctx, name, load, rnd, error=f"{name} did not start: {e}")
            continue
        ctx.report["peers"].setdefault(name, {"reload": run.reload_how, "checks": run.checks})
        snapshot = work_snapshot()
        try:
            for load in loads:
                if not run.alive():
                    record(ctx, name, load, rnd, error=f"{name} {describe_exit(exit_status(run.proc))} earlier: "
                                                       f"{tail(run.log)}")
                    continue
                record(ctx, name, load, rnd, lambda: LOAD_FUNCS[load](ctx, run))
                if not run.alive():
                    res = ctx.results[name][load][-1]
                    last = " | ".join(t for t in {tail(run.out, 3): 0, tail(run.log, 3): 0} if t)
                    res["died"] = (f"{name} {describe_exit(exit_status(run.proc))} during this load"
                                   + (f"; its output and log end: {last}" if last else " (nothing in its log)"))
                    log(f"  {res['died']}")
        finally:
            other = other_work_since(snapshot)
            ctx.report["peers"][name].setdefault("other_work", []).append({"round": rnd, **other})
            ctx.report["peers"][name].setdefault("stopped_by", []).append(run.stop())


def record(ctx, peer, load, rnd, fn=None, error=None):
    """Runs one (peer, load) measurement and stores its figures or its error."""
    started = time.monotonic()
    res = {"round": rnd, "loadavg": os.getloadavg()[0]}
    if error is None:
        try:
            res.update(fn())
        except (PeerError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            error = f"{type(e).__name__}: {e}" if not isinstance(e, PeerError) else str(e)
    if error is not None:
        res["error"] = error
    res["seconds"] = round(time.monotonic() - started, 1)
    ctx.results.setdefault(peer, {}).setdefault(load, []).append(res)
    log(f"  {peer} {load}: {short(load, res)}")


def short(load, res):
    """One line about a result, for the progress log."""
    if "error" in res:
        return "ERROR " + res["error"][:200]
    if "na" in res:
        return "n/a"
    keys = {"small50": ("rps", "p99_ms"), "small500": ("rps", "p99_ms"), "close": ("rps",), "medium": ("mb_s",),
            "connect": ("mb_s", "cpu_s_per_gb"), "idle": ("kib_per_conn", "counted"),
            "reload": ("failed", "reloads_sent"), "engine": ("decide_median_ns",)}[load]
    return ", ".join(f"{k} {res[k]:.4g}" if isinstance(res.get(k), float) else f"{k} {res.get(k)}" for k in keys)


def log(msg):
    """Progress on standard output, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def first_line(argv):
    """The first line a version command prints (on either stream)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=clean_env())
        out = (r.stdout + r.stderr).strip()
        return out.splitlines()[0] if out else f"(no output, exit {r.returncode})"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(failed: {e})"


def machine_and_versions(ctx):
    """The machine, and the version of everything measured."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True, timeout=20).stdout
    dirty = [l[3:] for l in git("status", "--porcelain", "--untracked-files=no").splitlines() if l.strip()]
    binary = Path(ctx.hallpass)  # the copy that runs (copy2 kept the original's build time)
    machine = {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(), "memory_mib": mem_kib // 1024,
               "loadavg_at_start": list(os.getloadavg()), "python": platform.python_version()}
    versions = {
        "hallpass": first_line([ctx.hallpass, "--version"]),
        "hallpass_binary": {
            "path": ctx.args.hallpass, "sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
            "mtime": datetime.datetime.fromtimestamp(binary.stat().st_mtime).isoformat(timespec="seconds")},
        "git_commit": git("rev-parse", "HEAD").strip(),
        "git_commit_time": git("log", "-1", "--format=%cI").strip(),
        "git_uncommitted": dirty,
        "squid": first_line(["squid", "-v"]),
        "tinyproxy": first_line(["tinyproxy", "-v"]),
        "privoxy": first_line(["privoxy", "--version"]),
        "e2guardian": first_line(["e2guardian", "-v"]),
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "curl": first_line(["curl", "--version"]),
    }
    return machine, versions


def parse_args(argv):
    """The command line; --quick fills in the defaults it does not set."""
    p = argparse.ArgumentParser(description="hallpass against peer proxies (issue 5); see bench/README.md")
    p.add_argument("--rounds", type=int, help="rounds; medians are over them (default 3; --quick 1)")
    p.add_argument("--duration", type=int, help="seconds per measured wrk run (default 8; --quick 3)")
    p.add_argument("--warmup", type=int, help="seconds of discarded wrk warm-up before each (default 2; --quick 0)")
    p.add_argument("--reload-duration", type=int, help="seconds of the reload load (default 10; --quick 4)")
    p.add_argument("--only", default=",".join(PEERS), help=f"peers, comma-separated (default {','.join(PEERS)})")
    p.add_argument("--loads", default=",".join(LOADS), help=f"loads, comma-separated (default {','.join(LOADS)})")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 s loads, no warm-up")
    p.add_argument("--idle-connections", type=int, default=10000)
    p.add_argument("--idle-wait", type=float, default=2, help="seconds between opening the idle connections and "
                                                              "measuring (default 2)")
    p.add_argument("--connect-timeout", type=int, default=120, help="curl --max-time for the 1 GiB tunnel")
    p.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic blocked domains (default 1,000,000)")
    p.add_argument("--seed", type=int, default=5, help="seed of the synthetic domains (default 5)")
    p.add_argument("--ut1", default="/work/shared/ut1/blacklists", help="UT1 blacklists, read in place")
    p.add_argument("--hallpass", default=str(ROOT / "build-release" / "hallpass"))
    p.add_argument("--bench-rules", default=str(ROOT / "build-release" / "bench_rules"))
    p.add_argument("--origin-workers", type=int, default=1, help="nginx origin worker_processes (default 1)")
    p.add_argument("--wrk-threads", type=int, default=os.cpu_count() or 2, help="wrk -t (default: nproc)")
    p.add_argument("--wrk-timeout", type=int, default=5, help="wrk --timeout seconds (default 5)")
    p.add_argument("--start-timeout", type=float, default=60, help="seconds a peer may take to listen")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"), help="output directory")
    p.add_argument("--name", default="latest", help="output file name without extension (default latest)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    a = p.parse_args(argv)
    defaults = {"rounds": 1, "duration": 3, "warmup": 0, "reload_duration": 4} if a.quick else \
        {"rounds": 3, "duration": 8, "warmup": 2, "reload_duration": 10}
    for k, v in defaults.items():  # options given explicitly win over --quick
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.peers = [x for x in a.only.split(",") if x]
    a.load_list = [x for x in a.loads.split(",") if x]
    for what, got, known in (("peer", a.peers, PEERS), ("load", a.load_list, LOADS)):
        bad = [x for x in got if x not in known]
        if bad:
            p.error(f"unknown {what} {bad}; known: {', '.join(known)}")
    a.ut1 = str(Path(a.ut1).resolve())
    return a


class Context:
    """What every function needs: options, temporary directory, processes, origin, results."""

    def __init__(self, args, tmp, procs):
        self.args, self.tmp, self.procs = args, tmp, procs
        self.peers = [p for p in PEERS if p in args.peers]
        self.loads = [l for l in LOADS if l in args.load_list]
        self.results = {}
        self.report = {"peers": {}}
        self.origin_port = self.origin_proc = self.policy = None
        self.hallpass = self.bench_rules = None  # copies in the temporary directory
        self.synthetic_probe = self.ut1_probe = None


def prepare_hallpass(ctx):
    """Generates the synthetic list and the policy, and checks it with `hallpass check`."""
    d = ctx.tmp / "policy"
    d.mkdir()
    os.chmod(d, 0o755)
    t = time.monotonic()
    synthetic = d / "synthetic-domains.txt"
    ctx.synthetic_probe = generate_domains(synthetic, ctx.args.synthetic, ctx.args.seed)
    log(f"generated {ctx.args.synthetic:,} synthetic domains in {time.monotonic() - t:.1f} s")
    text, cats = hallpass_policy(ctx, synthetic)
    ctx.policy = d / "policy.yaml"
    ctx.policy.write_text(text)
    probe_cat = "gambling" if "gambling" in cats else cats[0]
    ctx.ut1_probe = first_domain(Path(ctx.args.ut1) / probe_cat / "domains")
    t = time.monotonic()
    r = ctx.procs.run([ctx.hallpass, "check", "--config", ctx.policy, "--quiet"], timeout=300)
    check_s = time.monotonic() - t
    if r.returncode != 0:
        raise PeerError(f"hallpass check failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()[-2000:]}")
    ctx.report["policy"] = {"synthetic_domains": ctx.args.synthetic, "seed": ctx.args.seed,
                            "ut1_dir": ctx.args.ut1, "ut1_categories": cats,
                            "blocked_probes": {"synthetic": ctx.synthetic_probe, "ut1": ctx.ut1_probe},
                            "check_seconds": round(check_s, 2), "check_output": (r.stdout + r.stderr).strip()[-1500:]}
    log(f"policy checked in {check_s:.1f} s: {len(cats)} UT1 categories")


def main(argv):
    """The whole run: origin, policy, rounds, results; nothing left running."""
    args = parse_args(argv)
    fd_limit = raise_fd_limit()
    if fd_limit < args.idle_connections + 1000:
        sys.exit(f"peers: open-file limit {fd_limit} is too low for {args.idle_connections} idle connections")
    started_wall, started = datetime.datetime.now(), time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hallpass-peers-"))
    os.chmod(tmp, 0o755)  # the peers that drop privileges read their configs below it
    procs = Processes()
    ctx = Context(args, tmp, procs)
    # Copies of the binaries: a rebuild of build-release/ during the run cannot mix versions.
    (tmp / "bin").mkdir()
    os.chmod(tmp / "bin", 0o755)
    ctx.hallpass = shutil.copy2(args.hallpass, tmp / "bin" / "hallpass")
    ctx.bench_rules = shutil.copy2(args.bench_rules, tmp / "bin" / "bench_rules")
    machine, versions = machine_and_versions(ctx)
    machine["open_files_limit"] = fd_limit
    ctx.report.update({"started": started_wall.isoformat(timespec="seconds"), "machine": machine,
                       "versions": versions, "options": {k: v for k, v in vars(args).items()}})

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job ignores it
        signal.signal(sig, on_signal)
    aborted = None
    try:
        log(f"temporary directory {tmp}")
        ctx.origin_port, ctx.origin_proc = start_origin(ctx)
        log(f"origin nginx on 127.0.0.1:{ctx.origin_port}")
        if "hallpass" in ctx.peers:
            try:
                prepare_hallpass(ctx)
            except PeerError as e:
                log(f"hallpass policy: {e}")
                ctx.report["policy_error"] = str(e)
                ctx.peers.remove("hallpass")
                for load in ctx.loads:
                    record(ctx, "hallpass", load, 0, error=str(e))
        for rnd in range(1, args.rounds + 1):
            run_round(ctx, rnd)
    except KeyboardInterrupt as e:
        aborted = f"interrupted ({e or 'Ctrl-C'})"
    except Exception as e:
        aborted = f"{type(e).__name__}: {e}"
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # cleanup must not be interrupted
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        ctx.report["loadavg_at_end"] = list(os.getloadavg())
        ctx.report["seconds"] = round(time.monotonic() - started, 1)
        ctx.report["commands"] = procs.commands
        if aborted:
            ctx.report["aborted"] = aborted
        name = args.name if not aborted else args.name + "-aborted"
        write_results(ctx, Path(args.results), name)
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not aborted else 130


# ---------------------------------------------------------------------------------------
# Results: JSON with everything, Markdown with the headline, the targets and the figures.

# (load, field, what, unit, better, format)
METRICS = [
    ("small50", "rps", "keep-alive /small (1 KiB), 50 connections", "req/s", "higher", "{:,.0f}"),
    ("small50", "p99_ms", "keep-alive /small, 50 connections: p99 latency", "ms", "lower", "{:.2f}"),
    ("small50", "cpu_us_per_req", "keep-alive /small, 50 connections: CPU per request (direct: the origin's)",
     "us", "lower", "{:,.0f}"),
    ("small500", "rps", "keep-alive /small, 500 connections", "req/s", "higher", "{:,.0f}"),
    ("small500", "p99_ms", "keep-alive /small, 500 connections: p99 latency", "ms", "lower", "{:.2f}"),
    ("close", "rps", "new connection per request, /small, 50 connections", "req/s", "higher", "{:,.0f}"),
    ("close", "cpu_us_per_req", "new connection per request: CPU per request (direct: the origin's)", "us",
     "lower", "{:,.0f}"),
    ("medium", "mb_s", "/medium (1 MiB), 10 connections", "MB/s", "higher", "{:,.0f}"),
    ("connect", "mb_s", "CONNECT tunnel, 1 GiB (direct: loopback without proxy)", "MB/s", "higher", "{:,.0f}"),
    ("connect", "cpu_s_per_gb", "CONNECT tunnel: proxy CPU per GB relayed", "s/GB", "lower", "{:.3f}"),
    ("idle", "kib_per_conn", "10,000 idle connections: memory each", "KiB", "lower", "{:.1f}"),
    ("reload", "failed", "reload every second under load: failed requests", "requests", "lower", "{:,.0f}"),
]
COMPARE = ["direct", "squid", "e2guardian", "tinyproxy", "privoxy"]
TITLES = {"direct": "nginx direct", "hallpass": "hallpass", "squid": "squid", "tinyproxy": "tinyproxy",
          "privoxy": "privoxy", "e2guardian": "e2guardian"}


def values(ctx, peer, load, field):
    """The per-round values of one figure (None for a failed round)."""
    return [r.get(field) if "error" not in r and "na" not in r else None
            for r in ctx.results.get(peer, {}).get(load, [])]


def median(ctx, peer, load, field):
    """The median over the rounds that succeeded, or None."""
    vals = [v for v in values(ctx, peer, load, field) if v is not None]
    return statistics.median(vals) if vals else None


def why_missing(ctx, peer, load):
    """Why a figure is absent: not run, n/a or failed."""
    rows = ctx.results.get(peer, {}).get(load, [])
    if not rows:
        return "not run"
    for r in rows:
        if "na" in r:
            return "n/a"
    return "failed"


def summarize(ctx):
    """Medians per peer, load and figure, and the hallpass ratios."""
    med = {p: {f"{l}.{f}": median(ctx, p, l, f) for l, f, *_ in METRICS} for p in PEERS}
    ratios = {}
    for load, field, *_ in METRICS:
        key = f"{load}.{field}"
        h = med["hallpass"][key]
        ratios[key] = {p: (h / med[p][key] if h is not None and med[p][key] else None) for p in COMPARE}
    return med, ratios


def targets(ctx, med):
    """The issue's targets: (what, measured text, met: True/False/None)."""
    def m(peer, key):
        return med[peer][key]

    out = []

    def ratio_target(label, key, peer, factor, fmt, unit):
        h, p = m("hallpass", key), m(peer, key)
        if h is None or p is None:
            out.append((label, f"hallpass {fmt_or(h, fmt)}, {TITLES[peer]} {fmt_or(p, fmt)}", None))
        else:
            out.append((label, f"{h / p:.2f}x (hallpass {fmt.format(h)} vs {TITLES[peer]} {fmt.format(p)} {unit})",
                        h / p >= factor))

    ratio_target("(a) small-object keep-alive req/s at 50 connections >= 3x squid", "small50.rps", "squid", 3,
                 "{:,.0f}", "req/s")
    ratio_target("(a) ... >= 10x e2guardian", "small50.rps", "e2guardian", 10, "{:,.0f}", "req/s")
    ratio_target("(a) ... >= 0.5x nginx direct", "small50.rps", "direct", 0.5, "{:,.0f}", "req/s")
    h, s = m("hallpass", "small50.p99_ms"), m("squid", "small50.p99_ms")
    out.append(("(b) p99 latency at 50 connections no worse than squid's",
                f"hallpass {fmt_or(h, '{:.2f}')} ms, squid {fmt_or(s, '{:.2f}')} ms",
                None if h is None or s is None else h <= s))
    ratio_target("(c) CONNECT bulk throughput >= 0.6x direct loopback", "connect.mb_s", "direct", 0.6, "{:,.0f}",
                 "MB/s")
    c = m("hallpass", "connect.cpu_s_per_gb")
    out.append(("(c) relay CPU <= 0.15 s per GB", f"{fmt_or(c, '{:.3f}')} s/GB", None if c is None else c <= 0.15))
    k = m("hallpass", "idle.kib_per_conn")
    held = [r.get("counted") for r in ctx.results.get("hallpass", {}).get("idle", []) if "counted" in r]
    out.append(("(d) 10,000 idle connections <= 10 KiB each",
                f"{fmt_or(k, '{:.1f}')} KiB per connection (connections held: "
                f"{', '.join(f'{h:,}' for h in held) or 'n/a'})",
                None if k is None else k <= 10))
    rows = [r for r in ctx.results.get("hallpass", {}).get("reload", []) if "error" not in r]
    if rows:
        failed = [r["failed"] for r in rows]
        detail = "; ".join(f"round {r['round']}: {r['failed']} failed of {r['requests']:,}, "
                           f"{r['reloads_sent']} SIGHUPs, {r.get('reloads_done', '?')} reloads done" for r in rows)
        out.append(("(e) reload under load: 0 failed requests", detail, all(f == 0 for f in failed)))
    else:
        out.append(("(e) reload under load: 0 failed requests", why_missing(ctx, "hallpass", "reload"), None))
    return out


def binary_predates_commit(ver):
    """True if the hallpass binary is older than the commit checked out."""
    try:
        built = datetime.datetime.fromisoformat(ver["hallpass_binary"]["mtime"]).astimezone()
        return built < datetime.datetime.fromisoformat(ver["git_commit_time"])
    except (KeyError, ValueError):
        return False


def fmt_or(v, fmt):
    """A number formatted, or n/a."""
    return "n/a" if v is None else fmt.format(v)


def yes_no(met):
    """A target's verdict for the table."""
    return {True: "**yes**", False: "**no**", None: "unknown"}[met]


def write_results(ctx, outdir, name):
    """Writes NAME.json and NAME.md into outdir."""
    outdir.mkdir(parents=True, exist_ok=True)
    med, ratios = summarize(ctx)
    tg = targets(ctx, med)
    data = dict(ctx.report)
    data.update({"results": ctx.results, "medians": med, "ratios_hallpass_over_peer": ratios,
                 "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in tg]})
    (outdir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (outdir / f"{name}.md").write_text(markdown(ctx, med, ratios, tg))
    log(f"wrote {outdir / name}.md and .json")


def markdown(ctx, med, ratios, tg):
    """The Markdown report."""
    a, rep = ctx.args, ctx.report
    mach, ver = rep["machine"], rep["versions"]
    L = []
    add = L.append
    add("# hallpass against peer proxies (issue 5)\n")
    if rep.get("aborted"):
        add(f"**This run was aborted: {rep['aborted']}. The figures are partial.**\n")
    add(f"Run {rep['started']} by `bench/run.sh` (`bench/peers.py`), {rep['seconds'] / 60:.1f} minutes; "
        f"{a.rounds} round(s), peers in turn with the order rotated each round; every figure is the median of the "
        f"rounds. wrk runs {a.duration:g} s after a {a.warmup:g} s warm-up that is discarded; the reload load runs "
        f"{a.reload_duration:g} s. Machine: {mach['nproc']} x {mach['cpu_model']}, kernel {mach['kernel']}, "
        f"{mach['memory_mib']:,} MiB; load average at start {' '.join(f'{x:.2f}' for x in mach['loadavg_at_start'])}, "
        f"at end {' '.join(f'{x:.2f}' for x in rep['loadavg_at_end'])}. A shared, noisy VM: compare peers within "
        f"this run, not with other runs.\n")
    dirty = ver["git_uncommitted"]
    add(f"hallpass: `{ver['hallpass']}`, source at commit `{ver['git_commit'][:12]}`"
        + (f" (committed {ver['git_commit_time']})" if ver.get("git_commit_time") else "")
        + (f" with uncommitted changes in {', '.join(f'`{d}`' for d in dirty)}" if dirty else "")
        + f"; binary `{ver['hallpass_binary']['path']}` built {ver['hallpass_binary']['mtime']}"
        + (" (before that commit: built from an earlier state of the source)" if binary_predates_commit(ver) else "")
        + f", sha256 `{ver['hallpass_binary']['sha256'][:16]}...`, copied into the temporary directory at the "
          "start so that every round runs the same binary.\n")
    pol = rep.get("policy")
    if pol:
        add(f"hallpass policy: `rules/school.yaml` as shipped + {pol['synthetic_domains']:,} synthetic blocked "
            f"domains (seed {pol['seed']}) + {len(pol['ut1_categories'])} UT1 categories from `{pol['ut1_dir']}`, "
            f"all blocked for pupils (the fallback role 127.0.0.x gets); access log on, to a file. Checked before "
            f"measuring: through hallpass a synthetic domain (`{pol['blocked_probes']['synthetic']}`) and a UT1 domain "
            f"(`{pol['blocked_probes']['ut1']}`) get 403, the origin gets 200.\n")

    add("## Headline: hallpass divided by each peer (medians)\n")
    add("A ratio above 1 means hallpass has more of the figure. *Better* says which way is good. For failed "
        "requests the two counts are shown instead. The loads (bench/README.md, \"Peer comparison\", has the "
        "details): wrk keep-alive GETs of a 1 KiB object at 50 and 500 connections; the same at 50 connections "
        "with `Connection: close`, so every request is a new connection; 1 MiB objects at 10 connections; one "
        "1 GiB download through a CONNECT tunnel with curl; 10,000 idle client connections; wrk at 50 "
        "connections while the peer reloads its configuration every second.\n")
    add("| load | figure | better | " + " | ".join(f"vs {TITLES[p]}" for p in COMPARE) + " |")
    add("|---|---|---|" + "---:|" * len(COMPARE))
    for load, field, what, unit, better, fmt in METRICS:
        key = f"{load}.{field}"
        cells = []
        for p in COMPARE:
            h, v = med["hallpass"][key], med[p][key]
            if field == "failed":
                hs = fmt_or(h, fmt) if h is not None else why_missing(ctx, "hallpass", load)
                ended = any("died" in r for r in ctx.results.get(p, {}).get(load, []))
                cells.append(f"{hs} vs {fmt_or(v, fmt) if v is not None else why_missing(ctx, p, load)}"
                             + (" (it ended)" if ended else ""))
            elif ratios[key][p] is not None:
                cells.append(f"{ratios[key][p]:.2f}x")
            elif load == "connect" and field == "cpu_s_per_gb" and p == "direct":
                cells.append("-")
            else:
                cells.append(why_missing(ctx, p if v is None else "hallpass", load))
        add(f"| {what} | {unit} | {better} | " + " | ".join(cells) + " |")
    add("")
    add("## Targets\n")
    add("| target | measured (hallpass, median of rounds) | met? |")
    add("|---|---|---|")
    for t, m, ok in tg:
        add(f"| {t} | {m} | {yes_no(ok)} |")
    add("")
    add("## Absolute figures\n")
    add("Median and each round, per peer. *direct* is wrk or curl talking to the origin nginx without a proxy.\n")
    for load, field, what, unit, better, fmt in METRICS:
        if not any(ctx.results.get(p, {}).get(load) for p in PEERS):
            continue
        add(f"### {what} ({unit}, {better} is better)\n")
        add("| peer | median | " + " | ".join(f"round {i}" for i in range(1, a.rounds + 1)) + " | notes |")
        add("|---|---:|" + "---:|" * a.rounds + "---|")
        for p in ["hallpass"] + COMPARE:
            rows = ctx.results.get(p, {}).get(load, [])
            if not rows:
                continue
            cells = []
            for i in range(1, a.rounds + 1):
                r = next((r for r in rows if r["round"] in (i, 0)), None)
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append("error")
                elif "na" in r:
                    cells.append("n/a")
                else:
                    cells.append(fmt_or(r.get(field), fmt) if r.get(field) is not None else "-")
            add(f"| {TITLES[p]} | {fmt_or(med[p][f'{load}.{field}'], fmt)} | " + " | ".join(cells)
                + f" | {notes(ctx, p, load, field, rows)} |")
        add("")
    eng = ctx.results.get("hallpass", {}).get("engine", [])
    if eng:
        add("## Policy engine: `bench_rules school rules/school.yaml`\n")
        add("`decide()` for the shipped policy's eleven cases in turn (target 1,000 ns median), and the JSON line "
            "of each round:\n")
        add("| round | median ns | p99 ns | all targets met | load average |")
        add("|---:|---:|---:|---|---:|")
        for r in eng:
            if "error" in r:
                add(f"| {r['round']} | error: {r['error'][:200]} | | | |")
            else:
                add(f"| {r['round']} | {r['decide_median_ns']:.1f} | {r['decide_p99_ns']:.1f} | {r['all_met']} "
                    f"| {r['loadavg']:.2f} |")
        add("")
        add("```json")
        for r in eng:
            if "json" in r:
                add(r["json"])
        add("```\n")
    add("## Peers, versions and reloads\n")
    add("| peer | version | reload in the reload load | checked before measuring |")
    add("|---|---|---|---|")
    vkey = {"direct": "nginx"}
    for p in ctx.peers:
        info = rep["peers"].get(p, {})
        checks = "; ".join(f"{k}: {v}" for k, v in info.get("checks", {}).items()) or "did not start"
        add(f"| {TITLES[p]} | `{ver.get(vkey.get(p, p), '')}` | {info.get('reload', '')} | {checks} |")
    add(f"\nwrk: `{ver['wrk']}`; curl: `{ver['curl']}`; Python {mach['python']}. Configurations: the templates in "
        f"`bench/configs/` and the code in `bench/peers.py` (bench/README.md, \"Peer comparison (issue 5)\").\n")
    peer_notes = observations(ctx)
    if peer_notes:
        add("## Notes on what was seen\n")
        for n in peer_notes:
            add(f"- {n}")
        add("")
    errs = [(p, l, r) for p, loads in ctx.results.items() for l, rows in loads.items() for r in rows if "error" in r]
    if errs:
        add("## Errors\n")
        for p, l, r in errs:
            add(f"- {TITLES.get(p, p)}, {l}, round {r['round']}: {r['error']}")
        add("")
    add("## Other work on the machine while each peer was measured\n")
    add("CPU time taken by processes this bench did not start (from `/proc/stat` minus the bench's own "
        "processes: peers, origin, wrk, curl, itself), and CPU time stolen by the hypervisor, in percent of "
        "both cores over the time each peer's loads ran. Anything far above 0 made that peer's figures "
        "worse. (The load average is in the JSON; it is no guide here: the thread-per-connection peers "
        "run hundreds of threads at 500 connections, which alone lifts it to 10-40.)\n")
    add("| peer | " + " | ".join(f"round {i}: other, steal" for i in range(1, a.rounds + 1)) + " |")
    add("|---|" + "---:|" * a.rounds)
    for p in ctx.peers:
        work = {w["round"]: w for w in rep["peers"].get(p, {}).get("other_work", [])}
        add(f"| {TITLES[p]} | " + " | ".join(
            f"{work[i]['other_pct']:.1f} %, {work[i]['steal_pct']:.1f} %" if i in work else ""
            for i in range(1, a.rounds + 1)) + " |")
    add("")
    add("## Commands (round 1; every command of every round is in the JSON)\n")
    lua = ctx.tmp / "wrk-proxy-small.lua"
    if lua.exists():
        add("wrk's Lua script for /small through a proxy (direct: `wrk.path = \"/small\"`; the new-connection "
            "load adds `wrk.headers[\"Connection\"] = \"close\"`; /medium the same with its path):\n")
        add("```lua")
        add(lua.read_text().rstrip())
        add("```\n")
    add("```sh")
    last = None
    for label, cmd in rep["commands"]:
        if label == "setup" or label.startswith("round 1:"):
            if label != last:
                add(f"# {label}")
                last = label
            add(cmd)
    add("```")
    return "\n".join(L) + "\n"


def observations(ctx):
    """Facts about the peers' behaviour that the figures alone do not explain."""
    out = []
    tiny = [r for r in ctx.results.get("tinyproxy", {}).get("small50", []) if "error" not in r and r["requests"]]
    if tiny and all(r["errors"]["read"] >= 0.9 * r["requests"] for r in tiny):
        out.append("tinyproxy closes the client connection after every response without sending `Connection: "
                   "close`, so wrk sends its next request on a closed connection, counts a read error and "
                   "reconnects: its socket errors (about one per request, in every wrk load, reloads or not) are "
                   "that, not lost responses, and its keep-alive figures are really one connection per request.")
    priv = [r for r in ctx.results.get("privoxy", {}).get("idle", []) if "counted" in r]
    if priv and any(r["counted"] < r["opened"] for r in priv):
        out.append("privoxy accepts idle connections slowly (a thread each): of the 10,000 opened it had accepted "
                   + "/".join(f"{r['counted']:,}" for r in priv) + " when measured (the script waits up to 0.5 s "
                   "per batch of 250 for the peer to accept); its figure is per accepted connection.")
    if "e2guardian" in ctx.peers:
        out.append("e2guardian scans text responses with Debian's default phrase lists (the origin serves "
                   "text/plain): that is its 1 MiB figure.")
    for p in ctx.peers:
        for load, rows in ctx.results.get(p, {}).items():
            died = [r for r in rows if "died" in r]
            if died:
                out.append(f"{TITLES[p]} ended during the {load} load in round(s) "
                           + ", ".join(str(r["round"]) for r in died) + f": {died[0]['died'][:300]}."
                           + (" From then on every request wrk tried failed at once (nothing listening), which "
                              "is why its failed count is so large." if load == "reload" else ""))
        stops = ctx.report["peers"].get(p, {}).get("stopped_by", [])
        if any(s.startswith("SIGKILL") for s in stops):
            out.append(f"{TITLES[p]} did not exit on SIGTERM in time and was killed: " + "; ".join(stops) + ".")
    return out


def notes(ctx, peer, load, field, rows):
    """Extra facts per load: errors, counts, reloads."""
    ok = [r for r in rows if "error" not in r and "na" not in r]
    bits = []
    if load in ("small50", "small500", "close", "medium") and field in ("rps", "mb_s") and ok:
        bits.append("non-2xx " + "/".join(str(r["non2xx"]) for r in ok))
        bits.append("socket errors " + "/".join(str(r["socket_errors"]) for r in ok))
        if load != "medium":
            bits.append("p50 ms " + "/".join(f"{r['p50_ms']:.2f}" for r in ok))
    if load == "connect" and field == "mb_s" and ok and "cpu_s" in ok[0]:
        bits.append("CPU s " + "/".join(f"{r['cpu_s']:.2f}" for r in ok))
    if load == "idle" and ok:
        bits.append("held " + "/".join(f"{r['counted']:,}" for r in ok) + f" of {ok[0]['opened']:,}")
    if load == "reload" and ok:
        bits.append("requests " + "/".join(f"{r['requests']:,}" for r in ok))
        bits.append("reloads sent " + "/".join(str(r["reloads_sent"]) for r in ok))
        if "reloads_done" in ok[0]:
            bits.append("done " + "/".join(str(r["reloads_done"]) for r in ok))
        bits.append("errors " + "/".join(json.dumps(r["errors"]).replace('"', "") for r in ok))
        base = [r for r in ctx.results.get(peer, {}).get("small50", []) if "error" not in r and r["requests"]]
        if base:
            bits.append("the same load without reloads (small50) had " + "/".join(
                f"{1000 * (r['socket_errors'] + r['non2xx']) / r['requests']:.0f}" for r in base)
                + " failed per 1,000 requests")
    for r in rows:
        if "reload_errors" in r:
            bits.append(f"round {r['round']}: {r['reload_errors']['count']} reloads not sent "
                        f"({r['reload_errors']['first'][:120]})")
        if "died" in r:
            bits.append(f"round {r['round']}: {r['died'][:200]}")
        if "error" in r:
            bits.append(f"round {r['round']}: {r['error'][:160]}")
        elif "na" in r:
            bits.append(r["na"])
            break
    return "; ".join(bits).replace("|", "/")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
