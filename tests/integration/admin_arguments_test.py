"""What the admin socket takes and what it answers (admin audit, 2026-12-05): the real daemon
and store, hallpassctl and raw protocol lines run as OS users in each admin role (created here;
needs root), and `hallpass explain` reading the same store."""
import json
import os
import subprocess
import unittest

from harness import BIN, Proxy
from exceptions_test import ADMIN, admin_state_dir, admin_lines, ctl, ctl_json, ensure_users
from bans_test import BANS


class OwnDaemon:
    """A mixin: a daemon of the class's own, so that one class's refusals and audit entries
    do not count in another's."""

    @classmethod
    def setUpClass(cls):
        ensure_users()
        cls.state, cls.sock = admin_state_dir()
        cls.proxy = Proxy(extra=ADMIN + BANS, args=["--state-dir", cls.state, "--admin-socket", cls.sock])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def raw(self, user, *messages):
        answers, err = admin_lines(user, self.sock, list(messages))
        self.assertEqual(len(answers), len(messages), err)
        return answers

    def request(self, url="http://a.test/lesson/page", **extra):
        args = {"url": url, "roles": ["pupils"], "requester": "Ms T", "reason": "lesson", "risks": "r",
                "control_measures": "c", **extra}
        return {"verb": "request", "args": args}

    def file(self, url="http://a.test/lesson/page"):
        answer = self.raw("hp_tech", self.request(url))[0]
        self.assertTrue(answer["ok"], answer)
        return answer["data"]["id"]


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class BadArgumentsTest(OwnDaemon, unittest.TestCase):
    def test_a_bad_optional_argument_is_refused_naming_it_and_nothing_changes(self):
        # F4: each of these went ahead with the default: the site opened for the whole role,
        # the whole domain blocked, a decision reason stored as "", the risks dropped.
        rid = self.file()
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "1h", "--who", "group:Year 6\x0b",
                             "--reason", "Year 6 only")
        self.assertEqual(code, 1, out + err)
        self.assertIn("'who' must not contain control characters (it is one line", err)
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "1h", "--reason", "agreed \x1b[0m")
        self.assertEqual(code, 1, out + err)
        self.assertIn("'reason' must not contain control characters", err)
        answers = self.raw("hp_head",
                           {"verb": "approve", "args": {"id": rid, "for": "1h", "scope": ["url"]}},
                           {"verb": "approve", "args": {"id": rid, "for": "1h", "who": ["group:Year 6"]}},
                           {"verb": "approve", "args": {"id": rid, "for": "1h", "scope": "url\u0000"}})
        self.assertEqual([(a["ok"], a["code"]) for a in answers], [(False, "bad_request")] * 3, answers)
        self.assertEqual(answers[0]["error"], "'scope' must be text")
        self.assertEqual(answers[1]["error"], "'who' must be text")
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(rid))["status"], "pending")

        answers = self.raw("hp_tech",
                           {"verb": "block", "args": {"url": "http://news.test/one/page", "scope": ["url"],
                                                      "reason": "one page"}},
                           self.request("http://a4.test/", risks="strangers\x0cbullying"),
                           self.request("http://a5.test/", site_content=7),
                           {"verb": "report", "args": {"url": "http://r.test/", "nature": "n", "reporter": "r",
                                                       "individual": "x\u001b"}})
        self.assertEqual([a["code"] for a in answers], ["bad_request"] * 4, answers)
        self.assertEqual(answers[0]["error"], "'scope' must be text")
        self.assertEqual(answers[1]["error"], "'risks' must not contain control characters")
        self.assertEqual(answers[2]["error"], "'site_content' must be text")
        self.assertEqual(answers[3]["error"], "'individual' must not contain control characters")
        self.assertFalse([b for b in ctl_json("hp_dsl", self.sock, "blocks")["blocks"] if "news.test" in b["value"]])
        self.assertFalse([r for r in ctl_json("hp_dsl", self.sock, "reports")["reports"] if "r.test" in r["url"]])
        self.assertFalse([r for r in ctl_json("hp_dsl", self.sock, "list", "--all")["requests"]
                          if r["url"] in ("http://a4.test/", "http://a5.test/")])

        answers = self.raw("hp_dsl", {"verb": "list", "args": {"filter": ["all"]}},
                           {"verb": "audit", "args": {"since": 20261205}})
        self.assertEqual([a["error"] for a in answers], ["'filter' must be text", "'since' must be text"])

    def test_a_ban_names_the_user_it_bans(self):
        # F5: "ava.b " was an active ban of nobody that unban --user ava.b could not find;
        # a tab, "   ", a NUL or an ESC were stored as given.
        url = "http://origin.test/"
        ban = ctl_json("hp_dsl", self.sock, "ban", "--user", "ava.b ", "--for", "1h", "--reason", "proxy site, twice")
        self.assertEqual((ban["subject"], ban["status"]), ("ava.b", "active"))
        # A configuration with logins: without one the proxy never knows a user, and explain
        # sets --user aside as the proxy would (--groups: no directory is asked).
        with_logins = os.path.join(self.proxy.dir, "with-logins.yaml")
        with open(with_logins, "w") as f:
            f.write(self.proxy.policy_text + "logins:\n  networks:\n    - {networks: [127.0.0.0/8], login: page}\n"
                    "  ldap: {url: \"ldaps://127.0.0.1:9\", base_dn: \"dc=school,dc=test\"}\n")
        r = subprocess.run([BIN, "explain", "--config", with_logins, "--state-dir", self.state, "--json",
                            "--client", "127.0.0.2", "--user", "ava.b", "--groups", "Pupils", url],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["rule"], f"ban {ban['id']}")
        code, out, err = ctl("hp_dsl", self.sock, "unban", "--user", " ava.b", "--reason", "lift it")
        self.assertEqual(code, 0, out + err)
        self.assertIn(f"ban {ban['id']} lifted", out)

        for user, words in (("ava.c\t", "'user' must not contain control characters (it is one line"),
                            ("   ", "'user' must be a user name, not blank")):
            with self.subTest(user=user):
                code, out, err = ctl("hp_dsl", self.sock, "ban", "--user", user, "--for", "1h", "--reason", "r")
                self.assertEqual(code, 1, out + err)
                self.assertIn(words, err)
        answers = self.raw("hp_dsl",
                           {"verb": "ban", "args": {"user": "pupil9\u0000x", "for": "1h", "reason": "r"}},
                           {"verb": "ban", "args": {"user": "pupil9", "for": "1h", "reason": "r\u0000\u001b[31mRED"}},
                           {"verb": "ban", "args": {"user": "", "for": "1h", "reason": "r"}},
                           {"verb": "ban", "args": {"user": "pupil9", "for": "1h", "reason": "\u00e9" * 2001}},
                           {"verb": "unban", "args": {"user": "  ", "reason": "r"}})
        self.assertEqual([a["code"] for a in answers], ["bad_request"] * 5, answers)
        self.assertIn("'user'", answers[0]["error"])
        self.assertEqual(answers[1]["error"], "'reason' must not contain control characters")
        self.assertEqual(answers[2]["error"], "'user' must be a user name, not blank")
        self.assertEqual(answers[3]["error"], "'reason' is longer than 2000 characters")
        self.assertEqual(answers[4]["error"], "'user' must be a user name, not blank")
        # 2,000 characters of two bytes each are 2,000 characters.
        self.assertTrue(self.raw("hp_dsl", {"verb": "ban", "args": {"user": "pupil9", "for": "1h",
                                                                    "reason": "\u00e9" * 2000}})[0]["ok"])
        self.assertEqual([b["subject"] for b in ctl_json("hp_dsl", self.sock, "bans")["bans"]], ["pupil9"])

    def test_a_request_for_a_blank_user_is_refused(self):
        # F7: it was filed, and its approval said "approved ... for user    ".
        code, out, err = ctl("hp_tech", self.sock, "request", "--url", "http://facebook.test/", "--user", "   ",
                             "--requester", "a", "--reason", "b")
        self.assertEqual(code, 1, out + err)
        self.assertIn("'user' must be a user name, not blank", err)
        answer = self.raw("hp_tech", {"verb": "request", "args": {"url": "http://instagram.test/", "user": "",
                                                                  "requester": "a", "reason": "b"}})[0]
        self.assertEqual((answer["code"], answer["error"]), ("bad_request", "'user' must be a user name, not blank"))
        filed = ctl_json("hp_tech", self.sock, "request", "--url", "http://facebook.test/", "--user", " sam ",
                         "--requester", "a", "--reason", "b")
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(filed["id"]))["scope"]["user"], "sam")

    def test_reports_say_when_the_reports_block_was_removed(self):
        # F9: `reports` still said "blocked by ... (entry N)" of a page open again.
        filed = ctl_json("hp_tech", self.sock, "report", "--url", "http://rep.test/x", "--nature", "violent images",
                         "--reporter", "Mrs B", "--block")
        entry = filed["entry"]
        mine = lambda: [r for r in ctl_json("hp_dsl", self.sock, "reports")["reports"] if r["id"] == filed["id"]][0]
        self.assertIsNone(mine()["action"]["removed"])
        ctl("hp_tech", self.sock, "unblock", str(entry), "--reason", "added by mistake", check=0)
        action = mine()["action"]
        self.assertEqual((action["taken"], action["entry"]), ("blocked", entry))
        self.assertEqual((action["removed"]["by"], action["removed"]["reason"]), ("hp_tech", "added by mistake"))
        code, out, err = ctl("hp_dsl", self.sock, "reports")
        self.assertEqual(code, 0, err)
        row = [line for line in out.splitlines() if "rep.test" in line][0]
        self.assertIn(f"blocked by hp_tech (entry {entry}); block removed by hp_tech at", row)
        self.assertIn("no longer in force", row)

    def test_a_url_with_another_scheme_is_refused_naming_it(self):
        # F10: javascript: and data: were refused with "the URL's port ... is not a number";
        # mailto:a@b.test was filed as b.test, which approve made a domain exception for.
        for url, scheme in (("javascript:alert(1)", "javascript"), ("data:text/html,<b>x</b>", "data"),
                            ("mailto:a@b.test", "mailto")):
            with self.subTest(url=url):
                code, out, err = ctl("hp_tech", self.sock, "request", "--url", url, "--role", "pupils",
                                     "--requester", "a", "--reason", "b")
                self.assertEqual(code, 1, out + err)
                self.assertIn(f"the URL scheme '{scheme}' is not http, https, ws or wss", err)
                code, out, err = ctl("hp_tech", self.sock, "block", "--url", url, "--reason", "r")
                self.assertEqual(code, 1, out + err)
                self.assertIn(f"the URL scheme '{scheme}'", err)
        self.assertTrue(all("b.test" not in r["url"]
                            for r in ctl_json("hp_dsl", self.sock, "list", "--all")["requests"]))


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class RefusalLimitTest(OwnDaemon, unittest.TestCase):
    def test_refused_ban_confirmations_count_towards_the_audit_limit(self):
        # F2: a technician's refused `ban --confirm` was audited every time (72,000 of them in
        # three minutes made `audit` unanswerable); now it shares the 20 a minute of every refusal.
        answers = self.raw("hp_tech", *([{"verb": "approve", "args": {"id": 1, "for": "1h"}}] * 5 +
                                        [{"verb": "ban", "args": {"confirm": i + 1}} for i in range(25)]))
        self.assertTrue(all(a["code"] == "forbidden" for a in answers), answers[:2])
        self.assertEqual([("not audited" in a["error"]) for a in answers], [False] * 20 + [True] * 10)
        entries = [e for e in ctl_json("hp_dsl", self.sock, "audit")["entries"] if e["os_user"] == "hp_tech"]
        self.assertEqual([e["action"] for e in entries], ["approve"] * 5 + ["confirm ban"] * 15)
        self.assertTrue(all(e["outcome"] == "refused" for e in entries))


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class AuditAnswerTest(OwnDaemon, unittest.TestCase):
    def test_audit_answers_the_newest_entries_and_says_how_many_it_left_out(self):
        # F3: pupils' forms made `audit` longer than hallpassctl's 16 MiB; like `list`, it now
        # answers the newest 200 (or --limit) and says how many older ones there are and how
        # to read them (--before, --since).
        answers = self.raw("hp_tech", *[self.request(f"http://a.test/page{i}") for i in range(230)])
        self.assertTrue(all(a["ok"] for a in answers), answers[:2])
        data = ctl_json("hp_dsl", self.sock, "audit")
        entries = data["entries"]
        self.assertEqual(len(entries), 200)
        total = 200 + data["omitted"]
        self.assertGreaterEqual(total, 230)
        ids = [e["id"] for e in entries]
        self.assertEqual(ids, sorted(ids))  # oldest first
        self.assertEqual(entries[-1]["object"], f"request {answers[-1]['data']['id']}")  # the newest

        code, out, err = ctl("hp_dsl", self.sock, "audit")
        self.assertEqual(code, 0, err)
        self.assertIn(f"{total - 200} older audit entries not shown (the newest 200 are): "
                      f"hallpassctl audit --before {ids[0]} for older ones", out)

        older = ctl_json("hp_dsl", self.sock, "audit", "--before", str(ids[0]), "--limit", "5")
        self.assertEqual([e["id"] for e in older["entries"]], list(range(ids[0] - 5, ids[0])))
        self.assertEqual(older["omitted"], total - 205)
        self.assertNotIn("omitted", ctl_json("hp_dsl", self.sock, "audit", "--limit", "1000"))
        self.assertEqual(len(ctl_json("hp_dsl", self.sock, "audit", "--limit", "3")["entries"]), 3)

        for bad in ("0", "1001", "x"):
            with self.subTest(limit=bad):
                self.assertEqual(ctl("hp_dsl", self.sock, "audit", "--limit", bad)[0], 2)
        answers = self.raw("hp_dsl", {"verb": "audit", "args": {"limit": 0}},
                           {"verb": "audit", "args": {"limit": 1001}}, {"verb": "audit", "args": {"before": "x"}})
        self.assertEqual([a["error"] for a in answers], ["'limit' must be a whole number from 1 to 1000"] * 2 +
                         ["'before' must be an audit entry's id, a whole number above 0"])


if __name__ == "__main__":
    unittest.main()
