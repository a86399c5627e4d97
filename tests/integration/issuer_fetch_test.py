"""An inspected origin that sends its certificate without the intermediate that issued it: the
proxy fetches the intermediate from the "CA Issuers" address in the certificate, as browsers
do, and the chain must still end at a CA it trusts (certs/fetched_issuers.hpp,
proxy/issuer_fetch.hpp). Before, such a site worked in Chromium and failed under inspection
with "unable to get local issuer certificate".

Real parts: TLS origins (Python's ssl) serving only their leaf, certificates made with the
openssl CLI, an HTTP server in the test serving the intermediates, the real proxy with a school
CA, curl trusting the school CA."""
import http.server
import os
import shutil
import subprocess
import threading
import time
import types
import unittest

from harness import BIN, PUPIL, Proxy, curl
from inspection_test import TestCA, TlsOrigin, run, workdir_with_test_ca
from origin_verify_test import sign


class IssuerServer(http.server.ThreadingHTTPServer):
    """Serves files from a folder over plain HTTP on 127.0.0.1, noting each path asked for."""

    daemon_threads = True

    def __init__(self, folder):
        self.folder = folder
        self.asked = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.asked.append(self.path)
                if self.path == "/slow.crt":
                    time.sleep(2.5)  # longer than the test's upstream.response_timeout
                    return  # no answer at all (the proxy has stopped waiting)
                name = os.path.join(outer.folder, self.path.lstrip("/"))
                if not os.path.isfile(name):
                    self.send_error(404)
                    return
                with open(name, "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-cert")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


def intermediate(root, folder, name):
    """An intermediate CA signed by `root`: an object sign() can sign leaves with."""
    crt, key = sign(root, name, ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"])
    return types.SimpleNamespace(dir=folder, crt=crt, key=key)


def der(pem, out):
    run(["openssl", "x509", "-in", pem, "-outform", "DER", "-out", out])


class IssuerFetchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.test_ca = workdir_with_test_ca("hallpass-issuers-")
        www = os.path.join(cls.tmp, "www")
        os.mkdir(www)
        cls.issuers = IssuerServer(www)
        base = f"http://issuers.test:{cls.issuers.port}"
        os.mkdir(os.path.join(cls.tmp, "other"))
        other_ca = TestCA(os.path.join(cls.tmp, "other"), name="a CA this school does not trust")
        # One intermediate per way of serving it (and per test), so that one test's fetch does
        # not complete another's chain: what is fetched is kept for every later connection.
        cas = {n: intermediate(cls.test_ca, cls.tmp, "Intermediate " + n) for n in ("der", "pem", "p7c", "off")}
        cas["untrusted"] = intermediate(other_ca, cls.tmp, "Intermediate of an untrusted root")
        der(cas["der"].crt, os.path.join(www, "der.crt"))
        shutil.copy(cas["pem"].crt, os.path.join(www, "pem.crt"))
        run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", cas["p7c"].crt, "-outform", "DER",
             "-out", os.path.join(www, "bundle.p7c")])
        der(cas["untrusted"].crt, os.path.join(www, "untrusted.crt"))
        der(cas["off"].crt, os.path.join(www, "off.crt"))
        with open(os.path.join(www, "huge.crt"), "wb") as f:
            f.write(b"0" * (100 * 1024))
        serve = ["extendedKeyUsage=serverAuth"]
        # name: (the CA that signs its leaf, the path its certificate names for its issuer)
        sites = {
            "der": ("der", "/der.crt"), "der2": ("der", "/der.crt"), "pem": ("pem", "/pem.crt"),
            "p7c": ("p7c", "/bundle.p7c"), "untrusted": ("untrusted", "/untrusted.crt"),
            "missing": ("der", "/nothing-here.crt"), "leafonly": ("pem", "/leafonly.crt"),
            "huge": ("der", "/huge.crt"), "off": ("off", "/off.crt"), "slow": ("der", "/slow.crt"),
        }
        cls.origins = {}
        for name, (ca, path) in sites.items():
            crt, key = sign(cas[ca], name + ".test", [f"subjectAltName=DNS:{name}.test", *serve,
                                                       f"authorityInfoAccess=caIssuers;URI:{base}{path}"])
            cls.origins[name] = TlsOrigin(crt, key)  # serves its leaf alone, no intermediate
            if name == "leafonly":
                der(crt, os.path.join(www, "leafonly.crt"))  # not a CA certificate
        cls.school_ca = os.path.join(cls.tmp, "school-ca")
        run([BIN, "ca", "init", "--dir", cls.school_ca, "--name", "Test School"])
        cls.school_crt = os.path.join(cls.school_ca, "ca.crt")

    @classmethod
    def tearDownClass(cls):
        for o in cls.origins.values():
            o.stop()
        cls.issuers.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start_proxy(self, fetch=True, response_timeout="3s"):
        ports = ", ".join(str(o.port) for o in self.origins.values())
        names = "".join(f"  {n}.test: 127.0.0.1\n" for n in [*self.origins, "issuers"])
        ca = self.test_ca.crt

        def edit(text):
            text = text.replace("upstream:\n  allow_loopback: true",
                                f"upstream:\n  ca_file: {ca}\n  allow_loopback: true" +
                                ("" if fetch else "\n  fetch_issuers: false"))
            text = text.replace("hosts:\n", "hosts:\n" + names, 1)
            text = text.replace("connect:\n  ports: [443, 8443]", f"connect:\n  ports: [443, {ports}]")
            return text + "inspection:\n  inspect:\n    - {everything: true}\n"
        p = Proxy(args=["--ca-dir", self.school_ca], workers=1, policy_edit=edit, response_timeout=response_timeout)
        self.addCleanup(p.stop)
        return p

    def get(self, proxy, name):
        return curl(proxy, f"https://{name}.test:{self.origins[name].port}/", source=PUPIL,
                    extra=["--cacert", self.school_crt])

    def fetches(self, proxy, result):
        return proxy.metric("hallpass_tls_issuer_fetches_total", {"result": result}) or 0

    def assert_passes(self, proxy, name):
        status, body, err = self.get(proxy, name)
        self.assertEqual(status, 200, (name, err, body[:400]))
        self.assertTrue(self.origins[name].seen, f"{name}: the origin never got the request")

    def assert_refused(self, proxy, name, *words):
        before = len(self.origins[name].seen)
        status, body, err = self.get(proxy, name)
        self.assertEqual(status, 502, (name, err, body[:400]))
        page = body.decode("utf-8", "replace")
        self.assertIn("could not be trusted", page)
        for w in words:
            self.assertIn(w, page)
        self.assertEqual(len(self.origins[name].seen), before, f"{name}: the origin got the request")
        return page

    def test_missing_intermediate_is_fetched_once_and_kept_for_other_sites(self):
        p = self.start_proxy()
        self.assert_passes(p, "der")
        self.assertEqual(self.issuers.asked.count("/der.crt"), 1)
        self.assertEqual(self.fetches(p, "fetched"), 1)
        # Another site under the same intermediate: verified with the kept one, nothing fetched.
        self.assert_passes(p, "der2")
        self.assertEqual(self.issuers.asked.count("/der.crt"), 1)
        self.assertEqual(self.fetches(p, "fetched"), 1)

    def test_pem_and_pkcs7_answers_are_read(self):
        p = self.start_proxy()
        self.assert_passes(p, "pem")
        self.assert_passes(p, "p7c")
        self.assertEqual(self.fetches(p, "fetched"), 2)

    def test_a_fetched_intermediate_is_never_trusted_by_itself(self):
        p = self.start_proxy()
        # Fetched, and then the chain ends at a root nothing here trusts: the page names it.
        self.assert_refused(p, "untrusted", "a CA this school does not trust", "Intermediate of an untrusted root")
        self.assertIn("/untrusted.crt", self.issuers.asked)
        self.assertEqual(self.fetches(p, "fetched"), 1)

    def test_failed_fetches_are_named_and_not_repeated_for_every_request(self):
        p = self.start_proxy()
        page = self.assert_refused(p, "missing", "nothing-here.crt", "answered 404")
        self.assertEqual(self.fetches(p, "failed"), 1)
        self.assert_refused(p, "missing", "fetched in the last ten minutes")
        self.assertEqual(self.issuers.asked.count("/nothing-here.crt"), 1, page)
        self.assert_refused(p, "leafonly", "not a CA certificate")
        self.assert_refused(p, "huge", "larger than 64 KiB")
        self.assertEqual(self.fetches(p, "failed"), 3)
        self.assertEqual(self.fetches(p, "fetched"), 0)

    def test_a_fetch_waits_no_longer_than_the_response_timeout_and_says_so(self):
        # The fetch waits 10 s, or upstream.response_timeout when that is shorter: the page
        # names the wait that applied.
        p = self.start_proxy(response_timeout="1s")
        started = time.monotonic()
        self.assert_refused(p, "slow", "slow.crt", "no answer within 1 s")
        self.assertLess(time.monotonic() - started, 2.4)
        self.assertEqual(self.fetches(p, "failed"), 1)

    def test_fetching_can_be_turned_off(self):
        p = self.start_proxy(fetch=False)
        self.assert_refused(p, "off", "unable to get local issuer certificate", "sent no intermediate")
        self.assertNotIn("/off.crt", self.issuers.asked)
        self.assertEqual(self.fetches(p, "fetched") + self.fetches(p, "failed"), 0)


if __name__ == "__main__":
    unittest.main()
