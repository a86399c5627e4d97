"""hallpass check / explain as a technician runs them: the real binary, the shipped policy."""
import json
import os
import re
import subprocess
import tempfile
import unittest

from harness import alias_bomb_categories

BIN = os.environ["HALLPASS_BIN"]
SRC = os.environ["HALLPASS_SOURCE_DIR"]
SCHOOL = os.path.join(SRC, "rules", "school.yaml")


def run(*args, timeout=60, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def check_edited_school(edit):
    """`hallpass check` of the shipped policy as `edit` (text -> text) changes it."""
    with open(SCHOOL) as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.yaml")
        with open(path, "w") as f:
            f.write(edit(text))
        return run("check", "--config", path)


def explain(*args):
    r = run("explain", "--config", SCHOOL, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class CheckTest(unittest.TestCase):
    def test_shipped_policy_is_valid_with_summary(self):
        r = run("check", "--config", SCHOOL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)
        for word in ("pupils", "staff", "office", "guests", "social_media", "circumvention", "Lesson 1 08:50-10:30",
                     "Longest exception: 90 days (the policy has no term dates ahead)"):
            self.assertIn(word, r.stdout)

    def test_check_names_the_admin_roles_and_warns_of_users_and_groups_this_machine_lacks(self):
        r = check_edited_school(lambda t: t + """
admin:
  socket: /run/hallpass/admin.socket
  socket_group: no-such-group-hp
  roles:
    headteacher: [root, no_such_user_hp]
    technician: ["@root", "@no_such_group_hp"]
""")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Admin socket: /run/hallpass/admin.socket (group no-such-group-hp); headteacher: root "
                      "no_such_user_hp; technician: @root @no_such_group_hp\n", r.stdout)
        self.assertIn("warning: admin.roles.headteacher: no OS user 'no_such_user_hp'", r.stderr)
        self.assertIn("warning: admin.roles.technician: no group 'no_such_group_hp'", r.stderr)
        self.assertIn("warning: admin.socket_group: no group 'no-such-group-hp'", r.stderr)
        self.assertNotIn("'root'", r.stderr)

    def test_check_warns_of_a_role_nobody_gets_a_nested_network_and_a_watched_category_with_nothing_in_it(self):
        # People-side audit, 2026-12-07, L2 and M8: each passed as "OK" without a word.
        r = run("check", "--config", SCHOOL)
        for name in ("self_harm", "illegal_content"):  # no UT1 list for them, in the shipped policy
            self.assertIn(f"alerts.categories: {name} has no entries now", r.stderr)
        self.assertNotIn("no networks and no directory groups", r.stderr)
        self.assertNotIn("is inside role", r.stderr)
        r = check_edited_school(lambda t: t.replace('    networks: [10.30.0.0/24, "fd00:30::/64"]\n', "", 1))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("role office has no networks and no directory groups: no device or user ever gets it", r.stderr)
        r = check_edited_school(lambda t: t.replace('    networks: [10.30.0.0/24, "fd00:30::/64"]\n',
                                                    '    networks: [10.20.5.0/24, "fd00:30::/64"]\n', 1))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("role office's network 10.20.5.0/24 is inside role staff's 10.20.0.0/16: its devices get office, "
                      "not staff (the longer prefix wins)", r.stderr)

    def test_check_warns_of_a_drain_longer_than_the_unit_waits(self):
        r = check_edited_school(lambda t: t + "\ndrain: 2m\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("drain is 2m: deploy/hallpass.service kills hallpass 30 s after asking it to stop", r.stderr)
        r = check_edited_school(lambda t: t + "\ndrain: 20s\n")
        self.assertNotIn("drain is", r.stderr)

    def test_check_warns_of_an_access_log_folder_that_does_not_exist(self):
        with tempfile.TemporaryDirectory() as d:
            gone = os.path.join(d, "no-such-folder")
            r = check_edited_school(lambda t: t + f"""
access_log:
  path: {gone}/access.log
""")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"access_log.path: {gone} is not a folder that exists", r.stderr)
            os.mkdir(gone)
            r = check_edited_school(lambda t: t + f"""
access_log:
  path: {gone}/access.log
""")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("access_log.path", r.stderr)

    def test_check_prints_the_pac_device_names_logins_and_bans_sections_without_secrets(self):
        with tempfile.TemporaryDirectory() as d:
            secret = os.path.join(d, "bind.pw")
            with open(secret, "w") as f:
                f.write("s3cret-bind-password\n")
            os.chmod(secret, 0o640)
            path = os.path.join(d, "p.yaml")
            with open(SCHOOL) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text + f"""
pac:
  listen: 127.0.0.1:8081
  proxy: ["10.0.0.1:3128"]
  direct_domains: [school.internal]
dhcp_leases:
  path: {d}/kea-leases4.csv
  format: kea
logins:
  realm: "Test realm"
  networks:
    - {{networks: [10.10.0.0/16], login: required}}
    - {{networks: [10.99.0.0/16], login: none}}
  ldap:
    url: "ldaps://dc1.school.internal"
    base_dn: "ou=people,dc=school,dc=internal"
    user_attribute: sAMAccountName
    bind_dn: "cn=hallpass,ou=service,dc=school,dc=internal"
    bind_password_file: {secret}
    cache_ttl: 10m
  failures: {{per_client: 7, per_user: 4, within: 2m}}
""")
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            self.assertIn("PAC file: http://127.0.0.1:8081/proxy.pac and /wpad.dat; proxy 10.0.0.1:3128; direct "
                          "networks every role's networks (and loopback); direct domains school.internal\n", out)
            self.assertIn(f"Device names: kea leases from {d}/kea-leases4.csv\n", out)
            self.assertIn('Logins: realm "Test realm"; elsewhere none\n  required: 10.10.0.0/16\n  none: 10.99.0.0/16\n',
                          out)
            self.assertIn("  LDAP ldaps://dc1.school.internal; CA the system's\n", out)
            self.assertIn("  users: sAMAccountName under ou=people,dc=school,dc=internal, searched as "
                          f"cn=hallpass,ou=service,dc=school,dc=internal (password in {secret})", out)
            self.assertIn("sign-ins cached 10m", out)
            self.assertIn("  failed sign-ins limited to 7 per address and 4 per user within 2m\n", out)
            self.assertIn("Bans: supervised use bbc.co.uk, thenational.academy; automatic after 3 circumvention "
                          "attempts within 10m, for 1d\n", out)
            self.assertNotIn("s3cret", out + r.stderr)
            # The shipped pupils role is dual-stack; only its IPv4 network is under `login: required`
            # (outside-in audit of IPv6, 2026-12-07, F5: its IPv6 devices browsed without signing in).
            self.assertIn("role pupils: its network fd00:10::/64 is under `login: none` while 10.10.0.0/16 is under "
                          "`login: required`: its devices there browse without signing in", r.stderr)
            # The password file open to every user is refused, as the CA key is (audit19 D7).
            os.chmod(secret, 0o644)
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(f"logins.ldap.bind_password_file {secret} is open to every user (mode 0644): it holds "
                          "the directory's service password; chmod o-rwx it", r.stdout + r.stderr)
            self.assertNotIn("s3cret", r.stdout + r.stderr)
            # A missing one is refused now, not at the first sign-in (outside-in audit of logins,
            # 2026-12-05, L4).
            os.remove(secret)
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(f"logins.ldap.bind_password_file {secret} cannot be found: No such file or directory",
                          r.stdout + r.stderr)
        # Without the sections: each says what is off.
        r = run("check", "--config", SCHOOL)
        self.assertIn("PAC file: not served (pac.listen)\n", r.stdout)
        self.assertIn("Device names: none (dhcp_leases.path)", r.stdout)
        self.assertIn("Logins: none (no network asks to sign in; roles by address)\n", r.stdout)

    def test_broken_policy_lists_every_error_with_location(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "broken.yaml")
            with open(path, "w") as f:
                f.write(
                    "school:\n"
                    "  name: S\n"
                    "categories:\n"
                    "  social_media: {domains: [facebook.com]}\n"
                    "roles:\n"
                    "  pupils:\n"
                    "    default: allow\n"
                    "    rules:\n"
                    "      - {action: block, categories: [socal_media]}\n"
                    "      - {action: deny, categories: [social_media]}\n"
                )
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 1)
            self.assertIn(
                f"{path}:9:38: rule 1 of role pupils names category 'socal_media', which is not defined; "
                "did you mean 'social_media'?", r.stderr)
            self.assertIn(f"{path}:10:18: rule 2 of role pupils action must be 'allow' or 'block'", r.stderr)
            self.assertIn("2 errors", r.stderr)

    def test_daemon_sections_are_checked_too(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.yaml")
            with open(SCHOOL) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text + "listen: [127.0.0.1:99999]\nupstream: {conect_timeout: 5s}\nlimits: {head_timeout: soon}\n")
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 1)
            self.assertIn("listen address '127.0.0.1:99999' must be ADDRESS:PORT", r.stderr)
            self.assertIn("unknown key 'conect_timeout' in upstream; did you mean 'connect_timeout'?", r.stderr)
            self.assertIn("limits.head_timeout must be a duration", r.stderr)
            self.assertIn("3 errors", r.stderr)

    def test_aliases_that_expand_without_bound_are_refused_within_seconds(self):
        # YAML aliases were expanded at every use: the audit's 783 KB file (one list named by
        # 30000 categories) cost 28 s and 2.3 GB (outside-in audit H, 2026-12-05), and ten
        # levels of ten aliases (1 KB) are 10^10 nodes (the loader reads a category's list one
        # level deep, so that one cost little, but said "must be a single value" 90 times).
        # Now both are refused, in words, before the policy is read.
        with open(SCHOOL) as f:
            text = f.read()
        for name, bomb, line in (("nested", alias_bomb_categories(levels=10), 77),
                                 ("one list named 30000 times", alias_bomb_categories(uses=30000), 69)):
            with self.subTest(name), tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "p.yaml")
                with open(path, "w") as f:
                    f.write(text.replace("\ncategories:\n", "\ncategories:\n" + bomb, 1))
                # The file before the bound loaded (exit 0) after 27 s and 2.3 GB; a generous
                # timeout, since sanitizer builds run this too.
                r = run("check", "--config", path, timeout=60)
                self.assertEqual(r.returncode, 1, r.stderr[-2000:])
                self.assertRegex(r.stderr, re.escape(path) + f":{line}:[0-9]+: the policy expands to more than "
                                 "[0-9]+ nodes through YAML aliases \\(anchors\\)")
                self.assertIn(f"{path}: 1 error; the policy was not loaded", r.stderr)

    def test_a_config_that_cannot_be_read_is_a_clear_error_for_check_explain_and_run(self):
        # A directory once escaped as std::ios_failure and aborted all three (exit 134).
        with tempfile.TemporaryDirectory() as d:
            missing = os.path.join(d, "missing.yaml")
            # /proc/self/mem is a regular file that cannot be read at offset 0 (EIO), even as root.
            for path, words in ((d, f"{d}: is a directory"), (missing, f"{missing}: does not exist"),
                                ("/proc/self/mem", "/proc/self/mem: cannot be read")):
                for cmd in (["check", "--config", path], ["explain", "--config", path, "--role", "pupils", "x.com"],
                            ["run", "--config", path, "--listen", "127.0.0.1:0"]):
                    with self.subTest(cmd=cmd[0], path=path):
                        r = run(*cmd, timeout=30)
                        self.assertEqual(r.returncode, 1, r.stderr)  # README: 1 for an invalid config
                        self.assertIn(words, r.stderr)
                        self.assertNotIn("terminate", r.stderr)

    def test_durations_need_their_unit_and_check_says_how_long_records_are_kept(self):
        # "records: 365" meant as days used to keep records for 365 seconds, and the next
        # reload's retention pass deleted the school's pending requests and audit entries.
        # (added to the shipped policy, the exit code, and what stderr (1) or stdout (0) says)
        cases = (("retention: {records: 365}\n", 1, "retention.records must be how long"),
                 ("drain: 10\n", 1, "drain must be a duration"),
                 ("exceptions: {max_duration: 1440}\n", 1, "exceptions.max_duration must be a duration"),
                 ("", 0, "Records kept: 365d after they close (retention.records)"),
                 ("retention: {records: 30d}\n", 0, "Records kept: 30d after they close"),
                 ("retention: {records: forever}\n", 0, "Records kept: forever"),
                 ("", 0, "Incident records kept: forever (retention.incidents)"),
                 ("retention: {records: 30d, incidents: 2190d}\n", 0,
                  "Incident records kept: 2190d after they close (retention.incidents)"),
                 ("retention: {incidents: 45}\n", 1, "retention.incidents must be how long closed incident records"),
                 ("drain: 0\n", 0, "Records kept: 365d"))
        for extra, code, words in cases:
            with self.subTest(extra=extra):
                r = check_edited_school(lambda text: text + extra)
                self.assertEqual(r.returncode, code, r.stdout + r.stderr)
                self.assertIn(words, r.stderr if code else r.stdout)
                if code:
                    self.assertIn("a number needs its unit", r.stderr)

    def test_an_alert_command_that_cannot_be_started_without_a_shell_is_refused(self):
        # Outside-in audit, 2026-12-06: a script without "#!" passed check, and every alert then
        # failed with "Exec format error" (the command is started without a shell).
        with tempfile.TemporaryDirectory() as d:
            results = {}
            for name, body in (("noshebang.sh", "cat > /dev/null\n"), ("ok.sh", "#!/bin/sh\ncat > /dev/null\n")):
                script = os.path.join(d, name)
                with open(script, "w") as f:
                    f.write(body)
                os.chmod(script, 0o755)
                results[name] = check_edited_school(
                    lambda text: text.replace("  every: 10m\n", f"  every: 10m\n  command: [{script}]\n", 1))
        self.assertEqual(results["noshebang.sh"].returncode, 1, results["noshebang.sh"].stdout)
        self.assertIn("is neither a program nor a script that starts with a #! line", results["noshebang.sh"].stderr)
        self.assertEqual(results["ok.sh"].returncode, 0, results["ok.sh"].stderr)

    def test_a_retention_setting_refused_is_told_only_spellings_it_takes(self):
        # "records: 0" was told "a number needs its unit (0s, 0m, 0h or 0d?)", and 0s was then
        # refused too (admin audit, 2026-12-05, F10).
        for value in ("0", "0s"):
            with self.subTest(value=value):
                r = check_edited_school(lambda text: text + f"retention: {{records: {value}}}\n")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("0 would keep no closed record at all; the least is 1s", r.stderr)
                self.assertNotIn("0s,", r.stderr)
        r = check_edited_school(lambda text: text + "retention: {records: 40000}\n")
        self.assertIn("a number needs its unit (40000s, 40000m or 40000h?)", r.stderr)

    def test_terms_that_have_all_ended_are_a_warning_and_the_exception_limit_follows(self):
        ended = "  terms:\n    - {name: Summer 2020, from: 2020-04-20, to: 2020-07-22}\n"
        ahead = "  terms:\n    - {name: Far ahead, from: 2099-09-01, to: 2099-12-18}\n"
        for terms, limit in ((ended, "Longest exception: 90 days (the policy has no term dates ahead)"),
                             (ahead, "Longest exception: until the end of term 'Far ahead'")):
            r = check_edited_school(lambda text: text.replace("school:\n", "school:\n" + terms, 1))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(limit, r.stdout)
            lapsed = "the last term listed ('Summer 2020') ended on 2020-07-22" in r.stderr
            self.assertEqual(lapsed, terms == ended, r.stderr)

    def test_list_files_that_are_folders_or_empty(self):
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "lists"))
            open(os.path.join(d, "empty.txt"), "w").close()
            with open(SCHOOL) as f:
                school = f.read()
            path = os.path.join(d, "p.yaml")

            def check_with(categories):
                # Insert extra categories at the top of the shipped policy's categories.
                with open(path, "w") as f:
                    f.write(school.replace("\ncategories:\n", "\ncategories:\n" + categories, 1))
                return run("check", "--config", path)

            r = check_with("  extra:\n    domain_files: [lists]\n")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: " + re.escape(os.path.join(d, "lists")) +
                             " is a directory")
            r = check_with("  extra:\n    domain_files: [empty.txt]\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stderr, r"warning: " + re.escape(path) + r":\d+:\d+: category 'extra': " +
                             re.escape(os.path.join(d, "empty.txt")) + r" has no entries")
            r = check_with("  feed:\n    locked: true\n    domain_files: [empty.txt]\n")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("category 'feed' is locked (illegal content) but its list", r.stderr)

    def test_usage_errors_exit_2(self):
        self.assertEqual(run("check").returncode, 2)
        self.assertEqual(run("explain", "--config", SCHOOL, "https://x.com/").returncode, 2)
        self.assertEqual(run("explain", "--config", SCHOOL, "--role", "pupil", "https://x.com/").returncode, 2)
        self.assertIn("did you mean 'pupils'?", run("explain", "--config", SCHOOL, "--role", "pupil", "x.com").stderr)
        self.assertEqual(run("frobnicate").returncode, 2)

    def test_help_and_version(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("hallpass explain", r.stdout)
        # Every flag the commands accept is in the help (docs audit, 2026-12-05: --allow-shrink
        # and four of explain's were missing).
        usage = r.stdout.split("hallpass explain", 1)[1].split("hallpass ca init", 1)[0]
        for flag in ("--user", "--groups", "--device", "--mac", "--at", "--method", "--state-dir", "--ca-dir", "--json"):
            self.assertIn(flag, usage, "explain " + flag)
        self.assertIn("[--allow-shrink]", r.stdout)
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^hallpass \d+\.\d+\.\d+")


class ExplainTest(unittest.TestCase):
    def test_a_path_the_proxy_refuses_is_explained_as_refused_not_decided(self):
        # A raw tab, space or non-ASCII byte in the path: the proxy answers 400 (browsers
        # percent-encode them); explain said allow (outside-in audit, 2026-12-05).
        for url in ("http://www.bbc.co.uk/a\tb", "http://www.bbc.co.uk/a b"):
            with self.subTest(url=url):
                got = explain("--role", "staff", url)
                self.assertEqual((got["action"], got["rule"]), ("block", "malformed request"))
        # Only where the proxy sees the path: a relayed tunnel's never reaches it, an inspected
        # one's does (differential audit of explain against the proxy, 2026-12-05).
        cafe = "https://en.wikipedia.org/caf\u00e9"
        self.assertEqual(explain("--role", "staff", cafe)["action"], "allow")
        got = explain("--role", "staff", "--ca-dir", "/etc/hallpass/ca", cafe)
        self.assertEqual((got["action"], got["rule"]), ("block", "malformed request"))
        # An IDN typed as people read it is decided (a browser sends punycode).
        self.assertEqual(explain("--role", "staff", "http://\u00e9cole.example/")["action"], "allow")
        self.assertEqual(explain("--role", "staff", "http://www.bbc.co.uk/caf%C3%A9")["action"], "allow")

    def test_explain_reads_the_request_as_the_proxy_does(self):
        """Differential audit of explain against the proxy, 2026-12-05: the path as the proxy
        reads the request-target, a WebSocket as its opening request, an address over HTTPS
        without a server name, and a method-override header."""
        with tempfile.TemporaryDirectory() as d:
            policy = os.path.join(d, "p.yaml")
            with open(policy, "w") as f:
                f.write("school: {name: Test School, timezone: Europe/London}\nroles:\n  pupils:\n"
                        "    networks: [10.10.0.0/16]\n    default: allow\n    rules:\n"
                        "      - {action: block, patterns: ['(?i)\\.zip$', '(?i)^https?://[^/]*/.*flash-?game']}\n")

            def verdict(*args):
                r = run("explain", "--config", policy, "--json", "--role", "pupils", *args)
                self.assertEqual(r.returncode, 0, r.stderr)
                v = json.loads(r.stdout)
                return v["action"], v["rule"], v["notes"]

            # An empty query is dropped, as the proxy drops it: the path ends in .zip.
            self.assertEqual(verdict("http://plain.test/a.zip?")[:2], ("block", "pupils rule 1"))
            # The same typed without a scheme (explain audit, 2026-12-07, F4: decided on "/a.zip?").
            self.assertEqual(verdict("plain.test/a.zip?")[:2], ("block", "pupils rule 1"))
            # ws:// and wss:// are decided as the http and https upgrade requests the proxy decides.
            action, rule, notes = verdict("ws://plain.test/flashgame")
            self.assertEqual((action, rule), ("block", "pupils rule 1"))
            self.assertIn("A WebSocket is decided as its opening request, an http GET with Upgrade: websocket.", notes)
        # HTTPS to an address: a browser sends no server name, which the proxy blocks.
        v = explain("--role", "staff", "https://192.0.2.1/")
        self.assertEqual((v["action"], v["rule"]), ("block", "connect.require_sni"))
        self.assertEqual(explain("--role", "staff", "http://192.0.2.1/")["action"], "allow")
        # Where the proxy will not connect whatever the policy says: explain says so by name.
        for url, rule, reason in (("http://169.254.169.254/latest", "destination", "link-local"),
                                  ("http://10.0.0.1/", "destination", "network the school does not open"),
                                  ("http://www.bbc.co.uk:8081/", "upstream.ports", "port")):
            with self.subTest(url=url):
                v = explain("--role", "staff", url)
                self.assertEqual((v["action"], v["rule"]), ("block", rule))
                self.assertIn(reason, v["reason"])
        self.assertEqual(explain("--role", "staff", "http://www.bbc.co.uk:8080/")["action"], "allow")
        # A method that is not one is refused, not decided.
        r = run("explain", "--config", SCHOOL, "--role", "staff", "--method", "PU T", "http://www.bbc.co.uk/")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("--method 'PU T' is not an HTTP method", r.stderr)
        # A method named in X-HTTP-Method-Override is decided too.
        self.assertEqual(explain("--role", "staff", "http://en.wikipedia.org/w/api.php")["action"], "allow")
        v = explain("--role", "staff", "--method-override", "post", "http://en.wikipedia.org/w/api.php")
        self.assertEqual((v["action"], v["clause"]), ("block", "004 6.11"))
        self.assertTrue(any("decided as the method POST" in n for n in v["notes"]), v["notes"])

    def test_explain_says_the_proxys_own_pages_are_answered_by_the_proxy(self):
        """The request form, a block page's details and the sign-in pages are answered by the
        proxy before any decision; explain gave the policy's verdict for them (explain audit,
        2026-12-07)."""
        with tempfile.TemporaryDirectory() as d:
            policy = os.path.join(d, "p.yaml")
            with open(policy, "w") as f:
                f.write("school: {name: Test School, timezone: Europe/London}\nroles:\n  pupils:\n"
                        "    networks: [10.10.0.0/16]\n    default: block\n")
            ca = os.path.join(d, "ca")
            self.assertEqual(run("ca", "init", "--dir", ca).returncode, 0)

            def verdict(url, *args):
                r = run("explain", "--config", policy, "--json", "--role", "pupils", *args, url)
                self.assertEqual(r.returncode, 0, r.stderr)
                v = json.loads(r.stdout)
                return v["action"], v["rule"], v["reason"]

            for url, reason in (("http://hallpass.invalid/request", "the block page's access request form"),
                                ("http://HALLPASS.invalid:8080/blocked?url=http%3A%2F%2Fa.test%2F", "a block page's details"),
                                ("http://hallpass.invalid/signin", "the sign-in and sign-out pages")):
                with self.subTest(url=url):
                    self.assertEqual(verdict(url), ("allow", "hallpass page", reason))
            # On a blocked HTTPS site decrypted for its block page, the form posts to the site's
            # own address and the proxy answers it there; without a school CA nothing is
            # decrypted, and a plain-HTTP site's /.well-known/ path is the site's.
            self.assertEqual(verdict("https://a.test/.well-known/hallpass/request", "--ca-dir", ca),
                             ("allow", "hallpass page", "the block page's access request form"))
            self.assertEqual(verdict("https://a.test/.well-known/hallpass/request")[:2], ("block", "default for pupils"))
            self.assertEqual(verdict("http://a.test/.well-known/hallpass/request")[:2], ("block", "default for pupils"))

    # 2026-11-23 is a Monday; 2026-11-21 a Saturday.
    def test_acceptance_cases(self):
        cases = [
            ("pupils", "2026-11-23 11:00", "https://www.facebook.com/", "block"),
            ("pupils", "2026-11-21 20:00", "https://www.facebook.com/", "block"),
            ("staff", "2026-11-23 11:00", "https://www.instagram.com/", "block"),
            ("staff", "2026-11-23 12:30", "https://www.instagram.com/", "allow"),
            ("staff", "2026-11-21 11:00", "https://www.instagram.com/", "allow"),
            ("guests", "2026-11-23 11:00", "https://x.com/", "block"),
            ("office", "2026-11-23 11:00", "https://www.tiktok.com/", "allow"),
            ("pupils", "2026-11-23 11:00", "https://www.bbc.co.uk/bitesize", "allow"),
            ("pupils", "2026-11-23 11:00", "https://notfacebook.com/", "allow"),
        ]
        for role, at, url, want in cases:
            with self.subTest(role=role, at=at, url=url):
                v = explain("--role", role, "--at", at, url)
                self.assertEqual(v["action"], want)
                self.assertEqual(v["role"], role)
                for key in ("period", "rule", "category", "reason"):
                    self.assertIn(key, v)

    def test_block_says_why_and_what_would_allow_it(self):
        v = explain("--role", "staff", "--at", "2026-11-23 11:00", "https://www.instagram.com/")
        self.assertEqual(v["period"], "Lesson 2")
        self.assertEqual(v["category"], "social_media")
        self.assertIn("staff rule", v["rule"])
        self.assertIn("000 5.8", v["clause"])
        allow = " ".join(v["would_allow"])
        self.assertIn("Break", allow)
        self.assertIn("Lunch", allow)
        self.assertIn("headteacher", allow)

    def test_role_from_client_address_and_text_output(self):
        v = explain("--client", "10.20.7.7", "--at", "2026-11-23 10:35", "https://www.instagram.com/")
        self.assertEqual((v["role"], v["role_source"], v["action"], v["period"]), ("staff", "network", "allow", "Break"))
        # An IPv4-mapped spelling is the IPv4 client, as the proxy takes one on a dual-stack socket.
        mapped = explain("--client", "::ffff:10.20.7.7", "--at", "2026-11-23 10:35", "https://www.instagram.com/")
        self.assertEqual((mapped["role"], mapped["role_source"]), ("staff", "network"))
        r = run("explain", "--config", SCHOOL, "--client", "10.10.1.1", "--at", "2026-11-23 11:00",
                "https://www.facebook.com/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BLOCK", r.stdout)
        self.assertIn("client address is in network 10.10.0.0/16", r.stdout)
        self.assertIn("What would allow it", r.stdout)

    def test_at_is_refused_unless_one_school_local_time_and_clock_changes_are_named(self):
        for args in (["--at", "2026-11-23 -1:00"], ["--at", "2026-11-23 11:-5"], ["--at", "-001-01-01 11:00"],
                     ["--at", ""], ["--at", "2026-11-23 11:00", "--at", "2026-11-23 12:00"]):
            with self.subTest(args=args):
                r = run("explain", "--config", SCHOOL, "--role", "staff", *args, "https://www.instagram.com/")
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertIn("--at", r.stderr)
        # Spring 2027: 01:30 never happens in Europe/London; autumn 2026: 01:30 happens twice.
        r = run("explain", "--config", SCHOOL, "--role", "staff", "--at", "2027-03-28 01:30", "https://www.instagram.com/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2027-03-28 01:30 does not exist in Europe/London (the clocks go forward); read as "
                      "2027-03-28T02:30:00+01:00", r.stderr)
        self.assertIn("Time:     2027-03-28 02:30 (Sunday), Europe/London (UTC+01:00)", r.stdout)
        r = run("explain", "--config", SCHOOL, "--role", "staff", "--at", "2026-10-25 01:30", "https://www.instagram.com/")
        self.assertIn("happens twice in Europe/London (the clocks go back); the first was used, "
                      "2026-10-25T01:30:00+01:00", r.stderr)
        # The second, by its offset (outside-in audit of time, 2026-12-07, F8: it could not be given).
        r = run("explain", "--config", SCHOOL, "--role", "staff", "--at", "2026-10-25 01:30+00:00",
                "https://www.instagram.com/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("note:", r.stderr)
        self.assertIn("Time:     2026-10-25 01:30 (Sunday), Europe/London (UTC+00:00)", r.stdout)
        r = run("explain", "--config", SCHOOL, "--role", "staff", "--at", "2026-11-23 11:00", "https://www.instagram.com/")
        self.assertNotIn("note:", r.stderr)
        self.assertIn("Europe/London (UTC+00:00)", r.stdout)

    def test_wikipedia_edit_for_staff(self):
        # Over plain HTTP the proxy sees the method and path: the edit rule applies (004 6.11).
        v = explain("--role", "staff", "--method", "POST", "http://en.wikipedia.org/w/api.php")
        self.assertEqual(v["action"], "block")
        self.assertEqual(v["clause"], "004 6.11")
        # Over HTTPS it sees only the host until inspection is on (issue 10): explain decides as
        # the proxy does, on the host alone, and says so rather than promise a block.
        v = explain("--role", "staff", "--method", "POST", "https://en.wikipedia.org/w/api.php")
        self.assertEqual(v["action"], "allow")
        self.assertTrue(any("HTTPS is not inspected" in n for n in v["notes"]), v["notes"])


class ExplainInspectionTest(unittest.TestCase):
    """explain and HTTPS inspection (issue 10): with a school CA (tls.ca_dir, or --ca-dir) an
    inspected host is decided with the method and path, a relayed one on the host alone."""

    CA = ("--ca-dir", "/etc/hallpass/ca")  # explain only asks whether a CA is configured

    def test_the_staff_wikipedia_edit_rule_applies_once_inspected(self):
        edit = explain("--role", "staff", "--method", "POST", *self.CA, "https://en.wikipedia.org/w/api.php")
        self.assertEqual((edit["action"], edit["clause"], edit["path_seen"], edit["inspection"]),
                         ("block", "004 6.11", True, "inspect"))
        self.assertIn("Wikipedia is inspected for staff", edit["inspection_why"])
        editor = explain("--role", "staff", *self.CA, "https://en.wikipedia.org/w/index.php?title=Owl&action=edit")
        self.assertEqual(editor["action"], "block")
        read = explain("--role", "staff", *self.CA, "https://en.wikipedia.org/wiki/Owl")
        self.assertEqual((read["action"], read["path_seen"]), ("allow", True))
        # A method override is the request's, never the CONNECT's: the host stays open and the
        # request alone is blocked, by the method rule, as the proxy does (explain audit,
        # 2026-12-06, M1: "the host itself is blocked" and the editor rule named).
        over = explain("--role", "staff", "--method-override", "POST", *self.CA, "https://en.wikipedia.org/wiki/Cat")
        self.assertEqual((over["action"], over["rule"], over["inspection"]), ("block", "staff rule 1 (wikipedia edits)", "inspect"))
        self.assertFalse(any("host itself is blocked" in n for n in over["notes"]), over["notes"])
        # Pupils have no Wikipedia rule: relayed, decided on the host alone, and explain says so.
        pupil = explain("--role", "pupils", "--method", "POST", *self.CA, "https://en.wikipedia.org/w/api.php")
        self.assertEqual((pupil["action"], pupil["path_seen"], pupil["inspection"]), ("allow", False, "relay"))
        self.assertTrue(any("relayed without decryption" in n and "plays no part" in n for n in pupil["notes"]),
                        pupil["notes"])

    def test_without_a_ca_nothing_is_inspected(self):
        v = explain("--role", "staff", "--method", "POST", "https://en.wikipedia.org/w/api.php")
        self.assertEqual((v["action"], v["path_seen"], v["inspection"]), ("allow", False, None))

    def test_tls_ca_dir_in_the_config_turns_inspection_on(self):
        with tempfile.TemporaryDirectory() as d:
            with open(SCHOOL) as src, open(os.path.join(d, "school.yaml"), "w") as dst:
                dst.write(src.read())
            with open(os.path.join(d, "school.yaml"), "a") as f:
                f.write("tls:\n  ca_dir: %s\n" % os.path.join(d, "ca"))
            r = run("explain", "--config", os.path.join(d, "school.yaml"), "--json", "--role", "staff", "--method",
                    "POST", "https://en.wikipedia.org/w/api.php")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["action"], "block")

    def test_relative_paths_in_the_config_are_relative_to_the_config_file(self):
        # What `ca init --dir ca` suggests pasting ("ca_dir: ca") means the same from any working
        # directory; so does a relative upstream.ca_file (both were read from the working directory).
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(run("ca", "init", "--dir", os.path.join(d, "ca")).returncode, 0)
            with open(SCHOOL) as src, open(os.path.join(d, "school.yaml"), "w") as dst:
                dst.write(src.read() + "tls:\n  ca_dir: ca\nstate_dir: state\n")
            for cwd in ("/", d):
                r = run("check", "--config", os.path.join(d, "school.yaml"), cwd=cwd)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("HTTPS inspection: on. CA " + os.path.join(d, "ca") + ": OK", r.stdout)
                # The feeds are looked for in the state directory beside the file, where
                # `feeds update` puts them (they were looked for in the working directory).
                self.assertIn("(" + os.path.join(d, "state", "feeds", "ut1", "current"), r.stdout)
                v = run("explain", "--config", os.path.join(d, "school.yaml"), "--json", "--role", "staff", "--method",
                        "POST", "https://en.wikipedia.org/w/api.php", cwd=cwd)
                self.assertEqual(json.loads(v.stdout)["action"], "block", v.stderr)
            os.rename(os.path.join(d, "ca"), os.path.join(d, "moved"))
            r = run("check", "--config", os.path.join(d, "school.yaml"), cwd=d)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(os.path.join(d, "ca"), r.stdout + r.stderr)

    def test_the_never_list_is_relayed(self):
        v = explain("--role", "pupils", *self.CA, "https://www.hsbc.co.uk/login")
        self.assertEqual((v["inspection"], v["inspection_never"], v["path_seen"]), ("relay", True, False))
        self.assertIn("never-inspect list", v["inspection_why"])

    def test_safesearch_mapping_and_rewrite(self):
        url = "https://www.google.co.uk/search?q=owls&safe=off"
        inspected = explain("--role", "pupils", *self.CA, url)
        self.assertEqual(inspected["inspection"], "inspect")
        self.assertIn("search engines are inspected for pupils (SafeSearch)", inspected["inspection_why"])
        self.assertTrue(inspected["safesearch_connect"].startswith("forcesafesearch.google.com"))
        self.assertEqual(inspected["safesearch_change"], "the request becomes /search?q=owls&safe=active")
        mapped = explain("--role", "pupils", url)  # no CA: the address is mapped, the request unread
        self.assertTrue(mapped["safesearch_connect"].startswith("forcesafesearch.google.com"))
        self.assertNotIn("safesearch_change", mapped)
        youtube = explain("--role", "staff", "https://www.youtube.com/watch?v=1")
        self.assertTrue(youtube["safesearch_connect"].startswith("restrictmoderate.youtube.com"))
        self.assertNotIn("safesearch_connect", explain("--role", "office", "https://www.youtube.com/"))
        self.assertNotIn("safesearch_connect", explain("--role", "staff", url))
        # Plain HTTP is connected to the front end too (audit20 D6: explain did not say so).
        plain = explain("--role", "pupils", "http://www.google.com/search?q=a&safe=off")
        self.assertTrue(plain["safesearch_connect"].startswith("forcesafesearch.google.com"), plain)
        self.assertTrue(plain["safesearch_connect"].endswith("; Host unchanged)"), plain)

    def test_text_output_shows_the_inspection_and_safesearch_lines(self):
        r = run("explain", "--config", SCHOOL, "--role", "pupils", "--at", "2026-11-23 11:00", *self.CA,
                "https://www.bing.com/search?q=owls")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^Verdict:  ALLOW$")
        self.assertRegex(r.stdout, r"(?m)^HTTPS:    inspected: search engines are inspected for pupils \(SafeSearch\)$")
        self.assertRegex(r.stdout, r"(?m)^SafeSearch: the proxy connects to strict\.bing\.com .*SNI and Host unchanged")
        self.assertRegex(r.stdout, r"(?m)^SafeSearch: the request becomes /search\?q=owls&adlt=strict$")
        self.assertEqual(run("explain", "--config", SCHOOL, "--role", "pupils", "--ca-dir").returncode, 2)


if __name__ == "__main__":
    unittest.main()
