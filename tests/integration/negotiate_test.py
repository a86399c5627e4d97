"""Negotiate (Kerberos through SPNEGO) logins on the explicit proxy (issue 12): a KDC started
here (krb5kdc from Debian, realm TEST.REALM, on a loopback port), the proxy's keytab made with
kadmin.local, curl --proxy-negotiate after kinit; the user's groups read from a real slapd
without the user's password (logins_test's Slapd); Basic beside it; a garbage token; the
keep-alive connection binding; and `hallpass explain --user` resolving the groups. Every wait
is bounded."""
import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BIN, PUPIL, Origin, Proxy, _can_connect, curl, free_port, raw_request, status_of, stop_process, wait_for
from logins_test import BASE, HAVE_SLAPD, Slapd, logins_section, with_group_roles

KRB5KDC = shutil.which("krb5kdc") or "/usr/sbin/krb5kdc"
KDB5_UTIL = shutil.which("kdb5_util") or "/usr/sbin/kdb5_util"
KADMIN_LOCAL = shutil.which("kadmin.local") or "/usr/sbin/kadmin.local"
HAVE_KRB5 = all(os.path.exists(p) for p in (KRB5KDC, KDB5_UTIL, KADMIN_LOCAL)) and shutil.which("kinit")
REALM = "TEST.REALM"
PROXY_HOST = "127.0.0.1"  # curl asks for HTTP/<the proxy's host>; rdns and canonicalisation are off


def free_tcp_and_udp_port():
    """A loopback port free for both TCP and UDP now (the KDC takes both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no loopback port free for both TCP and UDP in 50 tries")


class Kdc:
    """krb5kdc with its own kdc.conf and krb5.conf in a temp dir, listening on 127.0.0.1:PORT."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-kdc-")
        os.chmod(self.dir, 0o755)
        d = self.dir
        self.krb5_conf = f"{d}/krb5.conf"
        self.write_configs(free_tcp_and_udp_port())
        open(f"{d}/kadm5.acl", "w").close()
        self.env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5_KDC_PROFILE=f"{d}/kdc.conf",
                        KRB5CCNAME=f"FILE:{d}/ccache", KRB5RCACHEDIR=d)
        self.run([KDB5_UTIL, "create", "-s", "-r", REALM, "-P", "master-secret-1"])
        self.keytab = f"{d}/proxy.keytab"
        self.kadmin(f"addprinc -randkey HTTP/{PROXY_HOST}@{REALM}")
        self.kadmin(f"ktadd -k {self.keytab} HTTP/{PROXY_HOST}@{REALM}")
        os.chmod(self.keytab, 0o644)  # the daemon drops privileges and must read it
        # krb5kdc binds UDP and TCP on its port; a port taken in between by another test (the
        # suite runs two at a time) leaves it running without listening. Then another port, at
        # most three times.
        for attempt in range(3):
            if attempt:
                self.write_configs(free_tcp_and_udp_port())
            self.proc = subprocess.Popen([KRB5KDC, "-n", "-r", REALM], env=self.env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: _can_connect(self.port), timeout=10, what="krb5kdc to listen")
                return
            except AssertionError:
                stop_process(self.proc)
                if attempt == 2:
                    raise

    def write_configs(self, port):
        self.port = port
        d = self.dir
        with open(self.krb5_conf, "w") as f:
            f.write(f"""[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{self.port}
  }}
[domain_realm]
  {PROXY_HOST} = {REALM}
""")
        with open(f"{d}/kdc.conf", "w") as f:
            f.write(f"""[kdcdefaults]
  kdc_ports = {self.port}
  kdc_tcp_ports = {self.port}
[realms]
  {REALM} = {{
    database_name = {d}/principal
    key_stash_file = {d}/stash
    acl_file = {d}/kadm5.acl
    max_life = 1h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal
  }}
[logging]
  kdc = FILE:{d}/kdc.log
""")

    def run(self, cmd, **kw):
        return subprocess.run(cmd, env=self.env, check=True, capture_output=True, timeout=60, **kw)

    def kadmin(self, query):
        self.run([KADMIN_LOCAL, "-r", REALM, "-q", query])

    def add_user(self, name):
        """A user whose key is in a client keytab of their own, so kinit needs no password prompt."""
        keytab = f"{self.dir}/{name}.keytab"
        self.kadmin(f"addprinc -randkey {name}@{REALM}")
        self.kadmin(f"ktadd -k {keytab} {name}@{REALM}")
        return keytab

    def kinit(self, name, keytab):
        self.run(["kinit", "-k", "-t", keytab, f"{name}@{REALM}"])

    def kdestroy(self):
        subprocess.run(["kdestroy"], env=self.env, capture_output=True, timeout=20)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def negotiate_section(keytab, principal=None):
    line = f"  negotiate:\n    keytab: \"{keytab}\"\n"
    if principal:
        line += f"    principal: \"{principal}\"\n"
    return line


@unittest.skipUnless(HAVE_SLAPD and HAVE_KRB5, "slapd or the MIT KDC (krb5-kdc, krb5-admin-server, krb5-user) "
                                               "is not installed")
class NegotiateFixture(unittest.TestCase):
    """The origin, slapd, KDC (users dave and sam) and proxy with logins.negotiate that the
    Negotiate tests share, started once per class (negotiate_legs_test.py's too). No tests."""

    @classmethod
    def setUpClass(cls):
        # A failure half-way stops what was started (tearDownClass does not run then).
        cls.nginx = cls.slapd = cls.kdc = cls.proxy = None
        cls.saved_env = {}
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        cls.nginx = Origin()
        cls.slapd = Slapd()
        cls.kdc = Kdc()
        cls.dave_keytab = cls.kdc.add_user("dave")  # Year 6 in the directory
        cls.sam_keytab = cls.kdc.add_user("sam")    # Staff
        # The proxy reads the test realm's krb5.conf (the replay cache goes in the temp dir too).
        cls.saved_env = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
        os.environ["KRB5_CONFIG"] = cls.kdc.krb5_conf
        os.environ["KRB5RCACHEDIR"] = cls.kdc.dir
        logins = logins_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file)
        # The groups of a Negotiate user are read as the service account (no user password).
        password_file = os.path.join(cls.kdc.dir, "service-password")
        with open(password_file, "w") as f:
            f.write("admin-secret\n")
        os.chmod(password_file, 0o600)
        logins = logins.replace("    user_attribute: uid\n", f"    user_attribute: uid\n    bind_dn: \"cn=admin,{BASE}\"\n"
                                f"    bind_password_file: \"{password_file}\"\n")
        logins = logins.replace("  failures:", negotiate_section(cls.kdc.keytab, f"HTTP/{PROXY_HOST}@{REALM}") +
                                "  failures:")
        cls.proxy = Proxy(extra=logins, policy_edit=with_group_roles)

    @classmethod
    def tearDownClass(cls):
        for k, v in cls.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for part in (cls.proxy, cls.kdc, cls.slapd, cls.nginx):
            if part is not None:
                part.stop()

    def url(self, host, path="/small"):
        return f"http://{host}:{self.nginx.port}{path}"


class NegotiateTest(NegotiateFixture):
    def curl_negotiate(self, urls, source=PUPIL):
        """curl --proxy-negotiate with the KDC's ticket cache: [(status, connects)] per URL."""
        cmd = ["curl", "-sS", "--max-time", "20", "-x", f"http://{PROXY_HOST}:{self.proxy.port}", "--interface",
               source, "--proxy-negotiate", "-U", ":"]
        for u in urls:
            cmd += ["-o", "/dev/null", u]
        cmd += ["-w", "%{http_code} %{num_connects}\n"]
        r = subprocess.run(cmd, env=self.kdc.env, capture_output=True, text=True, timeout=40)
        out = [tuple(int(x) for x in line.split()) for line in r.stdout.splitlines() if line.strip()]
        self.assertEqual(len(out), len(urls), r.stderr)
        return out

    def capture_token(self):
        """A fresh SPNEGO token for HTTP/127.0.0.1, made by curl's own GSS-API call: curl asks a
        stand-in proxy here, which challenges with Negotiate and keeps the token curl answers with
        (never used there, so the real proxy's replay cache has not seen it)."""
        import socket
        import threading
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(20)
        got = []

        def serve():
            conn = None
            try:
                conn, _ = srv.accept()
                conn.settimeout(20)
                f = conn.makefile("rb")
                for _ in range(2):
                    head = b""
                    while not head.endswith(b"\r\n\r\n") and len(head) < 65536:
                        line = f.readline()
                        if not line:
                            return
                        head += line
                    m = re.search(rb"(?im)^Proxy-Authorization: *(Negotiate [^\r]*)\r$", head)
                    if m:
                        got.append(m.group(1).decode())
                        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        return
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\n"
                                 b"Content-Length: 0\r\n\r\n")
            except OSError:
                pass
            finally:
                if conn is not None:
                    conn.close()
                srv.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        port = srv.getsockname()[1]
        subprocess.run(["curl", "-sS", "--max-time", "20", "-x", f"http://{PROXY_HOST}:{port}", "--proxy-negotiate",
                        "-U", ":", "-o", "/dev/null", self.url("origin.test")], env=self.kdc.env,
                       capture_output=True, timeout=40)
        t.join(25)
        self.assertEqual(len(got), 1, "curl sent no Negotiate token")
        return got[0]

    def test_check_names_the_keytabs_keys(self):
        r = subprocess.run([BIN, "check", "--config", self.proxy.config], capture_output=True, text=True, timeout=30,
                           env=self.kdc.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"Negotiate (Kerberos single sign-on): keytab {self.kdc.keytab}, tickets for HTTP/{PROXY_HOST}@{REALM}",
                      r.stdout)
        self.assertRegex(r.stdout, rf"    key: HTTP/{re.escape(PROXY_HOST)}@{REALM} kvno \d+\n")

    def test_a_keytab_without_the_key_is_the_proxys_fault_not_the_users(self):
        """The service account's key changed (a new key version) and the proxy's keytab was not
        updated: the tickets are refused, but not counted against the device, whose Basic
        sign-in then still works (outside-in audit of logins, 2026-12-05, M1)."""
        source = "127.0.0.41"
        renewed = os.path.join(self.kdc.dir, "renewed.keytab")
        self.kdc.kadmin(f"ktadd -k {renewed} HTTP/{PROXY_HOST}@{REALM}")  # a new key version at the KDC
        os.chmod(renewed, 0o644)
        try:
            self.kdc.kinit("dave", self.dave_keytab)  # a fresh cache: the next ticket has the new version
            for _ in range(5):  # past per_client: 3
                self.assertEqual(self.curl_negotiate([self.url("origin.test")], source=source), [(407, 1)])
            wait_for(lambda: any("the proxy's keytab has no key for it" in l for l in self.proxy.stderr_lines),
                     what="the keytab's problem on stderr")
            # Once, not once per ticket (a client can make up tickets for any service name, and
            # a stale keytab fails every request): at most a line a minute; each request keeps
            # its note in the access log.
            self.assertEqual(sum("the proxy's keytab has no key for it" in l for l in self.proxy.stderr_lines), 1,
                             self.proxy.stderr_lines[-8:])
            wait_for(lambda: len([l for l in self.proxy.log_lines() if l.get("client") == source
                                  and "the proxy's keytab has no key for it" in l.get("note", "")]) == 5,
                     what="the five tickets' notes in the access log")
            status, _, err = curl(self.proxy, self.url("origin.test"), source=source,
                                  extra=["--proxy-user", "sam:sam-pw"])
            self.assertEqual(status, 200, err)
        finally:
            shutil.copyfile(renewed, self.kdc.keytab)  # the later tests' tickets have the new version
            self.kdc.kinit("dave", self.dave_keytab)

    def test_the_second_request_on_the_connection_needs_no_token(self):
        self.kdc.kinit("dave", self.dave_keytab)
        token = self.capture_token()
        first = (f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                 f"Proxy-Authorization: {token}\r\n\r\n").encode()
        second = f"GET {self.url('facebook.test')} HTTP/1.1\r\nHost: facebook.test\r\nConnection: close\r\n\r\n".encode()
        out = raw_request(self.proxy, first + second, source="127.0.0.14", timeout=10)
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", out)]
        self.assertEqual(statuses, [200, 403], out[:2000])  # the second as dave (Year 6), with no header
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == "127.0.0.14" and
                                 l.get("host") == "facebook.test"], what="the second request's line")[-1]
        self.assertEqual(line["user"], "dave")
        self.assertEqual(line["role"], "year6")
        # A new connection from the same address with no header is asked again.
        out = raw_request(self.proxy, second, source="127.0.0.14")
        self.assertEqual(status_of(out), 407)
        # The same token again (a replay) is refused.
        out = raw_request(self.proxy, first.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                          source="127.0.0.15")
        self.assertEqual(status_of(out), 407, out[:500])

    def test_a_kerberos_user_signs_in_and_the_directory_group_is_the_role(self):
        self.kdc.kinit("dave", self.dave_keytab)
        [(status, _)] = self.curl_negotiate([self.url("facebook.test")])
        self.assertEqual(status, 403)  # dave is in Year 6: social media blocked
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "dave" and
                                 l.get("host") == "facebook.test"], what="dave's line")[-1]
        self.assertEqual(line["role"], "year6")
        self.kdc.kinit("sam", self.sam_keytab)
        [(status, _)] = self.curl_negotiate([self.url("facebook.test", "/small?sam")])
        self.assertEqual(status, 200)  # sam is in Staff
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "sam"], what="sam")[-1]
        self.assertEqual(line["role"], "staff")
        self.assertGreaterEqual(self.proxy.metric("hallpass_logins_total", {"result": "ok"}), 2)

    def test_without_a_ticket_407_offers_negotiate_then_basic(self):
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Connection: close\r\n\r\n".encode())
        self.assertEqual(status_of(out), 407)
        offers = re.findall(rb"(?im)^Proxy-Authenticate: *(.*?)\r$", out)
        self.assertEqual(len(offers), 2, out)
        self.assertEqual(offers[0], b"Negotiate")
        self.assertTrue(offers[1].startswith(b'Basic realm="Test School internet"'), offers)
        # curl with no ticket at all gets the 407 too.
        self.kdc.kdestroy()
        [(status, _)] = self.curl_negotiate([self.url("origin.test", "/?noticket")])
        self.assertEqual(status, 407)

    def test_a_garbage_token_is_407_counted_and_never_logged(self):
        before = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        garbage = base64.b64encode(b"\x60\x0aNot-A-Ticket-Secret-42").decode()
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Proxy-Authorization: Negotiate {garbage}\r\nConnection: close\r\n\r\n".encode(),
                          source="127.0.0.11")
        self.assertEqual(status_of(out), 407, out)
        after = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        self.assertEqual(after, before + 1)
        with open(self.proxy.access_log) as f:
            log = f.read()
        self.assertNotIn(garbage, log)
        self.assertNotIn(garbage, "".join(self.proxy.stderr_lines))
        # The proxy's stderr is read by a thread of the harness: the line may trail the 407.
        wait_for(lambda: "Negotiate login failed" in "".join(self.proxy.stderr_lines), timeout=10,
                 what="the failed Negotiate login on stderr")
        self.assertNotIn(garbage, "".join(self.proxy.stderr_lines))
        # Bad tokens count against the address as wrong passwords do (per_client: 3): then 429.
        for _ in range(3):
            raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                    f"Proxy-Authorization: Negotiate {garbage}\r\nConnection: close\r\n\r\n".encode(),
                        source="127.0.0.12")
        out = raw_request(self.proxy, f"GET {self.url('origin.test')} HTTP/1.1\r\nHost: origin.test\r\n"
                                      f"Proxy-Authorization: Negotiate {garbage}\r\nConnection: close\r\n\r\n".encode(),
                          source="127.0.0.12")
        self.assertEqual(status_of(out), 429, out)

    def test_curl_keeps_one_connection_and_a_new_one_signs_in_again(self):
        self.kdc.kinit("dave", self.dave_keytab)
        before = self.proxy.metric("hallpass_logins_total", {"result": "ok"})
        daves = len([l for l in self.proxy.log_lines() if l.get("user") == "dave"])
        got = self.curl_negotiate([self.url("origin.test", "/small?k1"), self.url("origin.test", "/small?k2"),
                                   self.url("origin.test", "/small?k3")])
        self.assertEqual([s for s, _ in got], [200, 200, 200])
        self.assertEqual([n for _, n in got], [1, 0, 0])  # one connection
        # curl sends a fresh token with each request (each is accepted: a Kerberos
        # authenticator is new each time); the requests without one are
        # test_the_second_request_on_the_connection_needs_no_token's.
        after = self.proxy.metric("hallpass_logins_total", {"result": "ok"})
        self.assertGreaterEqual(after, before + 1)
        wait_for(lambda: len([l for l in self.proxy.log_lines() if l.get("user") == "dave"]) >= daves + 3,
                 what="dave's three keep-alive lines")
        # A new connection signs in again.
        self.curl_negotiate([self.url("origin.test", "/small?k4")])
        self.assertGreater(self.proxy.metric("hallpass_logins_total", {"result": "ok"}), after)

    def test_basic_still_works_beside_negotiate(self):
        from harness import curl
        status, _, err = curl(self.proxy, self.url("facebook.test", "/small?basic"), extra=["--proxy-user", "sam:sam-pw"])
        self.assertEqual(status, 200, err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("user") == "sam" and
                                 l.get("host") == "facebook.test"], what="sam's Basic line")[-1]
        self.assertEqual(line["role"], "staff")

    def test_explain_user_resolves_groups_from_the_directory(self):
        state = os.path.join(self.proxy.dir, "state")
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--state-dir", state, "--client", PUPIL,
                            "--user", "dave", "http://facebook.test/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BLOCK", r.stdout)
        self.assertIn("year6 (signed-in user is in group Year 6)", r.stdout)
        self.assertIn("from the directory: Year 6", r.stdout)
        # --groups still wins over the directory.
        r = subprocess.run([BIN, "explain", "--config", self.proxy.config, "--state-dir", state, "--client", PUPIL,
                            "--user", "dave", "--groups", "Staff", "http://facebook.test/"], capture_output=True,
                           text=True, timeout=30)
        self.assertIn("ALLOW", r.stdout)
        # A directory that cannot be reached: a clear error, exit 1.
        with open(self.proxy.config) as f:
            text = f.read()
        dead = os.path.join(self.proxy.dir, "dead.yaml")
        with open(dead, "w") as f:
            f.write(text.replace(f"ldap://127.0.0.1:{self.slapd.port}", f"ldap://127.0.0.1:{free_port()}"))
        r = subprocess.run([BIN, "explain", "--config", dead, "--state-dir", state, "--client", PUPIL,
                            "--user", "dave", "http://facebook.test/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("could not give the groups of 'dave'", r.stderr)

    def test_zz_groups_are_kept_for_the_cache_lifetime_then_read_again(self):
        # login_service::identity_of: a Negotiate sign-in on a new connection takes the groups
        # from the cache (logins.ldap.cache_ttl, 2s here) without a directory call, and reads
        # them again once it has passed. Last in the class: it moves dave into Staff (and back).
        time.sleep(2.1)  # dave's groups as an earlier test cached them have expired
        self.kdc.kinit("dave", self.dave_keytab)
        [(status, _)] = self.curl_negotiate([self.url("facebook.test", "/small?cache1")])
        self.assertEqual(status, 403)  # Year 6
        staff = f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\n%s: member\nmember: uid=dave,ou=people,{BASE}\n"
        self.slapd.modify(staff % "add")
        try:
            [(status, _)] = self.curl_negotiate([self.url("facebook.test", "/small?cache2")])
            self.assertEqual(status, 403)  # a new connection, a new token, the cached groups
            time.sleep(2.5)
            [(status, _)] = self.curl_negotiate([self.url("facebook.test", "/small?cache3")])
            self.assertEqual(status, 200)  # read again: staff comes first in policy order
        finally:
            self.slapd.modify(staff % "delete")


@unittest.skipUnless(HAVE_KRB5, "the MIT KDC tools are not installed")
class NegotiateConfigTest(unittest.TestCase):
    def test_an_unreadable_or_wrong_keytab_is_a_clear_error(self):
        d = tempfile.mkdtemp(prefix="hallpass-keytab-")
        try:
            bad = os.path.join(d, "not.keytab")
            with open(bad, "w") as f:
                f.write("hello\n")
            for keytab, words in ((os.path.join(d, "missing.keytab"), "cannot be read"),
                                  (bad, "is not a Kerberos keytab")):
                cfg = os.path.join(d, "policy.yaml")
                from harness import BASE_POLICY, GUEST, STAFF
                text = BASE_POLICY.format(pupil=PUPIL, staff=STAFF, guest=GUEST, hosts="  origin.test: 127.0.0.1",
                                          response_timeout="3s", head_timeout="2s", drain="5s", tls_port=8443,
                                          workers=1)
                text += logins_section("ldap://127.0.0.1:1", "/etc/ssl/certs/ca-certificates.crt")
                text = text.replace("  failures:", negotiate_section(keytab, "HTTP/x@T") + "  failures:")
                with open(cfg, "w") as f:
                    f.write(text)
                r = subprocess.run([BIN, "check", "--config", cfg, "--state-dir", d], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("logins.negotiate.keytab", r.stdout + r.stderr)
                self.assertIn(words, r.stdout + r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
