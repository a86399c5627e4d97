"""`hallpass run --user` with `admin.socket_group`, exactly as deploy/README.md says to set it
up: a service user that is a member of the socket's group. Real OS users and groups (created
here; needs root, as in CI), the real daemon, hallpassctl run as a member of the group."""
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from harness import BIN, SRC, Proxy, wait_for

CTL = os.environ.get("HALLPASSCTL_BIN", "")
DAEMON_USER = "hp_daemon"  # the service user (deploy/README.md: `hallpass`)
SOCKET_GROUP = "hp_sockgrp"  # admin.socket_group (deploy/README.md: `hallpass-admin`)
MEMBER = "hp_sockmember"  # a member of staff in the group, with an admin role
OUTSIDER = "hp_sockout"  # an account that is not in the group

ADMIN = f"""
admin:
  socket_group: {SOCKET_GROUP}
  roles:
    dsl: [{MEMBER}, {OUTSIDER}]
"""


def run(*cmd):
    subprocess.run(cmd, check=True, timeout=30, stdout=subprocess.DEVNULL)


def ensure_group(name):
    try:
        grp.getgrnam(name)
    except KeyError:
        run("groupadd", "--system", name)


def ensure_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)


class DaemonAsUser:
    """`hallpass run ... --user DAEMON_USER` started as root on an existing config and state
    directory, until it says it is serving (at most 15 s); stopped, and its stderr read, on
    leaving the with-block (`.err`)."""

    def __init__(self, config, state, access_log, err_path):
        self.args = [BIN, "run", "--config", config, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                     "--access-log", access_log, "--state-dir", state, "--user", DAEMON_USER]
        self.err_path = err_path
        self.err = ""

    def __enter__(self):
        with open(self.err_path, "w") as err_file:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=err_file)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.err_path) as f:
                if "serving" in f.read():
                    break
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(15)
        with open(self.err_path) as f:
            self.err = f.read()
        return False


def ctl(user, socket_path, *args):
    r = subprocess.run(["runuser", "-u", user, "--", CTL, "--socket", socket_path, *args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and groups and starts hallpass as root with --user: "
                                        "needs root (CI runs as root)")
class AdminSocketUserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_group(SOCKET_GROUP)
        for user in (DAEMON_USER, MEMBER, OUTSIDER):
            ensure_user(user)
        # The commands deploy/README.md gives for the service user and for a member of staff.
        run("usermod", "-aG", SOCKET_GROUP, DAEMON_USER)
        run("usermod", "-aG", SOCKET_GROUP, MEMBER)

    def start(self, socket_dir):
        sock = os.path.join(socket_dir, "admin.socket")
        return sock, Proxy(extra=ADMIN, args=["--admin-socket", sock, "--user", DAEMON_USER])

    def socket_dir(self, owner, create=True):
        """A fresh directory for the socket, like systemd's RuntimeDirectory= (owned by `owner`),
        or (create=False) the path of one that does not exist yet, like /run/hallpass without
        systemd. Removed after the test."""
        top = tempfile.mkdtemp(prefix="hallpass-run-")
        os.chmod(top, 0o755)
        self.addCleanup(subprocess.run, ["rm", "-rf", top], timeout=30)
        d = os.path.join(top, "hallpass")
        if create:
            os.mkdir(d, 0o755)
            u = pwd.getpwnam(owner)
            os.chown(d, u.pw_uid, u.pw_gid)
        return d

    def test_starts_and_the_socket_is_the_groups_0660_and_a_member_can_use_it(self):
        sock, proxy = self.start(self.socket_dir(DAEMON_USER))
        try:
            st = os.stat(sock)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, SOCKET_GROUP)
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, DAEMON_USER)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
            # Still the daemon's user, with the group among its supplementary groups.
            with open(f"/proc/{proxy.proc.pid}/status") as f:
                ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Groups"))}
            self.assertEqual(set(ids["Uid"]), {str(pwd.getpwnam(DAEMON_USER).pw_uid)})
            self.assertIn(str(grp.getgrnam(SOCKET_GROUP).gr_gid), ids["Groups"])

            code, out = ctl(MEMBER, sock, "status", "--json")
            self.assertEqual(code, 0, out)
            self.assertIn('"generation"', out)
            code, out = ctl(OUTSIDER, sock, "status")
            self.assertNotEqual(code, 0, out)  # not in the group: the socket's mode keeps it out
            self.assertIn("admin socket's group", out)
            # A reload cannot give the socket another group: it says so, where it said nothing
            # and a technician took the group's access for gone (audit, 2026-12-06).
            proxy.policy_text = proxy.policy_text.replace(f"socket_group: {SOCKET_GROUP}", "socket_group: root")
            proxy.write_policy(proxy.policy_text)
            proxy.reload()
            wait_for(lambda: any(f"admin.socket_group changed to 'root': the socket keeps group '{SOCKET_GROUP}' "
                                 "until hallpass restarts" in l for l in proxy.stderr_lines),
                     what="the warning about the socket's group")
            self.assertEqual(grp.getgrgid(os.stat(sock).st_gid).gr_name, SOCKET_GROUP)
        finally:
            proxy.stop()

    def test_root_writes_nothing_through_links_the_service_user_plants_and_the_store_is_not_world_readable(self):
        # audit19 D1: the state directory and the log's directory are the service user's; a
        # daemon started as root must not follow a link planted there to a root-only file.
        # D2: the store (pupils' requests) is readable by no other user. D8: a store a root run
        # made is given to the service user.
        sock, proxy = self.start(self.socket_dir(DAEMON_USER))
        state = os.path.join(proxy.dir, "state")
        victim = os.path.join(proxy.dir, "victim")
        try:
            for name in ("hallpass.db", "list-sources.json"):
                st = os.stat(os.path.join(state, name))
                self.assertEqual(stat.S_IMODE(st.st_mode) & 0o007, 0, name)
                self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, DAEMON_USER, name)
            self.assertEqual(stat.S_IMODE(os.stat(state).st_mode) & 0o006, 0)
        finally:
            proxy.signal(__import__("signal").SIGTERM)
            proxy.proc.wait(15)
        with open(victim, "w") as f:
            f.write("ROOT ONLY\n")
        os.chmod(victim, 0o600)
        u = pwd.getpwnam(DAEMON_USER)
        os.chmod(proxy.dir, 0o755)
        logs = os.path.join(proxy.dir, "logs")
        os.mkdir(logs, 0o755)
        os.chown(logs, u.pw_uid, u.pw_gid)
        for link in (os.path.join(state, "list-sources.json.tmp"), os.path.join(logs, "access.log")):
            os.symlink(victim, link)
            os.lchown(link, u.pw_uid, u.pw_gid)
        os.chmod(os.path.join(state, "hallpass.db"), 0o644)  # as an older version left it
        try:
            with DaemonAsUser(proxy.config, state, os.path.join(logs, "access.log"),
                              os.path.join(proxy.dir, "stderr")) as daemon:
                with open(victim) as f:
                    self.assertEqual(f.read(), "ROOT ONLY\n")
                mode = stat.S_IMODE(os.stat(os.path.join(state, "hallpass.db")).st_mode)
        finally:
            proxy.stop()
        err = daemon.err
        self.assertIn("serving", err)
        self.assertEqual(mode & 0o007, 0, err)
        self.assertIn("hallpass.db was open to every user; it no longer is", err)

    def test_the_first_load_as_root_reads_no_list_the_service_user_could_not_read(self):
        # The policy is first loaded before the drop, every reload as the service user. The
        # first load reads as that user too (a thread with its file-system identity): a list
        # file it cannot read (here a link it planted in its own list folder, to a root-only
        # file) is refused at the start, so root never reads it into the load's warnings; a
        # file of the user's own, mode 0600, is read, and so is a root-owned 0640 file shared
        # with the user by an ACL (the kernel decides, as on a reload).
        proxy = Proxy()
        state = os.path.join(proxy.dir, "state")
        proxy.signal(__import__("signal").SIGTERM)
        proxy.proc.wait(15)
        u = pwd.getpwnam(DAEMON_USER)
        os.chmod(proxy.dir, 0o755)
        lists = os.path.join(proxy.dir, "lists")
        os.mkdir(lists, 0o755)
        os.chown(lists, u.pw_uid, u.pw_gid)
        victim = os.path.join(proxy.dir, "victim")
        with open(victim, "w") as f:
            f.write("ROOT SECRET LINE\n")
        os.chmod(victim, 0o600)
        listed = os.path.join(lists, "listed.txt")
        os.symlink(victim, listed)
        os.lchown(listed, u.pw_uid, u.pw_gid)
        text = proxy.policy_text.replace(
            "  circumvention: {domains: [vpn.test]}\n",
            f"  circumvention: {{domains: [vpn.test]}}\n  listed: {{domain_files: [\"{listed}\"]}}\n")
        self.assertNotEqual(text, proxy.policy_text)
        proxy.write_policy(text)
        try:
            with DaemonAsUser(proxy.config, state, proxy.access_log, os.path.join(proxy.dir, "stderr")) as daemon:
                daemon.proc.wait(15)
            self.assertNotEqual(daemon.proc.returncode, 0)
            self.assertNotIn("serving", daemon.err)
            self.assertIn(f"{listed} cannot be read: Permission denied", daemon.err)
            self.assertNotIn("ROOT SECRET", daemon.err)
            # The user's own file, readable by it alone: read.
            os.unlink(listed)
            with open(listed, "w") as f:
                f.write("listed.test\n")
            os.chown(listed, u.pw_uid, u.pw_gid)
            os.chmod(listed, 0o600)
            with DaemonAsUser(proxy.config, state, proxy.access_log, os.path.join(proxy.dir, "stderr")) as daemon:
                pass
            self.assertIn("serving", daemon.err)
            if shutil.which("setfacl"):
                os.chown(listed, 0, 0)
                os.chmod(listed, 0o640)
                subprocess.run(["setfacl", "-m", f"u:{DAEMON_USER}:r", listed], check=True, timeout=30)
                with DaemonAsUser(proxy.config, state, proxy.access_log,
                                  os.path.join(proxy.dir, "stderr")) as daemon:
                    pass
                self.assertIn("serving", daemon.err)
        finally:
            proxy.stop()

    def test_a_store_a_root_run_made_is_given_to_the_service_user(self):
        # audit19 D8: started once as root (no --user), then with --user: the store's files and
        # the pid file were root's, and the store "a readonly database" after the drop.
        proxy = Proxy()
        state = os.path.join(proxy.dir, "state")
        try:
            self.assertEqual(os.stat(os.path.join(state, "hallpass.db")).st_uid, 0)
        finally:
            proxy.signal(__import__("signal").SIGTERM)
            proxy.proc.wait(15)
        u = pwd.getpwnam(DAEMON_USER)
        try:
            with DaemonAsUser(proxy.config, state, proxy.access_log, os.path.join(proxy.dir, "stderr")) as daemon:
                owners = {name: os.stat(os.path.join(state, name)).st_uid
                          for name in ("hallpass.db", "hallpass.pid", "list-sources.json", "hallpass.db.made")}
                owners["access.log"] = os.stat(proxy.access_log).st_uid
        finally:
            proxy.stop()
        err = daemon.err
        self.assertIn("serving", err)
        self.assertNotIn("readonly", err)
        self.assertEqual(owners, {name: u.pw_uid for name in owners}, err)

    def test_a_missing_socket_directory_is_made_for_the_service_user(self):
        d = self.socket_dir(DAEMON_USER, create=False)
        sock, proxy = self.start(d)
        try:
            self.assertEqual(pwd.getpwuid(os.stat(d).st_uid).pw_name, DAEMON_USER)
            self.assertEqual(grp.getgrgid(os.stat(sock).st_gid).gr_name, SOCKET_GROUP)
            self.assertEqual(ctl(MEMBER, sock, "status")[0], 0)
        finally:
            proxy.stop()

    def test_a_service_user_outside_the_group_is_a_clear_error_at_start(self):
        sock = os.path.join(self.socket_dir(OUTSIDER), "admin.socket")
        with self.assertRaises(AssertionError) as cm:
            Proxy(extra=ADMIN, args=["--admin-socket", sock, "--user", OUTSIDER])
        self.assertIn(f"usermod -aG {SOCKET_GROUP} {OUTSIDER}", str(cm.exception))

    def test_started_as_a_user_outside_the_group_is_the_same_clear_error(self):
        # As systemd's User= starts it: already the service user, no --user. The shipped policy
        # with the admin section, readable by that user.
        d = self.socket_dir(OUTSIDER)
        config = os.path.join(d, "school.yaml")
        with open(os.path.join(SRC, "rules", "school.yaml")) as f:
            policy = f.read()
        with open(config, "w") as f:
            f.write(policy + ADMIN)
        os.chmod(config, 0o644)
        r = subprocess.run(["runuser", "-u", OUTSIDER, "--", BIN, "run", "--config", config,
                            "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--access-log", "off",
                            "--state-dir", os.path.join(d, "state"), "--admin-socket", os.path.join(d, "admin.socket")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"usermod -aG {SOCKET_GROUP} {OUTSIDER}", r.stderr)


if __name__ == "__main__":
    unittest.main()
