"""The school CA and minted leaves, checked by real clients: `hallpass ca init|show` and
`hallpass check` as a technician runs them, then `openssl verify -x509_strict`, `openssl
s_server` and curl trusting the school CA. certs_tool (tests/certs/certs_tool.cpp) mints the
leaves and serves with the leaf cache's contexts. Every wait is bounded."""
import os
import re
import select
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import free_port, wait_for, _can_connect

BIN = os.environ["HALLPASS_BIN"]
TOOL = os.environ["CERTS_TOOL_BIN"]
SRC = os.environ["HALLPASS_SOURCE_DIR"]
SCHOOL = os.path.join(SRC, "rules", "school.yaml")
HOST = "school-test.test"


def run(*args, timeout=60):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def curl(url, *extra):
    return run("curl", "-sS", "--max-time", "10", *extra, url, timeout=30)


class SchoolCA(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-certs-")
        self.ca = os.path.join(self.dir, "ca")
        self.crt = os.path.join(self.ca, "ca.crt")
        r = run(BIN, "ca", "init", "--dir", self.ca, "--name", "Pimperne School")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.init_out = r.stdout
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def fingerprint(self):
        r = run("openssl", "x509", "-in", self.crt, "-noout", "-fingerprint", "-sha256")
        return r.stdout.strip().split("=", 1)[1]

    def mint(self, host):
        crt, key = os.path.join(self.dir, host + ".crt"), os.path.join(self.dir, host + ".key")
        r = run(TOOL, "write", "--ca-dir", self.ca, "--host", host, "--cert", crt, "--key", key)
        self.assertEqual(r.returncode, 0, r.stderr)
        return crt, key

    def start(self, args, ready_port):
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        wait_for(lambda: _can_connect(ready_port) or p.poll() is not None, timeout=10, what="the TLS server")
        self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
        return p

    def write_policy(self, extra):
        path = os.path.join(self.dir, "policy.yaml")
        with open(SCHOOL) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text + "\n" + extra)
        return path

    # ca init / ca show

    def test_init_makes_a_p256_root_with_a_private_key_and_says_how_to_install_it(self):
        mode = stat.S_IMODE(os.stat(os.path.join(self.ca, "ca.key")).st_mode)
        self.assertEqual(mode, 0o600)
        text = run("openssl", "x509", "-in", self.crt, "-noout", "-text").stdout
        self.assertIn("Subject: CN = Pimperne School web filter CA, O = Pimperne School", text)
        self.assertIn("NIST CURVE: P-256", text)
        self.assertRegex(text, r"Basic Constraints: critical\s+CA:TRUE, pathlen:0")
        self.assertRegex(text, r"Key Usage: critical\s+Certificate Sign, CRL Sign")
        self.assertIn(self.fingerprint(), self.init_out)
        for word in ("Windows", "ChromeOS", "iPad", "macOS", "Firefox", "ImportEnterpriseRoots"):
            self.assertIn(word, self.init_out)
        r = run("openssl", "verify", "-x509_strict", "-CAfile", self.crt, self.crt)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_init_refuses_to_overwrite(self):
        def read():
            with open(self.crt) as f:
                return f.read()
        before = read()
        r = run(BIN, "ca", "init", "--dir", self.ca)
        self.assertEqual(r.returncode, 1)
        self.assertIn("refusing to overwrite", r.stderr)
        self.assertEqual(read(), before)

    def test_init_refuses_a_name_of_more_than_one_line_and_prints_an_absolute_ca_dir(self):
        d = os.path.join(self.dir, "named")
        for name in ("Pimperne\nCN=Evil", "Pimperne\u0085School", "Pimperne\u2028School"):
            r = run(BIN, "ca", "init", "--dir", d, "--name", name)
            self.assertEqual(r.returncode, 2, name)
            self.assertIn("one line of text", r.stderr)
        r = subprocess.run([BIN, "ca", "init", "--dir", d, "--name", b"Pimperne \xff School"], capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)  # not UTF-8
        self.assertFalse(os.path.exists(os.path.join(d, "ca.crt")))
        # Run from the parent with a relative DIR: the line to paste names it absolutely.
        r = subprocess.run([BIN, "ca", "init", "--dir", "named"], cwd=self.dir, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ca_dir: " + os.path.realpath(d), r.stdout)

    def test_show_prints_subject_fingerprint_validity_and_key_type(self):
        r = run(BIN, "ca", "show", "--dir", self.ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("CN=Pimperne School web filter CA,O=Pimperne School", r.stdout)
        self.assertIn(self.fingerprint(), r.stdout)
        self.assertIn("ECDSA P-256", r.stdout)
        self.assertRegex(r.stdout, r"Valid: +\d{4}-\d\d-\d\d \d\d:\d\d UTC to \d{4}-")

    def test_show_fails_clearly_on_a_missing_or_broken_ca(self):
        r = run(BIN, "ca", "show", "--dir", os.path.join(self.dir, "nothing"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("hallpass ca init", r.stderr)
        with open(self.crt, "w") as f:
            f.write("not a certificate\n")
        r = run(BIN, "ca", "show", "--dir", self.ca)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a PEM certificate", r.stderr)
        self.assertEqual(run(BIN, "ca", "show").returncode, 2)

    # hallpass check

    def test_check_validates_the_ca_in_tls_ca_dir(self):
        policy = self.write_policy(f"tls:\n  ca_dir: {self.ca}\n  leaf_cache: 500\n")
        r = run(BIN, "check", "--config", policy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTPS inspection: on. CA", r.stdout)
        self.assertIn(self.fingerprint(), r.stdout)
        self.assertIn("leaf cache 500", r.stdout)

        os.chmod(os.path.join(self.ca, "ca.key"), 0o644)
        r = run(BIN, "check", "--config", policy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("chmod 600", r.stderr)
        os.chmod(os.path.join(self.ca, "ca.key"), 0o600)

        # A directory other users may write: they could swap the key and the certificate
        # (outside-in audit of operations, 2026-12-07, L6: check said OK).
        before = stat.S_IMODE(os.stat(self.ca).st_mode)
        os.chmod(self.ca, 0o777)
        r = run(BIN, "check", "--config", policy)
        os.chmod(self.ca, before)
        self.assertEqual(r.returncode, 1)
        self.assertIn("may be written by other users (mode 0777)", r.stderr)
        open_dir = os.path.join(self.dir, "open-ca")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        r = run(BIN, "ca", "init", "--dir", open_dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("may be written by other users", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(open_dir, "ca.key")))

        # A leaf is no CA; with its own key, only the CA check can catch it.
        crt, key = self.mint(HOST)
        shutil.copy(crt, self.crt)
        shutil.copy(key, os.path.join(self.ca, "ca.key"))
        r = run(BIN, "check", "--config", policy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a CA certificate", r.stderr)

    def test_check_reports_a_bad_tls_section_with_its_location(self):
        policy = self.write_policy("tls:\n  leaf_cache: 0\n  ca_dri: x\n")
        r = run(BIN, "check", "--config", policy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("tls.leaf_cache", r.stderr)
        self.assertIn("did you mean 'ca_dir'?", r.stderr)
        self.assertRegex(r.stderr, re.escape(policy) + r":\d+:\d+: ")

    def test_check_without_a_ca_says_https_blocks_show_no_page(self):
        r = run(BIN, "check", "--config", SCHOOL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTPS blocks show no page", r.stdout)
        r = run(BIN, "check", "--config", self.write_policy(f"tls:\n  ca_dir: {self.dir}/none\n"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)

    def test_check_takes_ca_dir_as_run_does_and_warns_of_a_bad_upstream_ca_file(self):
        # No tls section: `check --ca-dir` checks what `run --ca-dir` would load.
        r = run(BIN, "check", "--config", SCHOOL, "--ca-dir", self.ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTPS inspection: on. CA " + self.ca, r.stdout)
        r = run(BIN, "check", "--config", SCHOOL, "--ca-dir", os.path.join(self.dir, "none"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("school CA in --ca-dir cannot be used", r.stderr)
        garbage = os.path.join(self.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        for ca_file in (garbage, os.path.join(self.dir, "missing.pem")):
            policy = self.write_policy(f"upstream:\n  ca_file: {ca_file}\n")
            # Without inspection the file is unused: a warning that names it.
            r = run(BIN, "check", "--config", policy)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("warning: ", r.stderr)
            self.assertIn(ca_file, r.stderr)
            # With it, as `run --ca-dir` would, an error.
            r = run(BIN, "check", "--config", policy, "--ca-dir", self.ca)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(ca_file, r.stderr)
            # ... that blames the file, not the school CA, which is fine.
            self.assertIn("upstream.ca_file cannot be used", r.stderr)
            self.assertNotIn("school CA in --ca-dir cannot be used", r.stderr)

    # leaves, checked by openssl and curl

    def test_a_minted_leaf_verifies_strictly_and_curl_trusts_it_for_its_name_only(self):
        crt, key = self.mint(HOST)
        r = run("openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", self.crt, crt)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(": OK", r.stdout)
        text = run("openssl", "x509", "-in", crt, "-noout", "-text").stdout
        self.assertIn(f"DNS:{HOST}", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertRegex(text, r"Basic Constraints: critical\s+CA:FALSE")

        port = free_port()
        self.start(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", crt, "-key", key, "-www",
                    "-quiet"], port)
        ok = curl(f"https://{HOST}:{port}/", "--cacert", self.crt, "--resolve", f"{HOST}:{port}:127.0.0.1")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        wrong = curl(f"https://wrong-name.test:{port}/", "--cacert", self.crt,
                     "--resolve", f"wrong-name.test:{port}:127.0.0.1")
        self.assertEqual(wrong.returncode, 60, wrong.stderr)
        self.assertIn("wrong-name.test", wrong.stderr)
        untrusted = curl(f"https://{HOST}:{port}/", "--resolve", f"{HOST}:{port}:127.0.0.1")
        self.assertEqual(untrusted.returncode, 60, untrusted.stderr)

    def test_the_leaf_cache_contexts_serve_curl_and_a_repeat_handshake_mints_nothing(self):
        port = free_port()
        # Not start(): a probe connection would be one of the three it serves.
        p = subprocess.Popen([TOOL, "serve", "--ca-dir", self.ca, "--port", str(port), "--count", "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        readable, _, _ = select.select([p.stdout], [], [], 10)
        self.assertTrue(readable, "certs_tool did not start in 10 s")
        self.assertEqual(p.stdout.readline(), "ready\n", p.stderr.read() if p.poll() is not None else "")
        resolve = ("--cacert", self.crt, "--resolve", f"{HOST}:{port}:127.0.0.1")
        for _ in range(2):
            r = curl(f"https://{HOST}:{port}/", "--http1.1", *resolve)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, f"host={HOST} alpn=http/1.1\n")
        r = curl(f"https://127.0.0.1:{port}/", "--cacert", self.crt)  # an IP SAN, no SNI
        self.assertEqual(r.returncode, 0, r.stderr)
        out, _ = p.communicate(timeout=30)
        self.assertIn("mints=2 hits=1", out)


if __name__ == "__main__":
    unittest.main()
