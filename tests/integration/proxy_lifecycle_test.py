"""The daemon's life: reloads that never fail open, drain on SIGTERM, log reopening, and a
1 GiB download with flat memory."""
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (BIN, PUPIL, STAFF, Origin, Proxy, SlowDownload, ThreadedServer, alias_bomb_categories, curl,
                     free_port, wait_for)

BIG = 32 * 1024 * 1024  # the origin's /big
CTL = os.environ.get("HALLPASSCTL_BIN", "")


def with_listed_category(proxy, lines):
    """Writes `lines` to a list file beside the proxy's policy and returns (its path, the
    policy text with a category `listed` of that file, blocked for pupils)."""
    listed = os.path.join(proxy.dir, "listed.txt")
    with open(listed, "w") as f:
        f.write(lines)
    good = proxy.policy_text.replace(
        "  circumvention: {domains: [vpn.test]}\n",
        f"  circumvention: {{domains: [vpn.test]}}\n  listed: {{domain_files: [\"{listed}\"]}}\n").replace(
        "      - {action: block, categories: [social_media]}\n",
        "      - {action: block, categories: [social_media, listed]}\n", 1)
    assert good != proxy.policy_text, "the base policy changed: the category was not added"
    return listed, good



@contextlib.contextmanager
def serving(cmd, what):
    """Runs `cmd` (a `hallpass run`) until it says it is serving, for the block's length; then
    SIGTERM. Fails, with its stderr, if it exits instead."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True).start()
        wait_for(lambda: any("serving" in l for l in lines) or p.poll() is not None, timeout=20, what=what)
        if p.poll() is not None:
            raise AssertionError(f"{what}: it exited with {p.returncode}: " + "".join(lines))
        yield p
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)

class LifecycleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()

    def url(self, host, path="/small"):
        return f"http://{host}:{self.nginx.port}{path}"

    def test_the_daemon_writes_no_core_dump(self):
        """A core dump would hold the CA key, the directory password, credentials in flight and
        pupils' words outside any retention (audit of privacy, 2026-12-06, L1): the daemon sets
        its core limits to 0 at start, even when started with them open."""
        import resource
        before = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (before[1], before[1]))  # inherited open
        try:
            p = Proxy()
        finally:
            resource.setrlimit(resource.RLIMIT_CORE, before)
        self.addCleanup(p.stop)
        self.assertEqual(resource.prlimit(p.proc.pid, resource.RLIMIT_CORE), (0, 0))

    def test_reload_broken_keeps_old_policy_good_swaps_and_inflight_finishes(self):
        proxy = Proxy()
        try:
            self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 200)
            # 32 MiB read at 8 MiB/s: in flight for about 4 s, across both reloads. A pupil's: the
            # second reload blocks the site for staff, and an answer still coming is decided again
            # (test_an_answer_still_streaming_ends_when_a_reload_blocks_its_site).
            download = SlowDownload(proxy, self.url("origin.test", "/big"), PUPIL, 8 * 1024 * 1024)
            download.start()
            self.assertTrue(download.started_body.wait(10))
            # A broken file: the old policy keeps serving, every error is reported, the failure counted.
            good = proxy.policy_text
            proxy.write_policy(good.replace("categories: [social_media]", "categories: [socal_media]"))
            proxy.reload(expect_ok=False)
            self.assertTrue(any("did you mean 'social_media'" in l for l in proxy.stderr_lines))
            self.assertEqual(proxy.metric("hallpass_reload_failures_total"), 1)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 200)
            self.assertEqual(curl(proxy, self.url("facebook.test"), source=PUPIL)[0], 403)
            # A good file that blocks origin.test for staff: the new policy serves at once.
            proxy.write_policy(good.replace("  staff:\n    networks: [127.0.0.3/32]\n    default: allow",
                                            "  staff:\n    networks: [127.0.0.3/32]\n    default: allow\n"
                                            "    rules: [{action: block, domains: [origin.test]}]"))
            proxy.reload(expect_ok=True)
            self.assertEqual(proxy.metric("hallpass_policy_generation"), 2)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 403)
            # The download that started under generation 1 finishes, whole.
            self.assertTrue(download.is_alive(), "the download ended before the reloads: nothing was tested")
            download.join(40)
            self.assertEqual((download.status, download.size, download.error), (200, BIG, ""))
        finally:
            proxy.stop()

    def test_a_reload_with_aliases_that_expand_without_bound_keeps_the_policy_in_force(self):
        # One anchored list of 1000 domains named by 30000 categories (outside-in audit H's file):
        # the reload thread read 30 M entries for 28 s and 2.3 GB. Now refused at once, the
        # policy in force kept.
        proxy = Proxy()
        try:
            good = proxy.policy_text
            bomb = good.replace("categories:\n", "categories:\n" + alias_bomb_categories(uses=30000), 1).replace(
                "  staff:\n    networks: [127.0.0.3/32]\n    default: allow",
                "  staff:\n    networks: [127.0.0.3/32]\n    default: allow\n"
                "    rules: [{action: block, domains: [origin.test]}]")
            self.assertEqual(bomb.count("*D"), 29999)
            proxy.write_policy(bomb)
            proxy.reload(expect_ok=False, timeout=60)  # refused; before the bound it loaded, after 27 s
            self.assertTrue(any(f"{proxy.config}:" in l and "the policy expands to more than" in l
                                for l in proxy.stderr_lines), proxy.stderr_lines[-5:])
            self.assertEqual(proxy.metric("hallpass_reload_failures_total"), 1)
            self.assertEqual(proxy.metric("hallpass_policy_generation"), 1)
            # The policy in force still serves: staff reach origin.test, pupils not facebook.test.
            self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 200)
            self.assertEqual(curl(proxy, self.url("facebook.test"), source=PUPIL)[0], 403)
            # And the daemon still reloads a good file.
            proxy.write_policy(good)
            proxy.reload(expect_ok=True)
            self.assertEqual(proxy.metric("hallpass_policy_generation"), 2)
        finally:
            proxy.stop()

    def test_a_reload_never_empties_a_list_that_blocked_something(self):
        # An emptied list file (a truncated copy, an editor's half-written save) or one of
        # garbage used to load with a warning, and its category then blocked nothing.
        proxy = Proxy()
        try:
            listed, good = with_listed_category(proxy, "origin.test\n")
            proxy.write_policy(good)
            proxy.reload(expect_ok=True)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 403)
            for name, content in (("emptied", b""), ("garbage", b"\x00\x01\xff binary <html>\n")):
                with self.subTest(name):
                    with open(listed, "wb") as f:
                        f.write(content)
                    proxy.reload(expect_ok=False)
                    self.assertTrue(any("had 1 entries in the policy in force and has none now" in l
                                        for l in proxy.stderr_lines), proxy.stderr_lines[-5:])
                    self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 403)
            # Taken out of the policy on purpose: accepted.
            proxy.write_policy(good.replace(f"  listed: {{domain_files: [\"{listed}\"]}}\n", "").replace(
                "categories: [social_media, listed]", "categories: [social_media]"))
            proxy.reload(expect_ok=True)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 200)
        finally:
            proxy.stop()

    def test_a_reload_never_halves_a_list(self):
        # Reload audit, 2026-12-06: a list cut short with some lines left (a feed file cut
        # mid-line, 7% left) loaded without a word, and what the lost lines blocked opened.
        proxy = Proxy()
        try:
            names = [f"site{i}.test" for i in range(40)]
            listed, good = with_listed_category(proxy, "origin.test\n" + "".join(n + "\n" for n in names))
            proxy.write_policy(good)
            proxy.reload(expect_ok=True)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 403)
            with open(listed, "w") as f:
                f.write("".join(n + "\n" for n in names[:10]) + "site1")  # cut mid-line
            proxy.reload(expect_ok=False)
            self.assertTrue(any("had 41 entries in the policy in force and has 11 now (more than half gone" in l
                                for l in proxy.stderr_lines), proxy.stderr_lines[-5:])
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 403)
            # Half is not more than half: a list may lose up to half its lines in one reload.
            with open(listed, "w") as f:
                f.write("".join(n + "\n" for n in names[:21]))
            proxy.reload(expect_ok=True)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 200)
        finally:
            proxy.stop()

    def test_a_restart_never_empties_a_list_that_blocked_something_either(self):
        # A restart has no policy in force to compare with: the daemon keeps what each list
        # gave (state_dir/list-sources.json) and a list emptied while it was stopped keeps it
        # from starting, instead of opening what the list blocked.
        proxy = Proxy()
        try:
            listed, good = with_listed_category(proxy, "origin.test\nwww.origin.test\n")
            entry = f'  listed: {{domain_files: ["{listed}"]}}\n'
            proxy.write_policy(good)
            proxy.reload(expect_ok=True)
            self.assertEqual(curl(proxy, self.url("origin.test"), source=PUPIL)[0], 403)
            state = os.path.join(proxy.dir, "state")
            def recorded():
                with open(os.path.join(state, "list-sources.json")) as f:
                    return '"' + listed + '":2' in f.read()
            wait_for(recorded, what="the list's count recorded")
            proxy.signal(signal.SIGTERM)
            proxy.proc.wait(15)

            def start():
                return subprocess.run(
                    [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log",
                     "-", "--metrics-listen", "off", "--state-dir", state],
                    capture_output=True, text=True, timeout=15)

            with open(listed, "wb") as f:
                f.write(b"")  # emptied while hallpass was stopped
            r = start()
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("had 2 entries when hallpass last ran", r.stderr)
            self.assertIn("hallpass does not start (to start without this comparison, remove", r.stderr)
            self.assertIn("to empty it on purpose, take it out of the policy", r.stderr)
            # Taken out on purpose: it starts (still running 2 s later), then is stopped.
            proxy.write_policy(good.replace(entry, "").replace("categories: [social_media, listed]",
                                                               "categories: [social_media]"))
            p = subprocess.Popen(
                [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log", "-",
                 "--metrics-listen", "off", "--state-dir", state],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(2)
                self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
                p.stderr.close()
        finally:
            proxy.stop()

    def test_a_restart_refuses_a_list_cut_to_less_than_half_as_a_reload_does(self):
        # A list cut to 6 of 32,252 entries while hallpass was stopped was served after a
        # restart, where a reload refused it (outside-in audit of the feeds, 2026-12-06, H3).
        proxy = Proxy()
        try:
            names = "".join(f"site{n}.origin.test\n" for n in range(40)) + "origin.test\n"
            listed, good = with_listed_category(proxy, names)
            proxy.write_policy(good)
            proxy.reload(expect_ok=True)
            state = os.path.join(proxy.dir, "state")
            def recorded():
                with open(os.path.join(state, "list-sources.json")) as f:
                    return '"' + listed + '":41' in f.read()
            wait_for(recorded, what="the list's count recorded")
            proxy.signal(signal.SIGTERM)
            proxy.proc.wait(15)
            with open(listed, "w") as f:
                f.write("origin.test\nsite1.origin.test\nsite2.origin.test\n")  # cut short while stopped
            r = subprocess.run(
                [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log",
                 "-", "--metrics-listen", "off", "--state-dir", state],
                capture_output=True, text=True, timeout=15)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("had 41 entries when hallpass last ran", r.stderr)
            self.assertIn("and has 3 now (more than half gone", r.stderr)
            self.assertIn("hallpass does not start", r.stderr)
        finally:
            proxy.stop()

    @unittest.skipUnless(os.geteuid() == 0, "mounts a small file system: needs root")
    def test_a_store_that_cannot_be_opened_stops_the_start_naming_the_cause(self):
        # SQLite's words named the symptom ("disk I/O error", "unable to open database file"),
        # not the full disk or the read-only mount (admin audit, 2026-12-05, F11).
        proxy = Proxy()
        policy_text = proxy.policy_text
        proxy.stop()
        base = tempfile.mkdtemp(prefix="hallpass-storefs-")
        self.addCleanup(shutil.rmtree, base, True)
        config = os.path.join(base, "policy.yaml")
        with open(config, "w") as f:
            f.write(policy_text)
        mnt = os.path.join(base, "mnt")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "hallpass-test", mnt], check=True, timeout=20)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], timeout=20)
        state = os.path.join(mnt, "state")
        os.mkdir(state, 0o700)

        def start():
            cmd = [BIN, "run", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
                   "--access-log", "-", "--metrics-listen", "off", "--state-dir", state]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)

        filler = os.path.join(mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(1024):  # 4 MiB at most, of a 1 MiB file system
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # full
        finally:
            os.close(fd)
        r = start()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"the file system holding {state} is full: free some space", r.stderr)
        # The store it began to make is taken away again: left empty, every later start would
        # refuse it as a store that lost its data.
        self.assertFalse(any(n.startswith("hallpass.db") for n in os.listdir(state)), os.listdir(state))
        os.remove(filler)
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True, timeout=20)
        r = start()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"the file system holding {state} is mounted read-only", r.stderr)
        # Space again: the store is made.
        subprocess.run(["mount", "-o", "remount,rw", mnt], check=True, timeout=20)
        cmd = [BIN, "run", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
               "--access-log", "-", "--metrics-listen", "off", "--state-dir", state]
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not os.path.exists(os.path.join(state, "hallpass.db.made")):
                time.sleep(0.1)
            self.assertTrue(os.path.exists(os.path.join(state, "hallpass.db.made")))
            self.assertIsNone(p.poll())
        finally:
            p.terminate()
            _, err = p.communicate(timeout=20)
        # Said at the start: a changed state_dir starts on a new store (admin audit, 2026-12-05, F8).
        self.assertIn(f"hallpass: made a new, empty store in {state} (hallpass.db)", err)

    @unittest.skipUnless(os.geteuid() == 0, "makes directories owned by other users: needs root")
    def test_a_state_dir_that_is_not_hallpass_own_is_refused_and_left_as_it_was(self):
        # Outside-in audit H, 2026-12-05: hallpass tightened whatever directory state_dir named (a
        # 1777 one became 1771) and `run --user` gave another user's directory to its user.
        for _ in range(5):  # other suites may be adding users at the same moment (/etc/passwd's lock)
            try:
                pwd.getpwnam("hp_daemon")
                break
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                "hp_daemon"], timeout=30)
                time.sleep(0.2)
        pwd.getpwnam("hp_daemon")  # the service user the checks below name
        proxy = Proxy()
        policy_text = proxy.policy_text
        proxy.stop()
        base = tempfile.mkdtemp(prefix="hallpass-statedir-")
        os.chmod(base, 0o755)
        config = os.path.join(base, "policy.yaml")
        with open(config, "w") as f:
            f.write(policy_text)
        os.chmod(config, 0o644)
        try:
            def start(state, *extra):
                cmd = [BIN, "run", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
                       "--access-log", "-", "--metrics-listen", "off", "--state-dir", state, *extra]
                return subprocess.run(cmd, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)

            shared = os.path.join(base, "shared")
            os.mkdir(shared)
            os.chmod(shared, 0o1777)
            r = start(shared)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"state_dir {shared} may be written by every user (like /tmp)", r.stderr)
            self.assertEqual(stat.S_IMODE(os.stat(shared).st_mode), 0o1777)
            self.assertEqual(os.listdir(shared), [])

            theirs = os.path.join(base, "theirs")
            os.mkdir(theirs, 0o755)
            os.chown(theirs, 65534, 65534)  # nobody's
            r = start(theirs, "--user", "hp_daemon")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"state_dir {theirs} belongs to nobody, not to hallpass's user", r.stderr)
            self.assertEqual(os.stat(theirs).st_uid, 65534)

            system = os.path.join(base, "lib")  # a state_dir of /var/lib, mistyped
            os.mkdir(system, 0o755)
            open(os.path.join(system, "dpkg-status"), "w").close()
            r = start(system, "--user", "hp_daemon")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("holds files that are not hallpass's ('dpkg-status')", r.stderr)
            self.assertEqual((os.stat(system).st_uid, stat.S_IMODE(os.stat(system).st_mode)), (0, 0o755))

            def serve_briefly(state, *extra):
                """Starts the daemon, stops it once serving; returns (started, its stderr)."""
                cmd = [BIN, "run", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
                       "--access-log", "-", "--metrics-listen", "off", "--state-dir", state, *extra]
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                lines = []
                reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
                reader.start()
                try:
                    wait_for(lambda: any("serving" in l for l in lines) or p.poll() is not None, timeout=20,
                             what="the daemon to start or stop")
                    started = p.poll() is None
                finally:
                    p.send_signal(signal.SIGTERM)
                    p.wait(15)
                    reader.join(5)
                    p.stderr.close()
                return started, "".join(lines)

            # A directory hallpass ran in as root holds only hallpass's files: --user takes it.
            own = os.path.join(base, "own")
            started, err = serve_briefly(own)
            self.assertTrue(started, err)
            self.assertTrue(os.path.exists(os.path.join(own, "hallpass.db.made")))
            started, err = serve_briefly(own, "--user", "hp_daemon")
            self.assertTrue(started, err)
            self.assertEqual(os.stat(own).st_uid, pwd.getpwnam("hp_daemon").pw_uid)
            # Before its first store: only what `feeds update` and the Kerberos replay cache put there.
            fresh = os.path.join(base, "fresh")
            os.makedirs(os.path.join(fresh, "feeds"), 0o755)
            open(os.path.join(fresh, "krb5_0.rcache2"), "w").close()
            started, err = serve_briefly(fresh, "--user", "hp_daemon")
            self.assertTrue(started, err)
            # Without --user, a root-owned directory with others' files is used but left as it is, said once.
            started, err = serve_briefly(system)
            self.assertTrue(started, err)
            self.assertEqual(err.count("holds files that are not hallpass's ('dpkg-status'); its mode is left as it is"),
                             1, err)
            # The store that run made there does not make it hallpass's for a start with --user
            # (a review of 2026-12-05: the store's marker alone once did, and /var/lib went to the
            # service user).
            self.assertTrue(os.path.exists(os.path.join(system, "hallpass.db.made")))
            r = start(system, "--user", "hp_daemon")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("holds files that are not hallpass's ('dpkg-status')", r.stderr)
            self.assertEqual((os.stat(system).st_uid, stat.S_IMODE(os.stat(system).st_mode)), (0, 0o755))
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def test_a_second_daemon_on_the_same_state_dir_is_refused_until_the_first_stops(self):
        proxy = Proxy()
        try:
            state = os.path.join(proxy.dir, "state")
            wait_for(lambda: os.path.exists(os.path.join(state, "hallpass.pid")), what="the pid file")
            cmd = [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{proxy.port}", "--access-log", "-",
                   "--metrics-listen", "off", "--state-dir", state]
            # The same listen address too: with SO_REUSEPORT it would bind and take half the traffic.
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"another hallpass (pid {proxy.proc.pid}) is already running with state_dir {state}",
                          r.stderr)
            self.assertNotIn("listening on", r.stderr)
            for _ in range(4):  # every connection still reaches the first daemon
                self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 200)
            proxy.signal(signal.SIGTERM)
            proxy.proc.wait(15)
            # Stopped, it has let go: the next one starts on the same state directory.
            with serving(cmd, "the second daemon to start"):
                pass
        finally:
            proxy.stop()

    def test_an_admin_socket_path_is_never_a_file_to_delete_nor_a_running_daemons_socket(self):
        # audit of 2026-12-06: admin.socket naming the store was deleted by the failed start's
        # clean-up (every exception, block, ban and the audit log gone), and a second daemon
        # given the running one's socket replaced it, then removed it when it stopped.
        import socket as socketlib
        proxy = Proxy()
        try:
            sock = os.path.join(proxy.dir, "admin.sock")
            victim = os.path.join(proxy.dir, "precious.db")
            with open(victim, "w") as f:
                f.write("the school's store")

            def run(admin_socket, state):
                cmd = [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log",
                       "-", "--metrics-listen", "off", "--state-dir", os.path.join(proxy.dir, state),
                       "--admin-socket", admin_socket]
                return subprocess.run(cmd, capture_output=True, text=True, timeout=15)

            r = run(victim, "state-a")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"admin.socket {victim} exists and is not a socket (left as it is)", r.stderr)
            with open(victim) as f:
                self.assertEqual(f.read(), "the school's store")
            checked = os.path.join(proxy.dir, "checked.yaml")
            with open(proxy.config) as f, open(checked, "w") as out:
                out.write(f.read() + f"admin:\n  socket: {victim}\n")
            r = subprocess.run([BIN, "check", "--config", checked], capture_output=True, text=True, timeout=30)
            self.assertIn("exists and is not a socket: hallpass run will refuse it", r.stderr)
            # A daemon serving on the socket: a second one is refused and leaves it alone.
            first = subprocess.Popen([BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}",
                                      "--access-log", "-", "--metrics-listen", "off", "--state-dir",
                                      os.path.join(proxy.dir, "state-b"), "--admin-socket", sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: os.path.exists(sock), what="the first daemon's admin socket")
                inode = os.stat(sock).st_ino
                r = run(sock, "state-c")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"admin.socket {sock} is in use: another hallpass is running with it", r.stderr)
                self.assertEqual(os.stat(sock).st_ino, inode)
                c = socketlib.socket(socketlib.AF_UNIX)
                c.connect(sock)  # still the first daemon's, answering
                c.close()
            finally:
                first.send_signal(signal.SIGTERM)
                first.wait(15)
            # Stopped, it removed its own socket; a stale socket left by a crash is replaced.
            self.assertFalse(os.path.exists(sock))
            stale = socketlib.socket(socketlib.AF_UNIX)
            stale.bind(sock)
            stale.close()
            with serving([BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log",
                          "-", "--metrics-listen", "off", "--state-dir", os.path.join(proxy.dir, "state-b"),
                          "--admin-socket", sock], "the daemon to start over the stale socket"):
                pass
        finally:
            proxy.stop()

    def test_a_metrics_port_another_process_holds_stops_the_start_with_the_reason(self):
        import socket
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        taken = holder.getsockname()[1]
        proxy = Proxy()
        try:
            cmd = [BIN, "run", "--config", proxy.config, "--listen", f"127.0.0.1:{free_port()}", "--access-log", "-",
                   "--metrics-listen", f"127.0.0.1:{taken}", "--state-dir", os.path.join(proxy.dir, "other-state")]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"metrics.listen 127.0.0.1:{taken}: cannot listen: ", r.stderr)
            self.assertIn("is the port in use by another process?", r.stderr)
        finally:
            proxy.stop()

    def test_a_reload_applies_to_the_next_request_on_a_kept_alive_connection(self):
        proxy = Proxy()
        try:
            import socket
            s = socket.socket()
            s.bind((STAFF, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", proxy.port))
            request = b"GET %s HTTP/1.1\r\nHost: origin.test\r\n\r\n" % self.url("origin.test").encode()

            def status(request=request):
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    got = s.recv(65536)
                    self.assertTrue(got, f"the connection closed before an answer: {proxy.stderr_lines[-5:]}")
                    data += got
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                while len(body) < length:
                    got = s.recv(65536)
                    self.assertTrue(got, "the connection closed inside the body")
                    body += got
                return int(head.split()[1])

            self.assertEqual(status(), 200)
            good = proxy.policy_text
            proxy.write_policy(good.replace("  staff:\n    networks: [127.0.0.3/32]\n    default: allow",
                                            "  staff:\n    networks: [127.0.0.3/32]\n    default: allow\n"
                                            "    rules: [{action: block, domains: [origin.test]}]"))
            proxy.reload(expect_ok=True)
            # The same connection, opened under the old policy: the new one decides.
            self.assertEqual(status(), 403)
            # And the new limits hold from the head's arrival on (proxy/http_session.cpp,
            # serve_request): checked once the head is in, a field count is the new one's.
            with open(proxy.config) as f:
                current = f.read()
            proxy.write_policy(current.replace("  header_count: 60\n", "  header_count: 8\n"))
            proxy.reload(expect_ok=True)
            twelve = b"".join(b"X-Field-%d: x\r\n" % i for i in range(12))
            self.assertEqual(status(request.replace(b"\r\n\r\n", b"\r\n" + twelve + b"\r\n")), 431)
            s.close()
        finally:
            proxy.stop()

    def test_an_answer_still_streaming_ends_when_a_reload_blocks_its_site(self):
        # An answer that started before a lesson, a reload or an exception's end kept flowing
        # after it (outside-in audit of time, 2026-12-07, F1): only tunnels and WebSockets were
        # decided again. Both ways a body is relayed, each slow enough that only a check made by
        # the clock can end it in time (the session's review: a check made per read, or per
        # spliced megabyte, let a quiet stream's next chunk and 800 KB of a slow download through):
        # spliced (a plain file of known length, read at 96 KiB/s) and decoded (chunked, from an
        # origin that sends a chunk, then nothing for 8 s, then another).
        class Streaming(ThreadedServer):
            def _serve(self, conn):
                with conn:
                    conn.settimeout(10)
                    try:
                        conn.recv(65536)
                        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        for n in range(4):
                            conn.sendall(b"6\r\nchunk" + str(n).encode() + b"\r\n")
                            time.sleep(8)
                        conn.sendall(b"0\r\n\r\n")
                    except OSError:
                        pass

        streaming = Streaming()
        proxy = Proxy()
        try:
            downloads = [SlowDownload(proxy, self.url("origin.test", "/big"), STAFF, rate=96 * 1024),
                         SlowDownload(proxy, f"http://py.test:{streaming.port}/feed", STAFF, rate=1024 * 1024)]
            for d in downloads:
                d.start()
            for d in downloads:
                self.assertTrue(d.started_body.wait(10))
            time.sleep(1)
            for d in downloads:
                self.assertEqual(d.status, 200)
            proxy.write_policy(proxy.policy_text.replace(
                "  staff:\n    networks: [127.0.0.3/32]\n    default: allow",
                "  staff:\n    networks: [127.0.0.3/32]\n    default: allow\n"
                "    rules: [{action: block, domains: [origin.test, py.test]}]"))
            reloaded = time.monotonic()
            proxy.reload(expect_ok=True)
            at_block = downloads[0].size
            for d in downloads:
                d.join(15)
                self.assertFalse(d.is_alive())
            self.assertLess(time.monotonic() - reloaded, 4)  # the sweep asks once a second
            self.assertLess(downloads[0].size, BIG)  # cut short, not finished
            self.assertLess(downloads[0].size - at_block, 400 * 1024)  # a few seconds' worth at most
            self.assertEqual(downloads[1].size, len(b"6\r\nchunk0\r\n"))  # the chunk after the block never came
            def both():
                found = [l for l in proxy.log_lines() if "closed while open" in l.get("note", "")
                         and l.get("client") == STAFF]
                return found if len(found) >= 2 else None
            lines = wait_for(both, what="both log lines")
            self.assertEqual(sorted(l["host"] for l in lines), ["origin.test", "py.test"])
            for l in lines:
                self.assertIn("now blocked", l["note"])
        finally:
            proxy.stop()
            streaming.stop()

    def test_sigterm_drains_inflight_requests_then_exits(self):
        proxy = Proxy(drain="10s")
        try:
            download = SlowDownload(proxy, self.url("origin.test", "/big"), STAFF, 12 * 1024 * 1024)
            download.start()
            self.assertTrue(download.started_body.wait(10))
            proxy.signal(signal.SIGTERM)
            wait_for(lambda: any("stopping" in l for l in proxy.stderr_lines), what="drain to begin")
            # New connections are no longer accepted.
            time.sleep(0.2)
            status, _, err = curl(proxy, self.url("origin.test"), source=STAFF, timeout=3)
            self.assertEqual(status, 0)
            self.assertIn("(7)", err, "curl should be refused at connect, not time out")  # exit 7: could not connect
            self.assertTrue(download.is_alive(), "the download ended before the drain: nothing was tested")
            download.join(40)
            self.assertEqual((download.status, download.size, download.error), (200, BIG, ""))
            self.assertEqual(proxy.proc.wait(15), 0)
        finally:
            proxy.stop()

    def test_sigterm_closes_what_is_left_at_the_drain_deadline(self):
        proxy = Proxy(drain="1s")
        try:
            # 32 MiB at 1 MiB/s: still in flight when the 1 s drain ends.
            download = SlowDownload(proxy, self.url("origin.test", "/big"), STAFF, 1024 * 1024)
            download.start()
            self.assertTrue(download.started_body.wait(10))
            start = time.monotonic()
            proxy.signal(signal.SIGTERM)
            self.assertEqual(proxy.proc.wait(10), 0)
            self.assertLess(time.monotonic() - start, 4)
            download.join(40)
            self.assertEqual(download.status, 200)
            self.assertLess(download.size, BIG)  # cut at the deadline
            # And logged, with what it carried (reload audit, 2026-12-06: a download or tunnel cut
            # at the deadline had no line).
            lines = [l for l in proxy.log_lines() if l.get("path") == "/big"]
            self.assertEqual(len(lines), 1, proxy.log_lines()[-3:])
            self.assertGreater(lines[0]["bytes_out"], 0, lines[0])
            # Said as hallpass's doing, not the client's (outside-in audit of operations, 2026-12-07, L2).
            self.assertIn("cut off when hallpass stopped", lines[0].get("note", ""), lines[0])
        finally:
            proxy.stop()

    def test_sigusr1_reopens_the_access_log(self):
        proxy = Proxy()
        try:
            curl(proxy, self.url("origin.test"), source=STAFF)
            proxy.log_lines(1)
            os.rename(proxy.access_log, proxy.access_log + ".1")
            proxy.signal(signal.SIGUSR1)
            time.sleep(0.3)
            curl(proxy, self.url("origin.test"), source=PUPIL)
            lines = proxy.log_lines(1)
            self.assertEqual(lines[0]["client"], PUPIL)
        finally:
            proxy.stop()

    def test_drops_privileges_after_binding(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to test dropping privileges")
        import pwd
        nobody = pwd.getpwnam("nobody")
        proxy = Proxy(args=["--user", "nobody"])
        try:
            with open(f"/proc/{proxy.proc.pid}/status") as f:
                ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Gid", "Groups"))}
            self.assertEqual(set(ids["Uid"]), {str(nobody.pw_uid)})
            self.assertEqual(set(ids["Gid"]), {str(nobody.pw_gid)})
            self.assertEqual(ids["Groups"], [])
            # Still serving after the drop (the listening sockets were bound as root).
            self.assertEqual(curl(proxy, self.url("origin.test"), source=STAFF)[0], 200)
            self.assertTrue(any("running as nobody" in l for l in proxy.stderr_lines))
            self.assertFalse(any("running as root with every privilege" in l for l in proxy.stderr_lines))
        finally:
            proxy.stop()
        # Without --user, as root: said (outside-in audit of operations, 2026-12-07, M2).
        proxy = Proxy()
        try:
            self.assertTrue(any("warning: running as root with every privilege" in l for l in proxy.stderr_lines),
                            proxy.stderr_lines)
        finally:
            proxy.stop()

    def big_list_policy(self):
        """A policy edit adding a category of 600,000 listed domains (a school's feed, in size),
        blocked for everyone; the list's directory is removed at the end of the test."""
        lists = tempfile.mkdtemp(prefix="hallpass-it-list-")
        self.addCleanup(shutil.rmtree, lists, True)
        os.chmod(lists, 0o755)
        listed = os.path.join(lists, "big.txt")
        with open(listed, "w") as f:
            f.write("".join(f"site{i}.example{i % 97}.test\n" for i in range(600_000)))
        os.chmod(listed, 0o644)

        def with_big_list(text):
            edited = text.replace(
                "  circumvention: {domains: [vpn.test]}\n",
                f"  circumvention: {{domains: [vpn.test]}}\n  listed: {{domain_files: [\"{listed}\"]}}\n").replace(
                "      - {action: block, categories: [social_media]}\n",
                "      - {action: block, categories: [social_media, listed]}\n", 1)
            assert edited != text, "the base policy changed: the category was not added"
            return edited
        return with_big_list

    def test_sigterm_during_a_reload_starts_the_drain_at_once(self):
        # Event-loop review, 2026-12-06: the reload ran in the signal handler, so a SIGTERM that
        # came during a reload of a large policy waited for it before the drain began.
        proxy = Proxy(policy_edit=self.big_list_policy(), drain="1s")
        try:
            proxy.signal(signal.SIGHUP)
            time.sleep(0.05)
            proxy.signal(signal.SIGTERM)
            self.assertEqual(proxy.proc.wait(60), 0)
            # The reader thread may still be taking the last lines off the pipe.
            wait_for(lambda: any("stopped" in l for l in proxy.stderr_lines), timeout=10, what="the last line")
            lines = list(proxy.stderr_lines)
            stopping = next(i for i, l in enumerate(lines) if "stopping; draining" in l)
            reloaded = [i for i, l in enumerate(lines) if "reloaded" in l]
            # The drain began before the reload ended; the reload still ended (never half way).
            self.assertEqual(len(reloaded), 1, lines)
            self.assertLess(stopping, reloaded[0], lines)
        finally:
            proxy.stop()

    def test_sigterm_during_an_admin_reload_exits_cleanly(self):
        # Reload audit, 2026-12-06: SIGTERM while `hallpassctl reload` ran ended in a segfault
        # every time (the admin connection's coroutine, left suspended, was destroyed after the
        # members its scope guard touches; AddressSanitizer reports it in the sanitizer build).
        if os.geteuid() != 0:
            self.skipTest("the admin socket's technician here is root")
        state = tempfile.mkdtemp(prefix="hallpass-state-")
        self.addCleanup(shutil.rmtree, state, True)
        os.chmod(state, 0o711)
        sock = os.path.join(state, "admin.sock")
        proxy = Proxy(extra="admin:\n  roles:\n    technician: [root]\n", policy_edit=self.big_list_policy(),
                      args=["--state-dir", state, "--admin-socket", sock], drain="1s")
        try:
            ctl = subprocess.Popen([CTL, "--socket", sock, "reload"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
            proxy.signal(signal.SIGTERM)
            self.assertEqual(proxy.proc.wait(60), 0, proxy.stderr_lines[-5:])
            ctl.communicate(timeout=60)
        finally:
            proxy.stop()

    def test_memory_returns_to_one_policy_after_reloads(self):
        # A big list in force from the start, as a school's feeds are. The daemon once held its
        # startup configuration for its whole life and glibc kept the heap of every freed policy,
        # so after reloads it stayed at two or three times one policy's size (bench/README.md,
        # "Memory after reloads, found and fixed": 142 MB at start, 294-320 MB after reloads;
        # here 43 MB at start and 92, 117, 136 MB after each reload, checked on that code).
        if os.environ.get("HALLPASS_SANITIZED", "0") == "1":
            self.skipTest("ASan's allocator quarantines freed memory: VmRSS says nothing about the heap here")
        proxy = Proxy(policy_edit=self.big_list_policy())
        try:
            self.assertEqual(curl(proxy, self.url("site7.example7.test"))[0], 403)
            time.sleep(1)
            start = proxy.rss_kib()
            after = []
            for _ in range(3):
                # Requests all through the reload, so that the workers take the new generation
                # at once and the reload thread's drop of the old one is often the last: that
                # drop freed without a trim, and the old policy stayed in memory until some later
                # release (CI of 2026-12-06: 92 MB 10 s after the second reload; here 124 MB
                # 3 s after the third, in one run of two, on the build before the fix).
                stop = threading.Event()

                def busy():
                    end = time.monotonic() + 60
                    while not stop.is_set() and time.monotonic() < end:
                        curl(proxy, self.url("origin.test"), source=STAFF)
                clients = [threading.Thread(target=busy) for _ in range(3)]
                for t in clients:
                    t.start()
                try:
                    proxy.reload(expect_ok=True, timeout=60)
                    time.sleep(0.3)
                finally:
                    stop.set()
                    for t in clients:
                        t.join(70)
                # Requests on new connections, so that each worker takes the new generation and
                # drops the old; then the release thread's free and trim (milliseconds alone, but
                # seconds on a loaded CI machine: CI of 2026-12-06 read 111 MB 1.5 s after the
                # third reload, and a later run still 92 MB 10 s after the second, then 44 MB
                # after the third). Polled for at most 20 s, with more requests, before reading.
                rss = None
                for _attempt in range(40):
                    for i in range(3):
                        curl(proxy, self.url("origin.test"), source=STAFF)
                    time.sleep(0.5)
                    rss = proxy.rss_kib()
                    if rss < start * 1.35:
                        break
                after.append(rss)
            self.assertEqual(curl(proxy, self.url("site7.example7.test"))[0], 403)
            # One policy, not two or three: within a third of the size at start.
            self.assertLess(max(after[1:]), start * 1.35,
                            f"VmRSS {start} KiB at start, {after} KiB after each of three reloads")
        finally:
            proxy.stop()

    def test_a_stalled_access_log_bounds_memory_and_does_not_hold_the_stop(self):
        """The access log on a disk that stops taking data (a hung network volume; journald
        stalled, for the default "-"): here a FIFO whose reader never reads. The queue was
        bounded in lines only (65,536), so requests with long paths grew the daemon by gigabytes
        (resource audit, 2026-12-06: 1.5 GB in 12 s), and SIGTERM never ended it: the writer was
        stuck in write(). Now the queue holds at most 32 MiB, the rest is dropped and counted,
        and the stop gives the writer 5 s, then says so and ends."""
        folder = tempfile.mkdtemp(prefix="hallpass-it-fifo-")
        self.addCleanup(shutil.rmtree, folder, True)
        os.chmod(folder, 0o755)
        fifo = os.path.join(folder, "access.log")
        os.mkfifo(fifo, 0o666)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
        self.addCleanup(os.close, reader)
        proxy = Proxy(access_log=fifo)
        try:
            self.assertEqual(curl(proxy, self.url("facebook.test"))[0], 403)
            time.sleep(0.5)
            start = proxy.rss_kib()
            # 12,000 blocked requests with 14 KB paths on one kept-alive connection: 170 MB of
            # lines, which a queue bounded in lines alone took whole.
            path = "/" + "p" * 14000
            request = f"GET http://facebook.test:{self.nginx.port}{path} HTTP/1.1\r\nHost: facebook.test\r\n\r\n".encode()
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=30, source_address=(PUPIL, 0))
            self.addCleanup(s.close)
            answers = [0]

            def drain():
                try:
                    while True:
                        data = s.recv(1 << 20)
                        if not data:
                            return
                        answers[0] += data.count(b"HTTP/1.1 403 ")
                except OSError:
                    return
            t = threading.Thread(target=drain, daemon=True)
            t.start()
            for _ in range(120):
                s.sendall(request * 100)
            wait_for(lambda: answers[0] >= 12000, timeout=60, what="12,000 block pages")
            grown = proxy.rss_kib() - start
            dropped = proxy.metric("hallpass_access_log_dropped_total")
            self.assertGreater(dropped, 0, "no line was dropped: the queue took 170 MB of lines")
            if os.environ.get("HALLPASS_SANITIZED", "0") != "1":
                # (ASan's allocator quarantines freed memory: 340 MB there, CI at e0f8501.)
                self.assertLess(grown, 120 * 1024, f"VmRSS grew {grown} KiB with the log disk stalled")
            s.close()
            began = time.monotonic()
            proxy.signal(signal.SIGTERM)
            proxy.proc.wait(20)
            self.assertLess(time.monotonic() - began, 15)
            wait_for(lambda: any("stuck" in l for l in proxy.stderr_lines), what="the stuck writer's line")
        finally:
            proxy.stop()

    def test_1gib_download_with_flat_memory(self):
        proxy = Proxy()
        try:
            curl(proxy, self.url("origin.test"), source=STAFF)  # warm up
            baseline = proxy.rss_kib()
            peak = [baseline]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], proxy.rss_kib())
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            r = subprocess.run(["curl", "-sS", "--max-time", "240", "-x", f"http://127.0.0.1:{proxy.port}",
                                "--interface", STAFF, "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
                                self.url("origin.test", "/huge")], capture_output=True, text=True, timeout=260)
            done.set()
            sampler.join(2)
            self.assertEqual(r.stdout, f"{1024 ** 3} 200", r.stderr)
            growth_mib = (peak[0] - baseline) / 1024
            # Bodies stream through fixed buffers: memory does not grow with the size of the download.
            self.assertLess(growth_mib, 32, f"RSS grew {growth_mib:.1f} MiB during a 1 GiB download")
        finally:
            proxy.stop()


if __name__ == "__main__":
    unittest.main()
