"""hallpassctl against the documented admin protocol (docs/admin-protocol.md).

A fake daemon in this process listens on a Unix socket in a temporary directory, records every
JSON line it receives and answers with scripted responses. The real daemon's side of the
protocol is tested elsewhere; this checks the client: what each verb sends, what it prints, its
exit codes and its deadlines.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unicodedata
import unittest

BIN = os.environ["HALLPASSCTL_BIN"]

SILENT = object()  # the fake daemon reads the request and never answers

REQUEST_7 = {
    "id": 7, "status": "approved", "created": "2026-11-23T10:58:00+00:00",
    "requester": "Mr Smith", "url": "https://www.facebook.com/",
    "site_content": "The school's own Facebook page",
    "reasons": "Year 6 project on the school's posts",
    "risks": "Comments from the public",
    "control_measures": "Teacher-led, on the classroom screen",
    "scope": {"roles": ["pupils"], "user": None, "client": None},
    "filed_by": "ict.tech", "source": "hallpassctl", "client": None,
    "decision": {"by": "mrs.head", "at": "2026-11-23T11:00:00+00:00", "reason": "supervised lesson",
                 "outcome": "approved"},
    "exception": {"kind": "domain", "value": "www.facebook.com", "from": "2026-11-23T11:00:00+00:00",
                  "until": "2026-11-23T11:05:00+00:00", "revoked": None},
}

# A block-page request completed by the technician, as a daemon with `review` sends it.
REQUEST_9 = {
    "id": 9, "status": "pending", "created": "2026-11-23T11:20:00+00:00",
    "requester": "Ava (Year 6)", "url": "https://www.facebook.com/",
    "site_content": "posts", "reasons": "My project",
    "risks": "Public comments", "control_measures": "Teacher-led",
    "to_complete": [],
    "review": {"by": "ict.tech", "role": "technician", "at": "2026-11-23T11:30:00+00:00",
               "site_content": "The school's own page", "note": "Her teacher agrees"},
    "scope": {"roles": ["pupils"], "user": None, "client": None},
    "filed_by": "block page", "source": "block page", "client": "10.10.4.20",
    "decision": None, "exception": None,
}

REQUEST_8 = {
    "id": 8, "status": "pending", "created": "2026-11-23T11:10:00+00:00",
    "requester": "Ms Jones", "url": "https://en.wikipedia.org/wiki/Instagram",
    "site_content": "", "reasons": "Media studies", "risks": None, "control_measures": None,
    "scope": {"roles": None, "user": None, "client": "10.10.4.0/24"},
    "filed_by": "ict.tech", "source": "block page", "client": "10.10.4.20",
    "decision": None, "exception": None,
}


def ok(data):
    return {"ok": True, "data": data}


class FakeDaemon:
    """A Unix-socket server in a thread. `handler(request)` returns what to answer: a dict (sent
    as one JSON line), bytes (sent raw), a list of bytes (sent in pieces, with pauses), None
    (close without answering) or SILENT (hold the connection open and never answer)."""

    def __init__(self, handler=None, path=None):
        self._tmp = tempfile.TemporaryDirectory()
        self.path = path or os.path.join(self._tmp.name, "admin.socket")
        self.handler = handler or (lambda request: ok({}))
        self.lines = []
        self.requests = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def close(self):
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=5)
        self._listener.close()
        self._tmp.cleanup()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _session(self, conn):
        conn.settimeout(0.05)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self.lines.append(line)
                    request = json.loads(line)
                    self.requests.append(request)
                    reply = self.handler(request)
                    if reply is SILENT:
                        self._stop.wait()
                        return
                    if reply is None:
                        return
                    conn.settimeout(30)  # a slow reader must not cut a long answer short
                    try:
                        if isinstance(reply, list):
                            for piece in reply:
                                conn.sendall(piece)
                                time.sleep(0.05)
                        elif isinstance(reply, bytes):
                            conn.sendall(reply)
                        else:
                            conn.sendall(json.dumps(reply).encode() + b"\n")
                    except OSError:  # the client gave up (an answer over its limit)
                        return
                    conn.settimeout(0.05)


def run(*args, env=None, timeout=30):
    environment = {k: v for k, v in os.environ.items() if k not in ("HALLPASS_SOCKET", "HALLPASSCTL_TIMEOUT")}
    environment["HALLPASSCTL_TIMEOUT"] = "5"  # a bug must not cost the suite 30 s per test
    environment.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=environment)


class DaemonTestCase(unittest.TestCase):
    handler = None

    def setUp(self):
        self.daemon = FakeDaemon(self.handler)

    def tearDown(self):
        self.daemon.close()

    def ctl(self, *args, **kwargs):
        return run("--socket", self.daemon.path, *args, **kwargs)

    def assert_no_connection(self):
        time.sleep(0.2)  # let the accept loop see a connection, had there been one
        self.assertEqual(self.daemon.connections, 0, "hallpassctl connected although the command line was bad")


class ProtocolTest(DaemonTestCase):
    """Each verb sends exactly the documented {"verb", "args"} object, as one line."""

    CASES = [
        (["request", "--url", "https://www.facebook.com/", "--role", "pupils", "--role", "staff, office",
          "--requester", "Mr Smith", "--reason", "Year 6 project", "--site-content", "The school's page",
          "--risks", "Public comments", "--control-measures", "Teacher-led"],
         {"verb": "request", "args": {
             "url": "https://www.facebook.com/", "roles": ["pupils", "staff", "office"], "requester": "Mr Smith",
             "reason": "Year 6 project", "site_content": "The school's page", "risks": "Public comments",
             "control_measures": "Teacher-led"}}),
        (["request", "--url", "https://x.com/school", "--user", "jsmith", "--requester", "Mr Smith",
          "--reason", "r"],
         {"verb": "request", "args": {"url": "https://x.com/school", "user": "jsmith", "requester": "Mr Smith",
                                      "reason": "r"}}),
        (["request", "--url=https://x.com/", "--client", "10.10.4.0/24", "--requester=Ms Jones", "--reason", "r"],
         {"verb": "request", "args": {"url": "https://x.com/", "client": "10.10.4.0/24", "requester": "Ms Jones",
                                      "reason": "r"}}),
        (["approve", "7", "--for", "2h"], {"verb": "approve", "args": {"id": 7, "for": "2h"}}),
        (["approve", "--for", "30s", "12"], {"verb": "approve", "args": {"id": 12, "for": "30s"}}),
        (["approve", "7", "--until", "2026-11-23 15:30", "--scope", "prefix", "--reason", "supervised"],
         {"verb": "approve", "args": {"id": 7, "until": "2026-11-23 15:30", "scope": "prefix",
                                      "reason": "supervised"}}),
        (["extend", "7", "--for", "2w", "--reason", "the project runs on"],
         {"verb": "extend", "args": {"id": 7, "for": "2w", "reason": "the project runs on"}}),
        (["extend", "7", "--until", "2026-11-30 15:30"], {"verb": "extend", "args": {"id": 7, "until": "2026-11-30 15:30"}}),
        (["approve", "7", "--for", "1d", "--scope", "url"],
         {"verb": "approve", "args": {"id": 7, "for": "1d", "scope": "url"}}),
        (["approve", "7", "--for", "1h", "--who", "group:Year 6"],
         {"verb": "approve", "args": {"id": 7, "for": "1h", "who": "group:Year 6"}}),
        (["approve", "7", "--for", "1h", "--who", "device"],
         {"verb": "approve", "args": {"id": 7, "for": "1h", "who": "device"}}),
        (["review", "8", "--risks", "Public comments", "--control-measures", "Teacher-led",
          "--site-content", "The school's page", "--note", "Her teacher agrees"],
         {"verb": "review", "args": {"id": 8, "risks": "Public comments", "control_measures": "Teacher-led",
                                     "site_content": "The school's page", "note": "Her teacher agrees"}}),
        (["review", "--note", "n", "8"], {"verb": "review", "args": {"id": 8, "note": "n"}}),
        (["deny", "7", "--reason", "not needed"], {"verb": "deny", "args": {"id": 7, "reason": "not needed"}}),
        (["revoke", "7", "--reason", "lesson over"], {"verb": "revoke", "args": {"id": 7, "reason": "lesson over"}}),
        (["list"], {"verb": "list", "args": {"filter": "pending"}}),
        (["list", "--pending"], {"verb": "list", "args": {"filter": "pending"}}),
        (["list", "--active"], {"verb": "list", "args": {"filter": "active"}}),
        (["list", "--expired"], {"verb": "list", "args": {"filter": "expired"}}),
        (["list", "--all"], {"verb": "list", "args": {"filter": "all"}}),
        (["show", "7"], {"verb": "show", "args": {"id": 7}}),
        (["report", "--url", "https://bad.example/page", "--nature", "violent images", "--reporter", "Mrs Brown"],
         {"verb": "report", "args": {"url": "https://bad.example/page", "nature": "violent images",
                                     "reporter": "Mrs Brown", "block": False}}),
        (["report", "--url", "https://bad.example/page", "--nature", "n", "--reporter", "Mrs Brown",
          "--individual", "pupil in 6B", "--block"],
         {"verb": "report", "args": {"url": "https://bad.example/page", "nature": "n", "reporter": "Mrs Brown",
                                     "individual": "pupil in 6B", "block": True}}),
        (["reports"], {"verb": "reports", "args": {}}),
        (["blocks"], {"verb": "blocks", "args": {"all": False}}),
        (["blocks", "--all"], {"verb": "blocks", "args": {"all": True}}),
        (["block", "--url", "https://games.example/", "--reason", "distracting"],
         {"verb": "block", "args": {"url": "https://games.example/", "reason": "distracting"}}),
        (["block", "--url", "https://games.example/x", "--scope", "url", "--reason", "r"],
         {"verb": "block", "args": {"url": "https://games.example/x", "scope": "url", "reason": "r"}}),
        (["unblock", "12", "--reason", "mistake"], {"verb": "unblock", "args": {"id": 12, "reason": "mistake"}}),
        (["audit"], {"verb": "audit", "args": {}}),
        (["audit", "--since", "2026-11-23 08:00"], {"verb": "audit", "args": {"since": "2026-11-23 08:00"}}),
        (["audit", "--before", "812", "--limit", "50"], {"verb": "audit", "args": {"before": 812, "limit": 50}}),
        (["reload"], {"verb": "reload", "args": {}}),
        (["status"], {"verb": "status", "args": {}}),
        (["status", "--json"], {"verb": "status", "args": {}}),
        (["ban", "--device", "10.10.4.20", "--for", "1d", "--reason", "VPN app"],
         {"verb": "ban", "args": {"device": "10.10.4.20", "for": "1d", "reason": "VPN app"}}),
        (["ban", "--user", "ava.b", "--for", "45m", "--reason", "proxy site"],
         {"verb": "ban", "args": {"user": "ava.b", "for": "45m", "reason": "proxy site"}}),
        (["ban", "--confirm", "5"], {"verb": "ban", "args": {"confirm": 5}}),
        (["ban", "--confirm", "5", "--reason", "agreed"], {"verb": "ban", "args": {"confirm": 5, "reason": "agreed"}}),
        (["unban", "4", "--reason", "spoke with parents"],
         {"verb": "unban", "args": {"id": 4, "reason": "spoke with parents"}}),
        (["unban", "--device", "10.10.4.20", "--reason", "r"],
         {"verb": "unban", "args": {"device": "10.10.4.20", "reason": "r"}}),
        # A device by DHCP name (case-folded) or hardware address (lower case, colons).
        (["ban", "--device", "Pupil-Laptop-07", "--for", "1d", "--reason", "r"],
         {"verb": "ban", "args": {"device": "pupil-laptop-07", "for": "1d", "reason": "r"}}),
        (["ban", "--device", "3C-22-FB-12-9A-01", "--for", "1d", "--reason", "r"],
         {"verb": "ban", "args": {"device": "3c:22:fb:12:9a:01", "for": "1d", "reason": "r"}}),
        (["unban", "--device", "Tablet-31", "--reason", "r"],
         {"verb": "unban", "args": {"device": "tablet-31", "reason": "r"}}),
        (["bans"], {"verb": "bans", "args": {"all": False}}),
        (["bans", "--all"], {"verb": "bans", "args": {"all": True}}),
    ]

    BAN_USAGE_ERRORS = [
        (["ban", "--for", "1d", "--reason", "r"], "say who is banned"),
        (["ban", "--user", "a", "--device", "10.0.0.1", "--for", "1d", "--reason", "r"], "not both"),
        (["ban", "--device", "10.0.0.1", "--reason", "r"], "missing --for"),
        (["ban", "--device", "10.0.0.1", "--for", "soon", "--reason", "r"], "is not a duration"),
        (["ban", "--device", "10.0.0.1", "--for", "0m", "--reason", "r"], "'0m' is zero: a ban lasts from 1m to 366d"),
        (["ban", "--confirm", "x"], "must be a whole number"),
        (["ban", "--confirm", "5", "--user", "a"], "as it was proposed"),
        (["unban", "--reason", "r"], "say which ban"),
        (["unban", "4", "--user", "a", "--reason", "r"], "only one of"),
        (["unban", "4"], "missing --reason"),
        (["ban", "--device", "pupil laptop", "--for", "1d", "--reason", "r"], "is not a device"),
        (["ban", "--device", "3c:22:fb:12:9a:0g", "--for", "1d", "--reason", "r"], "is not a hardware address"),
        (["extend", "7"], "say how long: --for DURATION"),
        (["extend", "7", "--for", "1h", "--until", "2026-11-30 15:30"], "give --for or --until, not both"),
        (["extend", "7", "--for", "soon"], "is not a duration"),
        (["extend", "--for", "1h"], "request ID"),
        (["approve", "7", "--for", "1h", "--who", "everyone"], "--who must be user, group:NAME"),
        (["approve", "7", "--for", "1h", "--who", "group:"], "--who must be user, group:NAME"),
    ]

    def test_ban_usage_errors_send_nothing(self):
        for argv, words in self.BAN_USAGE_ERRORS:
            with self.subTest(argv=argv):
                before = len(self.daemon.requests)
                r = self.ctl(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(words, r.stderr)
                self.assertEqual(len(self.daemon.requests), before)

    def test_arguments_that_are_not_utf8_are_refused_by_name(self):
        # Before, the bytes went to the daemon, which could only say "not a JSON object".
        for argv, words in ((["request", "--url", "http://x.test/", "--role", "pupils", "--requester", b"Mr \xff",
                              "--reason", "r"], "--requester is not UTF-8 text"),
                            (["deny", b"7\xfe", "--reason", "r"], "an argument is not UTF-8 text")):
            with self.subTest(argv=argv):
                r = self.ctl(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(words, r.stderr)
        self.assert_no_connection()

    def test_each_verb_sends_the_documented_json(self):
        for argv, expected in self.CASES:
            with self.subTest(argv=argv):
                before = len(self.daemon.requests)
                r = self.ctl(*argv)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(self.daemon.requests), before + 1, "exactly one request per run")
                self.assertEqual(self.daemon.requests[-1], expected)
                self.assertNotIn(b"\n", self.daemon.lines[-1])
        self.assertEqual(self.daemon.connections, len(self.CASES))

    def test_ids_are_json_numbers(self):
        self.ctl("show", "7")
        self.assertIs(type(self.daemon.requests[-1]["args"]["id"]), int)
        self.assertIn(b'"id":7', self.daemon.lines[-1])

    def test_global_flags_go_anywhere(self):
        r = run("status", "--json", "--socket=" + self.daemon.path)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("--json", "--socket", self.daemon.path, "show", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.daemon.requests[-1], {"verb": "show", "args": {"id": 3}})

    def test_socket_from_the_environment_and_flag_over_it(self):
        r = run("status", env={"HALLPASS_SOCKET": self.daemon.path})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.daemon.connections, 1)
        r = run("--socket", self.daemon.path, "status", env={"HALLPASS_SOCKET": "/nonexistent/admin.socket"})
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_text_is_sent_as_utf8_with_escapes(self):
        reason = 'Café "quoted" \\ back\tslash'
        r = self.ctl("deny", "7", "--reason", reason)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.daemon.requests[-1]["args"]["reason"], reason)


def scripted(answers):
    """A handler answering by verb from `answers` (a dict of verb -> response)."""
    return lambda request: answers[request["verb"]]


class OutputTest(DaemonTestCase):
    ANSWERS = {
        "request": ok({"id": 7, "status": "pending"}),
        "approve": ok(REQUEST_7),
        "deny": ok(dict(REQUEST_8, status="denied",
                        decision={"by": "mrs.head", "at": "2026-11-23T11:20:00+00:00", "reason": "no"})),
        "revoke": ok(dict(REQUEST_7, status="revoked")),
        "extend": ok(REQUEST_7),
        "list": ok({"requests": [REQUEST_7, REQUEST_8]}),
        "show": ok(REQUEST_7),
        "report": ok({"id": 3, "blocked": True, "entry": 12}),
        "reports": ok({"reports": [
            {"id": 3, "created": "2026-11-23T09:00:00+00:00", "reporter": "Mrs Brown", "individual": None,
             "url": "https://bad.example/page", "nature": "violent images", "filed_by": "ict.tech",
             "action": {"taken": "blocked", "by": "ict.tech", "at": "2026-11-23T09:01:00+00:00", "entry": 12}},
            {"id": 4, "created": "2026-11-23T09:30:00+00:00", "reporter": "Mr Green", "individual": "a pupil in 6B",
             "url": "https://odd.example/", "nature": "unkind comments", "filed_by": "ict.tech", "action": None}]}),
        "block": ok({"id": 13, "value": "games.example", "kind": "domain"}),
        "unblock": ok({"id": 13}),
        "blocks": ok({"blocks": [
            {"id": 12, "kind": "url", "value": "https://bad.example/page", "reason": "Reported as inappropriate",
             "created_by": "ict.tech", "created": "2026-11-23T09:01:00+00:00", "report": 3, "removed": None},
            {"id": 13, "kind": "domain", "value": "games.example", "reason": "distracting", "created_by": "ict.tech",
             "created": "2026-11-23T10:00:00+00:00", "report": None,
             "removed": {"by": "mrs.head", "at": "2026-11-23T11:00:00+00:00", "reason": "mistake"}}]}),
        "audit": ok({"entries": [
            {"id": 1, "at": "2026-11-23T11:00:00+00:00", "os_user": "ict.tech", "admin_role": "technician",
             "action": "approve", "object": "request 7", "before": None, "after": None,
             "reason": "only the headteacher may approve", "outcome": "refused"},
            {"id": 2, "at": "2026-11-23T11:01:00+00:00", "os_user": "mrs.head", "admin_role": "headteacher",
             "action": "approve", "object": "request 7", "before": {"status": "pending"},
             "after": {"status": "approved"}, "reason": "supervised lesson", "outcome": "ok"}]}),
        "reload": ok({"generation": 4}),
        "status": ok({"generation": 3, "uptime_seconds": 93784, "active_exceptions": 1, "pending_requests": 2,
                      "version": "0.1.0"}),
    }
    handler = staticmethod(scripted(ANSWERS))

    def human(self, *argv):
        r = self.ctl(*argv)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    def test_json_prints_the_data_object_on_one_line(self):
        for verb, argv in [("request", ["request", "--url", "u", "--role", "pupils", "--requester", "r",
                                        "--reason", "x"]),
                           ("approve", ["approve", "7", "--for", "5m"]), ("list", ["list", "--all"]),
                           ("status", ["status"]), ("audit", ["audit"])]:
            with self.subTest(verb=verb):
                r = self.ctl(*argv, "--json")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.endswith("\n"))
                self.assertEqual(r.stdout.count("\n"), 1)
                self.assertEqual(json.loads(r.stdout), self.ANSWERS[verb]["data"])
        r = self.ctl("request", "--url", "u", "--role", "pupils", "--requester", "r", "--reason", "x", "--json")
        self.assertEqual(json.loads(r.stdout)["id"], 7)

    def test_request_prints_the_id(self):
        out = self.human("request", "--url", "https://www.facebook.com/", "--role", "pupils", "--requester", "Mr Smith",
                         "--reason", "project")
        self.assertEqual(out, "request 7 filed: pending approval by the headteacher\n")

    def test_approve_says_what_for_whom_until_when(self):
        out = self.human("approve", "7", "--for", "5m")
        self.assertEqual(out, "approved request 7: www.facebook.com (domain) for pupils until Mon 23 Nov 2026 11:05 GMT\n")

    def test_extend_says_until_when_it_is_open(self):
        out = self.human("extend", "7", "--for", "2w")
        self.assertEqual(out, "extended request 7: www.facebook.com (domain) for pupils is open until "
                              "Mon 23 Nov 2026 11:05 GMT\n")

    def test_deny_and_revoke(self):
        out = self.human("deny", "8", "--reason", "no")
        self.assertIn("denied request 8", out)
        self.assertIn("https://en.wikipedia.org/wiki/Instagram", out)
        self.assertIn("client 10.10.4.0/24", out)
        out = self.human("revoke", "7", "--reason", "lesson over")
        self.assertIn("revoked request 7", out)
        self.assertIn("www.facebook.com (domain)", out)
        self.assertIn("blocked again", out)

    def test_list_is_an_aligned_table(self):
        out = self.human("list", "--all")
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        header = lines[0]
        for column in ("ID", "STATUS", "REQUESTER", "URL", "SCOPE", "UNTIL"):
            self.assertIn(column, header)
        for column in ("STATUS", "REQUESTER", "URL", "SCOPE", "UNTIL"):
            at = header.index(column)
            for line in lines[1:]:
                self.assertNotEqual(line[at], " ", f"{column} not aligned in {line!r}")
                self.assertEqual(line[at - 1], " ", f"{column} not aligned in {line!r}")
        self.assertIn("approved", lines[1])
        self.assertIn("Mr Smith", lines[1])
        self.assertIn("https://www.facebook.com/", lines[1])
        self.assertIn("pupils (domain)", lines[1])
        self.assertIn("Mon 23 Nov 2026 11:05 GMT", lines[1])
        self.assertIn("pending", lines[2])
        self.assertIn("client 10.10.4.0/24", lines[2])

    def test_list_says_whether_the_form_is_complete_and_who_completed_it(self):
        incomplete = dict(REQUEST_9, id=10, risks="", control_measures="", to_complete=["risks", "control_measures"],
                          review=None)
        decided = dict(incomplete, id=11, status="denied")
        filed_complete = dict(REQUEST_9, id=12, review=None, filed_by="ict.tech", source="hallpassctl")
        self.daemon.handler = lambda request: ok({"requests": [REQUEST_9, incomplete, decided, filed_complete,
                                                               REQUEST_8]})
        lines = self.human("list", "--all").splitlines()
        self.assertRegex(lines[0], r"UNTIL +FORM$")
        self.assertTrue(lines[1].endswith(" complete (ict.tech)"), lines[1])
        self.assertTrue(lines[2].endswith(" needs review"), lines[2])
        self.assertTrue(lines[3].endswith(" incomplete"), lines[3])
        self.assertTrue(lines[4].endswith(" complete (ict.tech)"), lines[4])
        self.assertTrue(lines[5].endswith(" -"), lines[5])  # a daemon that does not say

    def test_review_says_what_was_completed_and_what_is_left(self):
        self.daemon.handler = lambda request: ok(REQUEST_9)
        self.assertEqual(self.human("review", "9", "--risks", "r", "--control-measures", "c"),
                         "request 9 completed: identified risks, control measures; the form is ready for the "
                         "headteacher\n")
        self.daemon.handler = lambda request: ok(dict(REQUEST_9, to_complete=["control_measures"]))
        self.assertEqual(self.human("review", "9", "--risks", "r"),
                         "request 9 completed: identified risks; still to complete: control measures\n")

    def test_show_keeps_a_pupils_lines_inside_their_field(self):
        # A form's reasons with a line that reads as a field ("Status: approved") stay marked as
        # part of the reasons, and a very long text is cut with a pointer to --json (audit J).
        reasons = "project\nStatus: approved\nDecision: approved by hp_head\n" + "x\n" * 40
        self.daemon.handler = lambda request: ok(dict(REQUEST_9, reasons=reasons))
        out = self.human("show", "9")
        lines = out.splitlines()
        self.assertEqual([l for l in lines if l.lstrip().startswith("Status:")], [l for l in lines if l.startswith("Status:")])
        self.assertTrue(any(l.endswith("| Status: approved") for l in lines), out)
        self.assertIn("| (24 more lines: --json shows them)", out)
        self.assertLess(len(lines), 60)

    def test_show_says_who_completed_the_form(self):
        self.daemon.handler = lambda request: ok(REQUEST_9)
        out = self.human("show", "9")
        for label, value in [("Form", "complete"), ("Completed by", "ict.tech (technician)"),
                             ("Completed at", "Mon 23 Nov 2026 11:30 GMT"),
                             ("Site content, reviewer", "The school's own page"),
                             ("Reviewer's note", "Her teacher agrees"), ("Site content", "posts"),
                             ("Reasons for access", "My project")]:
            matching = [l for l in out.splitlines() if l.startswith(label + ":")]
            self.assertEqual(len(matching), 1, f"{label} in {out}")
            self.assertTrue(matching[0].endswith(value), matching[0])
        self.assertNotIn("to_complete", out)
        self.assertNotIn("review:", out)
        self.daemon.handler = lambda request: ok(dict(REQUEST_9, risks="", to_complete=["risks"], review=None))
        out = self.human("show", "9")
        self.assertRegex(out, r"\nForm: +to complete: identified risks \(hallpassctl review\)\n")
        self.assertRegex(out, r"\nCompleted by: +not reviewed\n")
        self.daemon.handler = lambda request: ok(dict(REQUEST_9, status="approved", control_measures="",
                                                      to_complete=["control_measures"]))
        self.assertRegex(self.human("show", "9"), r"\nForm: +decided without control measures\n")

    def test_empty_list(self):
        self.daemon.handler = lambda request: ok({"requests": []})
        self.assertEqual(self.human("list"), "no pending requests\n")

    def test_show_labels_every_field(self):
        out = self.human("show", "7")
        for label, value in [("Request", "7"), ("Status", "approved"), ("Created", "Mon 23 Nov 2026 10:58 GMT"),
                             ("Requester", "Mr Smith"), ("URL", "https://www.facebook.com/"),
                             ("Site content", "The school's own Facebook page"),
                             ("Reasons for access", "Year 6 project on the school's posts"),
                             ("Identified risks", "Comments from the public"),
                             ("Control measures", "Teacher-led, on the classroom screen"), ("For", "pupils"),
                             ("Filed by", "ict.tech"), ("Source", "hallpassctl"), ("Decision", "approved"),
                             ("Decided by", "mrs.head"),
                             ("Decided at", "Mon 23 Nov 2026 11:00 GMT"), ("Decision reason", "supervised lesson"),
                             ("Exception", "www.facebook.com (domain)"), ("From", "Mon 23 Nov 2026 11:00 GMT"),
                             ("Until", "Mon 23 Nov 2026 11:05 GMT")]:
            matching = [l for l in out.splitlines() if l.startswith(label + ":")]
            self.assertEqual(len(matching), 1, f"{label} in {out}")
            self.assertTrue(matching[0].endswith(value), matching[0])
        values_start = {l.index(":") + 1 + len(l[l.index(":") + 1:]) - len(l[l.index(":") + 1:].lstrip())
                        for l in out.splitlines()}
        self.assertEqual(len(values_start), 1, "values are aligned")

    def test_show_prints_fields_it_does_not_know(self):
        self.daemon.handler = lambda request: ok(dict(REQUEST_7, term="autumn 2026"))
        self.assertRegex(self.human("show", "7"), r"\nterm:\s+autumn 2026\n")

    def test_show_pending_request_without_decision(self):
        self.daemon.handler = lambda request: ok(REQUEST_8)
        out = self.human("show", "8")
        self.assertIn("Decision:", out)
        self.assertIn("none yet", out)
        self.assertIn("block page", out)
        self.assertIn("10.10.4.20", out)

    def test_report_block_says_it_is_blocked(self):
        out = self.human("report", "--url", "https://bad.example/page", "--nature", "violent images",
                         "--reporter", "Mrs Brown", "--block")
        self.assertIn("report 3 filed", out)
        self.assertIn("blocked for everyone", out)
        self.assertIn("12", out)

    def test_reports_block_unblock_reload(self):
        lines = self.human("reports").splitlines()
        self.assertEqual(len(lines), 3)
        for column in ("ID", "DATE", "REPORTER", "INDIVIDUAL", "URL", "NATURE", "ACTION"):
            self.assertIn(column, lines[0])
        for fact in ("Mrs Brown", "violent images", "https://bad.example/page", "blocked by ict.tech (entry 12)"):
            self.assertIn(fact, lines[1])
        for fact in ("Mr Green", "a pupil in 6B", "unkind comments"):
            self.assertIn(fact, lines[2])
        out = self.human("block", "--url", "https://games.example/", "--reason", "distracting")
        self.assertEqual(out, "local block entry 13 added: games.example (domain) is blocked for everyone\n")
        self.assertIn("13 removed", self.human("unblock", "13", "--reason", "r"))
        self.assertEqual(self.human("reload"), "policy reloaded: generation 4\n")

    def test_blocks_is_a_table(self):
        lines = self.human("blocks").splitlines()
        self.assertEqual(len(lines), 3)
        for column in ("ID", "CREATED", "BY", "VALUE", "KIND", "REASON"):
            self.assertIn(column, lines[0])
        self.assertNotIn("REMOVED", lines[0])
        for fact in ("12", "ict.tech", "https://bad.example/page", "url", "Reported as inappropriate"):
            self.assertIn(fact, lines[1])
        lines = self.human("blocks", "--all").splitlines()
        self.assertIn("REMOVED", lines[0])
        self.assertIn("Mon 23 Nov 2026 11:00 GMT by mrs.head", lines[2])
        self.daemon.handler = lambda request: ok({"blocks": []})
        self.assertEqual(self.human("blocks"), "no local block entries in force\n")

    def test_audit_is_a_table(self):
        out = self.human("audit", "--since", "2026-11-23 08:00")
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        for column in ("TIME", "OS USER", "ROLE", "ACTION", "OBJECT", "OUTCOME", "REASON"):
            self.assertIn(column, lines[0])
        self.assertIn("ict.tech", lines[1])
        self.assertIn("technician", lines[1])
        self.assertIn("refused", lines[1])
        self.assertIn("only the headteacher may approve", lines[1])
        self.assertIn("mrs.head", lines[2])
        self.assertIn("headteacher", lines[2])
        self.assertIn("request 7", lines[2])
        at = lines[0].index("OUTCOME")
        self.assertTrue(lines[1][at:].startswith("refused"))
        self.assertTrue(lines[2][at:].startswith("ok"))

    def test_audit_says_how_many_older_entries_it_left_out_and_how_to_read_them(self):
        # The daemon answers the newest entries (admin audit, 2026-12-05, F3).
        answer = dict(self.ANSWERS["audit"]["data"], omitted=2350)
        self.daemon.handler = lambda request: ok(answer)
        lines = self.human("audit").splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[3], '2350 older audit entries not shown (the newest 2 are): hallpassctl audit '
                                   '--before 1 for older ones, --since "YYYY-MM-DD HH:MM" to narrow, --limit N '
                                   '(at most 1000) for more')

    def test_times_are_shown_in_words_with_their_zone(self):
        # The daemon's school-local ISO 8601 times become "Mon 23 Nov 2026 11:05 GMT" in every
        # human table and line; --json keeps them (test_json_prints_the_data_object_on_one_line).
        report = dict(self.ANSWERS["reports"]["data"]["reports"][0])
        for at, shown in (("2026-07-04T09:05:00+01:00", "Sat 4 Jul 2026 09:05 BST"),
                          ("2026-12-31T23:59:59+00:00", "Thu 31 Dec 2026 23:59 GMT"),
                          ("2026-11-23T10:00:00+05:30", "Mon 23 Nov 2026 10:00 UTC+05:30"),
                          ("2026-02-30T10:00:00+00:00", "2026-02-30T10:00:00+00:00"),  # no such day: as sent
                          ("2026-11-23 10:00", "2026-11-23 10:00")):
            with self.subTest(at=at):
                report["created"] = at
                self.daemon.handler = lambda request: ok({"reports": [report]})
                lines = self.human("reports").splitlines()
                self.assertIn(f"3   {shown}  Mrs Brown", lines[1])

    def test_reports_say_a_removed_block_is_no_longer_in_force(self):
        # `reports` said "blocked" of a page open again (admin audit, 2026-12-05, F9).
        report = dict(self.ANSWERS["reports"]["data"]["reports"][0])
        report["action"] = dict(report["action"], removed={"by": "mrs.head", "at": "2026-11-23T10:00:00+00:00",
                                                           "reason": "mistake"})
        self.daemon.handler = lambda request: ok({"reports": [report]})
        lines = self.human("reports").splitlines()
        self.assertIn("blocked by ict.tech (entry 12); block removed by mrs.head at Mon 23 Nov 2026 10:00 GMT, "
                      "no longer in force", lines[1])

    def test_status_is_labelled_lines(self):
        out = self.human("status")
        self.assertRegex(out, r"Version:\s+0\.1\.0")
        self.assertRegex(out, r"Policy generation:\s+3")
        self.assertRegex(out, r"Uptime:\s+1d 2h 3m 4s")
        self.assertRegex(out, r"Active exceptions:\s+1")
        self.assertRegex(out, r"Pending requests:\s+2")

    def test_text_from_the_daemon_cannot_drive_the_terminal(self):
        evil = dict(REQUEST_8, requester="Mr \x1b[2J\x1b[31mSmith", reasons="line one\nline two\u202e")
        self.daemon.handler = lambda request: ok({"requests": [evil]}) if request["verb"] == "list" else ok(evil)
        for argv in (["list"], ["show", "8"]):
            out = self.human(*argv)
            self.assertNotIn("\x1b", out)
            self.assertNotIn("\u202e", out)
            self.assertIn("\\x1b[2J", out)
        self.assertIn("line two\\u202e", self.human("show", "8"))

    def test_invisible_and_direction_marks_are_shown_as_escapes(self):
        # Zero-width and direction marks, separators, a BOM, a soft hyphen and tag characters
        # change how a line reads without showing themselves.
        hidden = ["\u200b", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029", "\ufeff", "\u00ad", "\U000e0041"]
        evil = dict(REQUEST_8, reasons="a" + "b".join(hidden) + "c")
        self.daemon.handler = lambda request: ok({"requests": [evil]}) if request["verb"] == "list" else ok(evil)
        out = self.human("show", "8")
        for ch in hidden:
            self.assertNotIn(ch, out)
        self.assertIn("\\u200e", out)
        self.assertIn("b\\U000e0041c", out)

    def test_columns_are_aligned_by_what_a_terminal_shows(self):
        # Wide characters take two columns, a combining accent none: counted in code points the
        # URL column would start at a different place on each of these lines.
        names = ["Mr \u65e5\u672c\u8a9e", "Zoe\u0308 Smith", "Ava \U0001F600", "Plain name"]
        rows = [dict(REQUEST_8, id=i + 1, requester=n) for i, n in enumerate(names)]
        self.daemon.handler = lambda request: ok({"requests": rows})
        out = self.human("list", "--all")
        lines = out.splitlines()
        self.assertEqual(len(lines), 1 + len(names), out)

        def columns(text):
            return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
                       for ch in text)

        starts = {columns(line[:line.index("https://")]) for line in lines[1:]}
        self.assertEqual(len(starts), 1, out)
        self.assertEqual(columns(lines[0][:lines[0].index("URL")]), starts.pop(), out)

    def test_large_answer(self):
        many = [dict(REQUEST_8, id=i, reasons="x" * 2000) for i in range(1, 2001)]  # about 4.5 MiB
        self.daemon.handler = lambda request: ok({"requests": many})
        r = self.ctl("list", "--all", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["requests"]), 2000)
        r = self.ctl("list", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2001)

    def test_answer_arriving_in_pieces(self):
        line = json.dumps(ok({"id": 7, "status": "pending"})).encode() + b"\n"
        self.daemon.handler = lambda request: [line[:5], line[5:20], line[20:]]
        r = self.ctl("request", "--url", "u", "--user", "a", "--requester", "r", "--reason", "x", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"id": 7, "status": "pending"})


class WarningTest(DaemonTestCase):
    """A success that carries a warning (approve of an incomplete form): exit 0, the usual
    output on stdout (human or --json), the warning on stderr."""
    WARNING = ("request 7's form was approved without its identified risks and control measures "
               "(complete them with hallpassctl review 7)")
    handler = staticmethod(lambda request: dict(ok(REQUEST_7), warning=WarningTest.WARNING))

    def test_the_warning_goes_to_stderr_and_the_exit_status_stays_0(self):
        r = self.ctl("approve", "7", "--for", "5m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout,
                         "approved request 7: www.facebook.com (domain) for pupils until Mon 23 Nov 2026 11:05 GMT\n")
        self.assertEqual(r.stderr, f"hallpassctl: warning: {self.WARNING}\n")
        r = self.ctl("approve", "7", "--for", "5m", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), REQUEST_7)
        self.assertEqual(r.stderr, f"hallpassctl: warning: {self.WARNING}\n")


class RefusalTest(DaemonTestCase):
    def test_refusal_exits_1_with_the_error_and_code(self):
        self.daemon.handler = lambda request: {"ok": False, "error": "only the headteacher may approve requests",
                                               "code": "forbidden"}
        for extra in ([], ["--json"]):
            r = self.ctl("approve", "7", "--for", "2h", *extra)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, "")
            self.assertIn("hallpassctl: only the headteacher may approve requests", r.stderr)
            self.assertIn("forbidden", r.stderr)

    def test_not_found(self):
        self.daemon.handler = lambda request: {"ok": False, "error": "no request 99", "code": "not_found"}
        r = self.ctl("show", "99")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no request 99", r.stderr)
        self.assertIn("not_found", r.stderr)

    def test_reload_errors_are_all_printed(self):
        self.daemon.handler = lambda request: {
            "ok": False, "code": "bad_request",
            "error": "the policy has 2 errors; the running policy stays\n"
                     "/etc/hallpass/school.yaml:9:38: no category 'socal_media'\n"
                     "/etc/hallpass/school.yaml:10:18: action must be 'allow' or 'block'"}
        r = self.ctl("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad_request", r.stderr)
        self.assertIn("school.yaml:9:38: no category 'socal_media'", r.stderr)
        self.assertIn("school.yaml:10:18: action must be", r.stderr)

    def test_a_refusal_whose_first_line_introduces_the_rest_keeps_its_colon_last(self):
        # As the daemon says a failed reload (admin_server.cpp): it read "generation 2: (bad_request)".
        self.daemon.handler = lambda request: {
            "ok": False, "code": "bad_request",
            "error": "the policy was not reloaded; still serving generation 2:\n"
                     "/etc/hallpass/school.yaml:9:38: no category 'socal_media'"}
        r = self.ctl("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("hallpassctl: the policy was not reloaded; still serving generation 2 (bad_request):\n"
                      "/etc/hallpass/school.yaml:9:38: no category 'socal_media'", r.stderr)

    def test_reload_warnings_and_an_unaudited_reload_are_printed(self):
        self.daemon.handler = lambda request: {"ok": True, "data": {
            "generation": 5,
            "warnings": "/etc/hallpass/lists/local.txt:3:1: skipped: 'not a domain!'\n"
                        "/etc/hallpass/school.yaml:12:5: category 'local': list.txt has no entries (empty list file)\n",
            "audit_error": "database or disk is full"}}
        r = self.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "policy reloaded: generation 5",
            "warning: /etc/hallpass/lists/local.txt:3:1: skipped: 'not a domain!'",
            "warning: /etc/hallpass/school.yaml:12:5: category 'local': list.txt has no entries (empty list file)",
            "warning: the reload is not in the audit log (database or disk is full)"])

    def test_broken_answers_exit_1(self):
        for reply in (b"this is not json\n", b"[1,2]\n", b'{"data":{}}\n', None):
            with self.subTest(reply=reply):
                self.daemon.handler = lambda request, reply=reply: reply
                r = self.ctl("status")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr.startswith("hallpassctl: "), r.stderr)
                self.assertEqual(r.stdout, "")

    def test_answer_over_the_limit_exits_1(self):
        self.daemon.handler = lambda request: b'{"ok":true,"data":{"x":"' + b"x" * (17 * 1024 * 1024)
        r = self.ctl("status", timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("longer than", r.stderr)


class UsageTest(DaemonTestCase):
    BAD = [
        (["approve", "7", "--for", "90"], "not a duration"),
        (["approve", "7", "--for", "0h"], "--for 0h is zero: an exception must last at least 1s"),
        (["approve", "7", "--for", "0s"], "is zero"),
        (["approve", "7", "--for", "30m1h"], "not a duration"),  # units largest first (1h30m is one)
        (["approve", "7", "--for", "2 hours"], "not a duration"),
        (["approve", "7", "--for", "-2h"], "--for -2h is negative"),
        (["blocks", "--all=yes"], "takes no value"),
        (["approve", "7"], "--for DURATION"),
        (["approve", "7", "--for", "2h", "--until", "2026-11-23 15:30"], "not both"),
        (["approve", "--for", "2h"], "missing the request ID"),
        (["approve", "seven", "--for", "2h"], "whole number"),
        (["approve", "7", "8", "--for", "2h"], "unexpected argument '8'"),
        (["approve", "7", "--until", "2026-11-23T15:30"], "YYYY-MM-DD HH:MM"),
        (["approve", "7", "--until", "2026-02-30 10:00"], "is not a date and time that exists: check the month (01 to 12), the day of the month"),
        (["approve", "7", "--until", "2027-02-29 10:00"], "is not a date and time that exists"),
        (["approve", "7", "--until", "2028-02-29 24:00"], "and the time (00:00 to 23:59)"),
        (["approve", "7", "--until", "2026-1--23 15:30"], "YYYY-MM-DD HH:MM"),
        (["approve", "7", "--for", "2h", "--scope", "site"], "url, prefix or domain"),
        (["approve", "7", "--fro", "2h"], "did you mean '--for'"),
        (["request", "--url", "u", "--role", "pupils", "--reason", "x"], "missing --requester"),
        (["request", "--role", "pupils"], "missing --url, --requester and --reason"),
        (["request", "--url", "u", "--requester", "r", "--reason", "x"], "--role ROLE, --user NAME or --client"),
        (["request", "--url", "u", "--role", "pupils", "--user", "j", "--requester", "r", "--reason", "x"],
         "only one of"),
        (["request", "--url", "u", "--role", "pupils,,staff", "--requester", "r", "--reason", "x"], "empty role"),
        (["request", "--url", "u", "--url", "v", "--role", "p", "--requester", "r", "--reason", "x"], "given twice"),
        (["request", "--url", "", "--role", "p", "--requester", "r", "--reason", "x"], "must not be empty"),
        (["review", "8"], "nothing to complete: give --risks, --control-measures, --site-content or --note"),
        (["review", "--risks", "r"], "missing the request ID"),
        (["review", "8", "--risks", ""], "--risks must not be empty"),
        (["review", "8", "--risk", "r"], "did you mean '--risks'"),
        (["review", "8", "--requester", "someone else"], "unknown option '--requester' for review"),
        (["approve", "7", "--for", "1h", "--force"], "unknown option '--force' for approve"),
        (["deny", "7"], "missing --reason"),
        (["deny", "7", "--reason"], "--reason needs a value"),
        (["revoke", "--reason", "r"], "missing the request ID"),
        (["unblock", "12"], "missing --reason"),
        (["list", "--active", "--all"], "only one of"),
        (["list", "--json=yes"], "takes no value"),
        (["show"], "missing the request ID"),
        (["show", "0"], "whole number"),
        (["report", "--url", "u", "--nature", "n"], "missing --reporter"),
        (["report", "--url", "u", "--nature", "n", "--reporter", "r", "--block=yes"], "takes no value"),
        (["block", "--url", "u"], "missing --reason"),
        (["block", "--url", "u", "--reason", "r", "--scope", "everything"], "url, prefix or domain"),
        (["audit", "--since", "yesterday"], "YYYY-MM-DD HH:MM"),
        (["audit", "--limit", "0"], "--limit takes a whole number from 1 to 1000, not '0'"),
        (["audit", "--limit", "1001"], "from 1 to 1000"),
        (["audit", "--limit", "ten"], "from 1 to 1000"),
        (["audit", "--before", "x"], "audit entry ID of --before must be a whole number"),
        (["status", "extra"], "unexpected argument"),
        (["aprove", "7"], "did you mean 'approve'"),
        (["--frobnicate", "status"], "unknown option"),
        (["--json"], "missing the verb"),
        (["request", "--url", "u", "--role", "p", "--requester", "r", "--reason", "x", "--site-content",
          "y" * 70000], "64 KiB"),
    ]

    def test_bad_command_lines_exit_2_without_connecting(self):
        for argv, message in self.BAD:
            with self.subTest(argv=argv[:8]):
                r = self.ctl(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertEqual(r.stdout, "")
                if "64 KiB" not in message:
                    self.assertIn("usage: hallpassctl", r.stderr)
        self.assert_no_connection()

    def test_no_arguments(self):
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: hallpassctl", r.stderr)

    def test_bad_timeout_setting(self):
        r = self.ctl("status", env={"HALLPASSCTL_TIMEOUT": "soon"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("HALLPASSCTL_TIMEOUT", r.stderr)
        self.assert_no_connection()

    def test_help_and_version(self):
        r = self.ctl("--help")
        self.assertEqual(r.returncode, 0)
        for verb in ("request", "review", "approve", "deny", "revoke", "list", "show", "report", "reports", "block",
                     "blocks", "unblock", "audit", "reload", "status"):
            self.assertIn(verb, r.stdout)
        self.assertIn("Exit codes", r.stdout)
        for argv in (["approve", "--help"], ["help", "approve"], ["approve", "7", "--for", "90", "-h"]):
            r = self.ctl(*argv)
            self.assertEqual(r.returncode, 0, argv)
            self.assertIn("hallpassctl approve ID (--for DURATION", r.stdout)
            self.assertIn("headteacher", r.stdout)
        r = self.ctl("request", "--help")
        self.assertIn("--control-measures", r.stdout)
        r = self.ctl("review", "--help")
        self.assertIn("hallpassctl review ID [--risks TEXT] [--control-measures TEXT]", r.stdout)
        self.assertIn("Allowed for: technician, headteacher, dsl.", r.stdout)
        self.assertNotIn("--force", self.ctl("approve", "--help").stdout)
        r = self.ctl("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^hallpassctl \d+\.\d+\.\d+\n$")
        self.assert_no_connection()


class ConnectTest(unittest.TestCase):
    def test_missing_socket_exits_3_naming_the_path(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "admin.socket")
            r = run("--socket", path, "status")
            self.assertEqual(r.returncode, 3)
            self.assertIn(path, r.stderr)
            self.assertIn("No such file or directory", r.stderr)
            self.assertIn("daemon may not be running", r.stderr)

    def test_stale_socket_exits_3(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "admin.socket")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)  # bound, never listening: like a socket left behind by a dead daemon
            try:
                r = run("--socket", path, "status")
            finally:
                s.close()
            self.assertEqual(r.returncode, 3)
            self.assertIn("Connection refused", r.stderr)
            self.assertIn(path, r.stderr)

    def test_default_socket_path(self):
        r = run("status")
        if os.path.exists("/run/hallpass/admin.socket"):
            self.skipTest("a daemon is listening on the default path")
        self.assertEqual(r.returncode, 3)
        self.assertIn("/run/hallpass/admin.socket", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run the client as another user")
    def test_permission_denied_exits_3_with_the_group_hint(self):
        daemon = FakeDaemon()
        try:
            os.chmod(daemon.path, 0o600)
            os.chmod(os.path.dirname(daemon.path), 0o755)
            r = subprocess.run([BIN, "--socket", daemon.path, "status"], capture_output=True, text=True,
                               timeout=30, user=65534, group=65534, extra_groups=[],
                               env={"HALLPASSCTL_TIMEOUT": "5"})
            if r.returncode == 126 or "Permission denied" in r.stderr and "execute" in r.stderr:
                self.skipTest("the binary is not executable by nobody")
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn("Permission denied", r.stderr)
            self.assertIn("group", r.stderr)
        finally:
            daemon.close()

    def test_path_too_long_exits_3(self):
        r = run("--socket", "/tmp/" + "a" * 200, "status")
        self.assertEqual(r.returncode, 3)
        self.assertIn("107 bytes", r.stderr)


class TimeoutTest(unittest.TestCase):
    def test_a_daemon_that_never_answers(self):
        daemon = FakeDaemon(lambda request: SILENT)
        try:
            start = time.monotonic()
            r = run("--socket", daemon.path, "status", env={"HALLPASSCTL_TIMEOUT": "2"})
            elapsed = time.monotonic() - start
        finally:
            daemon.close()
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no answer", r.stderr)
        self.assertIn("2 s", r.stderr)
        self.assertGreaterEqual(elapsed, 1.9)
        self.assertLess(elapsed, 8)
        self.assertNotIn("may still have been done", r.stderr)  # status changes nothing

    def test_a_change_that_got_no_answer_may_still_have_been_done(self):
        # The daemon may answer late (a slow or locked store): a retry could file it twice
        # (admin audit, 2026-12-06: "failed", and the block was removed).
        daemon = FakeDaemon(lambda request: SILENT)
        try:
            r = run("--socket", daemon.path, "unblock", "1", "--reason", "reviewed", env={"HALLPASSCTL_TIMEOUT": "1"})
        finally:
            daemon.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("no answer", r.stderr)
        self.assertIn("the unblock may still have been done: check with `hallpassctl blocks` before trying again",
                      r.stderr)
        daemon = FakeDaemon(lambda request: SILENT)
        try:
            r = run("--socket", daemon.path, "revoke", "7", "--reason", "done", env={"HALLPASSCTL_TIMEOUT": "1"})
        finally:
            daemon.close()
        self.assertIn("check with `hallpassctl show 7` before trying again", r.stderr)

    def test_a_daemon_that_never_accepts(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "admin.socket")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(0)
            fillers = []
            try:
                for _ in range(4):  # fill the backlog; nobody ever accepts
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.setblocking(False)
                    try:
                        s.connect(path)
                    except BlockingIOError:
                        s.close()
                        break
                    fillers.append(s)
                start = time.monotonic()
                r = run("--socket", path, "status", env={"HALLPASSCTL_TIMEOUT": "2"})
                elapsed = time.monotonic() - start
            finally:
                for s in fillers:
                    s.close()
                listener.close()
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("did not accept", r.stderr)
        self.assertLess(elapsed, 8)
        self.assertIn(path, r.stderr)


if __name__ == "__main__":
    unittest.main()
