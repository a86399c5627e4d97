"""Circumvention bans end to end (000 7.2; 002): the real daemon with its admin socket and
store, hallpassctl run as OS users in each admin role (created here; needs root), curl from
devices on 127.0.0.x, and `hallpass explain` reading the same store. A banned device gets only
the supervised-use list of the policy's `bans:` section (allowed.test) and the ban page
elsewhere; a technician's ban is a proposal until the DSL or the headteacher confirms it;
three circumvention attempts ban a device by themselves."""
import datetime
import json
import os
import re
import subprocess
import time
import unittest
import zoneinfo

from harness import BIN, STAFF, Origin, Proxy, curl, person_block_page, wait_for
from exceptions_test import ADMIN, CTL, admin_state_dir, ctl, ctl_json, ensure_users


BANS = """
bans:
  policy:
    domains: [allowed.test]
  message: "For now, only the websites your school has chosen are open on this device."
  threshold: {attempts: 3, within: 10m, duration: 1d, apart: 0s}   # apart: each attempt counts (unit-tested)
"""


def three_vpn_sites(text):
    """The base policy with three circumvention sites: attempts on one site within a minute count once."""
    old = "  circumvention: {domains: [vpn.test]}\n"
    assert old in text
    return text.replace(old, "  circumvention: {domains: [vpn.test, vpn2.test, vpn3.test]}\n")


def raw_connect(proxy, host, source, user_agent):
    """A CONNECT to host:443 from `source` with `user_agent`; the proxy's answer's first bytes."""
    import socket
    with socket.socket() as s:
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", proxy.port))
        s.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\nUser-Agent: {user_agent}\r\n\r\n".encode())
        return s.recv(4096)


def spoken_ends(end, now=None):
    """What the ban page's lead may say for an end at `end` (seconds since the epoch), seen
    from `now`, in London time, as a child says it ("6:47 this evening", "9:05 tomorrow
    morning"): the end's minute and the next one, since the ban's end is read after the
    command. Written independently of rules::spoken_time's code, for ends within a day."""
    london = zoneinfo.ZoneInfo("Europe/London")
    today = datetime.datetime.fromtimestamp(now or time.time(), london).date()
    out = set()
    for t in (end, end + 60):
        at = datetime.datetime.fromtimestamp(t, london)
        ahead = (at.date() - today).days
        if (at.hour, at.minute) == (0, 0):
            out.add("midnight tonight" if ahead <= 1 else "midnight tomorrow night")
            continue
        clock = "12 noon" if (at.hour, at.minute) == (12, 0) else f"{(at.hour % 12) or 12}:{at.minute:02d}"
        part = "" if clock == "12 noon" else "morning" if at.hour < 12 else "afternoon" if at.hour < 18 else "evening"
        if ahead == 0:
            out.add(f"{clock} today" if not part else f"{clock} this {part}")
        else:
            out.add(f"{clock} tomorrow" + (f" {part}" if part else ""))
    return out


@unittest.skipUnless(os.geteuid() == 0, "creates OS users and runs hallpassctl as them: needs root")
class BansTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_users()
        cls.nginx = Origin()
        cls.state, cls.sock = admin_state_dir()
        cls.proxy = Proxy(extra=ADMIN + BANS, args=["--state-dir", cls.state, "--admin-socket", cls.sock],
                          policy_edit=three_vpn_sites)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.nginx.stop()

    def get(self, host, source, path="/small"):
        """(status, body) of a plain-HTTP GET through the proxy from `source`."""
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{self.proxy.port}",
                            "--interface", source, "-w", "\n%{http_code}", f"http://{host}:{self.nginx.port}{path}"],
                           capture_output=True, text=True, timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    def status(self, host, source):
        return self.get(host, source)[0]

    def explain(self, *args, config=None):
        r = subprocess.run([BIN, "explain", "--config", config or self.proxy.config, "--state-dir", self.state, "--json",
                            *args],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def banned_within_2s(self, device):
        """Waits (at most 2 s) until `device` gets the ban page for origin.test."""
        return wait_for(lambda: self.status("origin.test", device) == 403, timeout=2, interval=0.1,
                        what=f"{device} banned")

    def test_ban_by_command_serves_only_the_supervised_list_then_unban(self):
        device, other = "127.0.0.21", "127.0.0.22"
        url = f"http://origin.test:{self.nginx.port}/small"
        self.assertEqual(self.status("origin.test", device), 200)
        self.assertEqual(self.explain("--client", device, url)["action"], "allow")
        ban = ctl_json("hp_dsl", self.sock, "ban", "--device", device, "--for", "1h",
                       "--reason", "used a VPN in ICT on Monday")
        self.assertEqual((ban["status"], ban["how"], ban["kind"], ban["subject"]), ("active", "command", "device", device))
        started = time.monotonic()
        started_wall = time.time()
        self.banned_within_2s(device)
        self.assertLess(time.monotonic() - started, 2)
        code, page = self.get("origin.test", device)
        self.assertEqual(code, 403)
        self.assertIn("Only some websites are open for now", page)
        self.assertIn("only the websites your school has chosen are open", page)  # the school's words
        # The lead says the end as a child would, in school time (the test policy's zone is
        # Europe/London); the details keep the exact time with its zone (in the autumn's
        # repeated hour 01:59 is followed by 01:00).
        lead = re.search(r"This lasts until <strong>([^<]*)</strong>", page)
        self.assertIsNotNone(lead, page)
        self.assertIn(lead.group(1), spoken_ends(started_wall + 3600))
        self.assertRegex(page, r"<dt>Until</dt><dd>\w+ \d+ \w+ \d{4}, \d\d:\d\d (GMT|BST)<")
        self.assertNotIn("VPN", page)  # the adult's reason never reaches the screen
        self.assertNotIn("hallpass.invalid/request", page)  # no request form during a ban
        # Only a link to the person's own page (who is signed in, the device), which has no form
        # either: the page itself is served as the site, whose scripts could read it.
        self.assertIn("Who is signed in on this device, and the details", page)
        self.assertNotIn("Ask for this page", page)
        mine = person_block_page(self.proxy, page.encode(), device).decode()
        self.assertIn("Only some websites are open for now", mine)
        self.assertIn(f"<dt>Your device</dt><dd>{device}</dd>", mine)
        self.assertNotIn("hallpass.invalid/request", mine)
        self.assertEqual(self.status("allowed.test", device), 200)  # the supervised-use list
        self.assertEqual(self.status("facebook.test", device), 403)  # blocked as before
        self.assertEqual(self.status("origin.test", other), 200)  # other devices untouched
        self.assertEqual(self.status("origin.test", STAFF), 200)
        # HTTPS: the CONNECT is refused too (nothing listens on 443 here: the refusal comes first).
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", f"http://127.0.0.1:{self.proxy.port}",
                            "--interface", device, "-o", "/dev/null", "-w", "%{http_connect}",
                            "https://origin.test/"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "403")
        # explain agrees, and says it was the ban, until when and why.
        e = self.explain("--client", device, url)
        self.assertEqual((e["action"], e["rule"]), ("block", f"ban {ban['id']}"))
        self.assertEqual(e["ban"]["reason"], "used a VPN in ICT on Monday")
        self.assertEqual(e["ban"]["until"], ban["until"])
        self.assertEqual(self.explain("--client", device, f"http://allowed.test:{self.nginx.port}/")["action"], "allow")
        self.assertEqual(self.explain("--client", other, url)["action"], "allow")
        # The access log names the ban.
        wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == device and l.get("ban") == ban["id"]],
                 what="an access log line with the ban")
        # The ban's own line says who and until when, not the DSL's reason (personal data that
        # stays in the store and the audit log).
        event = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("event") == "ban" and l.get("ban") == ban["id"]],
                         what="the ban's event line")[-1]
        self.assertEqual((event["how"], event["subject"]), ("command", device))
        self.assertNotIn("reason", event)
        with open(self.proxy.access_log) as f:
            self.assertNotIn("VPN in ICT", f.read())
        listed = ctl_json("hp_dsl", self.sock, "bans")["bans"]
        self.assertIn(ban["id"], [b["id"] for b in listed])
        code, out, _ = ctl("hp_dsl", self.sock, "bans", check=0)
        self.assertIn(f"device {device}", out)
        # Unban: open again at once.
        lifted = ctl_json("hp_head", self.sock, "unban", "--device", device, "--reason", "spoke with parents")
        self.assertEqual([b["status"] for b in lifted["bans"]], ["lifted"])
        wait_for(lambda: self.status("origin.test", device) == 200, timeout=2, interval=0.1, what="unbanned")
        self.assertEqual(self.explain("--client", device, url)["action"], "allow")
        self.assertNotIn(ban["id"], [b["id"] for b in ctl_json("hp_dsl", self.sock, "bans")["bans"]])
        self.assertIn(ban["id"], [b["id"] for b in ctl_json("hp_dsl", self.sock, "bans", "--all")["bans"]])

    def test_approving_a_banned_askers_request_says_the_ban_wins(self):
        from exception_limits_test import block_page_form, post_form
        from harness import status_of
        device = "127.0.0.33"
        reply = post_form(self.proxy, block_page_form(self.proxy, self.nginx.port, "/groups", device), device)
        self.assertEqual(status_of(reply), 200, reply[:300])
        rid = int(re.search(rb"number (\d+)", reply).group(1))
        ban = ctl_json("hp_dsl", self.sock, "ban", "--device", device, "--for", "1h", "--reason", "VPN in ICT")
        try:
            code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "30m", "--reason", "lesson",
                                 check=0)
            self.assertEqual(code, 0, out + err)
            self.assertIn(f"the device that asked ({device}) is banned until ", err)
            self.assertIn(f"(ban {ban['id']}): a ban wins over exceptions, so this one opens nothing for them", err)
            self.assertEqual(self.status("facebook.test", device), 403)  # as the warning says
        finally:
            ctl("hp_dsl", self.sock, "unban", str(ban["id"]), "--reason", "test over", check=0)
            ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)
        # Without a ban, no such warning.
        device = "127.0.0.34"
        reply = post_form(self.proxy, block_page_form(self.proxy, self.nginx.port, "/pages", device), device)
        rid = int(re.search(rb"number (\d+)", reply).group(1))
        code, out, err = ctl("hp_head", self.sock, "approve", str(rid), "--for", "30m", "--reason", "lesson", check=0)
        self.assertEqual(code, 0, out + err)
        self.assertNotIn("banned", err)
        ctl("hp_head", self.sock, "revoke", str(rid), "--reason", "test over", check=0)

    def test_a_bans_reason_can_be_read_from_standard_input(self):
        # Off the command line, where ps shows it to every local user (admin audit, 2026-12-06:
        # "--reason -" was stored as the reason "-").
        def ctl_stdin(text, *args):
            return subprocess.run(["runuser", "-u", "hp_dsl", "--", CTL, "--socket", self.sock, *args],
                                  input=text, capture_output=True, text=True, timeout=60)
        r = ctl_stdin("Disclosed to Mrs K: shared a proxy list\n", "ban", "--device", "127.0.0.29", "--for", "1h",
                      "--reason", "-", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["reason"], "Disclosed to Mrs K: shared a proxy list")
        r = ctl_stdin("", "unban", "--device", "127.0.0.29", "--reason", "-")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("hallpassctl unban: --reason - : nothing on standard input", r.stderr)
        r = ctl_stdin("talked it through\n", "unban", "--device", "127.0.0.29", "--reason", "-", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_technicians_ban_is_a_proposal_until_the_dsl_confirms_it(self):
        device = "127.0.0.23"
        proposal = ctl_json("hp_tech", self.sock, "ban", "--device", device, "--for", "2h", "--reason", "proxy site")
        self.assertEqual((proposal["status"], proposal["how"], proposal["until"]), ("proposed", "proposal", None))
        time.sleep(0.5)
        self.assertEqual(self.status("origin.test", device), 200)  # no effect yet
        code, _, err = ctl("hp_tech", self.sock, "ban", "--confirm", str(proposal["id"]))
        self.assertEqual(code, 1)
        self.assertIn("may not confirm", err)
        self.assertEqual(self.status("origin.test", device), 200)
        confirmed = ctl_json("hp_dsl", self.sock, "ban", "--confirm", str(proposal["id"]), "--reason", "agreed")
        self.assertEqual((confirmed["status"], confirmed["confirmed"]["by"]), ("active", "hp_dsl"))
        self.banned_within_2s(device)
        ctl("hp_dsl", self.sock, "unban", str(proposal["id"]), "--reason", "done", check=0)
        wait_for(lambda: self.status("origin.test", device) == 200, timeout=2, interval=0.1, what="unbanned")

    def test_roles_that_may_not_ban_or_unban_are_refused_and_audited(self):
        device = "127.0.0.25"
        code, _, err = ctl("hp_norole", self.sock, "ban", "--device", device, "--for", "1h", "--reason", "x")
        self.assertEqual(code, 1)
        self.assertIn("forbidden", err)
        ban = ctl_json("hp_head", self.sock, "ban", "--device", device, "--for", "1h", "--reason", "agreed with DSL")
        code, _, err = ctl("hp_tech", self.sock, "unban", str(ban["id"]), "--reason", "x")
        self.assertEqual(code, 1)
        self.assertIn("forbidden", err)
        self.banned_within_2s(device)  # still banned
        entries = ctl_json("hp_dsl", self.sock, "audit")["entries"]
        self.assertTrue(any(e["os_user"] == "hp_norole" and e["action"] == "ban" and e["outcome"] == "refused"
                            for e in entries))
        self.assertTrue(any(e["os_user"] == "hp_tech" and e["action"] == "unban" and e["outcome"] == "refused"
                            for e in entries))
        ok = [e for e in entries if e["object"] == f"ban {ban['id']}" and e["action"] == "ban"]
        self.assertEqual([(e["os_user"], e["admin_role"], e["outcome"]) for e in ok], [("hp_head", "headteacher", "ok")])
        ctl("hp_dsl", self.sock, "unban", "--device", device, "--reason", "done", check=0)

    def test_a_technician_reads_who_is_banned_but_not_the_dsls_reasons(self):
        # Outside-in audit J, 2026-12-05: the DSL's safeguarding note in a ban's reason was
        # shown to every technician by `bans` and `audit`.
        dsl_ban = ctl_json("hp_dsl", self.sock, "ban", "--device", "127.0.0.26", "--for", "1h",
                           "--reason", "DSLCONCERN disclosed at school")
        own = ctl_json("hp_tech", self.sock, "ban", "--device", "127.0.0.27", "--for", "1h", "--reason", "proxy site")
        try:
            by_id = {b["id"]: b for b in ctl_json("hp_tech", self.sock, "bans", "--all")["bans"]}
            self.assertEqual(by_id[dsl_ban["id"]]["reason"], "(withheld: for the DSL and the headteacher)")
            self.assertEqual(by_id[dsl_ban["id"]]["subject"], "127.0.0.26")  # who is banned: shown
            self.assertEqual(by_id[own["id"]]["reason"], "proxy site")  # their own words
            code, out, err = ctl("hp_tech", self.sock, "audit", "--json", check=0)
            self.assertEqual(code, 0, err)
            self.assertNotIn("DSLCONCERN", out)
            self.assertIn("proxy site", out)
            for reader in ("hp_dsl", "hp_head"):
                by_id = {b["id"]: b for b in ctl_json(reader, self.sock, "bans", "--all")["bans"]}
                self.assertEqual(by_id[dsl_ban["id"]]["reason"], "DSLCONCERN disclosed at school", reader)
        finally:
            ctl("hp_dsl", self.sock, "unban", str(dsl_ban["id"]), "--reason", "done", check=0)
            ctl("hp_dsl", self.sock, "unban", str(own["id"]), "--reason", "done", check=0)

    def test_three_circumvention_attempts_ban_the_device_by_themselves(self):
        device = "127.0.0.24"
        before = self.proxy.metric("hallpass_bans_total", {"how": "automatic"})
        self.assertEqual(self.status("origin.test", device), 200)
        for host in ("vpn.test", "vpn2.test"):
            self.assertEqual(self.status(host, device), 403)
        # The block page says what trying again can lead to (audit of the pages, 2026-12-06);
        # another block's does not.
        status, body = self.get("vpn2.test", device)
        self.assertIn("Trying to get round the school\u2019s internet filter can stop your internet at school for a day",
                      body)
        status, body = self.get("facebook.test", device)
        self.assertEqual(status, 403)
        self.assertNotIn("Trying to get round", body)
        # One site tried again within a minute (a browser's parallel connections, a reload) is
        # the same attempt: one visit to a VPN site banned a pupil for a day (audit of the
        # pages, 2026-12-06).
        for host in ("vpn.test", "www.vpn2.test", "vpn.test"):
            self.assertEqual(self.status(host, device), 403)
        time.sleep(0.5)
        self.assertEqual(self.status("origin.test", device), 200)  # two are not enough
        self.assertEqual(self.status("vpn3.test", device), 403)
        self.banned_within_2s(device)
        self.assertEqual(self.status("allowed.test", device), 200)
        bans = [b for b in ctl_json("hp_dsl", self.sock, "bans")["bans"] if b["subject"] == device]
        self.assertEqual(len(bans), 1)
        self.assertEqual((bans[0]["how"], bans[0]["by"], bans[0]["status"]), ("automatic", "hallpass", "active"))
        self.assertIn("3 attempts to get round the filter within 10m (the last: vpn3.test", bans[0]["reason"])
        self.assertEqual(self.proxy.metric("hallpass_bans_total", {"how": "automatic"}), before + 1)
        # The DSL's alert on the access log.
        wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("event") == "ban" and l.get("subject") == device
                          and l.get("how") == "automatic"], what="the ban's line on the access log")
        # More attempts while banned file no second ban.
        for _ in range(3):
            self.status("vpn.test", device)
        # ...and are still logged as attempts, beside the ban (the DSL's monitoring, 000 7.4).
        wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == device
                          and l.get("ban") == bans[0]["id"] and l.get("circumvention") is True],
                 what="an attempt while banned logged as one")
        time.sleep(0.5)
        self.assertEqual(len([b for b in ctl_json("hp_dsl", self.sock, "bans")["bans"] if b["subject"] == device]), 1)
        entries = ctl_json("hp_dsl", self.sock, "audit")["entries"]
        self.assertTrue(any(e["object"] == f"ban {bans[0]['id']}" and e["outcome"] == "automatic" for e in entries))
        ctl("hp_dsl", self.sock, "unban", "--device", device, "--reason", "talked it through", check=0)
        wait_for(lambda: self.status("origin.test", device) == 200, timeout=2, interval=0.1, what="unbanned")

    def test_a_pages_images_and_a_browsers_tunnels_never_ban_anyone(self):
        # A page can make a browser load images, scripts and frames from any site: three VPN
        # sites' images (or three https://IP/ images, whose tunnels carry no server name) banned
        # whoever opened the page, a teacher included, on every device (outside-in audit of
        # logins, 2026-12-06, H2). Such attempts are logged and alerted, not counted.
        device = "127.0.0.26"
        browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
        before = self.proxy.metric("hallpass_bans_total", {"how": "automatic"})
        embedded = [
            ("-H", "Sec-Fetch-Mode: no-cors", "-H", "Sec-Fetch-Dest: image"),  # an <img> (HTTPS, inspected)
            ("-H", "Sec-Fetch-Mode: navigate", "-H", "Sec-Fetch-Dest: iframe"),  # a frame
            ("-A", browser),  # a browser's plain-HTTP image: no Upgrade-Insecure-Requests
        ]
        for host in ("vpn.test", "vpn2.test", "vpn3.test"):
            for headers in embedded:
                r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                    "-x", f"http://127.0.0.1:{self.proxy.port}", "--interface", device, *headers,
                                    f"http://{host}:{self.nginx.port}/logo.png"],
                                   capture_output=True, text=True, timeout=20)
                self.assertEqual(r.stdout, "403", r.stderr)
        time.sleep(1)
        self.assertEqual(self.status("origin.test", device), 200)  # not banned
        self.assertEqual(self.proxy.metric("hallpass_bans_total", {"how": "automatic"}), before)
        def all_nine():
            found = [l for l in self.proxy.log_lines() if l.get("client") == device and l.get("circumvention") is True]
            return found if len(found) >= 9 else None
        lines = wait_for(all_nine, what="the nine attempts' lines")  # each still logged as an attempt
        self.assertEqual(len(lines), 9)
        self.assertTrue(all("not counted towards a ban" in l.get("note", "") for l in lines), lines)
        # A CONNECT counts, a browser's too, where no block page is shown (no school CA here):
        # a client says any User-Agent it likes (review of 2026-12-06). A page's bursts count
        # once (bans.threshold.apart, 10 s by default: 0 here, and unit-tested).
        out = raw_connect(self.proxy, "vpn.test", device, browser)
        self.assertTrue(out.startswith(b"HTTP/1.1 403"), out[:200])
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("client") == device
                                 and l.get("method") == "CONNECT"] or None, what="the CONNECT's line")[-1]
        self.assertNotIn("not counted", line.get("note", ""))
        # The person's own navigation counts: a browser's plain-HTTP page (Upgrade-Insecure-
        # Requests), an HTTPS page (Sec-Fetch-Mode navigate, Sec-Fetch-Dest document), an app.
        for host, headers in (("vpn.test", ("-A", browser, "-H", "Upgrade-Insecure-Requests: 1")),
                              ("vpn2.test", ("-H", "Sec-Fetch-Mode: navigate", "-H", "Sec-Fetch-Dest: document")),
                              ("vpn3.test", ("-A", "SomeVPN/2.1"))):
            subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10", "-x",
                            f"http://127.0.0.1:{self.proxy.port}", "--interface", device, *headers,
                            f"http://{host}:{self.nginx.port}/"], capture_output=True, timeout=20)
        self.banned_within_2s(device)
        ctl("hp_dsl", self.sock, "unban", "--device", device, "--reason", "test", check=0)
        wait_for(lambda: self.status("origin.test", device) == 200, timeout=2, interval=0.1, what="unbanned")

    def test_a_ban_that_matches_nobody_says_so(self):
        # A user where nobody signs in, or a device name when no leases are read, is banned all
        # the same (the record is the DSL's) but the answer says that it stops nothing (people-side
        # audit, 2026-12-07, M5: both said only "banned"). An address always matches.
        for args, want in ((["--user", "ghost.pupil"], "nobody signs in to this proxy"),
                           (["--device", "pupil-laptop-77"], "the proxy reads no DHCP leases"),
                           (["--device", "3c:22:fb:12:9a:77"], "the proxy reads no DHCP leases")):
            code, out, err = ctl("hp_dsl", self.sock, "ban", *args, "--for", "1h", "--reason", "VPN")
            self.assertEqual(code, 0, err)
            self.assertIn(want, out + err, args)
            self.assertIn("this ban stops nothing", out + err, args)
            ctl("hp_dsl", self.sock, "unban", *args, "--reason", "test over", check=0)
        code, out, err = ctl("hp_dsl", self.sock, "ban", "--device", "127.0.0.29", "--for", "1h", "--reason", "VPN")
        self.assertEqual(code, 0, err)
        self.assertNotIn("stops nothing", out + err)
        ctl("hp_dsl", self.sock, "unban", "--device", "127.0.0.29", "--reason", "test over", check=0)

    def test_a_user_ban_applies_in_explain_with_the_user(self):
        # Logins (issue 12) give the proxy its users; explain takes --user, and decides with it
        # where the configuration has logins.
        url = f"http://origin.test:{self.nginx.port}/small"
        ban = ctl_json("hp_dsl", self.sock, "ban", "--user", "ava.b", "--for", "3d", "--reason", "VPN app")
        with_logins = os.path.join(self.proxy.dir, "with-logins.yaml")
        with open(with_logins, "w") as f:
            f.write(self.proxy.policy_text + "logins:\n  networks:\n    - {networks: [127.0.0.0/8], login: page}\n"
                    "  ldap: {url: \"ldaps://127.0.0.1:9\", base_dn: \"dc=school,dc=test\"}\n")
        e = self.explain("--client", "127.0.0.26", "--user", "ava.b", "--groups", "Pupils", url, config=with_logins)
        self.assertEqual((e["action"], e["rule"], e["ban"]["kind"]), ("block", f"ban {ban['id']}", "user"))
        self.assertEqual(self.explain("--client", "127.0.0.26", "--user", "ben.c", "--groups", "Pupils", url,
                                      config=with_logins)["action"], "allow")
        self.assertEqual(self.explain("--client", "127.0.0.26", url)["action"], "allow")
        # Without logins the proxy never knows a user: explain decides without one, and says so
        # (differential audit of explain against the proxy, 2026-12-05).
        e = self.explain("--client", "127.0.0.26", "--user", "ava.b", url)
        self.assertEqual(e["action"], "allow")
        self.assertTrue(any("asks no one to sign in" in n for n in e["notes"]), e["notes"])
        ctl("hp_dsl", self.sock, "unban", "--user", "ava.b", "--reason", "done", check=0)
        self.assertEqual(self.explain("--client", "127.0.0.26", "--user", "ava.b", "--groups", "Pupils", url,
                                      config=with_logins)["action"], "allow")


if __name__ == "__main__":
    unittest.main()
