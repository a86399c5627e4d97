#!/usr/bin/env python3
"""Logins on the explicit proxy, and the transparent gateway: hallpass against squid with the
same logins, on one machine, in one run (issue 12, "Tests and bench").

One nginx origin (1 KiB /small), one slapd (a test tree of users and groups, StartTLS) and one
Kerberos KDC (test realm, HTTP/ service keytab, a client ticket), all started here in a
temporary directory and shared by every contender of the run. Contenders (--only):

  hallpass-open        hallpass without logins                                  (a)
  hallpass-basic       hallpass, `login: required`, Basic checked against slapd (b)
  squid-basic          squid 5, basic_ldap_auth (+ ext_ldap_group_acl) on slapd (c)
  hallpass-negotiate   hallpass, `logins.negotiate` on the KDC (if this build has it)
  squid-negotiate      squid 5, negotiate_kerberos_auth on the same keytab
  hallpass-explicit    hallpass in a gateway network namespace, the explicit listener
  hallpass-transparent the same hallpass, its transparent listener (nftables redirect)

Loads: `keepalive` (N kept-alive connections, fixed duration) and `newconn` (one new
connection per request). Basic and unauthenticated loads are wrk (-s configs/wrk-auth.lua);
Negotiate loads are build-release/negotiate_load (SPNEGO through libgssapi_krb5).
Writes bench/results/issue12-logins.{md,json}. How to run it and what it measures:
bench/README.md, "Issue 12: logins". Python 3 standard library only; the process handling,
/proc readings and templates are bench/peers.py's.
"""
import argparse
import base64
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers as P  # noqa: E402
from peers import PeerError, log  # noqa: E402

ROOT = P.ROOT
# hallpass-open's keep-alive load under negotiate_load --tokens no: what Negotiate is compared with.
NL_BASELINE = "keepalive, negotiate_load without tokens"
CONTENDERS = ["hallpass-open", "hallpass-basic", "squid-basic", "hallpass-negotiate", "squid-negotiate",
              "hallpass-explicit", "hallpass-transparent"]
LOADS = ["keepalive", "newconn"]
TITLES = {"hallpass-open": "hallpass, no logins (a)", "hallpass-basic": "hallpass, Basic over LDAP (b)",
          "squid-basic": "squid, basic_ldap_auth (c)", "hallpass-negotiate": "hallpass, Negotiate",
          "squid-negotiate": "squid, negotiate_kerberos_auth", "hallpass-explicit": "hallpass explicit (netns)",
          "hallpass-transparent": "hallpass transparent (netns)"}
BASE = "dc=school,dc=test"
REALM = "BENCH.TEST"
PROXY_NAME = "proxy.bench.test"  # the service principal's host: HTTP/proxy.bench.test@BENCH.TEST
STAFF_GROUP, PUPIL_GROUP = "Staff", "Pupils"


# ---------------------------------------------------------------------------------------
# The directory: slapd from Debian, as tests/integration/logins_test.py starts it.


def start_slapd(ctx):
    """slapd on 127.0.0.1:PORT (ldap:// with StartTLS, a self-signed certificate), an mdb
    database made with slapadd: ou=people with --users users (u001 ... with password
    u001-pw; odd ones in Staff, even ones in Pupils) and alice (Pupils), ou=groups with Staff
    and Pupils."""
    d = ctx.tmp / "slapd"
    (d / "db").mkdir(parents=True)
    os.chmod(d, 0o755)
    port = P.free_port()
    r = ctx.procs.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                       "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", d / "key.pem",
                       "-out", d / "cert.pem"], timeout=60)
    if r.returncode != 0:
        raise PeerError(f"openssl for slapd: {r.stderr[-400:]}")
    for f in ("key.pem", "cert.pem"):
        os.chmod(d / f, 0o644)  # a throwaway key; squid's helpers read the certificate as `proxy`
    (d / "slapd.conf").write_text(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 104857600
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw admin-secret
directory {d}/db
index uid,cn,member eq
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
""")
    users = [f"u{i:03d}" for i in range(1, ctx.args.users + 1)]
    tree = (f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: School\ndc: school\n\n"
            f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n"
            f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n")
    tree += "".join(f"dn: uid={u},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: {u}\nsn: {u}\n"
                    f"userPassword: {u}-pw\n\n" for u in users)
    # alice: the Kerberos client's name (start_kdc), a pupil, so that a Negotiate sign-in's
    # group lookup finds her as it would find a domain user, and chooses (a)'s role.
    tree += (f"dn: uid=alice,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: alice\ncn: alice\nsn: alice\n"
             f"userPassword: alice-pw\n\n")
    for group, members in ((STAFF_GROUP, users[0::2]), (PUPIL_GROUP, users[1::2] + ["alice"])):
        tree += f"dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n"
        tree += "".join(f"member: uid={u},ou=people,{BASE}\n" for u in members) + "\n"
    (d / "tree.ldif").write_text(tree)
    r = ctx.procs.run(["slapadd", "-f", d / "slapd.conf", "-l", d / "tree.ldif"], timeout=120)
    if r.returncode != 0:
        raise PeerError(f"slapadd: {(r.stdout + r.stderr)[-600:]}")
    proc = ctx.procs.start(["slapd", "-f", d / "slapd.conf", "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
                           d / "slapd.log")
    P.wait_listening(port, proc, d / "slapd.log", 20)
    # squid's LDAP helpers (-Z) and ldapwhoami verify slapd's certificate with this.
    os.environ["LDAPTLS_CACERT"] = str(d / "cert.pem")
    # The directory answers a StartTLS bind as a user before anything is measured.
    r = ctx.procs.run(["ldapwhoami", "-x", "-ZZ", "-H", f"ldap://127.0.0.1:{port}", "-D",
                       f"uid={users[0]},ou=people,{BASE}", "-w", f"{users[0]}-pw"], timeout=20)
    if r.returncode != 0:
        raise PeerError(f"ldapwhoami against the bench's slapd: {(r.stdout + r.stderr).strip()[-400:]}")
    ctx.slapd = {"port": port, "ca": d / "cert.pem", "users": users, "proc": proc}
    return ctx.slapd


# ---------------------------------------------------------------------------------------
# The KDC: krb5kdc from Debian with a test realm in a temporary directory.


def start_kdc(ctx):
    """krb5kdc for BENCH.TEST on 127.0.0.1:PORT (UDP and TCP), a database made with
    kdb5_util, the principals alice (a client) and HTTP/proxy.bench.test (the proxy's, in a
    keytab), and alice's ticket in a credential cache (kinit). Sets KRB5_CONFIG,
    KRB5_KDC_PROFILE, KRB5CCNAME and KRB5RCACHEDIR in this process's environment, so that
    every process started afterwards (the proxies, squid's helpers, the load client) uses them."""
    d = ctx.tmp / "kdc"
    d.mkdir()
    os.chmod(d, 0o755)
    port = P.free_port()
    (d / "krb5.conf").write_text(f"""[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  ignore_acceptor_hostname = false
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{port}
  }}
[domain_realm]
  .bench.test = {REALM}
  bench.test = {REALM}
""")
    (d / "kdc.conf").write_text(f"""[kdcdefaults]
  kdc_ports = {port}
  kdc_tcp_ports = {port}
[realms]
  {REALM} = {{
    database_name = {d}/principal
    key_stash_file = {d}/stash
    acl_file = {d}/kadm5.acl
    max_life = 10h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal
  }}
[logging]
  kdc = FILE:{d}/kdc.log
""")
    (d / "kadm5.acl").write_text("")
    (d / "rcache").mkdir()
    os.chmod(d / "rcache", 0o1777)  # the replay cache of hallpass (root) and squid's helper (proxy)
    os.environ.update({"KRB5_CONFIG": str(d / "krb5.conf"), "KRB5_KDC_PROFILE": str(d / "kdc.conf"),
                       "KRB5CCNAME": f"FILE:{d}/alice.ccache", "KRB5RCACHEDIR": str(d / "rcache")})
    steps = [["kdb5_util", "create", "-s", "-r", REALM, "-P", "bench-master-pw"],
             ["kadmin.local", "-r", REALM, "-q", "addprinc -pw alice-pw alice"],
             ["kadmin.local", "-r", REALM, "-q", f"addprinc -randkey HTTP/{PROXY_NAME}"],
             ["kadmin.local", "-r", REALM, "-q", f"ktadd -k {d}/http.keytab HTTP/{PROXY_NAME}"]]
    for argv in steps:
        r = ctx.procs.run(argv, timeout=60)
        if r.returncode != 0:
            raise PeerError(f"{' '.join(argv[:2])}: {(r.stdout + r.stderr).strip()[-400:]}")
    os.chmod(d / "http.keytab", 0o644)  # squid's helper runs as `proxy`; a throwaway key
    proc = ctx.procs.start(["krb5kdc", "-n", "-P", d / "kdc.pid"], d / "krb5kdc.out")
    P.wait_listening(port, proc, d / "krb5kdc.out", 20)
    r = subprocess.run(["kinit", "alice"], input="alice-pw\n", capture_output=True, text=True, timeout=30,
                       env=P.clean_env())
    ctx.procs.note(["kinit", "alice"])
    if r.returncode != 0:
        raise PeerError(f"kinit alice: {(r.stdout + r.stderr).strip()[-400:]}")
    ctx.kdc = {"port": port, "dir": d, "keytab": d / "http.keytab", "proc": proc,
               "principal": f"HTTP/{PROXY_NAME}@{REALM}"}
    return ctx.kdc


# ---------------------------------------------------------------------------------------
# hallpass: the shipped policy, the daemon sections of the peer bench, and a logins section.


def hallpass_policy(ctx, logins):
    """rules/school.yaml with `groups:` on pupils and staff, configs/hallpass-daemon.yaml, and
    `logins` (a YAML text, or empty)."""
    text = (ROOT / "rules" / "school.yaml").read_text()
    for role, group in (("staff", STAFF_GROUP), ("pupils", PUPIL_GROUP)):
        head = f"\n  {role}:\n"
        if text.count(head) != 1:
            raise PeerError(f"rules/school.yaml: no unique '{role}:' role")
        text = text.replace(head, f"{head}    groups: [{group}]\n", 1)
    return text + P.render("hallpass-daemon.yaml", ORIGIN_PORT=ctx.origin_port) + logins


def ldap_section(ctx):
    s = ctx.slapd
    return f"""  ldap:
    url: "ldap://127.0.0.1:{s['port']}"
    ca_file: "{s['ca']}"
    base_dn: "ou=people,{BASE}"
    user_attribute: uid
    group_base_dn: "ou=groups,{BASE}"
    group_member_attribute: member
    cache_ttl: {ctx.args.cache_ttl}s
    max_in_flight: {ctx.args.helpers}
"""


def logins_basic(ctx):
    return ("\n# ---- Appended by bench/logins_bench.py: Basic over LDAP for every bench client. ----\n"
            "logins:\n  realm: \"Bench School internet\"\n  networks:\n"
            "    - {networks: [127.0.0.0/8], login: required}\n" + ldap_section(ctx))


def logins_negotiate(ctx):
    k = ctx.kdc
    return ("\n# ---- Appended by bench/logins_bench.py: Negotiate (then Basic) for every bench client. ----\n"
            "logins:\n  realm: \"Bench School internet\"\n  networks:\n"
            "    - {networks: [127.0.0.0/8], login: required}\n"
            f"  negotiate:\n    keytab: \"{k['keytab']}\"\n    principal: \"{k['principal']}\"\n" + ldap_section(ctx))


def prepare_policies(ctx):
    """Writes and checks (`hallpass check`) one policy per hallpass contender. A contender whose
    policy this build refuses is recorded as not available, with hallpass's message."""
    want = {"hallpass-open": lambda: "", "hallpass-basic": lambda: logins_basic(ctx),
            "hallpass-negotiate": lambda: logins_negotiate(ctx)}
    ctx.policies = {}
    for name, logins in want.items():
        if name not in ctx.contenders:
            continue
        if name == "hallpass-negotiate" and getattr(ctx, "kdc", None) is None:
            continue  # the KDC did not start: recorded already
        path = ctx.tmp / f"{name}.yaml"
        path.write_text(hallpass_policy(ctx, logins()))
        os.chmod(path, 0o644)
        r = ctx.procs.run([ctx.hallpass, "check", "--config", path], timeout=120)
        if r.returncode != 0:
            out = (r.stdout + r.stderr).strip()
            # The refusal itself, not the warnings before it (a missing feed, say).
            why = " / ".join(l for l in out.splitlines() if not l.startswith("warning:"))[-600:] or out[-600:]
            ctx.unavailable[name] = (f"not available in this build (`hallpass check` refused logins.negotiate: {why})"
                                     if name == "hallpass-negotiate" else f"hallpass check refused the policy: {why}")
            log(f"{name}: {ctx.unavailable[name]}")
            continue
        ctx.policies[name] = path


def start_hallpass(ctx, name, rnd):
    d = P.peer_dir(ctx, name, rnd)
    port, metrics = P.free_port(), P.free_port()
    log_file = d / "stderr.log"
    proc = ctx.procs.start([ctx.hallpass, "run", "--config", ctx.policies[name], "--listen", f"127.0.0.1:{port}",
                            "--access-log", d / "access.log", "--state-dir", d / "state", "--metrics-listen",
                            f"127.0.0.1:{metrics}"], log_file)
    return Contender(name, port, proc, log_file, stop_timeout=20, metrics=metrics)


# ---------------------------------------------------------------------------------------
# squid: configs/squid.conf's plain forward proxy plus an auth_param section.


SQUID_BASIC = """
# ---- bench/logins_bench.py: Basic checked against the bench's slapd (StartTLS, -Z), the
# user's DN searched (-f), as hallpass does; helpers and cache lifetime as hallpass's.
auth_param basic program /usr/lib/squid/basic_ldap_auth -v 3 -Z -H ldap://127.0.0.1:{ldap_port} -b "ou=people,{base}" -f "uid=%s"
auth_param basic children {helpers} startup={helpers} idle=1
auth_param basic realm Bench School internet
auth_param basic credentialsttl {ttl} seconds
auth_param basic casesensitive on
# The groups, as hallpass reads them to choose the role (ext_ldap_group_acl, cached as long).
external_acl_type ldap_group ttl={ttl} negative_ttl={ttl} children-max={helpers} children-startup={helpers} %LOGIN /usr/lib/squid/ext_ldap_group_acl -v 3 -Z -H ldap://127.0.0.1:{ldap_port} -b "ou=groups,{base}" -f "(&(cn=%g)(member=%u))" -F "uid=%s" -B "ou=people,{base}"
acl signed_in proxy_auth REQUIRED
acl staff external ldap_group {staff}
acl pupils external ldap_group {pupils}
http_access deny !signed_in
http_access allow staff
http_access allow pupils
"""

SQUID_NEGOTIATE = """
# ---- bench/logins_bench.py: Negotiate with the proxy's keytab from the bench's KDC.
auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -s {principal} -k {keytab}
auth_param negotiate children {helpers} startup={helpers} idle=1
auth_param negotiate keep_alive on
acl signed_in proxy_auth REQUIRED
http_access deny !signed_in
"""


def start_squid(ctx, name, rnd):
    d = P.peer_dir(ctx, name, rnd, user="proxy")
    port = P.free_port()
    text = P.render("squid.conf", DIR=d, PORT=port, ORIGIN_PORT=ctx.origin_port, NOFILE=P.NOFILE)
    if name == "squid-basic":
        s = ctx.slapd
        auth = SQUID_BASIC.format(ldap_port=s["port"], base=BASE, helpers=ctx.args.helpers, ttl=ctx.args.cache_ttl,
                                  staff=STAFF_GROUP, pupils=PUPIL_GROUP)
    else:
        auth = SQUID_NEGOTIATE.format(principal=ctx.kdc["principal"], keytab=ctx.kdc["keytab"],
                                      helpers=ctx.args.helpers)
    # The auth lines go before the template's first http_access, so they decide first.
    at = text.index("http_access ")
    text = text[:at] + auth.lstrip("\n") + "\n" + text[at:]
    conf = d / "squid.conf"
    conf.write_text(text)
    proc = ctx.procs.start(["squid", "-N", "-f", conf], d / "stdout.log")
    return Contender(name, port, proc, d / "cache.log", stop_timeout=15)


# ---------------------------------------------------------------------------------------
# Contenders and loads.


class Contender:
    def __init__(self, name, port, proc, log_file, stop_timeout=10, metrics=None, netns=None, addr="127.0.0.1"):
        self.name, self.port, self.proc, self.log = name, port, proc, log_file
        self.stop_timeout, self.metrics, self.netns, self.addr = stop_timeout, metrics, netns, addr
        self.checks = {}

    def alive(self):
        return P.exit_status(self.proc) is None


def basic_users(ctx):
    """The wrk threads' users ("name:password"): two pupils (u002, u004), so that a signed-in
    request is decided for the same role (pupils) as (a)'s requests from 127.0.0.1 (the
    fallback role): the difference measured is the sign-in, not another role's rules."""
    u = ctx.slapd["users"]
    return [f"{u[1]}:{u[1]}-pw", f"{u[3]}:{u[3]}-pw"]


def wrk_lua(ctx, name, target, host, users, close):
    f = ctx.tmp / f"wrk-{name}{'-close' if close else ''}.lua"
    if not f.exists():
        f.write_text(P.render("wrk-auth.lua", PATH=target, HOST=host,
                              AUTH_USERS=", ".join(f'"{base64.b64encode(x.encode()).decode()}"' for x in users),
                              EXTRA_HEADERS='wrk.headers["Connection"] = "close"' if close else ""))
        os.chmod(f, 0o644)
    return f


def run_wrk(ctx, c, script, url, conns, duration):
    argv = ["wrk", "-t", min(conns, ctx.args.wrk_threads), "-c", conns, "-d", f"{duration}s", "--timeout", "5s",
            "--latency", "-s", script, url]
    if c.netns:
        argv = ["ip", "netns", "exec", c.netns] + argv
    r = ctx.procs.run(argv, timeout=duration + 60)
    return P.parse_wrk(r.stdout, r.stderr)


def run_negotiate(ctx, c, mode, conns, duration, tokens=True):
    argv = [ctx.negotiate_load, mode, "--proxy", f"{c.addr}:{c.port}", "--spn", f"HTTP@{PROXY_NAME}", "--url",
            f"http://127.0.0.1:{ctx.origin_port}/small", "--connections", conns, "--duration", duration,
            "--tokens", "yes" if tokens else "no"]
    r = ctx.procs.run(argv, timeout=duration + 60)
    line = next((l for l in r.stdout.splitlines() if l.startswith("NEGOTIATE_RESULT ")), None)
    if line is None:
        raise PeerError(f"negotiate_load exit {r.returncode}: {(r.stdout + r.stderr).strip()[-500:]}")
    out = json.loads(line.split(" ", 1)[1])
    out["socket_errors"] = out["failed"]
    out["non2xx"] = out["errors"].get("status", {}).get("count", 0)
    return out


def measure(ctx, c, load):
    """A discarded warm-up, then the measured run, with the contender's CPU per request."""
    conns = ctx.args.connections if load in ("keepalive", NL_BASELINE) else ctx.args.newconn_connections
    close = load == "newconn"
    if load == NL_BASELINE:
        # hallpass without logins under negotiate_load with no tokens: the Negotiate baseline.
        go = lambda secs: run_negotiate(ctx, c, "keepalive", conns, secs, tokens=False)  # noqa: E731
    elif c.name.endswith("negotiate"):
        mode = "keepalive" if load == "keepalive" else "newconn"
        go = lambda secs: run_negotiate(ctx, c, mode, conns, secs)  # noqa: E731
    else:
        users = basic_users(ctx) if c.name.endswith("basic") else []
        if c.name == "hallpass-transparent":
            script = wrk_lua(ctx, c.name, "/small", ORIGIN_NAME, users, close)
            url = f"http://{NET_ORIGIN}/"
        elif c.netns:
            target = f"http://{ORIGIN_NAME}/small"
            script = wrk_lua(ctx, c.name, target, ORIGIN_NAME, users, close)
            url = f"http://{c.addr}:{c.port}/"
        else:
            host = f"127.0.0.1:{ctx.origin_port}"
            script = wrk_lua(ctx, c.name, f"http://{host}/small", host, users, close)
            url = f"http://127.0.0.1:{c.port}/"
        go = lambda secs: run_wrk(ctx, c, script, url, conns, secs)  # noqa: E731
    if ctx.args.warmup > 0:
        go(ctx.args.warmup)
    logins0 = login_counts(c)
    cpu0 = P.cpu_seconds(c.proc.pid)
    out = go(ctx.args.duration)
    cpu = P.cpu_seconds(c.proc.pid) - cpu0
    logins1 = login_counts(c)
    if logins0 is not None and logins1 is not None:
        # How the measured run's sign-ins were answered: `ok` asked the directory (or KDC),
        # `cached` came from the login cache; a kept-alive connection's later requests are neither.
        out["logins"] = {k: logins1.get(k, 0) - logins0.get(k, 0) for k in logins1 if logins1[k] != logins0.get(k, 0)}
    if out.get("requests"):
        out["cpu_us_per_req"] = cpu / out["requests"] * 1e6
    out["connections"] = conns
    return out


def login_counts(c):
    """hallpass_logins_total by result from the contender's metrics endpoint, or None."""
    if not c.metrics:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{c.metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^hallpass_logins_total\{[^}]*result="([^"]+)"[^}]*\}\s+(\S+)$', text, re.M)}


def check_contender(ctx, c):
    """Before measuring: a request without credentials is refused (407) where logins are on,
    and a signed-in one gets the origin's 1,024 bytes."""
    if c.name.endswith("negotiate"):
        r = run_negotiate(ctx, c, "newconn", 1, 1)
        c.checks["negotiate GET"] = f"{r['requests']} ok, {r['failed']} failed"
        if not r["requests"] or r["failed"]:
            raise PeerError(f"a Negotiate GET through {c.name} failed: {json.dumps(r['errors'])[:400]}")
    if c.netns:
        return  # the netns contenders are checked in start_netns
    url = f"http://127.0.0.1:{ctx.origin_port}/small"
    base = ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code} %{size_download}", "-x",
            f"http://127.0.0.1:{c.port}"]
    if c.name.endswith("basic") or c.name.endswith("negotiate"):
        got = ctx.procs.run(base + [url], timeout=20).stdout.strip()
        c.checks["no credentials"] = got
        if not got.startswith("407"):
            raise PeerError(f"{c.name}: expected 407 without credentials, got '{got}'")
    if c.name.endswith("negotiate"):
        return
    extra = ["--proxy-user", basic_users(ctx)[0]] if c.name.endswith("basic") else []
    got = ctx.procs.run(base + extra + [url], timeout=20).stdout.strip()
    c.checks["signed-in GET" if extra else "GET"] = got
    if got != "200 1024":
        raise PeerError(f"{c.name}: GET {url}: expected '200 1024', got '{got}': {P.tail(c.log)}")
    if c.name.endswith("basic"):
        got = ctx.procs.run(base + ["--proxy-user", f"{ctx.slapd['users'][0]}:wrong"] + [url], timeout=20).stdout
        c.checks["wrong password"] = got.strip()
        if not got.startswith("407"):
            raise PeerError(f"{c.name}: a wrong password got '{got.strip()}', not 407")


# ---------------------------------------------------------------------------------------
# The transparent gateway: network namespaces as tests/integration/transparent_test.py makes
# them. client (10.10.0.2) -> gateway (hallpass, deploy/nftables-hallpass-transparent.nft) ->
# "internet" (nginx on 203.0.113.10:80). The gateway forwards nothing (ip_forward 0).

CLIENT_ADDR, GW_LAN, NET_ORIGIN = "10.10.0.2", "10.10.0.1", "203.0.113.10"
ORIGIN_NAME = "origin.bench.test"


def netns_names():
    tag = f"lb{os.getpid() % 100000}"
    return f"{tag}-cli", f"{tag}-gw", f"{tag}-net"


def sh(ctx, *argv, timeout=30):
    r = ctx.procs.run(list(argv), timeout=timeout)
    if r.returncode != 0:
        raise PeerError(f"{' '.join(map(str, argv))}: {(r.stdout + r.stderr).strip()[-300:]}")
    return r


def make_netns(ctx):
    """The three namespaces and their veth pairs, nginx in the internet one, the nftables rules
    in the gateway. Records them in ctx.netns for removal."""
    cli, gw, net = netns_names()
    ctx.netns = []
    for ns in (cli, gw, net):
        sh(ctx, "ip", "netns", "add", ns)
        ctx.netns.append(ns)
    sh(ctx, "ip", "link", "add", "c0", "netns", cli, "type", "veth", "peer", "name", "lan0", "netns", gw)
    sh(ctx, "ip", "link", "add", "n0", "netns", net, "type", "veth", "peer", "name", "wan0", "netns", gw)
    for ns, dev, addr in ((cli, "c0", CLIENT_ADDR + "/24"), (gw, "lan0", GW_LAN + "/24"),
                          (gw, "wan0", "203.0.113.1/24"), (net, "n0", NET_ORIGIN + "/24")):
        sh(ctx, "ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", dev)
    for ns, dev in ((cli, "c0"), (cli, "lo"), (gw, "lan0"), (gw, "wan0"), (gw, "lo"), (net, "n0"), (net, "lo")):
        sh(ctx, "ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
    sh(ctx, "ip", "netns", "exec", cli, "ip", "route", "add", "default", "via", GW_LAN)
    sh(ctx, "ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    sh(ctx, "ip", "netns", "exec", gw, "nft", "-f", ROOT / "deploy" / "nftables-hallpass-transparent.nft")
    sh(ctx, "ip", "netns", "exec", gw, "nft", "add", "element", "inet", "hallpass_transparent", "lan_ifs",
       "{", "lan0", "}")
    # The origin: the same nginx configuration, on the internet namespace's address, port 80.
    d = ctx.tmp / "netns-origin"
    (d / "www").mkdir(parents=True)
    for p in (d, d / "www"):
        os.chmod(p, 0o755)
    (d / "www" / "small").write_bytes(b"s" * 1024)
    conf = d / "nginx.conf"
    conf.write_text(P.render("nginx-origin.conf", DIR=d, PORT=80, WORKERS=ctx.args.origin_workers, NOFILE=P.NOFILE)
                    .replace("listen 127.0.0.1:80", f"listen {NET_ORIGIN}:80"))
    ctx.netns_origin = ctx.procs.start(["ip", "netns", "exec", net, "nginx", "-c", conf], d / "stdout.log")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = ctx.procs.run(["ip", "netns", "exec", net, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "2", f"http://{NET_ORIGIN}/small"], timeout=10, record=False)
        if r.stdout.strip() == "200":
            break
        time.sleep(0.1)
    else:
        raise PeerError(f"nginx in {net} did not answer: {P.tail(d / 'error.log')}")
    policy = ctx.tmp / "hallpass-netns.yaml"
    text = (ROOT / "rules" / "school.yaml").read_text()
    text += f"""
# ---- Appended by bench/logins_bench.py: the transparent gateway bench (network namespaces). ----
workers: 0
listen:
  - "{GW_LAN}:3128"                                      # the explicit proxy
  - {{address: "0.0.0.0:3129", mode: transparent, protocol: http}}
hosts:
  {ORIGIN_NAME}: [{NET_ORIGIN}]
limits:
  connections: 30000
  connections_per_client: 30000
"""
    policy.write_text(text)
    r = ctx.procs.run([ctx.hallpass, "check", "--config", policy], timeout=120)
    if r.returncode != 0:
        raise PeerError(f"hallpass check refused the transparent policy: {(r.stdout + r.stderr).strip()[-500:]}")
    ctx.netns_policy = policy
    return cli, gw, net


def remove_netns(ctx):
    for ns in reversed(getattr(ctx, "netns", [])):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    ctx.netns = []


def start_netns_hallpass(ctx, name, rnd):
    """One hallpass in the gateway namespace; the explicit contender talks to 10.10.0.1:3128,
    the transparent one sends origin-form GETs to 203.0.113.10:80, which nftables redirects."""
    cli, gw, _ = ctx.netns_triplet
    d = P.peer_dir(ctx, name, rnd)
    log_file = d / "stderr.log"
    proc = ctx.procs.start(["ip", "netns", "exec", gw, ctx.hallpass, "run", "--config", ctx.netns_policy,
                            "--access-log", d / "access.log", "--state-dir", d / "state", "--metrics-listen", "off"],
                           log_file)
    c = Contender(name, 3128 if name == "hallpass-explicit" else 80, proc, log_file, stop_timeout=20, netns=cli,
                  addr=GW_LAN if name == "hallpass-explicit" else NET_ORIGIN)
    deadline = time.monotonic() + ctx.args.start_timeout
    while time.monotonic() < deadline:
        if not c.alive():
            raise PeerError(f"hallpass in {gw} {P.describe_exit(P.exit_status(proc))}: {P.tail(log_file)}")
        if "serving" in log_file.read_text(errors="replace"):
            break
        time.sleep(0.05)
    else:
        raise PeerError(f"hallpass in {gw} did not start: {P.tail(log_file)}")
    base = ["ip", "netns", "exec", cli, "curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w",
            "%{http_code} %{size_download}"]
    if name == "hallpass-explicit":
        argv = base + ["-x", f"http://{GW_LAN}:3128", f"http://{ORIGIN_NAME}/small"]
    else:  # no proxy: the name is sent to the origin's address, which the gateway redirects
        argv = base + ["--noproxy", "*", "--resolve", f"{ORIGIN_NAME}:80:{NET_ORIGIN}", f"http://{ORIGIN_NAME}/small"]
    got = ctx.procs.run(argv, timeout=20).stdout.strip()
    c.checks["GET from the client namespace"] = got
    if got != "200 1024":
        raise PeerError(f"{name}: expected '200 1024', got '{got}': {P.tail(log_file)}")
    # The request went through hallpass (its log names the original destination for transparent).
    deadline = time.monotonic() + 5
    lines = []
    while time.monotonic() < deadline and not lines:
        time.sleep(0.1)
        log_text = (d / "access.log").read_text() if (d / "access.log").exists() else ""
        lines = [json.loads(l) for l in log_text.splitlines() if l.strip()]
    if not lines or lines[-1].get("host") != ORIGIN_NAME:
        raise PeerError(f"{name}: no access log line for {ORIGIN_NAME} within 5 s: {lines[-1:]}")
    c.checks["logged"] = f"role {lines[-1].get('role')}, original_dst {lines[-1].get('original_dst')}"
    return c


STARTERS = {"hallpass-open": start_hallpass, "hallpass-basic": start_hallpass, "hallpass-negotiate": start_hallpass,
            "squid-basic": start_squid, "squid-negotiate": start_squid,
            "hallpass-explicit": start_netns_hallpass, "hallpass-transparent": start_netns_hallpass}


def start_contender(ctx, name, rnd):
    c = STARTERS[name](ctx, name, rnd)
    try:
        if not c.netns:
            P.wait_listening(c.port, c.proc, c.log, ctx.args.start_timeout)
        check_contender(ctx, c)
        return c
    except BaseException:
        ctx.procs.stop(c.proc, c.stop_timeout)
        raise


# ---------------------------------------------------------------------------------------
# The run.


def record(ctx, name, load, rnd, fn=None, error=None):
    res = {"round": rnd, "loadavg": list(os.getloadavg())}
    if error is None:
        try:
            res.update(fn())
        except (PeerError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            error = str(e) if isinstance(e, PeerError) else f"{type(e).__name__}: {e}"
    if error is not None:
        res["error"] = error
    ctx.results.setdefault(name, {}).setdefault(load, []).append(res)
    if "error" in res:
        log(f"  {name} {load}: ERROR {res['error'][:300]}")
    else:
        log(f"  {name} {load}: {res.get('rps', 0):,.0f} req/s, failed {res.get('socket_errors', 0)}"
            f"+{res.get('non2xx', 0)}, CPU {res.get('cpu_us_per_req', 0):.0f} us/req, load {res['loadavg'][0]:.2f}")


def run_round(ctx, rnd):
    names = ctx.contenders[(rnd - 1) % len(ctx.contenders):] + ctx.contenders[:(rnd - 1) % len(ctx.contenders)]
    for name in names:
        ctx.procs.label = f"round {rnd}: {name}"
        log(f"round {rnd}/{ctx.args.rounds}: {name}")
        if name in ctx.unavailable:
            for load in ctx.loads:
                record(ctx, name, load, rnd, error=ctx.unavailable[name])
            continue
        try:
            c = start_contender(ctx, name, rnd)
        except (PeerError, OSError, subprocess.TimeoutExpired) as e:
            for load in ctx.loads:
                record(ctx, name, load, rnd, error=f"did not start: {e}")
            continue
        ctx.report["contenders"].setdefault(name, {})["checks"] = c.checks
        snapshot = P.work_snapshot()
        try:
            for load in ctx.loads:
                if not c.alive():
                    record(ctx, name, load, rnd, error=f"ended earlier: {P.tail(c.log)}")
                    continue
                record(ctx, name, load, rnd, lambda: measure(ctx, c, load))
            if name == "hallpass-open" and "hallpass-negotiate" in ctx.contenders and "keepalive" in ctx.loads \
                    and getattr(ctx, "negotiate_load", None) and c.alive():
                record(ctx, name, NL_BASELINE, rnd, lambda: measure(ctx, c, NL_BASELINE))
        finally:
            ctx.report["contenders"][name].setdefault("other_work", []).append(
                {"round": rnd, **P.other_work_since(snapshot)})
            ctx.procs.stop(c.proc, c.stop_timeout)


def median_of(ctx, name, load, field="rps"):
    rows = [r[field] for r in ctx.results.get(name, {}).get(load, []) if "error" not in r and r.get(field)]
    return statistics.median(rows) if rows else None


def ratio(a, b):
    return a / b if a and b else None


def targets(ctx):
    """(target, measured, met) for issue 12's bench targets."""
    out = []
    a, b, c = (median_of(ctx, n, "keepalive") for n in ("hallpass-open", "hallpass-basic", "squid-basic"))
    r = ratio(b, a)
    out.append(("Basic over LDAP keep-alive req/s >= 0.9x hallpass without logins",
                f"{r:.2f}x ({b:,.0f} vs {a:,.0f})" if r else "not measured", (r >= 0.9) if r else None))
    r = ratio(b, c)
    out.append(("Basic over LDAP keep-alive req/s >= 3x squid basic_ldap_auth",
                f"{r:.2f}x ({b:,.0f} vs {c:,.0f})" if r else "not measured", (r >= 3) if r else None))
    hn, sn = median_of(ctx, "hallpass-negotiate", "keepalive"), median_of(ctx, "squid-negotiate", "keepalive")
    # Against hallpass without logins under the same client (negotiate_load, no tokens); the wrk
    # figure of (a) comes from a lighter client and is not the same load.
    an = median_of(ctx, "hallpass-open", NL_BASELINE)
    r = ratio(hn, an)
    out.append(("Negotiate keep-alive req/s >= 0.9x hallpass without logins (both under negotiate_load)",
                f"{r:.2f}x ({hn:,.0f} vs {an:,.0f})" if r else why_missing(ctx, "hallpass-negotiate"),
                (r >= 0.9) if r else None))
    r = ratio(hn, sn)
    out.append(("Negotiate keep-alive req/s >= 3x squid negotiate_kerberos_auth",
                f"{r:.2f}x ({hn:,.0f} vs {sn:,.0f})" if r else why_missing(ctx, "hallpass-negotiate"),
                (r >= 3) if r else None))
    return out


def why_missing(ctx, name):
    if name in ctx.unavailable:
        return ctx.unavailable[name][:200]
    if name not in ctx.contenders:
        return "not run (--only)"
    return "no figure (see Errors)"


def fmt(v, f="{:,.0f}"):
    return f.format(v) if v is not None else "-"


def report_md(ctx, tg):
    a, rep = ctx.args, ctx.report
    L = [f"# Issue 12: logins and the transparent gateway (`bench/logins_bench.py`)\n"]
    if rep.get("aborted"):
        L.append(f"**Aborted: {rep['aborted']}; the figures are partial.**\n")
    mach, ver = rep["machine"], rep["versions"]
    L.append(f"Run {rep['started']} (`{rep['command']}`), {rep['seconds'] / 60:.1f} minutes; {a.rounds} round(s), "
             f"contenders in turn (order rotated each round), medians of the rounds. Each measured run: "
             f"{a.duration} s after a {a.warmup} s warm-up; keep-alive at {a.connections} connections, new "
             f"connections at {a.newconn_connections}. Machine: {mach['nproc']} x {mach['cpu_model']}, kernel "
             f"{mach['kernel']}; load average at start {' '.join(f'{x:.2f}' for x in mach['loadavg_at_start'])}, at "
             f"end {' '.join(f'{x:.2f}' for x in rep['loadavg_at_end'])}. A shared VM: compare within this run.\n")
    dirty = ver["git_uncommitted"]
    L.append(f"hallpass: `{ver['hallpass']}`, source at `{ver['git_commit'][:12]}`"
             + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")
             + f"; binary `{ver['hallpass_binary']['path']}` built {ver['hallpass_binary']['mtime']}. "
             f"squid: `{ver['squid']}`. wrk: `{ver['wrk']}`.\n")
    L.append("Directory: one slapd (StartTLS, self-signed certificate) with "
             f"{a.users} users (half in `Staff`, half in `Pupils`); Kerberos: one krb5kdc, realm `{REALM}`, "
             f"`HTTP/{PROXY_NAME}` in a keytab, the client `alice` with a ticket from kinit. Logins cached "
             f"{a.cache_ttl} s and {a.helpers} directory threads or helpers on both sides (hallpass `cache_ttl`, "
             f"`max_in_flight`; squid `credentialsttl`, `children`, and `ext_ldap_group_acl` ttl).\n")
    L.append("## Targets (issue 12)\n")
    L.append("| target | measured (median of rounds) | met? |")
    L.append("|---|---|---|")
    for t, m, ok in tg:
        L.append(f"| {t} | {m} | {'**yes**' if ok else ('**no**' if ok is False else 'n/a')} |")
    L.append("")
    L.append("## Figures\n")
    L.append("req/s median (each round); CPU of the contender per request (us, median); failed = socket errors + "
             "non-2xx over the measured runs; load average (1 min) when each measured run started.\n")
    L.append("| contender | load | req/s median | rounds | CPU us/req | failed | load average |")
    L.append("|---|---|---:|---|---:|---|---|")
    for name in ctx.contenders:
        for load in ctx.loads + [NL_BASELINE]:
            rows = ctx.results.get(name, {}).get(load, [])
            if not rows:
                continue
            ok = [r for r in rows if "error" not in r]
            if not ok:
                L.append(f"| {TITLES[name]} | {load} | - | {rows[0]['error'][:160].replace('|', '/')} | | | |")
                continue
            L.append(f"| {TITLES[name]} | {load} | {fmt(median_of(ctx, name, load))} | "
                     + " / ".join(fmt(r.get('rps')) for r in ok) + " | "
                     + fmt(median_of(ctx, name, load, 'cpu_us_per_req')) + " | "
                     + " / ".join(f"{r.get('socket_errors', 0)}+{r.get('non2xx', 0)}" for r in ok) + " | "
                     + " / ".join(f"{r['loadavg'][0]:.2f}" for r in ok) + " |")
    L.append("")
    L.append("## Ratios (medians)\n")
    L.append("| ratio | keepalive | newconn |")
    L.append("|---|---:|---:|")
    for label, x, y in (("hallpass Basic / hallpass no logins", "hallpass-basic", "hallpass-open"),
                        ("hallpass Basic / squid Basic", "hallpass-basic", "squid-basic"),
                        ("hallpass Negotiate / hallpass no logins", "hallpass-negotiate", "hallpass-open"),
                        ("hallpass Negotiate / squid Negotiate", "hallpass-negotiate", "squid-negotiate"),
                        ("hallpass transparent / explicit (netns)", "hallpass-transparent", "hallpass-explicit")):
        cells = [ratio(median_of(ctx, x, l), median_of(ctx, y, l)) for l in LOADS]
        L.append(f"| {label} | " + " | ".join(f"{v:.2f}x" if v else "-" for v in cells) + " |")
    for label, x, y in (("CPU per request, squid Basic / hallpass Basic", "squid-basic", "hallpass-basic"),
                        ("CPU per request, squid Negotiate / hallpass Negotiate", "squid-negotiate",
                         "hallpass-negotiate")):
        cells = [ratio(median_of(ctx, x, l, "cpu_us_per_req"), median_of(ctx, y, l, "cpu_us_per_req")) for l in LOADS]
        L.append(f"| {label} | " + " | ".join(f"{v:.2f}x" if v else "-" for v in cells) + " |")
    L.append("")
    L.append("CPU per request is the contender's own CPU time (all its processes and threads; squid's "
             "helpers included) over the measured run, divided by its requests: steadier than req/s on a "
             "shared machine, because other work slows the contender and the load client alike.\n")
    lg = [(n, f"{l} round {r['round']}", r["logins"]) for n in ctx.contenders for l in ctx.loads
          for r in ctx.results.get(n, {}).get(l, []) if r.get("logins")]
    if lg:
        L.append("hallpass's `hallpass_logins_total` during each measured run (`ok`: asked the directory; "
                 "`cached`: the shared login cache; a kept-alive connection's later requests count as neither): "
                 + "; ".join(f"{n} {l}: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(x.items())) for n, l, x in lg)
                 + "\n")
    neg = [r for n in ("hallpass-negotiate", "squid-negotiate") for r in
           ctx.results.get(n, {}).get("keepalive", []) if "error" not in r]
    if neg:
        L.append("Negotiate keep-alive: SPNEGO tokens made / re-sign-ins after a 407 on a kept-alive connection: "
                 + "; ".join(f"{n}: " + " / ".join(f"{r['tokens']}/{r['reauths']}" for r in ctx.results[n]['keepalive']
                                                   if 'error' not in r)
                             for n in ("hallpass-negotiate", "squid-negotiate") if ctx.results.get(n)) + "\n")
    L.append("## Checks before measuring\n")
    for name, info in ctx.report["contenders"].items():
        L.append(f"- {TITLES[name]}: " + "; ".join(f"{k}: {v}" for k, v in info.get("checks", {}).items()))
    L.append("")
    L.append("## Other work on the machine while each contender was measured\n")
    L.append("CPU taken by processes this bench did not start, and stolen by the hypervisor, in % of both cores.\n")
    for name, info in ctx.report["contenders"].items():
        L.append(f"- {TITLES[name]}: " + "; ".join(f"round {w['round']}: other {w['other_pct']} %, steal "
                                                   f"{w['steal_pct']} %" for w in info.get("other_work", [])))
    L.append("")
    errs = [(n, l, r) for n, loads in ctx.results.items() for l, rows in loads.items() for r in rows if "error" in r]
    if errs:
        L.append("## Errors and contenders not measured\n")
        for n, l, r in errs:
            L.append(f"- {TITLES[n]}, {l}, round {r['round']}: {r['error'][:600]}")
        L.append("")
    L.append("## Commands (round 1; all in the JSON)\n")
    L.append("```sh")
    last = None
    for label, cmd in rep["commands"]:
        if label == "setup" or label.startswith("round 1:"):
            if label != last:
                L.append(f"# {label}")
                last = label
            L.append(cmd)
    L.append("```")
    return "\n".join(L) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description="issue 12's logins bench; see bench/README.md, 'Issue 12: logins'")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 s loads, no warm-up")
    p.add_argument("--rounds", type=int, help="default 3 (--quick 1)")
    p.add_argument("--duration", type=int, help="seconds per measured run (default 8; --quick 3)")
    p.add_argument("--warmup", type=int, help="seconds of discarded warm-up before each (default 2; --quick 0)")
    p.add_argument("--only", default=",".join(CONTENDERS), help=f"contenders (default {','.join(CONTENDERS)})")
    p.add_argument("--loads", default=",".join(LOADS), help="keepalive,newconn")
    p.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--newconn-connections", type=int, default=50, help="concurrent new-connection loops (50)")
    p.add_argument("--users", type=int, default=200, help="users in the directory (default 200)")
    p.add_argument("--cache-ttl", type=int, default=300, help="seconds a login is cached, both sides (300)")
    p.add_argument("--helpers", type=int, default=4, help="directory threads / squid helpers, both sides (4)")
    p.add_argument("--wrk-threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--origin-workers", type=int, default=1)
    p.add_argument("--start-timeout", type=float, default=60)
    p.add_argument("--hallpass", default=str(ROOT / "build-release" / "hallpass"))
    p.add_argument("--negotiate-load", default=str(ROOT / "build-release" / "negotiate_load"))
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--name", default="issue12-logins")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args(argv)
    for k, v in ({"rounds": 1, "duration": 3, "warmup": 0} if a.quick else
                 {"rounds": 3, "duration": 8, "warmup": 2}).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.contenders = [x for x in a.only.split(",") if x]
    a.load_list = [x for x in a.loads.split(",") if x]
    for what, got, known in (("contender", a.contenders, CONTENDERS), ("load", a.load_list, LOADS)):
        bad = [x for x in got if x not in known]
        if bad:
            p.error(f"unknown {what} {bad}; known: {', '.join(known)}")
    if not 2 <= a.users <= 5000:
        p.error("--users must be 2 to 5000")
    return a


class Context:
    def __init__(self, args, tmp, procs):
        self.args, self.tmp, self.procs = args, tmp, procs
        self.contenders = [c for c in CONTENDERS if c in args.contenders]
        self.loads = [l for l in LOADS if l in args.load_list]
        self.results, self.report, self.unavailable = {}, {"contenders": {}}, {}
        self.kdc = self.slapd = None


def setup(ctx):
    """The shared services, each only if a chosen contender needs it."""
    names = set(ctx.contenders)
    if names & {"hallpass-open", "hallpass-basic", "squid-basic", "hallpass-negotiate", "squid-negotiate"}:
        ctx.origin_port, ctx.origin_proc = P.start_origin(ctx)
        log(f"origin nginx on 127.0.0.1:{ctx.origin_port}")
    if names & {"hallpass-basic", "squid-basic", "hallpass-negotiate"}:
        s = start_slapd(ctx)
        log(f"slapd on 127.0.0.1:{s['port']} with {len(s['users'])} users")
    if names & {"hallpass-negotiate", "squid-negotiate"}:
        try:
            if not Path(ctx.args.negotiate_load).exists():
                raise PeerError(f"{ctx.args.negotiate_load} is missing (ninja -C build-release negotiate_load; "
                                "needs libkrb5-dev)")
            ctx.negotiate_load = shutil.copy2(ctx.args.negotiate_load, ctx.tmp / "bin" / "negotiate_load")
            k = start_kdc(ctx)
            log(f"krb5kdc on 127.0.0.1:{k['port']}, realm {REALM}; alice has a ticket")
        except (PeerError, OSError, subprocess.TimeoutExpired) as e:
            for n in ("hallpass-negotiate", "squid-negotiate"):
                ctx.unavailable[n] = f"the Kerberos setup failed: {e}"
            log(f"negotiate: {e}")
    if names & {"hallpass-explicit", "hallpass-transparent"}:
        try:
            if os.geteuid() != 0 or not shutil.which("nft"):
                raise PeerError("needs root and nft (network namespaces and nftables rules)")
            ctx.netns_triplet = make_netns(ctx)
            log(f"network namespaces {', '.join(ctx.netns_triplet)}")
        except (PeerError, OSError, subprocess.TimeoutExpired) as e:
            for n in ("hallpass-explicit", "hallpass-transparent"):
                ctx.unavailable[n] = f"the network namespaces could not be made: {e}"
            log(f"transparent: {e}")
    prepare_policies(ctx)


def main(argv):
    args = parse_args(argv)
    P.raise_fd_limit()
    started = datetime.datetime.now()
    tmp = Path(tempfile.mkdtemp(prefix="hallpass-logins-bench-"))
    os.chmod(tmp, 0o755)
    procs = P.Processes()
    ctx = Context(args, tmp, procs)
    (tmp / "bin").mkdir()
    os.chmod(tmp / "bin", 0o755)
    ctx.hallpass = shutil.copy2(args.hallpass, tmp / "bin" / "hallpass")
    machine, versions = P.machine_and_versions(ctx)
    ctx.report.update({"started": started.isoformat(timespec="seconds"), "machine": machine, "versions": versions,
                       "options": vars(args), "command": " ".join(["bench/run-logins.sh", *argv])})

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    aborted = None
    try:
        log(f"temporary directory {tmp}")
        setup(ctx)
        for rnd in range(1, args.rounds + 1):
            run_round(ctx, rnd)
    except KeyboardInterrupt as e:
        aborted = f"interrupted ({e or 'Ctrl-C'})"
    except (PeerError, OSError, subprocess.TimeoutExpired) as e:
        aborted = f"setup failed: {e}"
        log(aborted)
    finally:
        procs.stop_all()
        remove_netns(ctx)
    ctx.report.update({"loadavg_at_end": list(os.getloadavg()), "results": ctx.results, "commands": procs.commands,
                       "unavailable": ctx.unavailable, "seconds": round((datetime.datetime.now() - started).total_seconds())})
    if aborted:
        ctx.report["aborted"] = aborted
    tg = targets(ctx)
    ctx.report["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in tg]
    for t, m, ok in tg:
        log(f"{t}: {m} -> {'met' if ok else ('NOT met' if ok is False else 'n/a')}")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name + ("-aborted" if aborted else "")
    (out / f"{name}.json").write_text(json.dumps(ctx.report, indent=1, default=str) + "\n")
    (out / f"{name}.md").write_text(report_md(ctx, tg))
    log(f"wrote {out / name}.md and .json")
    if not args.keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"kept {tmp}")
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
