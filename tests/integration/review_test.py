"""Completing a pupil's access request when it is reviewed (issue 10, section 3, the block page):
the block page asks the pupil what they need and why; the technician or the headteacher
completes the form's adult questions ("identified risks and control measures", 000 7.5 and
appendix) with `hallpassctl review`; `approve` of a form without them still succeeds (issue 4's
file-then-approve interface), warns, and the audit log says so.
Real daemon, admin socket, SQLite and OS users (needs root), as exceptions_test.py; and a store
made by the schema before the review columns, opened by the real daemon."""
import json
import os
import shutil
import sqlite3
import subprocess
import time
import unittest

from exception_limits_test import block_page_form, post_form, socket_request
from exceptions_test import ADMIN, admin_state_dir, ASSESSED, DaemonWithAdminSocket, ctl, ctl_json, ensure_users
from harness import BASE_POLICY, BIN, GUEST, PUPIL, SRC, STAFF, Origin, Proxy, curl, free_port, status_of

SCHEMA_1 = os.path.join(SRC, "tests", "store", "schema_1.sql")


def shown_lines(text):
    """`hallpassctl show` output as {label: value}."""
    out = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            out[label] = value.strip()
    return out


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class ReviewTest(DaemonWithAdminSocket, unittest.TestCase):
    def http(self, host, source, path="/small"):
        return curl(self.proxy, f"http://{host}:{self.nginx.port}{path}", source=source)[0]

    def file_without_assessment(self, url):
        return ctl_json("hp_tech", self.sock, "request", "--url", url, "--role", "guests", "--requester", "Mr Smith",
                        "--reason", "Year 6 lesson")["id"]

    def test_a_block_page_request_is_completed_by_review_and_then_approved(self):
        source = "127.0.0.61"  # pupils (the fallback role); its own address, for the form's rate limit
        form = block_page_form(self.proxy, self.nginx.port, "/review", source)
        # The form as the block page sends it. A device that adds the adult answers itself does
        # not make the form look assessed: they are the adult's to give.
        self.assertEqual((form["risks"], form["control_measures"]), ("none", "teacher nearby"))
        self.assertEqual(status_of(post_form(self.proxy, form, source)), 200)
        mine = [r for r in ctl_json("hp_tech", self.sock, "list")["requests"] if r["client"] == source]
        self.assertEqual(len(mine), 1)
        rid = mine[0]["id"]
        self.assertEqual((mine[0]["risks"], mine[0]["control_measures"]), ("", ""))
        self.assertEqual(mine[0]["to_complete"], ["risks", "control_measures"])
        self.assertIsNone(mine[0]["review"])
        code, out, err = ctl("hp_head", self.sock, "list", check=0)
        self.assertRegex(out, r"ID +STATUS +REQUESTER +URL +SCOPE +UNTIL +FORM")
        self.assertRegex(out, rf"\n{rid} +pending +Ava \(Year 6\) .* needs review\n")
        shown = shown_lines(ctl("hp_head", self.sock, "show", str(rid), check=0)[1])
        self.assertEqual(shown["Form"], "to complete: identified risks and control measures (hallpassctl review)")
        self.assertEqual(shown["Completed by"], "not reviewed")

        # A user in no admin role may not complete it. (The DSL may since 2026-12-06: the
        # e-safety officer completes the form's part, 000 7.5 and its appendix.)
        code, out, err = ctl("hp_norole", self.sock, "review", str(rid), "--risks", "x")
        self.assertEqual(code, 1)
        self.assertIn("forbidden", err)

        code, out, err = ctl("hp_tech", self.sock, "review", str(rid), "--risks", "Public comments; adverts",
                             "--control-measures", "On the classroom screen, teacher-led",
                             "--site-content", "The school's own Facebook page",
                             "--note", "Asked by Ava; her teacher supports it", check=0)
        self.assertEqual(out, f"request {rid} completed: identified risks, control measures, site content, note; "
                              "the form is ready for the headteacher\n")
        shown = shown_lines(ctl("hp_dsl", self.sock, "show", str(rid), check=0)[1])
        self.assertEqual(shown["Identified risks"], "Public comments; adverts")
        self.assertEqual(shown["Control measures"], "On the classroom screen, teacher-led")
        self.assertEqual(shown["Form"], "complete")
        self.assertEqual(shown["Completed by"], "hp_tech (technician)")
        self.assertEqual(shown["Site content, reviewer"], "The school's own Facebook page")
        self.assertEqual(shown["Reviewer's note"], "Asked by Ava; her teacher supports it")
        # The pupil's own words are as the pupil wrote them.
        self.assertEqual(shown["Requester"], "Ava (Year 6)")
        self.assertEqual(shown["Reasons for access"], "A school project")
        self.assertEqual(shown["Site content"], "posts")
        code, out, err = ctl("hp_head", self.sock, "list", check=0)
        self.assertRegex(out, rf"\n{rid} +pending +.* complete \(hp_tech\)\n")

        entries = [e for e in ctl_json("hp_dsl", self.sock, "audit")["entries"] if e["object"] == f"request {rid}"]
        self.assertEqual([(e["os_user"], e["action"], e["outcome"]) for e in entries],
                         [("block page", "request", "ok"), ("hp_norole", "review", "refused"),
                          ("hp_tech", "review", "ok")])
        review = entries[-1]
        self.assertEqual(review["admin_role"], "technician")
        self.assertEqual(review["reason"], "completed identified risks, control measures, site content, note")
        self.assertEqual((review["before"]["risks"], review["after"]["risks"]), ("", "Public comments; adverts"))
        self.assertEqual(review["after"]["review"]["by"], "hp_tech")

        # A complete form: approved with no warning, and the audit reason notes nothing.
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "1h", "--scope", "domain",
                             "--reason", "project", check=0)
        try:
            self.assertEqual(err, "")
            self.assertEqual(self.http("facebook.test", source), 200)
            approved = [e for e in ctl_json("hp_dsl", self.sock, "audit")["entries"]
                        if e["object"] == f"request {rid}" and e["action"] == "approve"]
            self.assertEqual([(e["outcome"], e["reason"]) for e in approved], [("ok", "project")])
            # Decided: the form stays as it was when it was decided.
            code, out, err = ctl("hp_tech", self.sock, "review", str(rid), "--note", "afterwards")
            self.assertEqual(code, 1)
            self.assertIn(f"request {rid} is approved, not pending", err)
            self.assertIn("(conflict)", err)
        finally:
            ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

    def test_approve_of_an_incomplete_form_succeeds_warns_and_the_audit_says_so(self):
        # Issue 4's interface, as scripts and acceptance checks use it: file without the adult
        # questions, then approve. It must keep working (exit 0), with a warning on stderr only.
        rid = self.file_without_assessment(f"http://instagram.test:{self.nginx.port}/small")
        self.assertEqual(self.http("instagram.test", GUEST), 403)
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "1h", "--reason", "urgent lesson")
        try:
            self.assertEqual(code, 0, out + err)
            self.assertIn(f"approved request {rid}", out)
            self.assertNotIn("warning", out)
            self.assertEqual(err, f"hallpassctl: warning: request {rid}'s form was approved without its identified "
                                  f"risks and control measures (complete them with hallpassctl review {rid})\n")
            self.assertEqual(self.http("instagram.test", GUEST), 200)
            shown = shown_lines(ctl("hp_dsl", self.sock, "show", str(rid), check=0)[1])
            self.assertEqual(shown["Form"], "decided without identified risks and control measures")
            self.assertEqual(shown["Decision reason"], "urgent lesson")
            ok = [e for e in ctl_json("hp_dsl", self.sock, "audit")["entries"]
                  if e["object"] == f"request {rid}" and e["action"] == "approve"]
            self.assertEqual([(e["outcome"], e["reason"]) for e in ok],
                             [("ok", "urgent lesson (approved without the form's identified risks and control "
                                     "measures)")])
        finally:
            ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

    def test_a_script_on_the_socket_gets_the_warning_and_force_is_no_argument(self):
        # --json keeps stdout the request object; the warning is still on stderr.
        rid = self.file_without_assessment("http://instagram.test/json")
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "1h", "--json", check=0)
        self.assertEqual(json.loads(out)["status"], "approved")
        self.assertIn(f"hallpassctl: warning: request {rid}'s form was approved without", err)
        ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

        # On the socket: "warning" beside "data". "force" is no longer an argument, so it is
        # refused as any argument the verb does not take is, and nothing is approved.
        rid = self.file_without_assessment("http://instagram.test/socket")
        answer = socket_request("hp_head", self.sock,
                                {"verb": "approve", "args": {"id": rid, "for": "1h", "force": "yes"}})
        self.assertFalse(answer["ok"], answer)
        self.assertEqual(answer["code"], "bad_request")
        self.assertIn("'approve' takes no argument \"force\"", answer["error"])
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(rid))["status"], "pending")
        answer = socket_request("hp_head", self.sock, {"verb": "approve", "args": {"id": rid, "for": "1h"}})
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["data"]["status"], "approved")
        self.assertEqual(answer["warning"], f"request {rid}'s form was approved without its identified risks and "
                                            f"control measures (complete them with hallpassctl review {rid})")
        ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

        # A complete form: no warning field at all.
        rid = ctl_json("hp_tech", self.sock, "request", "--url", "http://instagram.test/complete", "--role",
                       "guests", "--requester", "Mr Smith", "--reason", "Year 6 lesson", *ASSESSED)["id"]
        answer = socket_request("hp_head", self.sock, {"verb": "approve", "args": {"id": rid, "for": "1h"}})
        self.assertTrue(answer["ok"], answer)
        self.assertNotIn("warning", answer)
        ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

    def test_review_refuses_unknown_ids_empty_and_over_long_text_and_loses_nothing(self):
        rid = self.file_without_assessment("http://instagram.test/refusals")
        before = ctl_json("hp_dsl", self.sock, "show", str(rid))

        code, out, err = ctl("hp_tech", self.sock, "review", "999999", "--risks", "contact")
        self.assertEqual(code, 1)
        self.assertIn("there is no request 999999 (not_found)", err)

        # hallpassctl refuses what it can before connecting (exit 2) ...
        for argv, words in ((["review", str(rid)], "nothing to complete"),
                            (["review", str(rid), "--risks", ""], "--risks must not be empty"),
                            (["review", "--risks", "x"], "missing the request ID")):
            with self.subTest(argv=argv):
                code, out, err = ctl("hp_tech", self.sock, *argv)
                self.assertEqual(code, 2, out + err)
                self.assertIn(words, err)
        # ... and the daemon refuses the rest, for hallpassctl and scripts alike.
        code, out, err = ctl("hp_tech", self.sock, "review", str(rid), "--risks", "contact",
                             "--control-measures", "   ")
        self.assertEqual(code, 1)
        self.assertIn("'control_measures' must not be empty (bad_request)", err)
        code, out, err = ctl("hp_tech", self.sock, "review", str(rid), "--risks", "r" * 2001)
        self.assertEqual(code, 1)
        self.assertIn("'risks' is 2001 characters long: at most 2000 (bad_request)", err)
        for args, words in (({"id": rid}, "nothing to complete"), ({"id": rid, "risks": ""}, "must not be empty"),
                            ({"id": rid, "risks": 7}, "'risks' must be text"),
                            ({"id": rid, "note": "n" * 2001}, "at most 2000"), ({"risks": "x"}, "'id'")):
            with self.subTest(args=args):
                answer = socket_request("hp_tech", self.sock, {"verb": "review", "args": args})
                self.assertEqual((answer["ok"], answer["code"]), (False, "bad_request"), answer)
                self.assertIn(words, answer["error"])
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", str(rid)), before)

        # 2,000 characters fit, counted as characters: accented letters are two bytes each.
        code, out, err = ctl("hp_head", self.sock, "review", str(rid), "--risks", "é" * 2000, check=0)
        self.assertIn("still to complete: control measures", out)
        after = ctl_json("hp_dsl", self.sock, "show", str(rid))
        self.assertEqual(after["risks"], "é" * 2000)
        self.assertEqual((after["review"]["by"], after["review"]["role"]), ("hp_head", "headteacher"))
        self.assertEqual(after["reasons"], before["reasons"])
        ctl("hp_head", self.sock, "deny", str(rid), "--reason", "test over", check=0)


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class SchemaOneStoreTest(unittest.TestCase):
    """A state directory from before the review columns: the daemon opens it, keeps every row
    and the exceptions and local blocks in force, and its pending requests can be completed."""

    def setUp(self):
        ensure_users()
        self.nginx = Origin()
        self.state, self.sock = admin_state_dir()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        self.nginx.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def make_schema_1_store(self):
        now = int(time.time())
        db = sqlite3.connect(os.path.join(self.state, "hallpass.db"))
        with open(SCHEMA_1) as f:
            db.executescript(f.read())
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("INSERT INTO requests(created_at, url, requester, reasons, site_content, scope_roles, filed_by, "
                   "source, client_address) VALUES(?, 'http://instagram.test/', 'Ben (Year 5)', 'Art homework', "
                   "'pictures', 'pupils', 'block page', 'block page', '10.10.4.21')", (now,))
        db.execute("INSERT INTO requests(created_at, url, requester, reasons, risks, control_measures, scope_roles, "
                   "filed_by, source, decision, decided_by, decided_at, decision_reason) VALUES(?, "
                   "'http://facebook.test/', 'Mr Smith', 'Year 6 lesson', 'contact', 'supervised', 'pupils', "
                   "'ict.tech', 'hallpassctl', 'approved', 'mrs.head', ?, 'lesson')", (now, now))
        db.execute("INSERT INTO exceptions(request_id, kind, host, path, display, valid_from, valid_until) "
                   "VALUES(2, 'domain', 'facebook.test', '/', 'facebook.test', ?, ?)", (now, now + 3600))
        db.execute("INSERT INTO local_entries(block, kind, host, path, display, reason, created_by, created_at) "
                   "VALUES(1, 'url', 'origin.test', '/reported', 'http://origin.test/reported', 'Reported', "
                   "'ict.tech', ?)", (now,))
        db.execute("INSERT INTO audit(at, os_user, admin_role, action, object, reason, outcome) "
                   "VALUES(?, 'mrs.head', 'headteacher', 'approve', 'request 2', 'lesson', 'ok')", (now,))
        db.commit()
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 1)
        db.close()

    def test_the_daemon_opens_it_keeps_its_rows_and_its_requests_can_be_completed(self):
        self.make_schema_1_store()
        self.proxy = Proxy(extra=ADMIN, args=["--state-dir", self.state, "--admin-socket", self.sock])
        # What was in force stays in force.
        self.assertEqual(curl(self.proxy, f"http://facebook.test:{self.nginx.port}/small", source=PUPIL)[0], 200)
        self.assertEqual(curl(self.proxy, f"http://origin.test:{self.nginx.port}/reported", source=PUPIL)[0], 403)
        old = ctl_json("hp_dsl", self.sock, "show", "1")
        self.assertEqual((old["status"], old["requester"], old["reasons"], old["site_content"], old["client"]),
                         ("pending", "Ben (Year 5)", "Art homework", "pictures", "10.10.4.21"))
        self.assertEqual(old["to_complete"], ["risks", "control_measures"])
        self.assertEqual(ctl_json("hp_dsl", self.sock, "show", "2")["status"], "approved")
        self.assertEqual(len(ctl_json("hp_dsl", self.sock, "audit")["entries"]), 1)
        self.assertEqual(len(ctl_json("hp_dsl", self.sock, "blocks")["blocks"]), 1)

        ctl("hp_tech", self.sock, "review", "1", *ASSESSED, check=0)
        # Filed from the device 10.10.4.21 before approvals were narrowed: the default now is
        # that device (scopes_test.py); --who role opens it for every pupil, as before.
        ctl("hp_head", self.sock, "approve", "1", "--for", "1h", "--who", "role", check=0)
        self.assertEqual(curl(self.proxy, f"http://instagram.test:{self.nginx.port}/small", source=PUPIL)[0], 200)
        self.assertEqual(ctl_json("hp_tech", self.sock, "request", "--url", "http://x.test/", "--role", "pupils",
                                  "--requester", "Mr C", "--reason", "r")["id"], 3)
        db = sqlite3.connect(os.path.join(self.state, "hallpass.db"))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 5)
        db.close()

    def test_a_store_from_a_newer_hallpass_stops_the_daemon_with_a_clear_error(self):
        self.make_schema_1_store()
        db = sqlite3.connect(os.path.join(self.state, "hallpass.db"))
        db.execute("PRAGMA user_version = 6")
        db.commit()
        db.close()
        config = os.path.join(self.state, "policy.yaml")
        with open(config, "w") as f:
            f.write(BASE_POLICY.format(pupil=PUPIL, staff=STAFF, guest=GUEST, hosts="  origin.test: 127.0.0.1",
                                       response_timeout="3s", head_timeout="2s", drain="1s", tls_port=8443,
                                       workers=1) + ADMIN)
        r = subprocess.run([BIN, "run", "--config", config, "--listen", f"127.0.0.1:{free_port()}",
                            "--metrics-listen", "off", "--access-log", "off", "--state-dir", self.state,
                            "--admin-socket", self.sock], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("made by a newer hallpass (schema 6", r.stderr)
        self.assertNotIn("serving", r.stderr)
        db = sqlite3.connect(os.path.join(self.state, "hallpass.db"))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 6)  # left as it was
        self.assertEqual(db.execute("SELECT count(*) FROM requests").fetchone()[0], 2)
        db.close()

if __name__ == "__main__":
    unittest.main()
