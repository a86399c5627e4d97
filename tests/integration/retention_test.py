"""Retention of the store (deploy/README.md "Logs and retention"; store/retention.cpp): with
`retention.records` set, the daemon deletes access requests once denied or their exception
ended (or never decided), ended (or never confirmed) bans, removed local blocks, their reports and old audit entries, at start, after
each reload and every ten minutes; what is still open stays; the audit log says what went; the
deleted words are gone from the database files. Real daemon, admin socket, SQLite and OS users
(needs root), as exceptions_test.py; a `records` of 3 s stands in for a school's 365 days."""
import os
import subprocess
import tempfile
import time
import unittest

from exceptions_test import ADMIN, ASSESSED, DaemonWithAdminSocket, ctl, ctl_json
from harness import BIN, Proxy

KEEP = 3  # seconds: retention.records below
MINIMAL_POLICY = """
school: {name: Retention Test School, timezone: Europe/London}
roles:
  pupils: {networks: [10.0.0.0/8], default: allow}
"""


def store_bytes(state):
    data = b""
    for name in ("hallpass.db", "hallpass.db-wal"):
        try:
            with open(os.path.join(state, name), "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    return data


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class RetentionTest(DaemonWithAdminSocket, unittest.TestCase):
    @classmethod
    def start_proxy(cls):
        return Proxy(extra=ADMIN + f"retention:\n  records: {KEEP}s\n", tls_port=cls.tls.port,
                     args=["--state-dir", cls.state, "--admin-socket", cls.sock])

    def file(self, url, reason):
        return ctl_json("hp_tech", self.sock, "request", "--url", url, "--role", "pupils", "--requester",
                        "Mr Smith", "--reason", reason, *ASSESSED)["id"]

    def test_closed_records_go_after_the_period_and_open_ones_stay(self):
        denied = self.file("https://denied.test/", "words-of-a-denied-request")
        ctl("hp_head", self.sock, "deny", str(denied), "--reason", "not for school", check=0)
        stale = self.file("https://stale.test/", "words-of-a-request-never-decided")
        approved = self.file("https://approved.test/", "words-of-an-exception-in-force")
        ctl("hp_head", self.sock, "approve", str(approved), "--for", "1h", "--reason", "lesson", check=0)
        closed = time.monotonic()
        self.assertIn(b"words-of-a-denied-request", store_bytes(self.state))

        # Within the period nothing goes, reload or not.
        ctl("hp_tech", self.sock, "reload", check=0)
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(denied))["status"], "denied")

        # After it, a reload applies retention at once (else the ten-minute round would).
        time.sleep(max(0.0, KEEP + 1.2 - (time.monotonic() - closed)))
        pending = self.file("https://pending.test/", "words-of-a-pending-request")  # filed within the period
        ctl("hp_tech", self.sock, "reload", check=0)
        code, out, err = ctl("hp_dsl", self.sock, "show", str(denied))
        self.assertEqual(code, 1, out)
        self.assertIn(f"there is no request {denied}", err)
        self.assertEqual(ctl("hp_dsl", self.sock, "show", str(stale))[0], 1)  # undecided for the whole period
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(pending))["status"], "pending")
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(approved))["status"], "approved")

        entries = ctl_json("hp_dsl", self.sock, "audit")["entries"]
        retention = [e for e in entries if e["action"] == "retention"]
        self.assertEqual(len(retention), 1, entries)
        self.assertEqual((retention[0]["os_user"], retention[0]["admin_role"]), ("hallpass", "retention"))
        self.assertTrue(retention[0]["reason"].startswith("deleted 2 access requests (with their exceptions), 0 "
                                                         "reports, 0 removed local blocks and allows, 0 ended or unconfirmed bans "
                                                         "and "), retention[0]["reason"])
        self.assertIn("(retention.records 3s)", retention[0]["reason"])
        # Every audit entry older than the period went too (the filings, the decisions).
        self.assertFalse([e for e in entries if e["object"] == f"request {denied}"], entries)

        data = store_bytes(self.state)
        self.assertNotIn(b"words-of-a-denied-request", data)
        self.assertNotIn(b"words-of-a-request-never-decided", data)
        self.assertIn(b"words-of-a-pending-request", data)
        self.assertIn(b"words-of-an-exception-in-force", data)


class RetentionConfigTest(unittest.TestCase):
    def check(self, value):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(MINIMAL_POLICY + f"retention:\n  records: {value}\n")
        try:
            return subprocess.run([BIN, "check", "--config", f.name], capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)

    def test_the_setting_is_a_period_or_forever(self):
        for good in ("365d", "forever", "1s"):
            with self.subTest(value=good):
                r = self.check(good)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for bad in ("0s", "-1d", "never", "99999999d", "1y"):
            with self.subTest(value=bad):
                r = self.check(bad)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("retention.records must be how long closed records are kept", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
