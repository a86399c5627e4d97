"""HTTPS inspection in a real browser: headless Chromium (Debian's `chromium`) through the real
`hallpass run --ca-dir`, trusting the school CA the way a managed device does (an NSS database
made with `certutil` in the browser's HOME), and never told to ignore certificate errors.

1. `http://www.facebook.com/` is upgraded to https by Chromium's HSTS preload list before any
   request leaves it; the proxy decrypts the blocked CONNECT with a leaf from the school CA and
   Chromium shows the HTTPS block page (the reason, the site, the form) at the https URL, with
   no certificate interstitial.
2. The pupil types into the form and clicks its button; the proxy answers the post inside the
   tunnel, and the request is pending in the real store with the https URL (hallpassctl as the
   technician).
3. An allowed, inspected HTTPS origin (its certificate from a test CA the proxy trusts through
   `upstream.ca_file`) loads with no interstitial: the school CA vouches, after the proxy
   verified the origin; an origin whose certificate fails that check gets the proxy's page
   naming the problem, never its content under the school CA.
4. The same browser without the school CA in its NSS database shows Chromium's certificate
   interstitial instead, and the proxy counts a client that rejected the school CA.

Screenshots of each page are saved in $HALLPASS_ARTEFACTS/browser_https (CTest sets
HALLPASS_ARTEFACTS to build/test-artefacts), else ./test-artefacts/browser_https; the test
prints their paths. www.facebook.com is mapped to 127.0.0.1 with `hosts:`: nothing leaves the
machine. Needs root (OS users for the admin roles, Chromium without its sandbox)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from browser_test import Browser
from exceptions_test import ADMIN, ctl_json, ensure_users
from harness import BIN, Proxy, wait_for
from inspection_test import TestCA, TlsOrigin, run

SCHOOL = "Test School"  # the school CA's CN is "<name> web filter CA"
ARTEFACTS = os.path.join(os.environ.get("HALLPASS_ARTEFACTS") or os.path.join(os.getcwd(), "test-artefacts"),
                         "browser_https")

# The allowed origins are inspected by name (the policy's inspection section decides what is
# decrypted; nothing is by default).
INSPECTION = """
inspection:
  inspect:
    - {name: test origins, domains: [origin.test, badcert.test], why: the allowed pages of browser_https_test.py}
"""


def trusting_home(folder, ca_crt=None):
    """A HOME for Chromium whose NSS database ($HOME/.pki/nssdb) trusts `ca_crt` to identify
    web sites ("C,,"), as a managed device trusts the school CA; without `ca_crt` an empty one."""
    home = tempfile.mkdtemp(prefix="home-with-school-ca-" if ca_crt else "home-without-school-ca-", dir=folder)
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    run(["certutil", "-d", "sql:" + db, "-N", "--empty-password"])
    if ca_crt:
        run(["certutil", "-d", "sql:" + db, "-A", "-t", "C,,", "-n", "school", "-i", ca_crt])
    return home


def screenshot(browser, name):
    """Saves the whole page as it is shown now (at most 4,000 CSS pixels high) as ARTEFACTS/name
    (PNG) and says where."""
    os.makedirs(ARTEFACTS, exist_ok=True)
    path = os.path.join(ARTEFACTS, name)
    size = browser.call("Page.getLayoutMetrics")["cssContentSize"]  # the whole page, not the window
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}
    shot = browser.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    sys.stderr.write(f"\n  screenshot: {path}\n")
    return path


def page_text(browser):
    return browser.js("document.body ? document.body.innerText : ''") or ""


def security_details(browser, url):
    """What Chromium recorded of the certificate of the last response for `url` (the DevTools
    Network domain: issuer, subjectName, sanList, ...), or None."""
    for event in reversed(browser.events):
        if event["method"] == "Network.responseReceived" and event["params"]["response"]["url"] == url:
            return event["params"]["response"].get("securityDetails")
    return None


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs Chromium without its sandbox: needs root")
class BrowserHttpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_users()
        cls.tmp = tempfile.mkdtemp(prefix="hallpass-browser-https-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        os.chmod(cls.tmp, 0o755)
        cls.test_ca = TestCA(cls.tmp)
        cls.origin = TlsOrigin(*cls.test_ca.issue("origin", ["origin.test"]))
        cls.addClassCleanup(cls.origin.stop)
        cls.bad_origin = TlsOrigin(*cls.test_ca.issue("bad", ["badcert.test"], self_signed=True))
        cls.addClassCleanup(cls.bad_origin.stop)
        school_ca = os.path.join(cls.tmp, "school-ca")
        run([BIN, "ca", "init", "--dir", school_ca, "--name", SCHOOL])
        cls.school_crt = os.path.join(school_ca, "ca.crt")
        cls.state = os.path.join(cls.tmp, "state")
        os.mkdir(cls.state, 0o711)
        os.chmod(cls.state, 0o711)
        cls.sock = os.path.join(cls.state, "admin.sock")
        cls.proxy = Proxy(extra=ADMIN + INSPECTION, tls_port=cls.origin.port, policy_edit=cls.edit_policy,
                          args=["--state-dir", cls.state, "--admin-socket", cls.sock, "--ca-dir", school_ca])
        cls.addClassCleanup(cls.proxy.stop)
        cls.browser = Browser(cls.proxy.port, home=trusting_home(cls.tmp, cls.school_crt),
                              ignore_certificate_errors=False)
        cls.addClassCleanup(cls.browser.close)
        cls.browser.call("Network.enable")  # for the certificate of each response (security_details)

    @classmethod
    def edit_policy(cls, text):
        """The base policy, plus: the proxy trusts the test CA for origins; www.facebook.com is
        social media (blocked for pupils, the role Chromium on 127.0.0.1 falls back to);
        www.facebook.com and badcert.test are mapped to 127.0.0.1, and CONNECT may reach the
        origin with the self-signed certificate."""
        edits = [("upstream:\n  allow_loopback: true",
                  f"upstream:\n  ca_file: {cls.test_ca.crt}\n  allow_loopback: true"),
                 ("hosts:\n", "hosts:\n  www.facebook.com: 127.0.0.1\n  badcert.test: 127.0.0.1\n"),
                 (f"ports: [443, {cls.origin.port}]", f"ports: [443, {cls.origin.port}, {cls.bad_origin.port}]"),
                 ("social_media: {domains: [facebook.test, instagram.test]}",
                  "social_media: {domains: [facebook.test, instagram.test, facebook.com]}")]
        for old, new in edits:
            if old not in text:
                raise AssertionError(f"the base policy has changed: no {old!r} to edit")
            text = text.replace(old, new, 1)
        return text

    def log_for(self, host):
        return [l for l in self.proxy.log_lines() if l.get("host") == host]

    def blocked_get_logged(self, path):
        """The access log's lines for www.facebook.com once the block of GET `path` is among them
        (the log is written in batches), else None."""
        lines = self.log_for("www.facebook.com")
        blocked = [l for l in lines if l["method"] == "GET" and l["path"] == path and l["action"] == "block"]
        return lines if blocked else None

    def assert_shown_without_interstitial(self, browser, url, text):
        """Chromium committed `url` itself (not its error page) with a certificate it accepted,
        one that the school CA issued."""
        self.assertEqual(browser.js("location.href"), url, text[:500])
        self.assertNotIn("Your connection is not private", text)
        details = security_details(browser, url)
        self.assertIsNotNone(details, f"no secure response for {url} recorded")
        self.assertEqual(details["issuer"], f"{SCHOOL} web filter CA", details)
        return details

    def test_blocked_https_site_shows_the_block_page_and_its_form_is_sent(self):
        b = self.browser
        text = b.open("http://www.facebook.com/", timeout=30)
        screenshot(b, "1-https-block-page.png")
        # The HSTS preload list made it https inside the browser: no plain request reached the proxy.
        details = self.assert_shown_without_interstitial(b, "https://www.facebook.com/", text)
        self.assertIn("www.facebook.com", details["sanList"])
        self.assertEqual(b.js("document.querySelector('form').action"),
                         "https://www.facebook.com/.well-known/hallpass/request")
        self.assertEqual(b.js("document.querySelector('input[name=url]').value"), "https://www.facebook.com/")
        lines = wait_for(lambda: self.blocked_get_logged("/"), timeout=5, what="the blocked GET in the access log")
        self.assertEqual([l for l in lines if l["method"] != "CONNECT" and l.get("scheme") != "https"], [], lines)
        # The page gives the proxy's reason, the site and a way to ask.
        reason = [l for l in lines if l["method"] == "GET" and l["path"] == "/"][0]["reason"]
        for part in ("This page is blocked", reason, "www.facebook.com",
                     "Need this page for your school work?", "Send my request"):
            self.assertIn(part, text)
        # The category is the adults': in the folded details, not in what a child reads first.
        self.assertNotIn("social media", text)
        self.assertIn("social media", b.js("document.querySelector('details').textContent"))

        # The pupil types into the fields and clicks the button.
        fill = {"requester": "Amira (Year 5)", "reasons": "Our school's page has the photos of the trip",
                "site_content": "the school's own page"}
        for name, value in fill.items():
            focused = b.js(f"(() => {{ const e = document.querySelector('[name={name}]');"
                           f" if (!e) return false; e.focus(); return document.activeElement === e; }})()")
            self.assertTrue(focused, f"the form has no field '{name}'")
            b.call("Input.insertText", text=value)
            self.assertEqual(b.js(f"document.querySelector('[name={name}]').value"), value)
        x, y = b.js("(() => { const e = document.querySelector('form button[type=submit]');"
                    " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        b.js("document.documentElement.setAttribute('data-old', '1')")
        for kind in ("mousePressed", "mouseReleased"):
            b.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        wait_for(lambda: b.page_js("document.readyState === 'complete' && "
                                   "!document.documentElement.hasAttribute('data-old')"),
                 timeout=20, interval=0.1, what="the page that answers the form")
        text = page_text(b)
        screenshot(b, "2-request-sent.png")
        self.assert_shown_without_interstitial(b, "https://www.facebook.com/.well-known/hallpass/request", text)
        self.assertIn("has been sent", text)

        pending = ctl_json("hp_tech", self.sock, "list", "--pending")["requests"]
        mine = [r for r in pending if r["url"] == "https://www.facebook.com/"]
        self.assertEqual(len(mine), 1, pending)
        self.assertEqual((mine[0]["requester"], mine[0]["source"], mine[0]["client"], mine[0]["scope"]["roles"]),
                         (fill["requester"], "block page", "127.0.0.1", ["pupils"]))
        shown = ctl_json("hp_tech", self.sock, "show", str(mine[0]["id"]))
        self.assertEqual((shown["reasons"], shown["site_content"]), (fill["reasons"], fill["site_content"]))
        # Everything went through the inspected tunnel and was answered by the proxy.
        lines = wait_for(lambda: [l for l in self.log_for("www.facebook.com") if l["method"] == "POST"] and
                         self.log_for("www.facebook.com"), timeout=5, what="the form's post in the access log")
        self.assertEqual([l["path"] for l in lines if l["method"] == "POST"], ["/.well-known/hallpass/request"])
        self.assertTrue(all(l.get("tls") == "inspected" for l in lines), lines)

    def test_allowed_inspected_site_loads_with_the_school_ca_vouching(self):
        b = self.browser
        url = f"https://origin.test:{self.origin.port}/lesson/plants?week=3"
        text = b.open(url)
        screenshot(b, "3-allowed-inspected-page.png")
        self.assert_shown_without_interstitial(b, url, text)
        seen = json.loads(b.js("document.querySelector('pre') ? document.querySelector('pre').textContent : ''"))
        self.assertEqual((seen["method"], seen["target"]), ("GET", "/lesson/plants?week=3"))
        # Decrypted and forwarded by the proxy (the log line below says "inspected"), with the
        # headers the browser sent and no Via of the proxy's (an origin sees a browser).
        self.assertNotIn("via", seen["headers"])
        lines = self.log_for("origin.test")
        gets = [l for l in lines if l["method"] == "GET" and l["path"] == "/lesson/plants"]
        self.assertEqual([(l["action"], l.get("tls")) for l in gets], [("allow", "inspected")], lines)

    def test_origin_the_proxy_cannot_verify_gets_the_proxys_page_never_the_school_cas_word(self):
        b = self.browser
        url = f"https://badcert.test:{self.bad_origin.port}/homework"
        text = b.open(url)
        screenshot(b, "5-origin-certificate-not-trusted.png")
        # The school CA vouches only for the proxy's own page that names the problem; the
        # origin's content never reaches the browser.
        self.assert_shown_without_interstitial(b, url, text)
        for part in ("could not be trusted", "self-signed", "badcert.test"):
            self.assertIn(part, text)
        self.assertNotIn("/homework", [s["target"] for s in self.bad_origin.seen])

    def test_without_the_school_ca_chromium_shows_its_certificate_interstitial(self):
        before = self.proxy.metric("hallpass_tls_client_failures_total", {"reason": "rejected_ca"})
        b = Browser(self.proxy.port, home=trusting_home(self.tmp), ignore_certificate_errors=False)
        self.addCleanup(b.close)
        text = b.open("http://www.facebook.com/", timeout=30)
        screenshot(b, "4-without-school-ca.png")
        self.assertIn("Your connection is not private", text)
        self.assertIn("NET::ERR_CERT_AUTHORITY_INVALID", text)
        self.assertNotIn("This page is blocked", text)
        wait_for(lambda: self.proxy.metric("hallpass_tls_client_failures_total", {"reason": "rejected_ca"}) > before,
                 timeout=10, what="the proxy to count a client that rejected the school CA")


if __name__ == "__main__":
    unittest.main()
