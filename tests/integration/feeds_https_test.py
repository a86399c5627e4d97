"""`hallpass feeds update` over HTTPS: a local HTTPS origin with certificates from a test CA
made here. The download succeeds when the feed's `ca_file` trusts that CA, and fails with a
clear "certificate" error, the lists in force left alone, when the server's certificate comes
from a CA nobody trusts, when no ca_file is given (the system's store does not know the test
CA), or when the certificate names another host. There is no key that turns verification off."""
import os
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, PUPIL, Proxy, curl, wait_for  # noqa: E402
from feeds_update_test import UT1, FeedServer, tarball, ut1_list  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_leaf(d, ca, name, san):
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key"))
    return context


@unittest.skipUnless(os.path.isdir(UT1), "the UT1 lists of ../shared/ut1 are not here")
class FeedHttpsTest(unittest.TestCase):
    def setUp(self):
        self.pki = tempfile.TemporaryDirectory()
        d = self.pki.name
        make_ca(d, "test-ca")
        make_ca(d, "stranger-ca")
        self.ca_file = os.path.join(d, "test-ca.pem")
        self.gambling = ut1_list("gambling", "domains", 50)
        self.lists = {"gambling": {"domains": self.gambling}}
        # The feed's own server (a certificate for 127.0.0.1 from the test CA), one whose
        # certificate comes from another CA, and one whose certificate names another host.
        self.good = FeedServer(make_leaf(d, "test-ca", "feed-ip", "IP:127.0.0.1"))
        self.stranger = FeedServer(make_leaf(d, "stranger-ca", "stranger-ip", "IP:127.0.0.1"))
        self.other_host = FeedServer(make_leaf(d, "test-ca", "other-host", "DNS:feeds.other.test"))
        for s in (self.good, self.stranger, self.other_host):
            s.routes["/ut1.tar.gz"] = (tarball(self.lists), '"v1"')

        def edit(text):
            text = text.replace("  circumvention: {domains: [vpn.test]}\n",
                                "  circumvention: {domains: [vpn.test]}\n  gambling: {feed: ut1/gambling}\n")
            return text.replace("      - {action: block, categories: [social_media]}\n",
                                "      - {action: block, categories: [social_media, gambling]}\n", 1)
        self.proxy = Proxy(extra=self.feeds(self.good, True), policy_edit=edit)
        self.base_text = self.proxy.policy_text
        self.home = os.path.join(self.proxy.dir, "state", "feeds", "ut1")

    def tearDown(self):
        self.proxy.stop()
        for s in (self.good, self.stranger, self.other_host):
            s.stop()
        self.pki.cleanup()

    def feeds(self, server, with_ca):
        ca = f", ca_file: \"{self.ca_file}\"" if with_ca else ""
        return (f"feeds:\n  ut1: {{url: \"https://127.0.0.1:{server.port}/ut1.tar.gz\", format: ut1, "
                f"timeout: 5s{ca}}}\n")

    def update(self):
        return subprocess.run([BIN, "feeds", "update", "--config", self.proxy.config, "--state-dir",
                               os.path.join(self.proxy.dir, "state")], capture_output=True, text=True, timeout=60)

    def test_verified_download_and_every_kind_of_bad_certificate(self):
        r = self.update()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("feed ut1: updated", r.stdout)
        self.assertEqual(len(self.good.requests), 1)
        casino = self.gambling[0]
        wait_for(lambda: curl(self.proxy, f"http://{casino}/", source=PUPIL, timeout=10)[0] == 403, timeout=10,
                 what="the HTTPS-fetched list in force")
        good = os.readlink(os.path.join(self.home, "current"))

        # A changed feed on every server: only verification stands between it and the disk.
        changed = {"gambling": {"domains": self.gambling[1:] + ["newly-listed.test"]}}
        for s in (self.good, self.stranger, self.other_host):
            s.routes["/ut1.tar.gz"] = (tarball(changed), '"v2"')
        cases = [
            ("a certificate from a CA nobody trusts", self.stranger, True),
            ("no ca_file: the system's store does not know the test CA", self.good, False),
            ("a certificate for another host name", self.other_host, True),
        ]
        for name, server, with_ca in cases:
            with self.subTest(name):
                before = len(server.requests)
                old_text = self.base_text
                text = old_text.replace(self.feeds(self.good, True), self.feeds(server, with_ca))
                self.assertNotEqual(text, old_text)
                self.proxy.write_policy(text)
                r = self.update()
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("feed ut1: ", r.stderr)
                self.assertIn("certificate", r.stderr)
                self.assertIn("the lists in force are unchanged", r.stderr)
                self.assertEqual(len(server.requests), before, "the request was sent over an unverified connection")
                self.assertEqual(os.readlink(os.path.join(self.home, "current")), good)
                self.assertEqual(sorted(n for n in os.listdir(self.home) if n.startswith(".")), [])
                self.assertEqual(curl(self.proxy, f"http://{casino}/", source=PUPIL, timeout=10)[0], 403)

        # A missing ca_file is its own clear error, not a silent fall back to no verification.
        self.proxy.write_policy(self.base_text.replace(self.ca_file, self.ca_file + ".missing"))
        r = self.update()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("certificate", r.stderr)
        self.assertEqual(os.readlink(os.path.join(self.home, "current")), good)

        # The trusted server sending no length over TLS, ending the body by closing the connection
        # without close_notify: a cut could not be told from the end, so it is refused, even whole.
        self.proxy.write_policy(self.base_text)
        self.good.routes["/ut1.tar.gz"] = (tarball(changed), '"v2"', "no-length")
        r = self.update()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("neither a Content-Length nor chunked transfer-coding", r.stderr)
        self.assertEqual(os.readlink(os.path.join(self.home, "current")), good)

        # A redirect from the https feed to http is never followed (a downgrade).
        self.good.routes["/ut1.tar.gz"] = (f"http://127.0.0.1:{self.good.port}/plain.tar.gz", None, "redirect")
        r = self.update()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("the server redirected to an address hallpass does not follow (an https feed never goes to http", r.stderr)
        self.assertEqual(os.readlink(os.path.join(self.home, "current")), good)

        # The same trusted server as at first: the changed feed is taken.
        self.good.routes["/ut1.tar.gz"] = (tarball(changed), '"v2"')
        r = self.update()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ut1/gambling: 50 entries, +1 -1", r.stdout)


if __name__ == "__main__":
    unittest.main()
