#!/usr/bin/env python3
"""HTTPS inspection: hallpass against squid ssl_bump, e2guardian's MITM and nginx as a
TLS-terminating reverse proxy, side by side, on one machine, in one run (issue 10, part 5).

Makes a test CA and a wildcard certificate for *.bench.test, starts an nginx TLS origin on
127.0.0.1, then for each round and each peer starts that peer with an inspecting configuration
written into a temporary directory, checks that it really decrypts (the client trusts only the
peer's interception CA), runs the loads of build-release/tls_load against it and stops it.
Writes bench/results/issue10-https.{md,json}. Python 3 standard library only; the process
handling and /proc readings are bench/peers.py's. How to run it and what each load does:
bench/README.md, section "Issue 10 (HTTPS inspection)". Normally started by bench/run-tls.sh.
"""
import argparse
import datetime
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers as P  # noqa: E402  (the shared process, /proc and template helpers)
from peers import PeerError, log  # noqa: E402

ROOT = P.ROOT
PEERS = ["hallpass", "squid", "e2guardian", "nginx", "hallpass-relay"]
LOADS = ["keepalive", "newconn", "firstvisit", "download"]
TITLES = {"hallpass": "hallpass (inspecting)", "squid": "squid ssl_bump", "e2guardian": "e2guardian MITM",
          "nginx": "nginx TLS reverse proxy", "hallpass-relay": "hallpass relaying (no inspection)"}
WARM_HOST = "www.bench.test"
BLOCKED_PATH = "/bench-blocked-path"  # hallpass's policy blocks it: proof that a request was inspected


# ---------------------------------------------------------------------------------------
# Certificates: the bench's test CA (signs the origin's wildcard certificate) and the
# interception CA squid and e2guardian sign with. All ECDSA P-256, like hallpass's school CA.


def openssl(ctx, *argv):
    r = ctx.procs.run(["openssl", *argv], timeout=60)
    if r.returncode != 0:
        raise PeerError(f"openssl {' '.join(map(str, argv[:2]))}: {r.stderr.strip()[-500:]}")


def make_ca(ctx, d, name):
    """d/ca.crt and d/ca.key: a P-256 root valid for 3 days."""
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    openssl(ctx, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "3", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(d / "ca.key", 0o644)  # a throwaway CA; the peers read it after dropping privileges
    return d / "ca.crt", d / "ca.key"


def make_leaf(ctx, d, ca_crt, ca_key, names):
    """d/leaf.crt and d/leaf.key for `names` (subjectAltName), serverAuth, signed by the CA."""
    ext = d / "leaf.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    openssl(ctx, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", d / "leaf.key", "-out", d / "leaf.csr", "-subj", f"/CN={names[0]}")
    openssl(ctx, "x509", "-req", "-in", d / "leaf.csr", "-CA", ca_crt, "-CAkey", ca_key, "-set_serial",
            str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext, "-out", d / "leaf.crt")
    os.chmod(d / "leaf.key", 0o644)
    return d / "leaf.crt", d / "leaf.key"


def first_visit_names(ctx):
    return [f"h{i:04d}.bench.test" for i in range(1, ctx.args.hosts + 1)]


def bench_names(ctx):
    """(name, address) of every bench name: the warm name at the origin, the first-visit names
    at the second origin (or the same one with --first-visit-origin same)."""
    return [(WARM_HOST, ctx.origin_addr)] + [(n, ctx.first_origin_addr) for n in first_visit_names(ctx)]


def hosts_file(ctx, path):
    """An /etc/hosts-format file of bench_names()."""
    path.write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in bench_names(ctx)))
    os.chmod(path, 0o644)
    return path


# ---------------------------------------------------------------------------------------
# The origin and the peers.


def origin_address():
    """A loopback address whose port 443 is free: the origin listens on port 443, because
    e2guardian decrypts CONNECT tunnels to port 443 only (to other ports it relays them)."""
    rnd = random.Random()
    for _ in range(50):
        addr = f"127.0.{rnd.randint(80, 99)}.{rnd.randint(2, 250)}"
        with socket.socket() as s:
            try:
                s.bind((addr, 443))
                return addr
            except OSError:
                continue
    raise PeerError("no loopback address with port 443 free for the origin")


def wait_listening_at(addr, port, proc, log_file, timeout):
    """Waits (bounded) until addr:port accepts; PeerError if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if P.exit_status(proc) is not None:
            raise PeerError(f"{P.describe_exit(P.exit_status(proc))} before listening: {P.tail(log_file)}")
        try:
            with socket.create_connection((addr, port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.05)
    raise PeerError(f"not listening on {addr}:{port} after {timeout} s: {P.tail(log_file)}")


def start_origin(ctx, name="origin"):
    """nginx with TLS on ORIGIN_ADDR:443: /small (1 KiB text), /big (64 MiB) and /huge (1 GiB),
    both sparse."""
    d = ctx.tmp / name
    www = d / "www"
    www.mkdir(parents=True)
    for p in (d, www):
        os.chmod(p, 0o755)
    (www / "small").write_bytes(b"s" * 1024)
    for name, size in (("big", 64 * 1024 * 1024), ("huge", P.GIB)):
        with open(www / name, "wb") as f:
            f.truncate(size)
    addr, port = origin_address(), 443
    conf = d / "nginx.conf"
    sessions = ("    ssl_session_cache shared:origin:10m;" if ctx.args.origin_resumption == "on" else
                "    ssl_session_cache off;\n    ssl_session_tickets off;")
    conf.write_text(P.render("nginx-tls-origin.conf", DIR=d, ADDR=addr, PORT=port, WORKERS=ctx.args.origin_workers,
                             NOFILE=P.NOFILE, CERT=ctx.origin_cert, KEY=ctx.origin_key, SESSIONS=sessions))
    proc = ctx.procs.start(["nginx", "-c", conf], d / "stdout.log")
    wait_listening_at(addr, port, proc, d / "error.log", 15)
    return addr, port, proc


class Running:
    """A started peer: how the client reaches it, which CA it trusts for it, what to measure."""

    def __init__(self, name, port, proc, log_file, cafile, direct=False, stop_timeout=10):
        self.name, self.port, self.proc, self.log, self.cafile = name, port, proc, log_file, cafile
        self.direct = direct  # True: TLS straight to the peer (nginx), no CONNECT
        self.measure_pid = proc.pid
        self.stop_timeout = stop_timeout
        self.checks = {}

    def alive(self):
        return P.exit_status(self.proc) is None


def prepare_hallpass(ctx):
    """The school CA (`hallpass ca init`), and the policy: rules/school.yaml as shipped, a
    pupils rule with a path on bench.test (so its tunnels must be inspected; it also proves,
    before measuring, that requests inside the tunnel are decided), an `inspection.inspect`
    entry for bench.test where the policy has that section, and the daemon sections of
    configs/hallpass-tls.yaml; checked with `hallpass check`."""
    d = ctx.tmp / "hallpass-ca"
    r = ctx.procs.run([ctx.hallpass, "ca", "init", "--dir", d, "--name", "hallpass bench school"], timeout=60)
    if r.returncode != 0:
        raise PeerError(f"hallpass ca init: exit {r.returncode}: {(r.stdout + r.stderr).strip()[-500:]}")
    ctx.hallpass_ca = d / "ca.crt"
    text = (ROOT / "rules" / "school.yaml").read_text()
    roles = text.index("\nroles:\n")
    staff = text.index("\n  staff:\n", roles)
    rule = ("      - name: bench path\n        action: block\n"
            f"        urls: [\"bench.test{BLOCKED_PATH}\"]\n"
            "        reason: A path rule on the bench's hosts, so that their HTTPS is inspected.\n")
    text = text[:staff + 1] + rule + text[staff + 1:]
    # Where the policy has an `inspection:` section (issue 10 part 3), also an explicit entry
    # for the bench's domain, as a school would write one.
    inspect = "\ninspection:\n"
    if inspect in text:
        at = text.index("\n  inspect:\n", text.index(inspect)) + len("\n  inspect:\n")
        text = text[:at] + ("    - name: bench hosts\n      roles: [pupils]\n      domains: [bench.test]\n"
                            "      why: The bench measures inspected HTTPS (bench/README.md, issue 10).\n") + text[at:]
    hosts = "".join(f"  {n}: {a}\n" for n, a in bench_names(ctx))
    pd = ctx.tmp / "policy"
    pd.mkdir()
    os.chmod(pd, 0o755)
    for f in (ROOT / "rules").glob("*.txt"):  # lists the shipped policy names by relative path
        if f.name == "CMakeLists.txt":
            continue
        shutil.copy(f, pd / f.name)
    # The same policy twice: with the school CA (inspecting) and without (relaying, the reference).
    common = {"ORIGIN_PORT": ctx.origin_port, "HOSTS": hosts.rstrip("\n")}
    ctx.policy = pd / "policy.yaml"
    ctx.policy.write_text(text + P.render(
        "hallpass-tls.yaml", **common,
        INSPECTION_UPSTREAM=f"  ca_file: {ctx.origin_ca}    # the bench's test CA, which signed the origin's certificate",
        INSPECTION_TLS=f"tls:\n  ca_dir: {d}    # the school CA made by `hallpass ca init` for this run\n"
                       "  leaf_cache: 10000              # the shipped default: room for the 1,001 bench hosts"))
    ctx.policy_relay = pd / "policy-relay.yaml"
    ctx.policy_relay.write_text(text + P.render("hallpass-tls.yaml", **common, INSPECTION_UPSTREAM="",
                                                INSPECTION_TLS=""))
    for name, policy in (("hallpass-relay", ctx.policy_relay), ("hallpass", ctx.policy)):
        r = ctx.procs.run([ctx.hallpass, "check", "--config", policy], timeout=120)
        ctx.report[f"{name}_check"] = (r.stdout + r.stderr).strip()[-2000:]
        if r.returncode == 0:
            continue
        why = f"hallpass check refused {policy.name}: exit {r.returncode}: {(r.stdout + r.stderr).strip()[-800:]}"
        if name == "hallpass":
            raise PeerError(why + " (this build of hallpass may not have HTTPS inspection yet)")
        ctx.unavailable["hallpass-relay"] = why


def start_hallpass(ctx, rnd):
    d = P.peer_dir(ctx, "hallpass", rnd)
    port, metrics = P.free_port(), P.free_port()
    log_file = d / "stderr.log"
    proc = ctx.procs.start([ctx.hallpass, "run", "--config", ctx.policy, "--listen", f"127.0.0.1:{port}",
                            "--access-log", d / "access.log", "--state-dir", d / "state", "--metrics-listen",
                            f"127.0.0.1:{metrics}"], log_file)
    return Running("hallpass", port, proc, log_file, ctx.hallpass_ca, stop_timeout=20)


def start_hallpass_relay(ctx, rnd):
    """The same hallpass and policy without a school CA: tunnels are relayed, not decrypted
    (the client sees the origin's own certificate). The reference for what inspection adds."""
    d = P.peer_dir(ctx, "hallpass-relay", rnd)
    port, metrics = P.free_port(), P.free_port()
    log_file = d / "stderr.log"
    proc = ctx.procs.start([ctx.hallpass, "run", "--config", ctx.policy_relay, "--listen", f"127.0.0.1:{port}",
                            "--access-log", d / "access.log", "--state-dir", d / "state", "--metrics-listen",
                            f"127.0.0.1:{metrics}"], log_file)
    return Running("hallpass-relay", port, proc, log_file, ctx.origin_ca, stop_timeout=20)


def start_squid(ctx, rnd):
    d = P.peer_dir(ctx, "squid", rnd, user="proxy")
    port = P.free_port()
    hosts_file(ctx, d / "hosts")
    r = ctx.procs.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", d / "ssl_db", "-M", "64MB"], timeout=30)
    if r.returncode != 0:
        raise PeerError(f"security_file_certgen -c: {(r.stdout + r.stderr).strip()[-400:]}")
    ctx.procs.run(["chown", "-R", "proxy:proxy", d / "ssl_db"], timeout=30)
    conf = d / "squid.conf"
    conf.write_text(P.render("squid-bump.conf", DIR=d, PORT=port, ORIGIN_PORT=ctx.origin_port, NOFILE=P.NOFILE,
                             CA_CERT=ctx.bump_ca, CA_KEY=ctx.bump_key, ORIGIN_CA=ctx.origin_ca))
    proc = ctx.procs.start(["squid", "-N", "-f", conf], d / "stdout.log")
    return Running("squid", port, proc, d / "cache.log", ctx.bump_ca, stop_timeout=15)


E2G_MITM = [  # lines changed in Debian's e2guardian.conf beyond peers.E2G_CHANGES, to turn MITM on
    ("enablessl", "on"),
    ("sslcertificatepath", "'{dir}/upstream-ca/'"),  # a hashed directory holding only the test CA
    ("cacertificatepath", "'{ca}'"),
    ("caprivatekeypath", "'{ca_key}'"),
    ("certprivatekeypath", "'{dir}/cert.key'"),
    ("generatedcertpath", "'{dir}/generatedcerts/'"),
    # Its default validity is 6 December 2014 plus ten years: expired since December 2024, so
    # every certificate it minted would be refused. A window around now instead.
    ("generatedcertstart", "{cert_start}"),
    ("generatedcertend", "{cert_end}"),
]
E2G_F1_MITM = [("sslmitm", "on"), ("mitmcheckcert", "on")]  # in e2guardianf1.conf


def set_conf_lines(text, changes, **values):
    """Replaces `key = ...` (commented or not) with the new value; appends keys not present."""
    import re
    for key, value in changes:
        line = f"#{key} (off for the bench)" if value is None else f"{key} = {value.format(**values)}"
        text, n = re.subn(rf"^#?\s*{key}\s*=.*$", lambda _: line, text, count=1, flags=re.M)
        if n != 1 and value is not None:
            text += f"\n{line}\n"
    return text


def start_e2guardian(ctx, rnd):
    """Debian's configuration changed as peers.E2G_CHANGES (as in the plain-HTTP bench) and
    E2G_MITM/E2G_F1_MITM. e2guardian resolves names with the system resolver, so it runs in
    its own mount namespace where /etc/hosts is the bench's hosts file (a bind mount)."""
    d = P.peer_dir(ctx, "e2guardian", rnd, user="e2guardian")
    port = P.free_port()
    P.own_dir(d / "generatedcerts", "e2guardian")
    up = d / "upstream-ca"
    up.mkdir()
    os.chmod(up, 0o755)
    shutil.copy(ctx.origin_ca, up / "bench-test-ca.pem")
    ctx.procs.run(["openssl", "rehash", up], timeout=30)
    openssl(ctx, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", d / "cert.key")
    os.chmod(d / "cert.key", 0o644)
    text = Path("/etc/e2guardian/e2guardian.conf").read_text()
    now = int(time.time())
    text = set_conf_lines(text, P.E2G_CHANGES + E2G_MITM, port=port, dir=d, ca=ctx.bump_ca, ca_key=ctx.bump_key,
                          cert_start=now - 86400, cert_end=now + 3 * 86400)
    conf = d / "e2guardian.conf"
    conf.write_text(text)
    f1 = set_conf_lines(Path("/etc/e2guardian/e2guardianf1.conf").read_text(), E2G_F1_MITM)
    (d / "e2guardianf1.conf").write_text(f1)
    hosts = hosts_file(ctx, d / "hosts")
    proc = ctx.procs.start(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount --bind {hosts} /etc/hosts && exec e2guardian -N -c {conf}"], d / "stdout.log")
    return Running("e2guardian", port, proc, d / "stdout.log", ctx.bump_ca, stop_timeout=5)


def start_nginx(ctx, rnd):
    d = P.peer_dir(ctx, "nginx", rnd)
    port = P.free_port()
    conf = d / "nginx.conf"
    conf.write_text(P.render("nginx-tls-reverse.conf", DIR=d, PORT=port, WORKERS=ctx.args.origin_workers,
                             NOFILE=P.NOFILE, CERT=ctx.origin_cert, KEY=ctx.origin_key, ORIGIN_ADDR=ctx.origin_addr,
                             FIRST_ORIGIN_ADDR=ctx.first_origin_addr, ORIGIN_PORT=ctx.origin_port,
                             ORIGIN_CA=ctx.origin_ca))
    proc = ctx.procs.start(["nginx", "-c", conf], d / "stdout.log")
    return Running("nginx", port, proc, d / "stdout.log", ctx.origin_ca, direct=True)  # (its start-up errors)


STARTERS = {"hallpass": start_hallpass, "hallpass-relay": start_hallpass_relay, "squid": start_squid, "e2guardian": start_e2guardian, "nginx": start_nginx}


# ---------------------------------------------------------------------------------------
# tls_load.


def tls_load(ctx, run, mode, *extra, timeout):
    """Runs tls_load against the peer; returns its JSON line as a dict."""
    argv = [ctx.tls_load, mode, "--cafile", run.cafile]
    if run.direct:
        argv += ["--connect", f"127.0.0.1:{run.port}", "--port", "443"]
    else:
        argv += ["--proxy", f"127.0.0.1:{run.port}", "--port", ctx.origin_port]
    argv += [str(a) for a in extra]
    r = ctx.procs.run(argv, timeout=timeout)
    line = next((l for l in r.stdout.splitlines() if l.startswith("{")), None)
    if line is None:
        raise PeerError(f"tls_load {mode} exit {r.returncode}: {(r.stdout + r.stderr).strip()[-500:]}")
    return json.loads(line)


def first_error(out):
    """'kind: message' of the first kind of error tls_load counted, or ''."""
    for kind, e in out.get("errors", {}).items():
        return f"{kind} x{e['count']}: {e['first']}"
    return ""


def check_peer(ctx, run):
    """One GET of /small through the peer, trusting only its interception CA; for hallpass also
    the blocked path (403 from inside the tunnel proves that hallpass decrypted it)."""
    out = tls_load(ctx, run, "download", "--host", WARM_HOST, "--path", "/small", "--max-seconds", 20, timeout=60)
    run.checks[f"GET https://{WARM_HOST}/small"] = f"{out['bytes']} bytes" + (
        f"; {first_error(out)}" if out["error_count"] else "")
    if out["error_count"] or out["bytes"] != 1024:
        why = first_error(out)
        if run.name == "hallpass" and ("tls" in out["errors"] or "connect" in out["errors"]):
            raise PeerError("hallpass did not inspect the tunnel: a client trusting only the school CA could not "
                            f"fetch https://{WARM_HOST}/small through it ({why}). This hallpass build does not "
                            "decrypt CONNECT tunnels yet (HTTPS inspection, issue 10, has not landed on this "
                            "branch), or the policy does not inspect bench.test.")
        raise PeerError(f"GET https://{WARM_HOST}/small through {run.name}: expected 1024 bytes, got "
                        f"{out['bytes']}: {why}; log: {P.tail(run.log)}")
    if run.name == "hallpass":
        out = tls_load(ctx, run, "download", "--host", WARM_HOST, "--path", BLOCKED_PATH, "--max-seconds", 20,
                       timeout=60)
        status = out.get("errors", {}).get("status", {}).get("first", "")
        run.checks[f"GET https://{WARM_HOST}{BLOCKED_PATH}"] = status or first_error(out) or "200"
        if " 403" not in status:
            raise PeerError(f"hallpass let https://{WARM_HOST}{BLOCKED_PATH} through or failed otherwise "
                            f"({first_error(out) or '200'}): the path rule was not applied inside the tunnel")


def start_peer(ctx, name, rnd):
    run = STARTERS[name](ctx, rnd)
    try:
        P.wait_listening(run.port, run.proc, run.log, ctx.args.start_timeout)
        check_peer(ctx, run)
        return run
    except BaseException:
        ctx.procs.stop(run.proc, run.stop_timeout)
        raise


def with_cpu(run, fn):
    """fn()'s result and the CPU seconds the peer's process tree spent meanwhile."""
    c0 = P.cpu_seconds(run.measure_pid)
    out = fn()
    return out, P.cpu_seconds(run.measure_pid) - c0


def load_keepalive(ctx, run):
    """(a) Kept-alive GETs of /small over --connections, back to back."""
    a = ctx.args
    common = ["--host", WARM_HOST, "--path", "/small", "--connections", a.connections]
    if a.warmup > 0:
        tls_load(ctx, run, "keepalive", *common, "--duration", a.warmup, timeout=a.warmup + 60)
    out, cpu = with_cpu(run, lambda: tls_load(ctx, run, "keepalive", *common, "--duration", a.duration,
                                              timeout=a.duration + 60))
    r = out["requests"]
    if not r["count"]:
        raise PeerError(f"no request succeeded: {first_error(out)}")
    return {"rps": r["per_s"], "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "p99_ms": r["p99_ms"],
            "requests": r["count"], "cpu_us_per_req": cpu / r["count"] * 1e6, "errors": out["errors"],
            "connections_opened": out["connections_opened"],
            "error_count": out["error_count"]}


def load_newconn(ctx, run):
    """(b) New client connections: CONNECT + full handshake + one GET + close, warm host."""
    a = ctx.args
    common = ["--host", WARM_HOST, "--path", "/small", "--connections", a.newconn_connections]
    if a.warmup > 0:
        tls_load(ctx, run, "newconn", *common, "--duration", min(a.warmup, 2), timeout=a.warmup + 60)
    out, cpu = with_cpu(run, lambda: tls_load(ctx, run, "newconn", *common, "--duration", a.duration,
                                              timeout=a.duration + 60))
    v = out["visits"]
    if not v["count"]:
        raise PeerError(f"no connection succeeded: {first_error(out)}")
    return {"per_s": v["per_s"], "p50_ms": v["p50_ms"], "p90_ms": v["p90_ms"], "p99_ms": v["p99_ms"],
            "visits": v["count"], "cpu_us_per_conn": cpu / v["count"] * 1e6, "errors": out["errors"],
            "error_count": out["error_count"]}


def load_firstvisit(ctx, run):
    """(c) and (d): every first-visit name once (a new leaf each), then all again (warm), while
    --background kept-alive connections to the warm host send paced GETs."""
    a = ctx.args
    out = tls_load(ctx, run, "firstvisit", "--host", WARM_HOST, "--path", "/small", "--hosts", a.hosts,
                   "--connections", a.firstvisit_connections, "--background", a.background, "--rate",
                   a.background_rate, "--baseline", a.baseline, "--pause", a.pause, "--order", a.firstvisit_order,
                   timeout=900)
    f, w, bg = out["first"], out["warm"], out["background"]
    if not f["count"] or not w["count"]:
        raise PeerError(f"no visit succeeded: {first_error(out)}")
    res = {"first_p50_ms": f["p50_ms"], "first_p99_ms": f["p99_ms"], "warm_p50_ms": w["p50_ms"],
           "warm_p99_ms": w["p99_ms"], "first_minus_warm_p50_ms": f["p50_ms"] - w["p50_ms"],
           "first_visits": f["count"], "warm_visits": w["count"], "first_seconds": f["seconds"],
           "bg_baseline_p99_ms": bg["baseline"].get("p99_ms"), "bg_first_p99_ms": bg["during_first"].get("p99_ms"),
           "bg_warm_p99_ms": bg["during_warm"].get("p99_ms"), "bg_after_p99_ms": bg["after"].get("p99_ms"),
           "bg_quiet_p99_ms": bg["quiet"].get("p99_ms"),
           "bg_counts": [bg["baseline"]["count"], bg["during_first"]["count"], bg["during_warm"]["count"],
                         bg["after"]["count"]], "order": out["order"],
           "first_handshake_p50_ms": out["first_handshake"].get("p50_ms"),
           "warm_handshake_p50_ms": out["warm_handshake"].get("p50_ms"),
           "errors": out["errors"], "error_count": out["error_count"], "raw": out}
    if res["bg_baseline_p99_ms"] and res["bg_first_p99_ms"]:
        res["bg_p99_ratio_before"] = res["bg_first_p99_ms"] / res["bg_baseline_p99_ms"]
    if res["bg_quiet_p99_ms"] and res["bg_first_p99_ms"]:
        res["bg_p99_ratio"] = res["bg_first_p99_ms"] / res["bg_quiet_p99_ms"]
    return res


def load_download(ctx, run):
    """(e) One download of --download-path through the peer: MB/s and the peer's CPU s/GB."""
    a = ctx.args
    out, cpu = with_cpu(run, lambda: tls_load(ctx, run, "download", "--host", WARM_HOST, "--path", a.download_path,
                                              "--max-seconds", a.download_timeout, timeout=a.download_timeout + 60))
    if out["error_count"] or not out["bytes"]:
        raise PeerError(f"{out['bytes']:,} bytes in {out['seconds']:.1f} s: {first_error(out)}")
    return {"mb_s": out["mb_s"], "bytes": out["bytes"], "cpu_s": cpu, "cpu_s_per_gb": cpu / (out["bytes"] / 1e9)}


LOAD_FUNCS = {"keepalive": load_keepalive, "newconn": load_newconn, "firstvisit": load_firstvisit,
              "download": load_download}


# ---------------------------------------------------------------------------------------
# The run.


def record(ctx, peer, load, rnd, fn=None, error=None):
    started = time.monotonic()
    res = {"round": rnd}
    if error is None:
        try:
            res.update(fn())
        except (PeerError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            error = str(e) if isinstance(e, PeerError) else f"{type(e).__name__}: {e}"
    if error is not None:
        res["error"] = error
    res["seconds"] = round(time.monotonic() - started, 1)
    ctx.results.setdefault(peer, {}).setdefault(load, []).append(res)
    brief = res.get("error", "")[:300] or ", ".join(
        f"{k} {v:.4g}" for k, v in res.items() if isinstance(v, float) and k in SHOW.get(load, ()))
    log(f"  {peer} {load}: {brief}")


SHOW = {"keepalive": ("rps", "p99_ms", "cpu_us_per_req"), "newconn": ("per_s", "p99_ms", "cpu_us_per_conn"),
        "firstvisit": ("first_p50_ms", "warm_p50_ms", "first_handshake_p50_ms", "warm_handshake_p50_ms", "first_p99_ms", "bg_quiet_p99_ms", "bg_first_p99_ms"),
        "download": ("mb_s", "cpu_s_per_gb")}


def run_round(ctx, rnd):
    peers = ctx.peers[(rnd - 1) % len(ctx.peers):] + ctx.peers[:(rnd - 1) % len(ctx.peers)]
    for name in peers:
        ctx.procs.label = f"round {rnd}: {name}"
        log(f"round {rnd}/{ctx.args.rounds}: {name}")
        if name in ctx.unavailable:
            for load in ctx.loads:
                record(ctx, name, load, rnd, error=ctx.unavailable[name])
            continue
        try:
            run = start_peer(ctx, name, rnd)
        except (PeerError, OSError, subprocess.TimeoutExpired) as e:
            for load in ctx.loads:
                record(ctx, name, load, rnd, error=f"{name} did not start or did not inspect: {e}")
            continue
        ctx.report["peers"].setdefault(name, {"checks": run.checks})
        snapshot = P.work_snapshot()
        try:
            for load in ctx.loads:
                if not run.alive():
                    record(ctx, name, load, rnd, error=f"{name} {P.describe_exit(P.exit_status(run.proc))} earlier: "
                                                       f"{P.tail(run.log)}")
                    continue
                record(ctx, name, load, rnd, lambda: LOAD_FUNCS[load](ctx, run))
        finally:
            ctx.report["peers"][name].setdefault("other_work", []).append({"round": rnd,
                                                                             **P.other_work_since(snapshot)})
            ctx.report["peers"][name].setdefault("stopped_by", []).append(ctx.procs.stop(run.proc, run.stop_timeout))


FIGURES = [  # (load, field, what, unit, better, format)
    ("keepalive", "rps", "keep-alive GETs of 1 KiB", "req/s", "higher", ",.0f"),
    ("keepalive", "p99_ms", "keep-alive GETs of 1 KiB: p99", "ms", "lower", ".2f"),
    ("keepalive", "cpu_us_per_req", "keep-alive GETs: the peer's CPU per request", "us", "lower", ",.0f"),
    ("newconn", "per_s", "new TLS connections (handshake + GET + close), warm host", "per s", "higher", ",.0f"),
    ("newconn", "p50_ms", "new TLS connections: p50", "ms", "lower", ".2f"),
    ("newconn", "p99_ms", "new TLS connections: p99", "ms", "lower", ".2f"),
    ("newconn", "cpu_us_per_conn", "new TLS connections: the peer's CPU per connection", "us", "lower", ",.0f"),
    ("firstvisit", "first_p50_ms", "first visit to a new host: p50", "ms", "lower", ".2f"),
    ("firstvisit", "first_p99_ms", "first visit to a new host: p99", "ms", "lower", ".2f"),
    ("firstvisit", "warm_p50_ms", "the same hosts again (warm): p50", "ms", "lower", ".2f"),
    ("firstvisit", "warm_p99_ms", "the same hosts again (warm): p99", "ms", "lower", ".2f"),
    ("firstvisit", "first_minus_warm_p50_ms", "first minus warm, p50", "ms", "lower", ".2f"),
    ("firstvisit", "first_handshake_p50_ms", "first visit, up to the client's handshake done: p50 (paired)", "ms",
     "lower", ".2f"),
    ("firstvisit", "warm_handshake_p50_ms", "warm visit, up to the client's handshake done: p50 (paired)", "ms",
     "lower", ".2f"),
    ("firstvisit", "bg_baseline_p99_ms", "other keep-alive connections: p99 before the burst", "ms", "lower", ".2f"),
    ("firstvisit", "bg_after_p99_ms", "other keep-alive connections: p99 after the burst", "ms", "lower", ".2f"),
    ("firstvisit", "bg_quiet_p99_ms", "other keep-alive connections: p99 before and after, together (the baseline)",
     "ms", "lower", ".2f"),
    ("firstvisit", "bg_first_p99_ms", "other keep-alive connections: p99 during the first visits", "ms", "lower",
     ".2f"),
    ("firstvisit", "bg_p99_ratio", "... during / baseline", "x", "lower", ".2f"),
    ("firstvisit", "bg_p99_ratio_before", "... during / before only", "x", "lower", ".2f"),
    ("download", "mb_s", "one large download", "MB/s", "higher", ",.0f"),
    ("download", "cpu_s_per_gb", "one large download: the peer's CPU", "s/GB", "lower", ".2f"),
]


def medians(ctx):
    med = {}
    for p in PEERS:
        for load, field, *_ in FIGURES:
            vals = [r[field] for r in ctx.results.get(p, {}).get(load, []) if "error" not in r
                    and r.get(field) is not None]
            med.setdefault(p, {})[f"{load}.{field}"] = statistics.median(vals) if vals else None
    return med


def targets(med):
    """The issue's targets: (text, measured, met or None when not measurable)."""
    h, s, n = med["hallpass"], med["squid"], med["nginx"]

    def ratio(a, b):
        return a / b if a is not None and b else None
    out = []
    r = ratio(h["keepalive.rps"], s["keepalive.rps"])
    out.append(("inspected keep-alive req/s >= 3x squid ssl_bump", r, None if r is None else r >= 3))
    r = ratio(h["keepalive.rps"], n["keepalive.rps"])
    out.append(("inspected keep-alive req/s >= 0.7x nginx TLS reverse proxy", r, None if r is None else r >= 0.7))
    r = ratio(h["newconn.per_s"], s["newconn.per_s"])
    out.append(("warm new-connection handshakes/s >= 2x squid", r, None if r is None else r >= 2))
    d = h["firstvisit.first_minus_warm_p50_ms"]
    out.append(("first visit p50 <= warm p50 + 1 ms", d, None if d is None else d <= 1.0))
    r = h["firstvisit.bg_p99_ratio"]
    out.append(("other connections' p99 during the burst <= 2x baseline", r, None if r is None else r <= 2))
    return out


def one_line(text):
    """An error message on one Markdown line."""
    return " / ".join(l.strip() for l in text.splitlines() if l.strip()).replace("|", "/")


def fmt(v, f):
    return "-" if v is None else format(v, f)


def report_md(ctx, med, tg):
    a, rep = ctx.args, ctx.report
    L = []
    add = L.append
    add(f"# HTTPS inspection: hallpass against its peers ({rep['started']})\n")
    add(f"Command: `{rep['command']}`. {a.rounds} round(s); medians over rounds. Keep-alive and new-connection "
        f"loads {a.duration} s each (warm-up {a.warmup} s); {a.connections} keep-alive connections; "
        f"{a.newconn_connections} concurrent new connections; {a.hosts} first-visit hosts over "
        f"{a.firstvisit_connections} connections, each visited again (warm) at least {a.pause:g} s later "
        f"({a.firstvisit_order}), with {a.background} background connections at "
        f"{a.background_rate:g} GETs/s each; the first-visit names' origin: {a.first_visit_origin}; the origins "
        f"resume TLS sessions: {a.origin_resumption}; download `{a.download_path}`.\n")
    m = rep["machine"]
    add(f"Machine: {m['nproc']} x {m['cpu_model']}, kernel {m['kernel']}; load average at start "
        f"{' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}, at end "
        f"{' '.join(f'{x:.2f}' for x in rep['loadavg_at_end'])}. A shared, noisy VM: compare peers within this run.\n")
    v = rep["versions"]
    add(f"hallpass `{v['hallpass']}` at commit `{v['git_commit'][:12]}`; squid `{v['squid']}`; e2guardian "
        f"`{v['e2guardian']}`; nginx `{v['nginx']}`; OpenSSL `{v['openssl']}`.\n")
    add("## Targets (issue 10)\n")
    add("| target | measured | met? |")
    add("|---|---:|---|")
    for t, val, ok in tg:
        add(f"| {t} | {fmt(val, '.2f')} | {'n/a (not measured)' if ok is None else ('**yes**' if ok else '**no**')} |")
    add("")
    add("## Figures (medians of rounds)\n")
    add("| load | unit | better | " + " | ".join(TITLES[p] for p in PEERS) + " |")
    add("|---|---|---|" + "---:|" * len(PEERS))
    for load, field, what, unit, better, f in FIGURES:
        if load not in ctx.loads:
            continue
        add(f"| {what} | {unit} | {better} | " + " | ".join(fmt(med[p][f"{load}.{field}"], f) for p in PEERS) + " |")
    add("")
    add("## Every round\n")
    for p in PEERS:
        rows = [r for load in ctx.loads for r in ctx.results.get(p, {}).get(load, [])]
        errs = {r.get("error") for r in rows}
        if rows and len(errs) == 1 and None not in errs:  # the same error everywhere: say it once
            add(f"- {TITLES[p]}, every load and round: **error**: {one_line(errs.pop())}")
            continue
        for load in ctx.loads:
            for r in ctx.results.get(p, {}).get(load, []):
                if "error" in r:
                    add(f"- {TITLES[p]}, {load}, round {r['round']}: **error**: {one_line(r['error'])}")
                else:
                    figs = ", ".join(f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float) and k != "seconds")
                    errs = f"; errors {r['error_count']}: {json.dumps(r['errors'])[:300]}" if r.get("error_count") else ""
                    add(f"- {TITLES[p]}, {load}, round {r['round']}: {figs}{errs}")
    add("")
    notes = observations(ctx)
    if notes:
        add("## Notes on what was seen\n")
        for n in notes:
            add(f"- {n}")
        add("")
    add("## Checks before measuring\n")
    for p, info in rep["peers"].items():
        add(f"- {TITLES[p]}: " + "; ".join(f"{k}: {v}" for k, v in info.get("checks", {}).items()))
    add("")
    add("## Other work on the machine while each peer was measured\n")
    add("CPU used by processes this bench did not start, and steal, in percent of both cores.\n")
    for p, info in rep["peers"].items():
        add(f"- {TITLES[p]}: " + "; ".join(f"round {w['round']}: {w['other_pct']} %, steal {w['steal_pct']} %"
                                           for w in info.get("other_work", [])))
    add("")
    add("## Commands (round 1; every command is in the JSON)\n")
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
    for p in PEERS:
        rows = [r for r in ctx.results.get(p, {}).get("keepalive", []) if "error" not in r]
        if rows and all(r["connections_opened"] >= 0.5 * r["requests"] for r in rows):
            out.append(f"{TITLES[p]} closed the client connection after every response inside the decrypted "
                       "tunnel (" + "/".join(f"{r['connections_opened']:,} connections for {r['requests']:,} requests"
                                             for r in rows)
                       + "), so its keep-alive figure is really a new connection, CONNECT and TLS handshake per "
                         "request (the reconnection is not in the latencies, which time each GET).")
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description="HTTPS inspection: hallpass against its peers (issue 10); "
                                            "see bench/README.md")
    p.add_argument("--quick", action="store_true", help="smoke run (< 3 min): 1 round, 3 s loads, 200 hosts, "
                                                        "a 64 MiB download")
    p.add_argument("--rounds", type=int, help="default 3 (--quick 1)")
    p.add_argument("--duration", type=int, help="seconds per keep-alive and new-connection run (8; --quick 3)")
    p.add_argument("--warmup", type=int, help="seconds of discarded warm-up before each (2; --quick 0)")
    p.add_argument("--hosts", type=int, help="first-visit host names (1000; --quick 200)")
    p.add_argument("--download-path", help="/huge (1 GiB; --quick /big, 64 MiB)")
    p.add_argument("--only", default=",".join(PEERS), help=f"peers (default {','.join(PEERS)})")
    p.add_argument("--loads", default=",".join(LOADS), help=f"loads (default {','.join(LOADS)})")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--newconn-connections", type=int, default=16, help="concurrent new connections (default 16)")
    p.add_argument("--firstvisit-connections", type=int, default=4, help="concurrent first visits (default 4)")
    p.add_argument("--background", type=int, default=8, help="paced keep-alive connections during the first "
                                                              "visits (default 8)")
    p.add_argument("--background-rate", type=float, default=20, help="GETs/s per background connection (20)")
    p.add_argument("--baseline", type=float, default=3, help="seconds of background alone before the burst, and "
                                                             "again after it (3)")
    p.add_argument("--firstvisit-order", choices=("paired", "passes"), default="paired",
                   help="warm visits interleaved with the first visits, each at least --pause after its name's "
                        "first (paired, the default), or a second pass after the first (passes)")
    p.add_argument("--pause", type=float, default=2.2, help="seconds between a name's first and warm visits, so "
                                                            "that pooled origin connections expire (2.2)")
    p.add_argument("--download-timeout", type=int, default=180, help="seconds a download may take (180)")
    p.add_argument("--origin-workers", type=int, default=1)
    p.add_argument("--first-visit-origin", choices=("separate", "same"), default="separate",
                   help="the first-visit names served by a second origin nginx (separate, the default: new "
                        "sites are other servers) or by the warm name's origin (same)")
    p.add_argument("--origin-resumption", choices=("on", "off"), default="on",
                   help="the origins resume TLS sessions (on, the default, as real origins do) or not (off: "
                        "every connection to an origin is a full handshake, so that a warm visit differs from a "
                        "first one by the leaf alone)")
    p.add_argument("--start-timeout", type=float, default=60)
    p.add_argument("--hallpass", default=str(ROOT / "build-release" / "hallpass"))
    p.add_argument("--tls-load", default=str(ROOT / "build-release" / "tls_load"))
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--name", default="issue10-https", help="output file name without extension")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args(argv)
    defaults = ({"rounds": 1, "duration": 3, "warmup": 0, "hosts": 200, "download_path": "/big"} if a.quick else
                {"rounds": 3, "duration": 8, "warmup": 2, "hosts": 1000, "download_path": "/huge"})
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.peers = [x for x in a.only.split(",") if x]
    a.load_list = [x for x in a.loads.split(",") if x]
    for what, got, known in (("peer", a.peers, PEERS), ("load", a.load_list, LOADS)):
        bad = [x for x in got if x not in known]
        if bad:
            p.error(f"unknown {what} {bad}; known: {', '.join(known)}")
    if not 1 <= a.hosts <= 9999:
        p.error("--hosts must be 1 to 9999 (names h0001 ... h9999)")
    return a


class Context:
    def __init__(self, args, tmp, procs):
        self.args, self.tmp, self.procs = args, tmp, procs
        self.peers = [p for p in PEERS if p in args.peers]
        self.loads = [l for l in LOADS if l in args.load_list]
        self.results, self.report, self.unavailable = {}, {"peers": {}}, {}
        self.first_origin_addr = self.first_origin_proc = None
        self.origin_port = self.origin_proc = self.policy = self.policy_relay = self.hallpass_ca = None


def main(argv):
    args = parse_args(argv)
    P.raise_fd_limit()
    started = datetime.datetime.now()
    tmp = Path(tempfile.mkdtemp(prefix="hallpass-tls-peers-"))
    os.chmod(tmp, 0o755)
    procs = P.Processes()
    ctx = Context(args, tmp, procs)
    (tmp / "bin").mkdir()
    os.chmod(tmp / "bin", 0o755)
    ctx.hallpass = shutil.copy2(args.hallpass, tmp / "bin" / "hallpass")
    ctx.tls_load = shutil.copy2(args.tls_load, tmp / "bin" / "tls_load")
    machine, versions = P.machine_and_versions(ctx)
    versions["openssl"] = P.first_line(["openssl", "version"])
    ctx.report.update({"started": started.isoformat(timespec="seconds"), "machine": machine, "versions": versions,
                       "options": vars(args), "command": " ".join(["bench/run-tls.sh", *argv])})

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    aborted = None
    try:
        log(f"temporary directory {tmp}")
        ca_crt, ca_key = make_ca(ctx, tmp / "test-ca", "hallpass bench test CA (origin)")
        ctx.origin_ca = ca_crt
        ctx.origin_cert, ctx.origin_key = make_leaf(ctx, tmp / "test-ca", ca_crt, ca_key, ["*.bench.test", "bench.test"])
        ctx.bump_ca, ctx.bump_key = make_ca(ctx, tmp / "bump-ca", "hallpass bench interception CA (squid, e2guardian)")
        ctx.origin_addr, ctx.origin_port, ctx.origin_proc = start_origin(ctx)
        log(f"origin nginx (TLS) on {ctx.origin_addr}:{ctx.origin_port}")
        if args.first_visit_origin == "separate":
            ctx.first_origin_addr, _, ctx.first_origin_proc = start_origin(ctx, "first-visit-origin")
            log(f"first-visit names' origin nginx (TLS) on {ctx.first_origin_addr}:{ctx.origin_port}")
        else:
            ctx.first_origin_addr = ctx.origin_addr
        if {"hallpass", "hallpass-relay"} & set(ctx.peers):
            try:
                prepare_hallpass(ctx)
            except PeerError as e:
                log(f"hallpass: {e}")
                ctx.unavailable["hallpass"] = str(e)
                if ctx.policy_relay is None:
                    ctx.unavailable["hallpass-relay"] = str(e)
            if "hallpass-relay" in ctx.unavailable:
                log(f"hallpass-relay: {ctx.unavailable['hallpass-relay']}")
        for rnd in range(1, args.rounds + 1):
            run_round(ctx, rnd)
    except KeyboardInterrupt as e:
        aborted = f"interrupted ({e or 'Ctrl-C'})"
    finally:
        procs.stop_all()
    ctx.report.update({"loadavg_at_end": list(os.getloadavg()), "results": ctx.results, "commands": procs.commands,
                       "seconds": round((datetime.datetime.now() - started).total_seconds())})
    if aborted:
        ctx.report["aborted"] = aborted
    med = medians(ctx)
    tg = targets(med)
    ctx.report["medians"], ctx.report["targets"] = med, [{"target": t, "measured": v, "met": ok} for t, v, ok in tg]
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    if aborted:  # an interrupted run does not replace the last complete one
        args.name += "-aborted"
    (out / f"{args.name}.json").write_text(json.dumps(ctx.report, indent=1, default=str) + "\n")
    (out / f"{args.name}.md").write_text(report_md(ctx, med, tg))
    log(f"wrote {out / args.name}.md and .json")
    if not args.keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"kept {tmp}")
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
