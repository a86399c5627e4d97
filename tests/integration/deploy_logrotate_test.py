"""deploy/hallpass.logrotate run by Debian's logrotate on a copy of /var/log/hallpass: the
access log is personal data, and the file's retention period is in days, not in rotations.
The copy names a directory of the test's instead of /var/log/hallpass, the test's own user
and group instead of hallpass:adm (which need not exist here), and a harmless postrotate
(the shipped one signals the service); nothing else is changed. logrotate is run with a
state file of the test's, saying when it last rotated, and files are aged with utime, as a
school's weekends and holidays would age them."""
import os
import pwd
import grp
import re
import shutil
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HALLPASS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
DAY = 86400


@unittest.skipUnless(os.path.exists(LOGROTATE), "needs logrotate (deploy/install-deps.sh --test)")
class LogrotateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-logrotate-")
        os.chmod(self.dir, 0o750)  # logrotate refuses a directory others may write
        self.logs = os.path.join(self.dir, "log")
        os.mkdir(self.logs, 0o750)
        with open(os.path.join(SRC, "deploy", "hallpass.logrotate")) as f:
            text = f.read()
        self.assertIn("/var/log/hallpass/*.log {", text)
        self.assertIn("create 0640 hallpass adm", text)
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        text = text.replace("/var/log/hallpass/", self.logs + "/")
        self.assertIn("su hallpass adm", text)
        text = text.replace("create 0640 hallpass adm", f"create 0640 {user} {group}")
        text = text.replace("su hallpass adm", f"su {user} {group}")
        text = re.sub(r"postrotate\n.*?endscript", "postrotate\n        true\n    endscript", text, flags=re.S)
        self.conf = os.path.join(self.dir, "hallpass.logrotate")
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o644)
        self.state = os.path.join(self.dir, "state")
        # The period the shipped file keeps, read from it: the test follows a school's edit.
        self.days = int(re.search(r"^\s*maxage (\d+)", text, re.M).group(1))
        self.assertEqual(int(re.search(r"^\s*rotate (\d+)", text, re.M).group(1)), self.days,
                         "rotate and maxage should both be the retention period less one day")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def last_rotated(self, days_ago):
        when = time.strftime("%Y-%m-%d-%H:%M:%S", time.localtime(time.time() - days_ago * DAY))
        with open(self.state, "w") as f:
            f.write(f'logrotate state -- version 2\n"{self.logs}/access.log" {when}\n')

    def file(self, name, days_old, content=b""):
        path = os.path.join(self.logs, name)
        with open(path, "wb") as f:
            f.write(content)
        t = time.time() - days_old * DAY
        os.utime(path, (t, t))
        return path

    def run_logrotate(self):
        r = subprocess.run([LOGROTATE, "-s", self.state, self.conf], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def ages(self):
        now = time.time()
        return {n: (now - os.stat(os.path.join(self.logs, n)).st_mtime) / DAY for n in os.listdir(self.logs)}

    def test_after_a_holiday_nothing_older_than_the_period_is_kept(self):
        # The privacy audit's case (2026-12-06): a full set of rotations from before a holiday,
        # the log empty since (the gateway off, or nobody in school). With `notifempty` and no
        # `maxage` logrotate said "log is empty" and kept them all, up to 70 days old.
        self.file("access.log", 45)
        for k in range(1, self.days + 1):
            self.file(f"access.log.{k}.gz", self.days + 10 + k, b"\x1f\x8b not really gzip")
        self.last_rotated(45)
        self.run_logrotate()
        ages = self.ages()
        # The log of the last day before the break is rotated now (access.log.1, its date that
        # day's): logrotate never ages out the file it has just rotated, so it goes at the next
        # day's run. Everything older went at once.
        too_old = {n: round(a) for n, a in ages.items() if n not in ("access.log", "access.log.1") and a > self.days}
        self.assertEqual(too_old, {}, f"kept past {self.days} days: {sorted(ages)}")
        self.assertIn("access.log", ages)  # a new, empty log for the daemon
        self.last_rotated(1)
        self.run_logrotate()
        ages = self.ages()
        too_old = {n: round(a) for n, a in ages.items() if a > self.days}
        self.assertEqual(too_old, {}, f"kept past {self.days} days the day after: {sorted(ages)}")

    def test_a_school_day_keeps_what_is_within_the_period(self):
        self.file("access.log", 0.5, b'{"line":1}\n')
        for k in range(2, 11):
            self.file(f"access.log.{k}.gz", k, b"\x1f\x8b not really gzip")
        self.file("access.log.1", 1, b'{"yesterday":1}\n')
        self.last_rotated(1)
        self.run_logrotate()
        names = set(self.ages())
        self.assertIn("access.log.1", names)  # today's, kept uncompressed a day (delaycompress)
        self.assertIn("access.log.2.gz", names)  # yesterday's, compressed now
        self.assertEqual(len([n for n in names if n.endswith(".gz")]), 10)  # 2..11: none lost
        with open(os.path.join(self.logs, "access.log.1"), "rb") as f:
            self.assertEqual(f.read(), b'{"line":1}\n')
        self.assertEqual(os.stat(os.path.join(self.logs, "access.log")).st_mode & 0o777, 0o640)


if __name__ == "__main__":
    unittest.main()
