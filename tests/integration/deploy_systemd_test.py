"""deploy/hallpass.service, hallpass-feeds.service and .timer, hallpass-report.service and .timer checked by
`systemd-analyze verify`: every key known, every value parsed, the timer's service there.
The units name /usr/local/bin/hallpass, where deploy/README.md installs it; verify also checks
that ExecStart is an executable, so the copies verified here name the binary under test
instead (the one change made to them). Any line systemd-analyze prints fails the test: it
reports unknown keys and bad values as warnings with exit status 0."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import stop_process

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


def unit_settings(name="hallpass.service"):
    """{key: [value, ...]} of the unit's [Service] lines, in order."""
    out = {}
    with open(os.path.join(SRC, "deploy", name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, value = line.split("=", 1)
                out.setdefault(key, []).append(value)
    return out


def expand(group, seen=None):
    """The system calls of `group` (`@name` or a call), nested groups expanded, as systemd's own
    tables have them (systemd-analyze syscall-filter)."""
    if not group.startswith("@"):
        return {group}
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    r = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, timeout=30)
    calls = set()
    for line in r.stdout.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= expand(item, seen)
    return calls


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid):
    """Whether `pid` is a process that has not yet ended (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@unittest.skipUnless(os.geteuid() == 0, "runs the daemon as another user under strace: needs root")
@unittest.skipUnless(shutil.which("systemd-analyze") and shutil.which("strace") and shutil.which("setpriv"),
                     "needs systemd-analyze, strace and setpriv")
class ServiceSandboxTest(unittest.TestCase):
    """The daemon, run as the unit runs it (a user of its own, the admin socket given to a group,
    the gateway's addresses read), makes no system call that hallpass.service's
    SystemCallFilter refuses, and opens no socket of a family its RestrictAddressFamilies
    refuses. systemd is not PID 1 here (nor in CI), so the unit's sandbox cannot be started:
    this compares what the daemon really does (strace) with what the unit allows (systemd's own
    tables). Under the unit before 2026-12-07 the admin socket's chown failed (hallpass did not
    start) and getifaddrs failed (the gateway's addresses were not refused)."""

    def allowed_calls(self):
        calls = None
        for value in unit_settings()["SystemCallFilter"]:
            deny = value.startswith("~")
            named = set()
            for item in value.lstrip("~").split():
                named |= expand(item)
            if calls is None:  # the first line decides: an allow list here
                self.assertFalse(deny, "the unit's first SystemCallFilter is expected to be an allow list")
                calls = set(named)
            elif deny:
                calls -= named
            else:
                calls |= named
        return calls

    def test_the_daemon_makes_no_call_the_units_sandbox_refuses(self):
        allowed = self.allowed_calls()
        self.assertIn("read", allowed)
        self.assertNotIn("setuid", allowed)  # the table was read: @privileged is out
        families = set(unit_settings()["RestrictAddressFamilies"][0].split())
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            state, run = os.path.join(d, "state"), os.path.join(d, "run")
            for sub in (state, run):
                os.mkdir(sub)
                shutil.chown(sub, "nobody", "nogroup")
            config = os.path.join(d, "school.yaml")
            with open(os.path.join(SRC, "rules", "school.yaml")) as f:
                policy = f.read()
            with open(config, "w") as f:
                f.write(policy + f"""
admin:
  socket: {run}/admin.socket
  socket_group: nogroup
  roles:
    headteacher: [root]
""")
            trace = os.path.join(d, "trace")
            # As systemd's User=: the user's own uid, gid and groups from the start, no privilege.
            proxy = subprocess.Popen(
                ["strace", "-f", "-qq", "-o", trace, "setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups",
                 "--no-new-privs", BIN, "run", "--config", config, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                 "--access-log", "-", "--state-dir", state],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
            lines = []
            deadline = time.monotonic() + 60
            try:
                for line in proxy.stderr:
                    lines.append(line)
                    if "serving" in line or time.monotonic() > deadline:
                        break
                self.assertIsNone(proxy.poll(), "".join(lines))
                time.sleep(1.5)  # the gateway's addresses are read again each second
            finally:
                # SIGTERM to the group: strace alone would detach and leave the daemon running
                # (until 2026-12-07 every run of this test left one behind).
                daemon = read_pid(os.path.join(state, "hallpass.pid"))
                try:
                    os.killpg(proxy.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                stop_process(proxy, timeout=20)
                proxy.stderr.close()
                if daemon:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline and pid_alive(daemon):
                        time.sleep(0.1)
                    if pid_alive(daemon):
                        os.kill(daemon, signal.SIGKILL)
                    self.assertFalse(pid_alive(daemon), "the daemon under strace was left running")
            self.assertTrue(any("serving" in l for l in lines), "".join(lines))
            with open(trace) as f:
                text = f.read()
        # Only the daemon's calls: from its execve of BIN on (setpriv's own come before).
        start = text.find("execve(\"" + BIN)
        self.assertGreater(start, -1, text[:2000])
        made, sockets = set(), set()
        for line in text[start:].splitlines():
            m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
            if m:
                made.add(m.group(1))
                if m.group(1) == "socket":
                    sockets.add(line.split("(", 1)[1].split(",", 1)[0])
        self.assertTrue(made & {"chown", "fchown", "fchownat", "lchown"}, "the admin socket's chown was not seen")
        refused = sorted(c for c in made if c not in allowed)
        self.assertEqual(refused, [], "system calls hallpass.service's SystemCallFilter refuses")
        self.assertEqual(sorted(sockets - families), [], "socket families RestrictAddressFamilies refuses")
        self.assertIn("AF_NETLINK", sockets)  # getifaddrs: the gateway's own addresses


if __name__ == "__main__":
    unittest.main()
