"""The sign-in page (issue 12, `login: page`): a device on such a network that is not signed in
gets "Sign in to the school internet" for any web request; its post is checked by a simple bind
to a real slapd (started here as logins_test.py does); a success binds the device's address to
the user (role by groups, `user` in the access log, "Signed in as" on the block page) until it
signs out, is idle for logins.page.idle, or logins.page.lifetime passes. Also: a wrong password,
the CSRF token, the way back only to the URL asked for, a reload keeping the binding, HTTPS
with and without the school CA (`hallpass check` says which), and headless Chromium signing in
through the page. Each device is its own 127.0.0.x address, so the tests do not share a
binding. Every wait is bounded."""
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import BIN, STAFF, Origin, Proxy, TlsInTunnel, curl, wait_for
from inspection_test import TestCA, TlsOrigin
from logins_test import BASE, HAVE_SLAPD, Slapd, ldap_and_failures, with_group_roles

IDLE_SECONDS = 6


def page_section(url, ca_file, idle=f"{IDLE_SECONDS}s", lifetime="1h"):
    return f"""
logins:
  login: none
  networks:
    - {{networks: [127.0.0.0/8], login: page}}
    - {{networks: ["{STAFF}/32"], login: none}}
  page: {{idle: {idle}, lifetime: {lifetime}}}
""" + ldap_and_failures(url, ca_file, cache_ttl="2s")


def hidden_fields(body):
    text = body.decode() if isinstance(body, bytes) else body
    return {m.group(1): html.unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="(\w+)" value="([^"]*)">', text)}


def form_action(body):
    m = re.search(rb'<form class="signin" method="post" action="([^"]*)"', body)
    return m.group(1).decode() if m else None


class SigninBase:
    proxy = None
    nginx = None

    def url(self, host="origin.test", path="/small"):
        return f"http://{host}:{self.nginx.port}{path}"

    def get(self, source, url=None, extra=()):
        return curl(self.proxy, url or self.url(), source=source, extra=list(extra))

    def post(self, source, action, fields, extra=()):
        data = urllib.parse.urlencode(fields)
        return curl(self.proxy, action, source=source,
                    extra=["--data-raw", data, "-D", "-", *extra])

    def sign_out(self, source, extra=()):
        """Opens the sign-out page and presses its button; returns (status, head and body)."""
        status, body, err = self.get(source, "http://hallpass.invalid/signout", extra)
        self.assertEqual(status, 200, err)
        self.assertIn(b"Sign out of the school internet", body)
        return self.post(source, form_action(body), hidden_fields(body), extra)

    def sign_in(self, source, user, password, url=None, extra=()):
        """Gets the page for `url` from `source`, posts the credentials; returns (status, head and body)."""
        status, body, err = self.get(source, url, extra)
        self.assertEqual(status, 511, err)
        fields = hidden_fields(body)
        fields.update(user=user, password=password)
        status, out, err = self.post(source, form_action(body) if not url or url.startswith("http:") else
                                     self.site_action(url), fields, extra)
        return status, out

    def site_action(self, url):
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}/.well-known/hallpass/signin"

    def lines_for(self, source):
        return [l for l in self.proxy.log_lines() if l.get("client") == source]


@unittest.skipUnless(HAVE_SLAPD, "slapd, slapadd or ldapmodify is not installed (apt-get install slapd ldap-utils)")
class SigninPageTest(SigninBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()
        cls.slapd = Slapd()
        cls.proxy = Proxy(extra=page_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file),
                          policy_edit=with_group_roles)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.slapd.stop()
        cls.nginx.stop()

    def test_any_request_gets_the_page(self):
        source = "127.0.0.21"
        url = self.url(path="/small?q=<b>")
        status, body, err = self.get(source, url)
        self.assertEqual(status, 511, err)
        for part in (b"Sign in to the school internet", b"Integration Test School", b'name="user"',
                     b'type="password" id="password" name="password"', b'name="token"'):
            self.assertIn(part, body)
        self.assertEqual(form_action(body), "http://hallpass.invalid/signin")
        self.assertEqual(hidden_fields(body)["url"], url)
        self.assertIn(b"sign out (http://hallpass.invalid/signout)", body)
        self.assertNotIn(b"<b>", body)  # escaped
        # Nothing from a third party, no script.
        for part in (b"<script", b"src=", b"<link", b"@import"):
            self.assertNotIn(part, body)
        line = wait_for(lambda: self.lines_for(source), what="the page's log line")[-1]
        self.assertEqual(line["action"], "block")
        self.assertIn("not signed in", line["reason"])
        self.assertIsNone(line.get("user"))

    def test_right_password_binds_the_device_with_its_groups(self):
        source = "127.0.0.22"
        before = self.proxy.metric("hallpass_logins_total", {"result": "ok"})
        url = self.url(path="/small?from=page")
        status, out = self.sign_in(source, "sam", "sam-pw", url)
        self.assertEqual(status, 303, out)
        self.assertIn(f"Location: {url}\r\n".encode(), out)
        self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "ok"}), before + 1)
        # The next request goes through, as sam (Staff: staff's rules, on a pupil's address).
        status, body, err = self.get(source, self.url(host="facebook.test"))
        self.assertEqual(status, 200, err)
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("host") == "facebook.test"],
                        what="the line")[-1]
        self.assertEqual(line["user"], "sam")
        self.assertEqual(line["role"], "staff")
        with open(self.proxy.access_log) as f:
            self.assertNotIn("sam-pw", f.read())
        self.assertNotIn("sam-pw", "".join(self.proxy.stderr_lines))

    def test_a_group_change_reaches_a_page_binding_within_the_cache_lifetime(self):
        """The binding's groups are read again once cache_ttl (2s here) old, as a Basic sign-in's
        are; they were kept for the binding's whole lifetime (outside-in audit of logins,
        2026-12-05, M2)."""
        source = "127.0.0.29"
        status, out = self.sign_in(source, "henry", "henry-pw")  # in no group: the address's role
        self.assertEqual(status, 303, out)
        status, _, err = self.get(source, self.url(host="facebook.test"))
        self.assertEqual(status, 403, err)
        member = f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\n%s: member\nmember: uid=henry,ou=people,{BASE}\n"
        self.slapd.modify(member % "add")
        self.addCleanup(self.slapd.modify, member % "delete")
        time.sleep(2.5)
        status, _, err = self.get(source, self.url(host="facebook.test"))
        self.assertEqual(status, 200, err)  # staff now, without signing in again
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("status") == 200], what="the line")[-1]
        self.assertEqual((line["user"], line["role"]), ("henry", "staff"))

    def test_a_user_deleted_from_the_directory_is_signed_out(self):
        """A leaver deleted from the directory: once the binding's groups are cache_ttl (2s here)
        old, the binding ends and the device gets the sign-in page. Until 2026-12-05 it browsed
        on as the user, with no groups, for the binding's whole lifetime."""
        source = "127.0.0.34"
        status, out = self.sign_in(source, "leaver", "leaver-pw")
        self.assertEqual(status, 303, out)
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)
        entry = f"dn: uid=leaver,ou=people,{BASE}\n"
        self.slapd.modify(entry + "changetype: delete\n")
        self.addCleanup(self.slapd.modify, entry + "changetype: add\nobjectClass: inetOrgPerson\nuid: leaver\n"
                        "cn: leaver\nsn: leaver\nuserPassword: leaver-pw\n")
        time.sleep(2.5)
        status, _, err = self.get(source)
        self.assertEqual(status, 511, err)
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("status") == 511 and
                                 "leaver is no longer in the directory: signed out" in l.get("note", "")],
                        what="the 511's line saying why")[-1]
        self.assertIsNone(line.get("user"))
        self.assertEqual(self.get(source)[0], 511)  # and stays signed out

    def test_a_binding_ends_when_its_address_passes_to_another_device(self):
        """With dhcp_leases, a binding keeps the hardware address it was made from: when the
        leases give the address to another device, that device gets the sign-in page, not the
        user's identity (audit3, 2026-12-05, F2; signin_table_test tests the table alone)."""
        source = "127.0.0.28"
        folder = tempfile.mkdtemp(prefix="hallpass-leases-")
        self.addCleanup(shutil.rmtree, folder, True)
        os.chmod(folder, 0o755)
        leases = os.path.join(folder, "dnsmasq.leases")

        def lease_to(mac):
            tmp = leases + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{int(time.time()) + 3600} {mac} {source} laptop-{mac[-2:]} *\n")
            os.replace(tmp, leases)

        lease_to("3c:22:fb:12:9a:01")
        self.proxy = Proxy(extra=page_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file) +
                           f"dhcp_leases:\n  path: {leases}\n  format: dnsmasq\n", policy_edit=with_group_roles)
        self.addCleanup(self.proxy.stop)
        status, out = self.sign_in(source, "sam", "sam-pw")
        self.assertEqual(status, 303, out)
        status, _, err = self.get(source, self.url(host="facebook.test"))
        self.assertEqual(status, 200, err)  # sam (Staff) on the laptop that signed in
        lease_to("f0:18:98:00:00:02")  # the address now belongs to another device
        wait_for(lambda: self.get(source)[0] == 511, timeout=8, interval=0.3,
                 what="the other device to get the sign-in page")
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("status") == 511], what="the 511's line")[-1]
        self.assertIsNone(line.get("user"))

    def test_the_sign_in_page_s_own_query_is_never_logged_even_when_queries_are_kept(self):
        """A name and password typed into a GET of the sign-in page were logged with keep_query
        on (audit of privacy, 2026-12-06, L3); a site's own query still is."""
        self.proxy = Proxy(extra=page_section(f"ldap://127.0.0.1:{self.slapd.port}", self.slapd.ca_file) +
                           "access_log:\n  keep_query: true\n", policy_edit=with_group_roles)
        self.addCleanup(self.proxy.stop)
        source = "127.0.0.28"
        for url in ("http://hallpass.invalid/signin?user=dave&password=QPASSWORD",
                    "http://hallpass.invalid/signout?token=QTOKEN", self.url(path="/small?kept=QSITE")):
            self.get(source, url)
        lines = wait_for(lambda: [l for l in self.lines_for(source) if "QSITE" in json.dumps(l)] or None,
                         what="the site's line")
        lines = self.lines_for(source)
        self.assertEqual(len(lines), 3, lines)
        self.assertEqual(sorted(l["path"] for l in lines), ["/signin", "/signout", "/small?kept=QSITE"])
        for l in lines:
            self.assertIn("sign", l.get("reason", ""), l)  # all three answered by the sign-in page
        text = json.dumps(lines)
        self.assertNotIn("QPASSWORD", text)
        self.assertNotIn("QTOKEN", text)

    def test_block_page_says_who_is_signed_in(self):
        source = "127.0.0.23"
        status, out = self.sign_in(source, "dave", "dave-pw")
        self.assertEqual(status, 303, out)
        # A plain-HTTP site's block page is served as the site, whose own scripts (a fetch, an
        # image, a frame) could read it, and plain HTTP carries no Fetch Metadata to tell them
        # from the person (curl sends it here; browsers never do on http): the reason, never who
        # is signed in, the device, the sign-out link or the form.
        for fetch in ([], ["Sec-Fetch-Mode: cors", "Sec-Fetch-Dest: empty", "Sec-Fetch-Site: same-origin"],
                      ["Sec-Fetch-Mode: navigate", "Sec-Fetch-Dest: document", "Sec-Fetch-Site: none"]):
            status, page, err = self.get(source, self.url(host="facebook.test"),
                                         [arg for h in fetch for arg in ("-H", h)])
            self.assertEqual(status, 403, err)  # Year 6 blocks social media
            self.assertIn(b"This page is blocked", page)
            for personal in (b"dave", b"Signed in as", b"signout", b"<form", source.encode()):
                self.assertNotIn(personal, page, fetch)
        # It links to the person's page at the proxy's own address, another origin.
        link = re.search(rb'href="(http://hallpass\.invalid/blocked\?url=[^"]*)"', page)
        self.assertTrue(link, page)
        status, page, err = self.get(source, html.unescape(link.group(1).decode()), ["-D", "-"])
        self.assertEqual(status, 200, err)
        self.assertIn(b"<dt>Signed in as</dt><dd>dave</dd>", page)
        self.assertIn(b'<a href="http://hallpass.invalid/signout">Sign out</a>', page)
        self.assertIn(b"<form", page)
        self.assertIn(source.encode(), page)
        self.assertIn(b"Cross-Origin-Opener-Policy: same-origin", page)
        self.assertIn(b"X-Frame-Options: DENY", page)
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("host") == "facebook.test"],
                        what="the line")[-1]
        self.assertEqual((line["user"], line["role"]), ("dave", "year6"))

    def test_wrong_password_stays_unbound(self):
        source = "127.0.0.24"
        before = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        status, out = self.sign_in(source, "dave", "not-the-Secret-987")
        self.assertEqual(status, 403, out)
        self.assertIn(b"not right", out)
        self.assertIn(b'value="dave"', out)  # the name stays typed in; the password does not
        self.assertNotIn(b"not-the-Secret-987", out)
        self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"}), before + 1)
        status, _, err = self.get(source)
        self.assertEqual(status, 511, err)
        with open(self.proxy.access_log) as f:
            self.assertNotIn("not-the-Secret-987", f.read())
        self.assertNotIn("not-the-Secret-987", "".join(self.proxy.stderr_lines))

    def test_a_guesser_is_slowed_as_with_basic(self):
        source = "127.0.0.33"
        before = self.proxy.metric("hallpass_logins_total", {"result": "rate_limited"})
        for i in range(3):
            status, out = self.sign_in(source, "victim", f"guess{i}")
            self.assertEqual(status, 403, out)
        t0 = time.monotonic()
        status, out = self.sign_in(source, "victim", "victim-pw")  # not even tried now
        self.assertEqual(status, 429, out)
        self.assertIn(b"Too many wrong passwords", out)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "rate_limited"}), before + 1)
        status, _, err = self.get(source)
        self.assertEqual(status, 511, err)

    def test_sign_out_unbinds(self):
        source = "127.0.0.25"
        status, out = self.sign_in(source, "carol", "carol-pw")
        self.assertEqual(status, 303, out)
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)
        # Opening the address (a link, or another page's <img> pointing at it) only shows the
        # sign-out page: the device is still signed in.
        status, body, err = self.get(source, "http://hallpass.invalid/signout")
        self.assertEqual(status, 200, err)
        self.assertIn(b"signed in to the school internet as carol", body)
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)
        # A post without the page's token (another site's form) signs nobody out.
        status, out, _ = self.post(source, "http://hallpass.invalid/signout", {"token": "0" * 64})
        self.assertEqual(status, 403, out)
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)
        # Nor does another device's page.
        other = hidden_fields(self.get("127.0.0.29", "http://hallpass.invalid/signout")[1])
        status, out, _ = self.post(source, "http://hallpass.invalid/signout", other)
        self.assertEqual(status, 403, out)
        # The page's own button does.
        status, out, _ = self.sign_out(source)
        self.assertEqual(status, 200, out)
        self.assertIn(b"You have signed out", out)
        status, _, err = self.get(source)
        self.assertEqual(status, 511, err)

    def test_idle_device_is_signed_out(self):
        source = "127.0.0.26"
        status, out = self.sign_in(source, "sam", "sam-pw")
        self.assertEqual(status, 303, out)
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)
        time.sleep(IDLE_SECONDS + 1)
        status, _, err = self.get(source)
        self.assertEqual(status, 511, err)

    def test_requests_keep_a_device_signed_in_and_a_reload_keeps_it(self):
        source = "127.0.0.27"
        status, out = self.sign_in(source, "sam", "sam-pw")
        self.assertEqual(status, 303, out)
        deadline = time.monotonic() + IDLE_SECONDS * 1.5
        for _ in range(10):  # activity inside the idle time keeps it; the whole is longer than it
            if time.monotonic() > deadline:
                break
            status, _, err = self.get(source)
            self.assertEqual(status, 200, err)
            time.sleep(IDLE_SECONDS / 4)
        self.proxy.reload()
        status, _, err = self.get(source)
        self.assertEqual(status, 200, err)

    def test_the_token_is_required_and_bound_to_the_page(self):
        source, other = "127.0.0.28", "127.0.0.29"
        url = self.url(path="/small?csrf")
        status, body, err = self.get(source, url)
        self.assertEqual(status, 511, err)
        fields = hidden_fields(body)
        creds = {"user": "sam", "password": "sam-pw"}
        action = "http://hallpass.invalid/signin"
        # No token (a cross-site form), another device's token, a changed way back: all refused.
        status, out, _ = self.post(source, action, {"url": url, **creds})
        self.assertEqual(status, 403, out)
        status, out, _ = self.post(other, action, {**fields, **creds})
        self.assertEqual(status, 403, out)
        status, out, _ = self.post(source, action, {**fields, "url": "http://evil.test/", **creds})
        self.assertEqual(status, 403, out)
        self.assertNotIn(b"evil.test", out.split(b"\r\n\r\n", 1)[0])  # no Location to it
        for who in (source, other):
            status, _, err = self.get(who)
            self.assertEqual(status, 511, err)
        # The page's own token signs in and goes back to exactly its URL.
        status, out, _ = self.post(source, action, {**fields, **creds})
        self.assertEqual(status, 303, out)
        self.assertIn(f"Location: {url}\r\n".encode(), out)

    def test_the_request_forms_token_is_not_a_sign_in_token(self):
        # Signed in, a blocked page carries the request form's token; posting it to the sign-in
        # address from a device that is not signed in is refused (the two are domain-separated).
        source = "127.0.0.30"
        status, out = self.sign_in(source, "dave", "dave-pw")
        self.assertEqual(status, 303, out)
        status, body, err = self.get(source, self.url(host="facebook.test"))
        self.assertEqual(status, 403, err)
        link = re.search(rb'href="(http://hallpass\.invalid/blocked\?url=[^"]*)"', body)
        status, body, err = self.get(source, html.unescape(link.group(1).decode()))
        self.assertEqual(status, 200, err)
        fields = hidden_fields(body)
        self.assertIn("token", fields)
        self.sign_out(source)
        status, out, _ = self.post(source, "http://hallpass.invalid/signin",
                                   {**fields, "user": "dave", "password": "dave-pw"})
        self.assertEqual(status, 403, out)

    def test_https_without_a_school_ca_is_refused_and_check_says_so(self):
        source = "127.0.0.31"
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", f"http://127.0.0.1:{self.proxy.port}",
                            "--interface", source, "-A", "Mozilla/5.0", "https://origin.test:8443/"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("403", r.stderr)
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("method") == "CONNECT"],
                        what="the CONNECT's line")[-1]
        self.assertEqual(line["action"], "block")
        self.assertIn("not signed in", line["reason"])
        r = subprocess.run([BIN, "check", "--config", self.proxy.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Sign-in page (login: page): 127.0.0.0/8", r.stdout)
        self.assertIn("HTTPS connections are refused", r.stdout)

    def test_sign_in_address_when_signed_in_and_not(self):
        source = "127.0.0.32"
        status, body, err = self.get(source, "http://hallpass.invalid/signin")
        self.assertEqual(status, 200, err)
        self.assertEqual(hidden_fields(body)["url"], "")
        fields = hidden_fields(body)
        status, out, _ = self.post(source, "http://hallpass.invalid/signin", {**fields, "user": "sam", "password": "sam-pw"})
        self.assertEqual(status, 200, out)
        self.assertIn(b"signed in to the school internet as sam", out)
        self.assertIn(b'href="http://hallpass.invalid/signout"', out)


@unittest.skipUnless(HAVE_SLAPD, "slapd, slapadd or ldapmodify is not installed (apt-get install slapd ldap-utils)")
class SigninPageHttpsTest(SigninBase, unittest.TestCase):
    """With the school CA: the page inside the handshake of any HTTPS site, the post to the
    site's own /.well-known/hallpass/signin, then the site itself."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="hallpass-signin-https-")
        cls.nginx = Origin()
        cls.slapd = Slapd()
        cls.school_ca = os.path.join(cls.tmp, "school-ca")
        subprocess.run([BIN, "ca", "init", "--dir", cls.school_ca, "--name", "Test School"], check=True,
                       capture_output=True, timeout=60)
        cls.school_crt = os.path.join(cls.school_ca, "ca.crt")
        ca = TestCA(cls.tmp)
        cls.test_ca_crt = ca.crt
        crt, key = ca.issue("origin", ["origin.test"])
        cls.origin = TlsOrigin(crt, key)
        cls.proxy = Proxy(extra=page_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file),
                          tls_port=cls.origin.port, args=["--ca-dir", cls.school_ca],
                          policy_edit=lambda t: with_group_roles(t).replace(
                              "upstream:\n", f"upstream:\n  ca_file: {ca.crt}\n", 1).replace(
                              "hosts:\n", "hosts:\n  never.test: 127.0.0.1\n", 1)
                          + "inspection:\n  never:\n    domains: [never.test]\n")

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.stop()
        cls.slapd.stop()
        cls.nginx.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_page_inside_https_then_the_site(self):
        source = "127.0.0.41"
        seen = len(self.origin.seen)  # the class's origin: other tests' requests before these
        url = f"https://origin.test:{self.origin.port}/lesson?x=1"
        # The school CA for the page inside the handshake; the origin's own CA once the tunnel is relayed.
        bundle = os.path.join(self.tmp, "both-cas.pem")
        with open(bundle, "w") as f, open(self.school_crt) as a, open(self.test_ca_crt) as b:
            f.write(a.read() + b.read())
        tls = ["--cacert", bundle, "-A", "Mozilla/5.0 (X11; Linux x86_64)"]
        status, body, err = self.get(source, url, tls)
        self.assertEqual(status, 511, err)
        self.assertIn(b"Sign in to the school internet", body)
        self.assertEqual(form_action(body), "/.well-known/hallpass/signin")
        self.assertEqual(hidden_fields(body)["url"], url)
        self.assertEqual(self.origin.seen[seen:], [])  # nothing reached the site
        # The CONNECT is refused for want of a sign-in, not by a rule: its line names the role and
        # no rule, as the page's own line does (it named the rule that allows the role).
        connect = wait_for(lambda: [l for l in self.lines_for(source) if l.get("method") == "CONNECT"] or None,
                           what="the CONNECT's line")[-1]
        page = wait_for(lambda: [l for l in self.lines_for(source) if l.get("method") == "GET"] or None,
                        what="the page's line")[-1]
        for line in (connect, page):
            self.assertEqual((line["action"], line.get("rule"), line["role"]), ("block", "", "pupils"), line)
        # A client that is not a browser gets the plain refusal (as for a blocked HTTPS site).
        status, _, err = self.get(source, url, ["--cacert", self.school_crt])
        self.assertIn(status, (0, 403), err)
        self.assertIn("403", err)
        # The post goes to the site's own address, through the same kind of tunnel.
        status, out = self.sign_in(source, "sam", "sam-pw", url, tls)
        self.assertEqual(status, 303, out)
        self.assertIn(f"Location: {url}\r\n".encode(), out)
        status, _, err = self.get(source, url, tls)
        self.assertEqual(status, 200, err)
        self.assertTrue(self.origin.seen[seen:])
        self.assertTrue(any(l.get("user") == "sam" for l in self.lines_for(source)))
        # Signed out over plain HTTP: a relayed HTTPS tunnel would take the site's path to the site.
        status, out, _ = self.sign_out(source)
        self.assertEqual(status, 200, out)
        self.assertIn(b"You have signed out", out)
        status, _, err = self.get(source, url, tls)
        self.assertEqual(status, 511, err)

    def test_signing_out_ends_the_relayed_tunnels_opened_while_signed_in(self):
        # A teacher signs in on the page, opens a site (its tunnel relayed, not decrypted), and
        # signs out: new requests get the page, but the open tunnel went on as the teacher for
        # as long as the browser kept it, so the next person on a shared tablet browsed as them
        # (outside-in audit of identity, 2026-12-07, F3; 000 5.26). It now closes.
        from logins_test import BasicTunnel
        source = "127.0.0.48"
        url = f"https://origin.test:{self.origin.port}/"
        bundle = os.path.join(self.tmp, "both-cas-2.pem")
        with open(bundle, "w") as f, open(self.school_crt) as a, open(self.test_ca_crt) as b:
            f.write(a.read() + b.read())
        status, out = self.sign_in(source, "sam", "sam-pw", url, ["--cacert", bundle, "-A", "Mozilla/5.0 (X11)"])
        self.assertEqual(status, 303, out)
        tunnel = BasicTunnel(self, self.proxy, source, None, "origin.test", self.origin.port)
        self.assertEqual(tunnel.status, 200)
        tls = TlsInTunnel(tunnel.sock, "origin.test", self.test_ca_crt)  # the origin's own certificate: relayed
        self.assertEqual(tls.get(), 200)
        status, out, _ = self.sign_out(source)
        self.assertIn(b"You have signed out", out)
        status, seconds = tls.get_until_closed(8)
        self.assertIsNone(status, "the relayed tunnel went on as the signed-out user")
        self.assertLess(seconds, 3)
        line = wait_for(lambda: [l for l in self.lines_for(source) if l.get("method") == "CONNECT" and
                                 "no longer signed in as the tunnel's user" in l.get("note", "")], what="the tunnel's line")[-1]
        self.assertEqual(line["user"], "sam")

    def test_a_never_inspect_host_is_not_decrypted_for_the_sign_in_page(self):
        source = "127.0.0.44"
        status, body, err = self.get(source, f"https://never.test:{self.origin.port}/bank",
                                     ["--cacert", self.school_crt, "-A", "Mozilla/5.0 (X11; Linux x86_64)"])
        self.assertEqual(status, 0, err)  # the CONNECT's refusal: no handshake with the school CA
        self.assertIn("403", err)
        line = wait_for(lambda: self.lines_for(source) or None, timeout=5, what="the CONNECT's log line")[-1]
        self.assertEqual((line["method"], line["action"]), ("CONNECT", "block"))
        self.assertIn("never-inspect", line.get("note", ""))
        self.assertNotIn("tls", line)

    def test_the_way_back_stays_on_the_site_the_form_was_posted_on(self):
        # A page's token posted on another site's address is refused, even where that site's
        # name appears inside the URL the token covers (the check is on the URL's host).
        source = "127.0.0.43"
        url = f"https://origin.test:{self.origin.port}/lesson?next=https://other.test/"
        bundle = os.path.join(self.tmp, "school-ca-only.pem")
        shutil.copyfile(self.school_crt, bundle)
        tls = ["--cacert", bundle, "-A", "Mozilla/5.0 (X11; Linux x86_64)"]
        status, body, err = self.get(source, url, tls)
        self.assertEqual(status, 511, err)
        fields = hidden_fields(body)
        self.assertEqual(fields["url"], url)
        fields.update(user="sam", password="sam-pw")
        status, out, err = self.post(source, f"https://other.test:{self.origin.port}/.well-known/hallpass/signin",
                                     fields, tls)
        self.assertEqual(status, 403, out + err.encode())
        self.assertIn(b"The sign-in page has expired", out)
        status, _, err = self.get(source, url, tls)
        self.assertEqual(status, 511, err)

    def test_check_says_the_page_is_served_inside_https(self):
        config = os.path.join(self.tmp, "with-ca.yaml")
        with open(config, "w") as f:
            f.write(self.proxy.policy_text + f"tls:\n  ca_dir: {self.school_ca}\n")
        r = subprocess.run([BIN, "check", "--config", config], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the page is shown inside the handshake with the school CA", r.stdout)


@unittest.skipUnless(HAVE_SLAPD and os.geteuid() == 0,
                     "needs slapd and root (Chromium without its sandbox, as browser_test.py)")
class SigninPageChromiumTest(unittest.TestCase):
    """Headless Chromium (browser_test.py's DevTools driver) through the real proxy: the page
    appears for the first site, the pupil types into it and presses the button, and the browser
    comes back to the page it asked for."""

    @classmethod
    def setUpClass(cls):
        from browser_test import Browser  # here: its module needs no root, but its use does
        cls.nginx = Origin()
        cls.slapd = Slapd()
        cls.proxy = Proxy(extra=page_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file),
                          policy_edit=with_group_roles)
        cls.browser = Browser(cls.proxy.port)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.proxy.stop()
        cls.slapd.stop()
        cls.nginx.stop()

    def test_chromium_signs_in_through_the_page(self):
        b = self.browser
        url = f"http://origin.test:{self.nginx.port}/small"
        text = b.open(url)
        self.assertIn("Sign in to the school internet", text)
        self.assertIn("Integration Test School", text)
        self.assertEqual(b.js("document.querySelector('form').action"), "http://hallpass.invalid/signin")
        # Typed in and sent with the button, as a pupil does.
        b.js("document.querySelector('#user').value = 'dave'")
        b.js("document.querySelector('#password').value = 'dave-pw'")
        b.js("document.documentElement.setAttribute('data-old', '1')")
        b.js("document.querySelector('button[type=submit]').click()")
        wait_for(lambda: b.js("document.readyState === 'complete' && "
                              "!document.documentElement.hasAttribute('data-old')"),
                 timeout=20, interval=0.1, what="Chromium to come back from the sign-in")
        self.assertEqual(b.js("location.href"), url)
        self.assertEqual((b.js("document.body.innerText") or "").strip(), "s" * 1024)
        # Then another page, as dave (Year 6: social media blocked, the page says who).
        text = b.open(f"http://facebook.test:{self.nginx.port}/")
        self.assertNotIn("dave", text)  # plain HTTP: the site's page names nobody
        text = b.open(b.js("document.querySelector('a.askbtn').href"))  # "Ask for this page"
        self.assertIn("This device is signed in as dave. Sign out", text)
        lines = [l for l in self.proxy.log_lines() if l.get("host") == "origin.test" and l.get("status") == 200]
        self.assertTrue(lines and lines[-1]["user"] == "dave", lines[-3:])


def transparent_fixture():
    """transparent_test.py's namespaces and origin (imported as a module, so that its own tests
    are not collected here)."""
    import transparent_test
    return transparent_test


@unittest.skipUnless(HAVE_SLAPD and os.geteuid() == 0 and shutil.which("nft"),
                     "needs slapd, nft and root (network namespaces, as transparent_test.py)")
class SigninPageTransparentTest(unittest.TestCase):
    """On the transparent gateway (transparent_test.py's client, gateway and origin namespaces,
    its nftables rules; slapd in the gateway's namespace): a device with no proxy setting gets
    the page for plain HTTP and, with the school CA, inside HTTPS; it posts to the site's own
    /.well-known/hallpass/signin, and then reaches the site as the user."""

    @classmethod
    def setUpClass(cls):
        tt = transparent_fixture()
        cls.tt = tt
        cls.tmp = tempfile.mkdtemp(prefix="hallpass-signin-transparent-")
        os.chmod(cls.tmp, 0o755)
        cls.origin = cls.proxy = cls.slapd = None
        cls.stderr_lines = []
        try:
            tt.TransparentGatewayTest.make_certificates.__func__(cls)
            tt.TransparentGatewayTest.make_network.__func__(cls)
            cls.origin = subprocess.Popen(["ip", "netns", "exec", tt.NET, "python3", "-c", tt.ORIGIN_SERVER,
                                           cls.origin_crt, cls.origin_key], stdout=subprocess.PIPE, text=True)
            if cls.origin.stdout.readline().strip() != "ready":
                raise RuntimeError("the origin in the namespace did not start")
            tt.in_ns(tt.GW, "nft", "-f", tt.RULES)
            tt.in_ns(tt.GW, "nft", "add", "element", "inet", "hallpass_transparent", "lan_ifs", "{", "lan0", "}")
            cls.slapd = Slapd(netns=tt.GW)
            cls.start_hallpass()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start_hallpass(cls):
        tt = cls.tt
        cls.config = os.path.join(cls.tmp, "policy.yaml")
        cls.access_log = os.path.join(cls.tmp, "access.log")
        policy = tt.POLICY.format(pupil=tt.PUPIL, pupil6=tt.PUPIL6, staff=tt.STAFF, origin=tt.ORIGIN,
                                  origin6=tt.ORIGIN6, other=tt.OTHER, cdn_other=tt.CDN_OTHER, test_ca=cls.test_ca,
                                  school_ca=cls.school_ca)
        policy = policy.replace("  staff:\n    networks:", "  staff:\n    groups: [Staff]\n    networks:")
        section = page_section(f"ldap://127.0.0.1:{cls.slapd.port}", cls.slapd.ca_file)
        section = section.replace("127.0.0.0/8", "10.10.0.0/24").replace('"127.0.0.3/32"', '"10.10.1.0/24"')
        with open(cls.config, "w") as f:
            f.write(policy + section)
        cls.proxy = subprocess.Popen(
            ["ip", "netns", "exec", tt.GW, BIN, "run", "--config", cls.config, "--listen", "10.10.0.1:3128",
             "--access-log", cls.access_log, "--metrics-listen", "off", "--state-dir", os.path.join(cls.tmp, "state")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        import threading
        threading.Thread(target=lambda: [cls.stderr_lines.append(l) for l in cls.proxy.stderr], daemon=True).start()
        wait_for(lambda: any("serving" in l for l in cls.stderr_lines) or cls.proxy.poll() is not None, timeout=20,
                 what="hallpass to start")
        if cls.proxy.poll() is not None:
            raise RuntimeError("hallpass did not start: " + "".join(cls.stderr_lines))

    @classmethod
    def tearDownClass(cls):
        if cls.slapd:
            cls.slapd.stop()
        cls.tt.TransparentGatewayTest.tearDownClass.__func__(cls)

    def curl(self, url, address, source=None, extra=()):
        return self.tt.TransparentGatewayTest.curl(self, url, address, source or self.tt.PUPIL, extra)

    def log_line(self, predicate, what):
        return self.tt.TransparentGatewayTest.log_line(self, predicate, what)

    def post(self, url, address, fields, source, extra=()):
        data = [x for k, v in fields.items() for x in ("--data-urlencode", f"{k}={v}")]
        return self.curl(url, address, source, [*data, "-D", "-", *extra])

    def test_plain_http_page_then_the_site_as_the_user(self):
        tt = self.tt
        status, page, err = self.curl("http://allowed.test/lesson?x=1", tt.ORIGIN)
        self.assertEqual(status, 511, err)
        self.assertIn('action="/.well-known/hallpass/signin"', page)
        self.assertIn("sign out (http://allowed.test/.well-known/hallpass/signout)", page)
        fields = hidden_fields(page)
        self.assertEqual(fields["url"], "http://allowed.test/lesson?x=1")
        status, out, err = self.post("http://allowed.test/.well-known/hallpass/signin", tt.ORIGIN,
                                     dict(fields, user="sam", password="sam-pw"), tt.PUPIL)
        self.assertEqual(status, 303, out + err)
        self.assertIn("Location: http://allowed.test/lesson?x=1\n", out)  # read as text: no \r
        status, body, err = self.curl("http://allowed.test/lesson?x=1", tt.ORIGIN)
        self.assertEqual(status, 200, err)
        entry = self.log_line(lambda e: e.get("user") == "sam" and e["path"] == "/lesson" and e["status"] == 200,
                              "sam's request")
        self.assertEqual((entry["role"], entry["original_dst"]), ("staff", tt.ORIGIN + ":80"))
        # The pages are the site's own origin here: a script of the site may not read them
        # (the user name, the sign-out token) or post to them; the browser's navigation may,
        # and the pages cannot be framed or reached from their opener.
        for path in ("signin", "signout"):
            status, page, err = self.curl(f"http://allowed.test/.well-known/hallpass/{path}", tt.ORIGIN,
                                          extra=["-H", "Sec-Fetch-Mode: cors"])
            self.assertEqual(status, 403, err)
            self.assertNotIn("sam", page)
        status, out, err = self.curl("http://allowed.test/.well-known/hallpass/signin", tt.ORIGIN,
                                     extra=["-H", "Sec-Fetch-Mode: navigate", "-D", "-"])
        self.assertEqual(status, 200, err)
        self.assertIn("signed in to the school internet as sam", out)
        for header in ("X-Frame-Options: DENY", "Content-Security-Policy: frame-ancestors 'none'",
                       "Cross-Origin-Opener-Policy: same-origin"):
            self.assertIn(header, out)
        status, page, err = self.curl("http://allowed.test/.well-known/hallpass/signout", tt.ORIGIN)
        self.assertEqual(status, 200, err)
        self.assertIn('action="/.well-known/hallpass/signout"', page)
        status, out, err = self.post("http://allowed.test/.well-known/hallpass/signout", tt.ORIGIN,
                                     hidden_fields(page), tt.PUPIL, ["-H", "Sec-Fetch-Mode: same-origin"])
        self.assertEqual(status, 403, out + err)  # a script's post: refused, still signed in
        self.assertEqual(self.curl("http://allowed.test/lesson?x=1", tt.ORIGIN)[0], 200)
        status, out, err = self.post("http://allowed.test/.well-known/hallpass/signout", tt.ORIGIN,
                                     hidden_fields(page), tt.PUPIL)
        self.assertEqual(status, 200, out + err)
        status, _, err = self.curl("http://allowed.test/lesson?x=1", tt.ORIGIN)
        self.assertEqual(status, 511, err)

    def test_https_page_inside_the_handshake_then_the_site(self):
        tt = self.tt
        source = tt.STAFF  # its own device: 10.10.0.3
        bundle = os.path.join(self.tmp, "both-cas.pem")
        with open(bundle, "w") as f, open(self.school_crt) as a, open(self.test_ca) as b:
            f.write(a.read() + b.read())
        tls = ["--cacert", bundle]
        status, page, err = self.curl("https://allowed.test/work", tt.ORIGIN, source, tls)
        self.assertEqual(status, 511, err)
        self.assertIn('action="/.well-known/hallpass/signin"', page)
        fields = hidden_fields(page)
        self.assertEqual(fields["url"], "https://allowed.test/work")
        status, out, err = self.post("https://allowed.test/.well-known/hallpass/signin", tt.ORIGIN,
                                     dict(fields, user="dave", password="dave-pw"), source, tls)
        self.assertEqual(status, 303, out + err)
        status, body, err = self.curl("https://allowed.test/work", tt.ORIGIN, source, tls)
        self.assertEqual(status, 200, err)
        self.log_line(lambda e: e.get("user") == "dave" and e.get("method") == "CONNECT" and e["action"] == "allow",
                      "dave's relayed HTTPS connection")

    def test_a_bound_devices_groups_and_deletion_reach_its_https(self):
        """The binding's groups are read again once cache_ttl (2 s) old on the transparent
        gateway's HTTPS too, which has its own path to them (transparent.cpp), and a user deleted
        from the directory is signed out there: the connection then gets the sign-in page's
        handshake with the school CA, which this curl does not trust."""
        tt = self.tt
        source = tt.PUPIL
        status, page, err = self.curl("http://allowed.test/lesson?x=2", tt.ORIGIN, source)
        self.assertEqual(status, 511, err)
        status, out, err = self.post("http://allowed.test/.well-known/hallpass/signin", tt.ORIGIN,
                                     dict(hidden_fields(page), user="leaver", password="leaver-pw"), source)
        self.assertEqual(status, 303, out + err)
        signout = hidden_fields(self.curl("http://allowed.test/.well-known/hallpass/signout", tt.ORIGIN, source)[1])
        self.addCleanup(self.post, "http://allowed.test/.well-known/hallpass/signout", tt.ORIGIN, signout, source)
        tls = ["--cacert", self.test_ca]  # the origin's own CA: relayed, never inspected here

        def https_as(role):
            status, _, err = self.curl("https://allowed.test/groups", tt.ORIGIN, source, tls)
            self.assertEqual(status, 200, err)
            self.log_line(lambda e: e.get("user") == "leaver" and e.get("method") == "CONNECT" and
                          e.get("role") == role, f"leaver's HTTPS connection as {role}")

        https_as("pupils")  # in no group: the address's role
        member = f"dn: cn=Staff,ou=groups,{BASE}\nchangetype: modify\n%s: member\nmember: uid=leaver,ou=people,{BASE}\n"
        self.slapd.modify(member % "add")
        time.sleep(2.5)
        https_as("staff")
        entry = f"dn: uid=leaver,ou=people,{BASE}\n"
        self.slapd.modify(entry + "changetype: delete\n")
        self.addCleanup(self.slapd.modify, entry + "changetype: add\nobjectClass: inetOrgPerson\nuid: leaver\n"
                        "cn: leaver\nsn: leaver\nuserPassword: leaver-pw\n")
        time.sleep(2.5)
        status, _, err = self.curl("https://allowed.test/groups", tt.ORIGIN, source, tls)
        self.assertNotEqual(status, 200, err)
        wait_for(lambda: any("leaver is no longer in the directory" in l for l in self.stderr_lines),
                 what="the leaver's line on stderr")
        status, _, err = self.curl("http://allowed.test/lesson?x=3", tt.ORIGIN, source)
        self.assertEqual(status, 511, err)

if __name__ == "__main__":
    unittest.main()
