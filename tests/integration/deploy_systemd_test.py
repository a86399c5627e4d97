"""deploy/hallpass.service, hallpass-feeds.service and .timer, hallpass-report.service and .timer checked by
`systemd-analyze verify`: every key known, every value parsed, the timer's service there.
The units name /usr/local/bin/hallpass, where deploy/README.md installs it; verify also checks
that ExecStart is an executable, so the copies verified here name the binary under test
instead (the one change made to them). Any line systemd-analyze prints fails the test: it
reports unknown keys and bad values as warnings with exit status 0."""
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HALLPASS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BIN = os.environ.get("HALLPASS_BIN", "")
UNITS = ["hallpass.service", "hallpass-feeds.service", "hallpass-feeds.timer", "hallpass-report.service",
         "hallpass-report.timer"]
INSTALLED = "/usr/local/bin/hallpass"


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed (Debian package systemd)")
class SystemdUnitsTest(unittest.TestCase):
    def verify(self, units_dir, names):
        return subprocess.run(["systemd-analyze", "verify", "--man=no", *[os.path.join(units_dir, n) for n in names]],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""})

    def copies(self, directory, edit=lambda name, text: text):
        for name in UNITS:
            with open(os.path.join(SRC, "deploy", name)) as f:
                text = f.read()
            if name.endswith(".service"):
                self.assertIn(INSTALLED, text, f"{name} no longer starts {INSTALLED}")
                text = text.replace(INSTALLED, os.path.abspath(BIN))
            with open(os.path.join(directory, name), "w") as f:
                f.write(edit(name, text))

    def test_units_verify_cleanly(self):
        self.assertTrue(BIN and os.access(BIN, os.X_OK), "HALLPASS_BIN must name the built hallpass")
        with tempfile.TemporaryDirectory() as d:
            self.copies(d)
            r = self.verify(d, UNITS)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual((r.stdout + r.stderr).strip(), "", "systemd-analyze verify reported problems")

    def test_the_check_sees_a_bad_key(self):
        # The test above could pass by verifying nothing: an unknown key must be reported.
        with tempfile.TemporaryDirectory() as d:
            self.copies(d, lambda name, text: text.replace("[Service]\n", "[Service]\nNoSuchKey=yes\n")
                        if name == "hallpass-feeds.service" else text)
            r = self.verify(d, UNITS)
            self.assertIn("NoSuchKey", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
