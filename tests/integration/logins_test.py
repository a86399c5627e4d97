"""Logins on the explicit proxy (issue 12): Basic checked by a simple bind to a real slapd
(started here from Debian's packages, over StartTLS with a test certificate), groups as roles,
login required / optional / none per network, the login cache, the guesser's limit, and a
directory that stalls. Every wait is bounded."""
import html
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (GUEST, PUPIL, STAFF, Origin, Proxy, TlsInTunnel, _can_connect, curl, free_port, raw_request,
                     read_answer_status, status_of, stop_process, wait_for)

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
HAVE_SLAPD = os.path.exists(SLAPD) and os.path.exists(SLAPADD) and shutil.which("ldapmodify")
GUESSER = "127.0.0.5"
BASE = "dc=school,dc=test"

TREE = f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
o: School
dc: school

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups
""" + "".join(f"""
dn: uid={uid},ou=people,{BASE}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid}
sn: {uid}
userPassword: {pw}
""" for uid, pw in [("dave", "dave-pw"), ("sam", "sam-pw"), ("carol", "carol-pw"), ("victim", "victim-pw"), ("erin", "erin-pw"),
                  ("frank", "frank-pw"), ("grace", "grace-pw"), ("henry", "henry-pw"), ("ivan", "ivan-pw"),
                                    ("tess", "tess-pw"), ("uma", "uma-pw"), ("olga", "olga-pw"),
                                    ("leaver", "leaver-pw")]
                  + [(f"kid{n}", f"kid{n}-pw") for n in range(1, 9)]) + f"""
dn: cn=Year 6,ou=groups,{BASE}
objectClass: groupOfNames
cn: Year 6
member: uid=dave,ou=people,{BASE}
member: uid=carol,ou=people,{BASE}

dn: cn=Staff,ou=groups,{BASE}
objectClass: groupOfNames
cn: Staff
member: uid=sam,ou=people,{BASE}
member: uid=carol,ou=people,{BASE}
"""


class Slapd:
    """slapd from Debian on 127.0.0.1:PORT (ldap:// with StartTLS), an mdb database made with slapadd."""

    def __init__(self, netns=None):
        """`netns`: run it inside that network namespace (signin_page_test.py's transparent gateway)."""
        self.dir = tempfile.mkdtemp(prefix="hallpass-slapd-")
        self.port = free_port()
        self.netns = netns
        d = self.dir
        os.makedirs(f"{d}/db")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                       check=True, capture_output=True, timeout=60)
        self.ca_file = f"{d}/cert.pem"
        with open(f"{d}/slapd.conf", "w") as f:
            f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw admin-secret
directory {d}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
""")
        with open(f"{d}/tree.ldif", "w") as f:
            f.write(TREE)
        subprocess.run([SLAPADD, "-f", f"{d}/slapd.conf", "-l", f"{d}/tree.ldif"], check=True, capture_output=True,
                       timeout=60)
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen([*prefix, SLAPD, "-f", f"{d}/slapd.conf", "-h", f"ldap://127.0.0.1:{self.port}/",
                                      "-d", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if netns:
            probe = f"import socket; socket.create_connection(('127.0.0.1', {self.port}), 1)"
            wait_for(lambda: subprocess.run([*prefix, "python3", "-c", probe], capture_output=True,
                                            timeout=10).returncode == 0, timeout=20, interval=0.2,
                     what="slapd to listen in its namespace")
        else:
            wait_for(lambda: _can_connect(self.port), timeout=20, what="slapd to listen")

    def modify(self, ldif):
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        subprocess.run([*prefix, "ldapmodify", "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", f"cn=admin,{BASE}",
                        "-w", "admin-secret"], input=ldif.encode(), check=True, capture_output=True, timeout=20)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def timed_sign_in(proxy, url, results):
    """A function that signs in with Basic `cred` ("user:password") for `url` and appends
    (status, seconds taken) to `results`: for threads started together."""
    def ask(cred):
        t0 = time.monotonic()
        status, _, _ = curl(proxy, url, extra=["--proxy-user", cred])
        results.append((status, time.monotonic() - t0))
    return ask


class Staller:
    """A 'directory' that accepts connections and never says anything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


class SlowRelay:
    """A TCP relay in front of slapd that holds each of its answers `delay` seconds, so that
    sign-ins sent together are checked at the same time. Its threads end with their
    connections (the proxy closes each directory connection after its check)."""

    def __init__(self, target_port, delay=0.15):
        self.target_port = target_port
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay), daemon=True).start()

    @staticmethod
    def _pipe(source, sink, delay):
        try:
            while data := source.recv(65536):
                time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.sock.close()


def with_group_roles(text):
    # staff also by group; a Year 6 class role (after staff in policy order) that blocks social media.
    text = text.replace("  staff:\n    networks:", "  staff:\n    groups: [Staff]\n    networks:")
    return text.replace("  guests:\n", "  year6:\n    groups: [\"Year 6\"]\n    default: allow\n    rules:\n"
                                       "      - {action: block, categories: [social_media]}\n  guests:\n")


def ldap_and_failures(url, ca_file, cache_ttl="2s", timeout="10s"):
    """The logins section's ldap (the test tree on slapd at `url`) and failures keys, for any
    section of logins (required here, login: page in signin_page_test.py). The directory's
    deadline is generous by default: a StartTLS bind and a search can take seconds under the
    sanitizers on two busy cores, and a 503 there is the machine, not the proxy. The test of the
    deadline itself sets its own."""
    return f"""  ldap:
    url: "{url}"
    ca_file: "{ca_file}"
    base_dn: "ou=people,{BASE}"
    user_attribute: uid
    group_base_dn: "ou=groups,{BASE}"
    group_member_attribute: member
    timeout: {timeout}
    cache_ttl: {cache_ttl}
  failures: {{per_client: 3, per_user: 3, within: 1m}}
"""


def logins_section(url, ca_file, cache_ttl="2s", timeout="10s"):
    return f"""
logins:
  realm: "Test School internet"
  networks:
    - {{networks: [127.0.0.0/8], login: required}}
    - {{networks: ["{STAFF}/32"], login: optional}}
    - {{networks: ["{GUEST}/32"], login: none}}
""" + ldap_and_failures(url, ca_file, cache_ttl, timeout)


class BasicTunnel:
    """A CONNECT to host:port from `source` signed in with Basic `user_password` (None: not), as a browser
    sends it (credentials on the CONNECT only), then plain HTTP requests inside: `status` is
    the CONNECT's answer; get() sends GET /small inside and returns its status, or None when
    the tunnel closed unanswered. Closed when the test ends."""

    def __init__(self, test, proxy, source, user_password, host, port):
        import base64
        self.host, self.port = host, port
        sign_in = ""
        if user_password is not None:  # None: a CONNECT without credentials
            cred = base64.b64encode(user_password.encode()).decode()
            sign_in = f"Proxy-Authorization: Basic {cred}\r\n"
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", proxy.port))
        test.addCleanup(self.sock.close)
        self.sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{sign_in}\r\n".encode())
        self.f = self.sock.makefile("rb")
        self.status = int(self.f.readline().split()[1])
        while self.f.readline() not in (b"\r\n", b""):
            pass

    def get(self):
        self.sock.sendall(f"GET /small HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        return read_answer_status(self.f)  # None: closed unanswered


@unittest.skipUnless(HAVE_SLAPD, "slapd, slapadd or ldapmodify is not installed (apt-get install slapd ldap-utils)")
class LoginsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()
        cls.slapd = Slapd()
        cls.proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file),
                          policy_edit=with_group_roles)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.slapd.stop()
        cls.nginx.stop()

    def url(self, host, path="/small"):
        return f"http://{host}:{self.nginx.port}{path}"

    def get(self, host, user=None, source=PUPIL, extra=()):
        args = list(extra) + (["--proxy-user", user] if user else [])
        return curl(self.proxy, self.url(host), source=source, extra=args)

    def last_log(self, host):
        lines = self.proxy.log_lines()
        mine = [l for l in lines if l.get("host") == host]
        self.assertTrue(mine, f"no log line for {host}")
        return mine[-1]

    def test_right_password_signs_in_and_the_group_is_the_role(self):
        status, body, err = self.get("origin.test", "sam:sam-pw")
        self.assertEqual(status, 200, err)
        # sam is in Staff: staff's rules, though the address is a pupil's.
        status, _, err = self.get("facebook.test", "sam:sam-pw")
        self.assertEqual(status, 200, err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "sam" and
                                 l.get("host") == "facebook.test"], what="sam's line")[-1]
        self.assertEqual(line["role"], "staff")
        # dave is in Year 6 only: the Year 6 role blocks social media, and the page says who.
        status, body, err = self.get("facebook.test", "dave:dave-pw")
        self.assertEqual(status, 403, err)
        self.assertNotIn(b"dave", body)  # the plain-HTTP site's page names nobody: its own page does
        link = re.search(rb'href="(http://hallpass\.invalid/blocked\?url=[^"]*)"', body).group(1).decode()
        status, body, err = curl(self.proxy, html.unescape(link), source=PUPIL, extra=["--proxy-user", "dave:dave-pw"])
        self.assertEqual(status, 200, err)
        self.assertIn(b"<dt>Signed in as</dt><dd>dave</dd>", body)
        self.assertIn(b'name="requester" required maxlength="200" autocomplete="off" value="dave"', body)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "dave" and
                                 l.get("host") == "facebook.test"], what="dave's line")[-1]
        self.assertEqual(line["role"], "year6")

    def test_a_user_in_no_role_group_gets_the_fallback_role_not_the_addresss(self):
        # olga is in no group a role lists: signed in from the staff address she is decided as
        # the fallback role (pupils), not as staff (ungrouped_users, default fallback).
        status, _, err = self.get("facebook.test", "olga:olga-pw", source=STAFF)
        self.assertEqual(status, 403, err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "olga"], what="olga's line")[-1]
        self.assertEqual(line["role"], "pupils")
        # Not signed in, the staff address is staff's (its network's login is optional).
        self.assertEqual(self.get("facebook.test", source=STAFF)[0], 200)

    def test_users_who_share_an_address_never_share_a_pooled_origin_connection(self):
        # A terminal server or NAT: one address, several users. Whatever an origin sends late on
        # a connection must reach only the user whose request it followed, so pooled
        # connections are each user's own (one worker: each worker has its own pool).
        proxy = Proxy(workers=1, extra=logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file),
                      policy_edit=with_group_roles)
        self.addCleanup(proxy.stop)
        reused = lambda: proxy.metric("hallpass_upstream_connections_reused_total")
        source = "127.0.0.81"
        self.assertEqual(curl(proxy, self.url("origin.test"), source=source, extra=["--proxy-user", "sam:sam-pw"])[0], 200)
        before = reused()
        self.assertEqual(curl(proxy, self.url("origin.test"), source=source, extra=["--proxy-user", "carol:carol-pw"])[0], 200)
        self.assertEqual(reused(), before)  # carol: a connection of her own
        self.assertEqual(curl(proxy, self.url("origin.test"), source=source, extra=["--proxy-user", "sam:sam-pw"])[0], 200)
        self.assertEqual(reused(), before + 1)  # sam: his own again

    def test_unpadded_basic_is_unreadable_not_a_wrong_password(self):
        """"sam:sam-pw" without its base64 padding was decoded as "sam:sam-p" and sent to the
        directory, a failure counted against sam (outside-in audit of logins, 2026-12-05, L5)."""
        import base64
        padded = base64.b64encode(b"sam:sam-pw").decode()
        self.assertTrue(padded.endswith("="))
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Proxy-Authorization: Basic {padded.rstrip('=')}\r\nConnection: close\r\n\r\n"
                                      .encode(), source="127.0.0.8")
        self.assertEqual(status_of(out), 407)
        self.assertIn(b"could not be read", out)
        self.assertFalse([l for l in self.proxy.stderr_lines if "127.0.0.8" in l and "login failed" in l])
        status, _, err = self.get("origin.test", "sam:sam-pw", source="127.0.0.8")
        self.assertEqual(status, 200, err)

    def test_a_user_in_two_groups_gets_the_first_role_in_policy_order(self):
        status, _, err = self.get("facebook.test", "carol:carol-pw")
        self.assertEqual(status, 200, err)  # Staff (staff comes before year6 in the policy)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "carol"], what="carol")[-1]
        self.assertEqual(line["role"], "staff")

    def test_missing_or_wrong_password_is_407_counted_and_never_logged(self):
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Connection: close\r\n\r\n".encode())
        self.assertEqual(status_of(out), 407)
        self.assertIn(b'Proxy-Authenticate: Basic realm="Test School internet"', out)
        before = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        status, _, err = self.get("origin.test", "dave:not-the-Secret-123", source="127.0.0.7")
        self.assertEqual(status, 407, err)
        after = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        self.assertEqual(after, before + 1)
        # Nothing anywhere holds the password (the log and stderr name the user only).
        with open(self.proxy.access_log) as f:
            log = f.read()
        self.assertNotIn("not-the-Secret-123", log)
        # stderr lines are written by a thread of their own (proxy/stderr_lines), in order: wait
        # for the failure's line, then nothing before it may hold the password.
        wait_for(lambda: any("login failed for user dave" in l for l in self.proxy.stderr_lines),
                 what="the failure on stderr")
        self.assertNotIn("not-the-Secret-123", "".join(self.proxy.stderr_lines))
        # A name the directory does not know is often a password typed into the wrong field:
        # only its length is logged.
        status, _, err = self.get("origin.test", "Typed-Pw-In-Name-99:x", source="127.0.0.7")
        self.assertEqual(status, 407, err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if "(19 bytes, not logged)" in l.get("note", "")],
                        what="the unknown name's line")[-1]
        self.assertIn("(19 bytes, not logged)", line["note"])
        wait_for(lambda: any("(19 bytes, not logged)" in l for l in self.proxy.stderr_lines), what="the stderr line")
        with open(self.proxy.access_log) as f:
            self.assertNotIn("Typed-Pw-In-Name-99", f.read())
        self.assertNotIn("Typed-Pw-In-Name-99", "".join(self.proxy.stderr_lines))
        for good in ("dave-pw", "sam-pw"):
            self.assertNotIn(good, log)

    def test_an_empty_password_is_never_sent_to_the_directory(self):
        # An empty password would be an unauthenticated bind (RFC 4513 5.1.2): a directory that
        # allows it signs anyone in, and this slapd refuses it ("unwilling to perform", a 503
        # here before) only for names that exist, which told a pupil which names do, without
        # limit (outside-in audit of logins, 2026-12-06, H1). Both names now get the same 407.
        for creds in ("sam:", "no-such-person:"):
            with self.subTest(creds=creds):
                # An address of its own: the failures count against it (the per-address limit).
                status, _, err = self.get("origin.test", creds, source="127.0.0.57")
                self.assertEqual(status, 407, err)
        def both():
            lines = [l for l in self.proxy.log_lines() if "an empty user name or password" in l.get("note", "")]
            return lines if len(lines) >= 2 else None
        lines = wait_for(both, what="the two lines")  # written by the log's thread, maybe one at a time
        self.assertEqual(len(lines), 2, lines)

    def test_a_guesser_is_refused_while_another_user_still_signs_in(self):
        for i in range(3):
            status, _, err = self.get("origin.test", f"victim:guess{i}", source=GUESSER)
            self.assertEqual(status, 407, err)
        t0 = time.monotonic()
        status, _, err = self.get("origin.test", "victim:guess-more", source=GUESSER)
        self.assertEqual(status, 429, err)
        # Even the right password is not tried from that address now (no directory call).
        status, _, err = self.get("origin.test", "sam:sam-pw", source=GUESSER)
        self.assertEqual(status, 429, err)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertGreaterEqual(self.proxy.metric("hallpass_logins_total", {"result": "rate_limited"}), 2)
        # Someone else, elsewhere, is not locked out.
        status, _, err = self.get("origin.test", "sam:sam-pw", source="127.0.0.8")
        self.assertEqual(status, 200, err)

    def test_a_name_typed_otherwise_is_the_user_the_directory_names(self):
        # The directory finds uid=frank for each of these (caseIgnoreMatch, outer blanks, the
        # fullwidth letters its string preparation folds): each is frank, never a new name that
        # a ban, an exception or a log search for "frank" would miss.
        for i, typed in enumerate(["FRANK", " Frank", "\uff46\uff52\uff41\uff4e\uff4b"]):
            client = f"127.0.0.{21 + i}"
            status, _, err = self.get("origin.test", f"{typed}:frank-pw", source=client)
            self.assertEqual(status, 200, err)
            line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == client],
                            what=f"the line of {typed!r}")[-1]
            self.assertEqual(line["user"], "frank", typed)

    def test_the_failure_limit_holds_for_every_spelling_of_the_name(self):
        for i in range(3):
            status, _, err = self.get("origin.test", f"grace:wrong{i}", source=f"127.0.0.{31 + i}")
            self.assertEqual(status, 407, err)
        # The right password under another spelling, from another address: still grace's limit.
        for n, typed in enumerate(["GRACE", "grace ", "Grace"]):
            status, _, err = self.get("origin.test", f"{typed}:grace-pw", source=f"127.0.0.{35 + n}")
            self.assertEqual(status, 429, f"{typed!r}: {err}")

    def test_parallel_guesses_get_no_more_tries_than_the_limit(self):
        # Forty wrong passwords for henry at once, each from its own address (no client limit
        # applies): the limit of 3 is judged just before each bind with the checks in flight
        # counted, so no more than 3 reach the directory's password check.
        import base64
        before = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        statuses = []
        lock = threading.Lock()

        def guess(n):
            cred = base64.b64encode(f"henry:guess-{n}".encode()).decode()
            out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                          f"Proxy-Authorization: Basic {cred}\r\nConnection: close\r\n\r\n".encode(),
                              source=f"127.0.3.{n + 1}", timeout=30)
            with lock:
                statuses.append(status_of(out))

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(statuses), 40)
        self.assertLessEqual(statuses.count(407), 3, statuses)
        self.assertEqual(statuses.count(407) + statuses.count(429), 40, statuses)
        after = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        self.assertLessEqual(after - before, 3)
        # And henry himself, once the window has passed, is not the guessers' concern here: his
        # right password from an address of his is refused too while the limit holds.
        status, _, err = self.get("origin.test", "henry:henry-pw", source="127.0.0.39")
        self.assertEqual(status, 429, err)

    def test_guessers_cannot_lock_a_user_out_of_a_device_they_use(self):
        # ivan signs in on his laptop; pupils then guess his password on their own devices.
        status, _, err = self.get("origin.test", "ivan:ivan-pw", source="127.0.0.51")
        self.assertEqual(status, 200, err)
        for n in range(3):
            status, _, err = self.get("origin.test", f"ivan:guess{n}", source=f"127.0.0.{52 + n}")
            self.assertEqual(status, 407, err)
        time.sleep(2.5)  # past the login cache's lifetime (2s here): the directory is asked again
        # The name's limit holds on every other device...
        status, _, err = self.get("origin.test", "ivan:ivan-pw", source="127.0.0.55")
        self.assertEqual(status, 429, err)
        # ...but not on the laptop he signed in from: the guessers did not lock him out.
        status, _, err = self.get("origin.test", "ivan:ivan-pw", source="127.0.0.51")
        self.assertEqual(status, 200, err)

    def test_requests_inside_a_tunnel_carry_the_connects_identity(self):
        # On an `optional` network (STAFF: the address's role is staff), a connection signs in
        # as dave (year6: social media blocked), then opens a tunnel without credentials (staff
        # by address). Requests inside carry the CONNECT's identity, not the connection's
        # earlier sign-in: facebook.test is allowed there as for any plain staff request.
        import base64
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file),
                      policy_edit=with_group_roles, tls_port=self.nginx.port)
        self.addCleanup(proxy.stop)
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", proxy.port))
        self.addCleanup(s.close)
        f = s.makefile("rb")

        def answer():
            status = int(f.readline().split()[1])
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
            return status

        cred = base64.b64encode(b"dave:dave-pw").decode()
        port = self.nginx.port
        s.sendall(f"GET http://origin.test:{port}/small HTTP/1.1\r\nHost: origin.test:{port}\r\n"
                  f"Proxy-Authorization: Basic {cred}\r\n\r\n".encode())
        self.assertEqual(answer(), 200)
        s.sendall(f"CONNECT facebook.test:{port} HTTP/1.1\r\nHost: facebook.test:{port}\r\n\r\n".encode())
        self.assertEqual(int(f.readline().split()[1]), 200)
        while f.readline() not in (b"\r\n", b""):
            pass
        s.sendall(f"GET /small HTTP/1.1\r\nHost: facebook.test:{port}\r\n\r\n".encode())
        self.assertEqual(answer(), 200)  # staff by address, as the CONNECT was (dave's year6 would block it)
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("host") == "facebook.test" and
                                 l.get("method") == "GET"], what="the request inside the tunnel")[-1]
        self.assertEqual((line["user"], line["role"]), (None, "staff"))

    def test_a_tunnel_ends_when_its_sign_in_lapses_and_a_group_change_then_applies(self):
        # tess (Staff) signs in on a CONNECT; browsers send credentials on the CONNECT only, so
        # the requests inside carry its identity. She leaves Staff: within the sign-in's
        # lifetime (cache_ttl, 2 s here) the tunnel still carries staff; after it, the next
        # request ends the tunnel unanswered (a client then opens a new one), and the new
        # CONNECT is checked afresh: tess is a pupil now, and facebook.test is refused.
        self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\nadd: member\n"
                          f"member: uid=tess,ou=people,{BASE}\n")
        proxy = self.tunnel_proxy()
        tunnel = BasicTunnel(self, proxy, "127.0.0.72", "tess:tess-pw", "facebook.test", self.nginx.port)
        self.assertEqual(tunnel.status, 200)
        self.assertEqual(tunnel.get(), 200)  # staff: social media allowed
        self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\ndelete: member\n"
                          f"member: uid=tess,ou=people,{BASE}\n")
        self.assertEqual(tunnel.get(), 200)  # within the sign-in's lifetime: still the tunnel's staff
        time.sleep(2.5)
        self.assertIsNone(tunnel.get())      # lapsed: the tunnel ends, nothing answered
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("reason") == "the tunnel's sign-in has lapsed"],
                        what="the lapsed request's line")[-1]
        self.assertEqual((line["user"], line["status"], line["action"]), ("tess", 0, "error"))
        # The client's new tunnel signs in again: the directory is asked, and tess is a pupil.
        tunnel = BasicTunnel(self, proxy, "127.0.0.72", "tess:tess-pw", "facebook.test", self.nginx.port)
        self.assertEqual(tunnel.status, 403)
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("method") == "CONNECT" and l["status"] == 403],
                        what="the new CONNECT's line")[-1]
        self.assertEqual((line["user"], line["role"]), ("tess", "pupils"))

    def test_a_relayed_https_tunnel_ends_when_its_sign_in_lapses(self):
        # A relayed tunnel (HTTPS not decrypted: every site without a school CA) carries no
        # request the proxy reads, so the lapse above never reached it: a teacher removed from
        # Staff kept social media for as long as the browser kept the tunnel (outside-in audit of
        # identity, 2026-12-07, F2). It now closes once its sign-in is cache_ttl (2 s) old.
        from inspection_test import TlsOrigin, workdir_with_test_ca
        tmp, ca = workdir_with_test_ca("hallpass-logins-relay-")
        self.addCleanup(shutil.rmtree, tmp, True)
        origin = TlsOrigin(*ca.issue("facebook", ["facebook.test"]))
        self.addCleanup(origin.stop)
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file),
                      policy_edit=with_group_roles, tls_port=origin.port)
        self.addCleanup(proxy.stop)
        self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\nadd: member\n"
                          f"member: uid=tess,ou=people,{BASE}\n")
        removed = False
        try:
            tunnel = BasicTunnel(self, proxy, "127.0.0.75", "tess:tess-pw", "facebook.test", origin.port)
            self.assertEqual(tunnel.status, 200)  # staff: social media allowed
            tls = TlsInTunnel(tunnel.sock, "facebook.test", ca.crt)
            self.assertEqual(tls.get(), 200)
            self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\ndelete: member\n"
                              f"member: uid=tess,ou=people,{BASE}\n")
            removed = True
            status, seconds = tls.get_until_closed(8)
            self.assertIsNone(status, "the relayed tunnel outlived its sign-in")
            self.assertLess(seconds, 5)
        finally:
            if not removed:
                self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\ndelete: member\n"
                                  f"member: uid=tess,ou=people,{BASE}\n")
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("method") == "CONNECT" and
                                 "sign-in has lapsed" in l.get("note", "")], what="the tunnel's line")[-1]
        self.assertEqual((line["user"], line["role"]), ("tess", "staff"))
        # Its client's new tunnel signs in again: tess is a pupil now, and facebook.test is refused.
        self.assertEqual(BasicTunnel(self, proxy, "127.0.0.75", "tess:tess-pw", "facebook.test", origin.port).status, 403)

    def test_a_tunnel_opened_with_a_cached_sign_in_lapses_when_the_cache_entry_does(self):
        # uma signs in (the directory checks her: cached for 2 s); 1.3 s later a tunnel signs in
        # with the same password from the cache. The tunnel trusts that sign-in until the
        # directory's check is 2 s old, not for 2 s from the cache hit (which gave up to twice
        # cache_ttl for a group change to apply).
        proxy = self.tunnel_proxy()
        status, _, err = curl(proxy, self.url("origin.test"), source="127.0.0.73", extra=["--proxy-user", "uma:uma-pw"])
        self.assertEqual(status, 200, err)
        checked = time.monotonic()  # the directory's check was made before this
        time.sleep(1.3)
        tunnel = BasicTunnel(self, proxy, "127.0.0.73", "uma:uma-pw", "origin.test", self.nginx.port)
        self.assertEqual(tunnel.status, 200)
        self.assertEqual(tunnel.get(), 200)
        time.sleep(max(0.0, checked + 2.5 - time.monotonic()))
        self.assertIsNone(tunnel.get())  # 2.5 s after the directory's check: lapsed (it was good until 3.3 s)

    def test_a_tunnel_opened_without_a_sign_in_ends_when_a_reload_requires_one(self):
        # The staff address's network is `optional`: a CONNECT without credentials opens a tunnel
        # under the address's role. A reload makes that network `required`: the tunnel's next
        # request is not answered and the tunnel closes (not going on as the address's role for
        # as long as its client keeps it open), and the client's new CONNECT is asked to sign in.
        proxy = self.tunnel_proxy()
        tunnel = BasicTunnel(self, proxy, STAFF, None, "origin.test", self.nginx.port)
        self.assertEqual(tunnel.status, 200)
        self.assertEqual(tunnel.get(), 200)
        self.assertEqual(tunnel.get(), 200)  # a later request of the tunnel, before the reload
        optional = f'{{networks: ["{STAFF}/32"], login: optional}}'
        self.assertIn(optional, proxy.policy_text)
        proxy.write_policy(proxy.policy_text.replace(optional, f'{{networks: ["{STAFF}/32"], login: required}}'))
        proxy.reload()
        self.assertIsNone(tunnel.get())
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("reason") == "the network now requires a sign-in"],
                        what="the closed tunnel's line")[-1]
        self.assertEqual((line["client"], line["status"], line["action"]), (STAFF, 0, "error"))
        self.assertEqual(BasicTunnel(self, proxy, STAFF, None, "origin.test", self.nginx.port).status, 407)
        # A tunnel that signed in is not affected by the change.
        signed = BasicTunnel(self, proxy, STAFF, "tess:tess-pw", "origin.test", self.nginx.port)
        self.assertEqual(signed.status, 200)
        self.assertEqual(signed.get(), 200)
        self.assertEqual(signed.get(), 200)

    def tunnel_proxy(self):
        """A proxy of its own whose tunnels may go to nginx's port (the class's allows 8443 only)."""
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file),
                      policy_edit=with_group_roles, tls_port=self.nginx.port)
        self.addCleanup(proxy.stop)
        return proxy

    def test_with_a_dn_template_the_name_is_read_back_and_non_ascii_refused(self):
        # bind_dn_template: no search before the bind. The directory's spelling is read from the
        # entry after it ("FRANK" is frank), and a name outside printable ASCII, which the
        # directory would match too but the limits could not hold to one name, is refused.
        section = logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file).replace(
            f'    base_dn: "ou=people,{BASE}"\n', f'    bind_dn_template: "uid={{user}},ou=people,{BASE}"\n')
        proxy = Proxy(extra=section, policy_edit=with_group_roles)
        self.addCleanup(proxy.stop)
        status, _, err = curl(proxy, self.url("origin.test"), source="127.0.0.61", extra=["--proxy-user", "FRANK:frank-pw"])
        self.assertEqual(status, 200, err)
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("client") == "127.0.0.61"], what="FRANK's line")[-1]
        self.assertEqual(line["user"], "frank")
        status, _, err = curl(proxy, self.url("origin.test"), source="127.0.0.62",
                              extra=["--proxy-user", "\uff46\uff52\uff41\uff4e\uff4b:frank-pw"])
        self.assertEqual(status, 407, err)
        wait_for(lambda: any("outside printable ASCII" in l for l in proxy.stderr_lines), what="the refusal on stderr")

    def test_a_directory_certificate_the_ca_file_does_not_vouch_for_is_named(self):
        """StartTLS to slapd with the system's CAs, which do not hold its self-signed certificate:
        503, and stderr says it was the TLS handshake and which CA file, where it said only
        "Connect error" (outside-in audit of logins, 2026-12-05, L3)."""
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{self.slapd.port}", "/etc/ssl/certs/ca-certificates.crt"),
                      policy_edit=with_group_roles)
        self.addCleanup(proxy.stop)
        status, _, err = curl(proxy, self.url("origin.test"), extra=["--proxy-user", "sam:sam-pw"])
        self.assertEqual(status, 503, err)
        wait_for(lambda: [l for l in proxy.stderr_lines if "the TLS handshake with the directory failed; check that "
                          "logins.ldap.ca_file (/etc/ssl/certs/ca-certificates.crt) holds the CA" in l],
                 what="the TLS hint on stderr")

    def test_an_empty_service_password_is_named_not_sent(self):
        """A DN with an empty password is an unauthenticated bind, which some directories take as
        anonymous: the service account's empty password file is refused by name (outside-in
        audit of logins, 2026-12-05, L4)."""
        password_file = os.path.join(tempfile.mkdtemp(prefix="hallpass-pw-"), "service-password")
        self.addCleanup(shutil.rmtree, os.path.dirname(password_file), True)
        with open(password_file, "w") as f:
            f.write("\n")
        os.chmod(password_file, 0o600)
        logins = logins_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file).replace(
            "    user_attribute: uid\n", f"    user_attribute: uid\n    bind_dn: \"cn=admin,{BASE}\"\n"
            f"    bind_password_file: \"{password_file}\"\n")
        proxy = Proxy(extra=logins, policy_edit=with_group_roles)
        self.addCleanup(proxy.stop)
        status, _, err = curl(proxy, self.url("origin.test"), extra=["--proxy-user", "sam:sam-pw"])
        self.assertEqual(status, 503, err)
        wait_for(lambda: [l for l in proxy.stderr_lines if "has an empty first line" in l],
                 what="the empty password named on stderr")

    def test_people_signing_in_at_once_from_one_address_are_not_refused(self):
        # Eight people sign in at the same moment from one address (a terminal server): more
        # than the per-address limit of 3, but nobody got a password wrong, so nobody gets 429
        # (the checks in flight wait for each other instead).
        statuses = []
        lock = threading.Lock()

        import base64
        relay = SlowRelay(self.slapd.port)
        self.addCleanup(relay.stop)
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{relay.port}", self.slapd.ca_file),
                      policy_edit=with_group_roles)
        self.addCleanup(proxy.stop)
        ready = threading.Barrier(8, timeout=30)

        def sign_in(n, user_password=None):
            cred = base64.b64encode((user_password or f"kid{n}:kid{n}-pw").encode()).decode()
            ready.wait()  # all at once
            out = raw_request(proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                     f"Proxy-Authorization: Basic {cred}\r\nConnection: close\r\n\r\n".encode(),
                              source="127.0.0.71", timeout=30)
            with lock:
                statuses.append(status_of(out))

        threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(1, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(statuses, [200] * 8)
        # One person's tabs at once: the same sign-in four times, checked once. The three that
        # waited for that check are successes too, not "not checked" on stderr (outside-in
        # audit of logins, 2026-12-05, L1).
        statuses.clear()
        ready = threading.Barrier(4, timeout=30)
        threads = [threading.Thread(target=sign_in, args=(0, "uma:uma-pw")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(statuses, [200] * 4)
        self.assertFalse([l for l in proxy.stderr_lines if "not checked" in l], proxy.stderr_lines)

    def test_a_typed_name_cannot_write_lines_of_its_own_on_stderr(self):
        import base64
        typed = "x\x1b[2Kevil\x07 hallpass: policy reloaded"
        cred = base64.b64encode(f"{typed}:pw".encode()).decode()
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Proxy-Authorization: Basic {cred}\r\nConnection: close\r\n\r\n".encode(),
                          source="127.0.0.41", timeout=30)
        self.assertEqual(status_of(out), 407)
        # A name the directory does not know is not written at all (it may be a password typed
        # into the name field), so nothing of it reaches the terminal; a name the directory
        # knows is written with control characters escaped (rules::terminal_safe).
        wait_for(lambda: [l for l in self.proxy.stderr_lines if "127.0.0.41" in l and "did not confirm" in l],
                 what="the failure on stderr")
        self.assertNotIn("evil", "".join(self.proxy.stderr_lines))
        self.assertNotIn("\x1b", "".join(self.proxy.stderr_lines))
        self.assertNotIn("\x07", "".join(self.proxy.stderr_lines))

    def test_keep_alive_connection_asks_the_directory_once(self):
        before = sum(self.proxy.metric("hallpass_logins_total", {"result": r}) for r in ("ok", "cached"))
        cmd = ["curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{self.proxy.port}", "--interface", PUPIL,
               "--proxy-user", "carol:carol-pw", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
               "-w", "%{http_code} %{num_connects}\n", self.url("origin.test"), self.url("origin.test", "/small?2"),
               self.url("origin.test", "/small?3")]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        lines = r.stdout.split()
        self.assertEqual(lines[0::2], ["200", "200", "200"], r.stderr)
        self.assertEqual(lines[1::2], ["1", "0", "0"], r.stdout)  # one connection
        after = sum(self.proxy.metric("hallpass_logins_total", {"result": r}) for r in ("ok", "cached"))
        self.assertEqual(after, before + 1)

    def test_other_credentials_on_a_signed_in_connection_are_checked_again(self):
        # One connection, three pipelined requests: sam signs in; then sam with a wrong password of
        # the same length (so only the bytes differ) is refused, not taken for sam's sign-in;
        # then dave signs in on it and gets his own role (year6 blocks social media).
        import base64
        import re

        def req(host, cred, close=False):
            b64 = base64.b64encode(cred.encode()).decode()
            return (f"GET {self.url(host)} HTTP/1.1\r\nHost: {host}\r\nProxy-Authorization: Basic {b64}\r\n" +
                    ("Connection: close\r\n" if close else "") + "\r\n").encode()

        out = raw_request(self.proxy, req("origin.test", "sam:sam-pw") + req("origin.test", "sam:sam-px") +
                          req("facebook.test", "dave:dave-pw", close=True), source="127.0.0.10", timeout=10)
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", out)]
        self.assertEqual(statuses, [200, 407, 403], out[:2000])

    def test_optional_and_none_networks(self):
        # optional: nothing sent -> the address's role (staff); credentials sent -> the user's.
        status, _, err = self.get("facebook.test", source=STAFF)
        self.assertEqual(status, 200, err)
        status, _, err = self.get("facebook.test", "dave:dave-pw", source=STAFF)
        self.assertEqual(status, 403, err)
        status, _, err = self.get("origin.test", "dave:wrong", source=STAFF)
        self.assertEqual(status, 407, err)  # sent and wrong is refused even where optional
        # none: never asked, credentials ignored, the guest network's role.
        status, _, err = self.get("facebook.test", source=GUEST)
        self.assertEqual(status, 403, err)
        status, _, err = self.get("origin.test", "sam:sam-pw", source=GUEST)
        self.assertEqual(status, 200, err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == GUEST and
                                 l.get("host") == "origin.test"], what="the guest's line")[-1]
        self.assertIsNone(line["user"])
        self.assertEqual(line["role"], "guests")

    def test_connect_signs_in_on_the_connect(self):
        out = raw_request(self.proxy, b"CONNECT facebook.test:443 HTTP/1.1\r\nHost: facebook.test:443\r\n\r\n")
        self.assertEqual(status_of(out), 407)
        cred = __import__("base64").b64encode(b"dave:dave-pw").decode()
        out = raw_request(self.proxy, f"CONNECT facebook.test:443 HTTP/1.1\r\nHost: facebook.test:443\r\n"
                                      f"Proxy-Authorization: Basic {cred}\r\n\r\n".encode())
        self.assertEqual(status_of(out), 403)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("method") == "CONNECT" and
                                 l.get("user") == "dave"], what="dave's CONNECT")[-1]
        self.assertEqual(line["role"], "year6")

    def test_explain_with_groups_decides_as_for_a_signed_in_user(self):
        from harness import BIN
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--state-dir", os.path.join(self.proxy.dir, "state"), "--client", STAFF, "--user", "dave",
                            "--groups", "Year 6, Pupils", "http://facebook.test/"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BLOCK", r.stdout)
        self.assertIn("year6 (signed-in user is in group Year 6)", r.stdout)
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--state-dir", os.path.join(self.proxy.dir, "state"), "--client", STAFF, "http://facebook.test/"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("ALLOW", r.stdout)  # the address's role without groups

    def explain(self, *args):
        from harness import BIN
        return subprocess.run([BIN, "explain", "--config", self.proxy.config, "--state-dir",
                               os.path.join(self.proxy.dir, "state"), *args], capture_output=True, text=True, timeout=30)

    def test_explain_asks_the_directory_and_applies_the_users_ban(self):
        """explain --user without --groups asks the directory, and decided for the name as the
        directory spells it through a view into an answer already freed: a user's bans and
        exceptions were missed (explain audit, 2026-12-07, F1)."""
        import sqlite3
        db = sqlite3.connect(os.path.join(self.proxy.dir, "state", "hallpass.db"), timeout=10)
        now = int(time.time())
        cur = db.execute("INSERT INTO bans(kind, subject, reason, how, created_by, created_role, created_at, length, "
                         "valid_from, valid_until) VALUES('user', 'ivan', 'explain test', 'command', 'test', "
                         "'headteacher', ?, 3600, ?, ?)", (now, now, now + 3600))
        ban = cur.lastrowid
        db.commit()

        def lift():
            db.execute("UPDATE bans SET lifted_by='test', lifted_at=?, lift_reason='test over' WHERE id=?",
                       (int(time.time()), ban))
            db.commit()
            db.close()
        self.addCleanup(lift)
        for typed in ("ivan", "IVAN"):  # the directory spells it ivan
            r = self.explain("--client", STAFF, "--user", typed, "http://origin.test/")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("BLOCK", r.stdout, typed)
            self.assertIn(f"ban {ban}", r.stdout, typed)

    def test_explain_follows_the_networks_login_mode(self):
        # login: none (the guest network): credentials are ignored, the address's role decides
        # (F2); login: required: the proxy asks for a sign-in first, and explain says so (F3).
        r = self.explain("--client", GUEST, "--user", "sam", "http://facebook.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("asks no one to sign in (login: none)", r.stdout)
        self.assertIn("BLOCK", r.stdout)  # guests block social media; sam as staff would be allowed
        r = self.explain("--client", "127.0.0.9", "http://origin.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("asks every device to sign in (login: required)", r.stdout)
        self.assertIn("407", r.stdout)

    def test_zz_group_change_is_picked_up_after_the_cache_lifetime(self):
        # erin is in no group: the address's role (pupils). Signed in once (cached for 2s)...
        status, _, err = self.get("facebook.test", "erin:erin-pw", source="127.0.0.9")
        self.assertEqual(status, 403, err)
        self.slapd.modify(f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\nadd: member\n"
                          f"member: uid=erin,ou=people,{BASE}\n")
        status, _, err = self.get("facebook.test", "erin:erin-pw", source="127.0.0.9")
        self.assertEqual(status, 403, err)  # still the cached groups
        time.sleep(2.5)
        status, _, err = self.get("facebook.test", "erin:erin-pw", source="127.0.0.9")
        self.assertEqual(status, 200, err)  # now staff


@unittest.skipUnless(HAVE_SLAPD, "slapd is not installed")
class StalledDirectoryTest(unittest.TestCase):
    def test_a_directory_that_says_nothing_gives_503_within_the_deadline(self):
        nginx = Origin()
        staller = Staller()
        proxy = Proxy(extra=logins_section(f"ldap://127.0.0.1:{staller.port}", "/etc/ssl/certs/ca-certificates.crt",
                                           timeout="1s"), policy_edit=with_group_roles)
        try:
            results = []
            ask = timed_sign_in(proxy, f"http://origin.test:{nginx.port}/small", results)

            # Three identical sign-ins at once and one with another password.
            threads = [threading.Thread(target=ask, args=(c,)) for c in ("sam:sam-pw",) * 3 + ("sam:other-pw",)]
            for t in threads:
                t.start()
            # Others are unaffected meanwhile: the guest network needs no login.
            t0 = time.monotonic()
            status, _, err = curl(proxy, f"http://origin.test:{nginx.port}/small", source=GUEST)
            self.assertEqual(status, 200, err)
            self.assertLess(time.monotonic() - t0, 1.0)
            for t in threads:
                t.join(20)
            self.assertEqual(len(results), 4)
            for status, took in results:
                self.assertEqual(status, 503)
                self.assertLess(took, 4.0)  # timeout 1s (+1s for the whole wait)
            self.assertGreaterEqual(proxy.metric("hallpass_logins_total", {"result": "unavailable"}), 4)
            # The identical ones waited for one directory call: two connections, not four.
            self.assertEqual(len(staller.conns), 2)
        finally:
            proxy.stop()
            staller.stop()
            nginx.stop()

    def test_the_next_directory_of_the_list_is_asked_when_one_cannot_be_reached(self):
        """logins.ldap.url "A B C": a refused A and a silent B (its StartTLS times out) are passed
        over for C. libldap's own failover stopped at a connect under way once connects were
        made asynchronously (review, 2026-12-05)."""
        nginx = Origin()
        staller = Staller()
        slapd = Slapd()
        urls = f"ldap://127.0.0.1:{free_port()} ldap://127.0.0.1:{staller.port} ldap://127.0.0.1:{slapd.port}"
        proxy = Proxy(extra=logins_section(urls, slapd.ca_file, timeout="2s"), policy_edit=with_group_roles)
        try:
            t0 = time.monotonic()
            status, _, err = curl(proxy, f"http://origin.test:{nginx.port}/small", extra=["--proxy-user", "sam:sam-pw"])
            self.assertEqual(status, 200, err)
            self.assertLess(time.monotonic() - t0, 3.0)
            # A wrong password is the third directory's answer, not a reason to ask another.
            status, _, err = curl(proxy, f"http://origin.test:{nginx.port}/small",
                                  extra=["--proxy-user", "sam:not-the-Secret-1"])
            self.assertEqual(status, 407, err)
        finally:
            proxy.stop()
            staller.stop()
            slapd.stop()
            nginx.stop()

    def test_a_directory_that_stalls_in_the_tls_handshake_frees_its_threads(self):
        """ldaps:// to a directory that accepts and then says nothing: the TLS handshake has the
        timeout too. It had none: every directory thread spun for good, and after a reload onto
        a working directory no sign-in was checked (outside-in audit of logins, 2026-12-05)."""
        nginx = Origin()
        staller = Staller()
        slapd = Slapd()
        stalled_url = f"ldaps://127.0.0.1:{staller.port}"
        proxy = Proxy(extra=logins_section(stalled_url, "/etc/ssl/certs/ca-certificates.crt", timeout="1s"),
                      policy_edit=with_group_roles)
        try:
            results = []
            ask = timed_sign_in(proxy, f"http://origin.test:{nginx.port}/small", results)

            # More sign-ins than the directory has threads (logins.ldap.max_in_flight, 4).
            threads = [threading.Thread(target=ask, args=(f"kid{n}:kid{n}-pw",)) for n in range(1, 7)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            self.assertEqual([status for status, _ in results], [503] * 6)
            for _, took in results:
                self.assertLess(took, 6.0)
            # The threads are idle, not spinning on the silent connections (which the staller
            # still holds open).
            def cpu_seconds():
                with open(f"/proc/{proxy.proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            time.sleep(2.5)  # the last handshakes' deadlines pass
            before = cpu_seconds()
            time.sleep(2)
            self.assertLess(cpu_seconds() - before, 0.5)
            # A reload onto a working directory: sign-ins are checked again at once.
            proxy.write_policy(proxy.policy_text.replace(stalled_url, f"ldap://127.0.0.1:{slapd.port}")
                               .replace("/etc/ssl/certs/ca-certificates.crt", slapd.ca_file)
                               .replace("    timeout: 1s\n", "    timeout: 1s\n    max_in_flight: 2\n"))
            proxy.reload()
            # The number of directory threads is a restart's: the reload says so.
            wait_for(lambda: [l for l in proxy.stderr_lines if "logins.ldap.max_in_flight take effect at the next "
                              "restart" in l], what="the reload's note")
            status, _, err = curl(proxy, f"http://origin.test:{nginx.port}/small", extra=["--proxy-user", "sam:sam-pw"])
            self.assertEqual(status, 200, err)
        finally:
            proxy.stop()
            staller.stop()
            slapd.stop()
            nginx.stop()


if __name__ == "__main__":
    unittest.main()
