"""Incident records end to end (the DfE standard's "incident record of action and outcome";
README.md "Incident records"): the real daemon with its admin socket and store, hallpassctl run
as OS users in each admin role (created here; needs root), and `hallpass safeguarding-report`
reading the same store. The DSL opens an incident, records actions and the outcome; the
technician can neither read nor write them, and reads the audit log without their words."""
import json
import os
import subprocess
import unittest

from harness import BIN, Proxy
from exceptions_test import ADMIN, CTL, admin_lines, admin_state_dir, ctl, ctl_json, ensure_users


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class IncidentsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_users()
        cls.state, cls.sock = admin_state_dir()
        cls.proxy = Proxy(extra=ADMIN, args=["--state-dir", cls.state, "--admin-socket", cls.sock])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def test_the_dsl_records_actions_and_the_outcome_and_the_weekly_report_lists_it(self):
        code, out, err = ctl("hp_dsl", self.sock, "incident", "--user", "ava.b", "--what",
                             "INCIDENTWORDS self-harm alert: a blocked site", "--category", "social_media",
                             "--at", "2026-12-01 11:05", check=0)
        self.assertEqual(code, 0, err)
        self.assertIn("opened: record each action with hallpassctl incident", out)
        iid = int(out.split()[1])
        opened = ctl_json("hp_dsl", self.sock, "incident", str(iid))
        self.assertEqual((opened["status"], opened["kind"], opened["subject"], opened["category"], opened["actions"]),
                         ("open", "user", "ava.b", "social_media", []))
        self.assertTrue(opened["happened"].startswith("2026-12-01T11:05:00"), opened["happened"])
        ctl("hp_head", self.sock, "incident", str(iid), "--action", "Spoke to Ava with her form tutor", check=0)
        closed = ctl_json("hp_dsl", self.sock, "incident", str(iid), "--outcome", "Parents told; no further concern")
        self.assertEqual(closed["status"], "closed")
        self.assertEqual([(a["by"], a["action"]) for a in closed["actions"]],
                         [("hp_head", "Spoke to Ava with her form tutor")])
        self.assertEqual((closed["closed"]["by"], closed["closed"]["outcome"]),
                         ("hp_dsl", "Parents told; no further concern"))
        code, _, err = ctl("hp_dsl", self.sock, "incident", str(iid), "--outcome", "again")
        self.assertEqual(code, 1)
        self.assertIn("its outcome stands", err)
        code, _, err = ctl("hp_dsl", self.sock, "incident", str(iid), "--user", "sam")
        self.assertEqual(code, 2)  # written once, at opening: said before anything is sent
        shown = ctl("hp_dsl", self.sock, "incident", str(iid), check=0)[1]
        self.assertIn("Outcome:", shown)
        self.assertIn("Parents told; no further concern", shown)

        still_open = ctl_json("hp_dsl", self.sock, "incident", "--device", "127.0.0.40", "--what",
                              "circumvention alert: VPN")["id"]
        listed = [i["id"] for i in ctl_json("hp_dsl", self.sock, "incidents")["incidents"]]
        self.assertIn(still_open, listed)
        self.assertNotIn(iid, listed)  # closed: only with --all
        every = [i["id"] for i in ctl_json("hp_head", self.sock, "incidents", "--all")["incidents"]]
        self.assertLess(every.index(iid), every.index(still_open))  # oldest first
        self.assertEqual([i["id"] for i in ctl_json("hp_dsl", self.sock, "incidents", "--all", "--user",
                                                    "AVA.B")["incidents"]], [iid])
        self.assertGreaterEqual(ctl_json("hp_dsl", self.sock, "status")["open_incidents"], 1)

        # The weekly report lists the open one and the one closed in its period, from the store.
        log = os.path.join(self.state, "empty.log")
        open(log, "w").close()
        r = subprocess.run([BIN, "safeguarding-report", "--config", self.proxy.config, "--state-dir", self.state,
                            "--log", log, "--since", "1d"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        section = r.stdout.split("## Incident records", 1)[1].split("\n## ", 1)[0]
        # It happened before the report's day: in full, with its year and zone (a time outside
        # the period: outside-in audit of time, 2026-12-07, F4).
        self.assertRegex(section, rf"\| {iid} \| user ava.b \| social media \| Tuesday 1 December 2026, 11:05 GMT \| 1 "
                                  rf"\| .* \| closed ")
        self.assertIn(f"| {still_open} | device 127.0.0.40 | - |", section)
        self.assertIn("**open**", section)
        # The words stay in the store: the report is mailed (alerts.to), the record is the DSL's.
        self.assertNotIn("INCIDENTWORDS", r.stdout)
        self.assertNotIn("Parents told", r.stdout)

    def test_a_technician_may_not_read_or_write_incidents_and_the_audit_withholds_them(self):
        iid = ctl_json("hp_dsl", self.sock, "incident", "--user", "sam.c", "--what", "SECRETWORDS disclosed")["id"]
        for args in (["incident", str(iid)], ["incidents", "--all"],
                     ["incident", "--user", "x", "--what", "y"], ["incident", str(iid), "--action", "z"]):
            code, _, err = ctl("hp_tech", self.sock, *args)
            self.assertEqual(code, 1, args)
            self.assertIn("forbidden", err)
        code, out, err = ctl("hp_tech", self.sock, "audit", "--json", check=0)
        self.assertNotIn("SECRETWORDS", out)
        entries = json.loads(out)["entries"]
        mine = [e for e in entries if e["object"] == f"incident {iid}" and e["outcome"] == "ok"]
        self.assertEqual([(e["action"], e["after"]) for e in mine],
                         [("open incident", "(withheld: for the DSL and the headteacher)")])
        refused = [e for e in entries if e["os_user"] == "hp_tech" and e["outcome"] == "refused"]
        self.assertIn(f"incident {iid}", [e["object"] for e in refused])
        self.assertIn("SECRETWORDS", ctl("hp_dsl", self.sock, "audit", "--json", check=0)[1])

    def test_bad_incidents_are_refused_with_what_to_do(self):
        for args, said in ((["incident", "--user", "ava", "--what", "x", "--category", "nosuch"],
                            "is neither a category of the policy"),
                           (["incident", "--user", "ava", "--what", "x", "--at", "2099-01-01 10:00"], "in the future"),
                           (["incident", "--user", "ava", "--what", "x" * 2001], "longer than 2000"),
                           (["incident", "99999", "--action", "x"], "there is no incident 99999")):
            code, _, err = ctl("hp_dsl", self.sock, *args)
            self.assertEqual(code, 1, args)
            self.assertIn(said, err, args)
        code, _, err = ctl("hp_dsl", self.sock, "incident", "--what", "x")
        self.assertEqual(code, 2)
        self.assertIn("--user NAME or --device ADDRESS", err)
        # Audit of 2026-12-06: text of nothing but invisible spaces was recorded, a C1 control
        # (U+009B, a terminal's CSI) was stored, and a null flag closed the connection unanswered.
        for what, said in (("\u00a0\u3000\u200b", "'what' is blank"), ("a\u009b2Jb", "control characters")):
            code, _, err = ctl("hp_dsl", self.sock, "incident", "--user", "ava", "--what", what)
            self.assertEqual(code, 1, what)
            self.assertIn(said, err)
        answers, _ = admin_lines("hp_dsl", self.sock, [{"verb": "incidents", "args": {"all": None}},
                                                       {"verb": "incident", "args": {"id": 1, "user": None}}])
        self.assertEqual(len(answers), 2)
        self.assertTrue(answers[0]["ok"], answers[0])
        self.assertNotIn("written when an incident is opened", json.dumps(answers[1]))

    def test_words_read_from_standard_input_stay_off_the_command_line(self):
        def ctl_stdin(text, *args):
            return subprocess.run(["runuser", "-u", "hp_dsl", "--", CTL, "--socket", self.sock, *args],
                                  input=text, capture_output=True, text=True, timeout=60)
        r = ctl_stdin("Seen by Mr C at lunch:\nsearching for a way round.\n", "incident", "--user", "ava",
                      "--what", "-", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        opened = json.loads(r.stdout)
        self.assertEqual(opened["what"], "Seen by Mr C at lunch:\nsearching for a way round.")
        r = ctl_stdin("", "incident", str(opened["id"]), "--action", "-")
        self.assertEqual(r.returncode, 2)
        self.assertIn("nothing on standard input", r.stderr)
        r = ctl_stdin("x", "incident", str(opened["id"]), "--action", "-", "--outcome", "-")
        self.assertEqual(r.returncode, 2)
        self.assertIn("only one of", r.stderr)

    def test_a_time_the_clocks_repeat_is_recorded_with_a_warning_naming_the_instant(self):
        code, out, err = ctl("hp_dsl", self.sock, "incident", "--user", "ava", "--what", "alert at the change",
                             "--at", "2026-10-25 01:30")
        self.assertEqual(code, 0, err)
        self.assertIn("happens twice", err)
        iid = int(out.split()[1])
        self.assertEqual(ctl_json("hp_dsl", self.sock, "incident", str(iid))["happened"], "2026-10-25T01:30:00+01:00")


class IncidentTextLengthTest(unittest.TestCase):
    def test_a_text_over_2000_characters_is_refused_before_sending_and_given_back(self):
        # The daemon refused it after it was typed, and the DSL's account was lost (people-side
        # audit, 2026-12-07, M11). hallpassctl checks it first: no socket is needed to see it.
        words = "Spoke with Ava and her mum about the site. " * 50  # 2,150 characters
        r = subprocess.run([CTL, "--socket", "/nonexistent/admin.sock", "incident", "--device", "10.0.0.7",
                            "--what", "-"], input=words, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("2150 characters, more than the 2,000 a record takes: nothing was sent. Split it: "
                      "hallpassctl incident ID --action - adds another entry", r.stderr)
        self.assertEqual(r.stdout, "")  # given back only to a terminal: a script's output may be a log file
        r = subprocess.run([CTL, "--socket", "/nonexistent/admin.sock", "incident", "--device", "10.0.0.7",
                            "--what", "-"], input=words[:1990], capture_output=True, text=True, timeout=30)
        self.assertNotIn("nothing was sent", r.stderr)  # short enough: it goes on to the socket (absent here)


if __name__ == "__main__":
    unittest.main()
