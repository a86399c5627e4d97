"""Plain HTTP through the real proxy: roles, block page, bodies, keep-alive, pooling, logs, metrics."""
import html
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import (BIN, GUEST, PUPIL, STAFF, UNKNOWN, Origin, Proxy, PyOrigin, ThreadedServer, curl, free_port,
                     person_block_page, raw_request, read_request_head, status_of,
                     wait_for, ws_frame, ws_read_frame)


def with_secret_rule(text):
    """The test policy with a block of py.test/secret for pupils ("pupils rule 3 (secret)")."""
    return text.replace(
        "      - {name: no uploads, action: block, domains: [noupload.test], methods: [POST]}\n",
        "      - {name: no uploads, action: block, domains: [noupload.test], methods: [POST]}\n"
        "      - {name: secret, action: block, urls: [py.test/secret]}\n")


class HttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()
        cls.py = PyOrigin()
        cls.proxy = Proxy()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.py.stop()
        cls.nginx.stop()

    def url(self, host, path="/small"):
        return f"http://{host}:{self.nginx.port}{path}"

    def test_allowed_and_blocked_per_role(self):
        cases = [
            (PUPIL, "facebook.test", 403), (PUPIL, "www.facebook.test", 403), (PUPIL, "origin.test", 200),
            (STAFF, "facebook.test", 200), (GUEST, "instagram.test", 403), (GUEST, "origin.test", 200),
            (UNKNOWN, "facebook.test", 403),  # fallback role: pupils
            (STAFF, "vpn.test", 403),  # everyone's rule
        ]
        for source, host, want in cases:
            with self.subTest(source=source, host=host):
                status, body, err = curl(self.proxy, self.url(host), source=source)
                self.assertEqual(status, want, err)
                if want == 200:
                    self.assertEqual(body, b"s" * 1024)

    def test_block_page_says_what_and_why(self):
        out = raw_request(self.proxy, f"GET {self.url('facebook.test', '/profile?id=1')} HTTP/1.1\r\n"
                                      f"Host: facebook.test\r\nConnection: close\r\n\r\n".encode())
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertEqual(status_of(out), 403)
        self.assertIn(b"Cache-Control: no-store", head)
        self.assertIn(b"text/html", head)
        text = body.decode()
        for part in ("Integration Test School", "facebook.test", "pupils", "social media", "pupils rule 1",
                     "/profile?id=1", "Ask for this page"):
            self.assertIn(part, text)
        # Served as the plain-HTTP site, whose scripts could read it: no device, no form (their
        # token would let a script file a request in the pupil's name). The link opens them on
        # the proxy's own address, another origin, for the same URL and method.
        self.assertNotIn("<form", text)
        self.assertNotIn(PUPIL, text)
        link = re.search(r'href="(http://hallpass\.invalid/blocked\?[^"]*)"', text).group(1)
        self.assertEqual(html.unescape(link),
                         "http://hallpass.invalid/blocked?url=" + self.url("facebook.test", "/profile?id=1"))
        mine = person_block_page(self.proxy, out, PUPIL)
        head, _, body = mine.partition(b"\r\n\r\n")
        self.assertEqual(status_of(mine), 200)
        for field in (b"X-Frame-Options: DENY", b"Content-Security-Policy: frame-ancestors 'none'",
                      b"Cache-Control: no-store"):
            self.assertIn(field, head)
        for part in ("blocked content access request form", 'action="http://hallpass.invalid/request"',
                     f"<dt>Your device</dt><dd>{PUPIL}</dd>", "pupils rule 1", "/profile?id=1"):
            self.assertIn(part, body.decode())
        # Decided again for whoever follows it: another device in a role that may open the page
        # is told so, and the link does not show a page for an address the proxy cannot read.
        other = person_block_page(self.proxy, out, STAFF)
        self.assertEqual(status_of(other), 200)
        self.assertIn(b"not blocked for you now", other)
        self.assertNotIn(b"<form", other)
        for query in ("url=nonsense", "url=http%3A%2F%2Fhallpass.invalid%2Frequest", "", "method=G%20T&url=" +
                      urllib.parse.quote(self.url("facebook.test", "/"), safe="")):
            reply = raw_request(self.proxy, f"GET http://hallpass.invalid/blocked?{query} HTTP/1.1\r\n"
                                            "Host: hallpass.invalid\r\nConnection: close\r\n\r\n".encode())
            self.assertEqual(status_of(reply), 404, query)
        # The link carries the method the site was asked with, and any method-override field,
        # and the page decides with them: noupload.test blocks POST for pupils, not GET.
        upload = f"http://noupload.test:{self.nginx.port}/x"
        for request, link in ((f"POST {upload} HTTP/1.1\r\nContent-Length: 0\r\n", b"blocked?method=POST&amp;url="),
                              (f"GET {upload} HTTP/1.1\r\nX-HTTP-Method-Override: POST\r\n",
                               b"blocked?override=POST&amp;url=")):
            reply = raw_request(self.proxy, (request + "Host: noupload.test\r\nConnection: close\r\n\r\n").encode())
            self.assertEqual(status_of(reply), 403, reply[:300])
            self.assertIn(link, reply)
            mine = person_block_page(self.proxy, reply, PUPIL)
            self.assertIn(b'action="http://hallpass.invalid/request"', mine)  # blocked as asked: the form
        reply = raw_request(self.proxy, f"GET http://hallpass.invalid/blocked?url={upload} HTTP/1.1\r\n"
                                        "Host: hallpass.invalid\r\nConnection: close\r\n\r\n".encode())
        self.assertIn(b"not blocked for you now", reply)  # as a GET it is open
        # The page itself is logged once, as a block; following the link is the proxy's own page,
        # which names the page asked about (as the store keeps URLs: no query here) and the rule.
        lines = wait_for(lambda: [l for l in self.proxy.log_lines() if l["host"] == "hallpass.invalid"
                                  and l.get("reason") == "the block page's details"
                                  and "facebook.test" in l.get("note", "")] or None,
                         timeout=5, what="the details page's log line")
        self.assertEqual(lines[0]["action"], "allow")
        self.assertEqual(lines[0]["note"], f"the block page's details for {self.url('facebook.test', '/profile')} "
                                           "(pupils rule 1)")
        self.assertEqual(len([l for l in self.proxy.log_lines() if l["path"] == "/profile"]), 1)
        self.assertIn('lang="en-GB"', text)
        # The time in words, school-local, not an ISO timestamp, with its zone (GMT or BST for
        # the test policy's Europe/London: in the autumn's repeated hour 01:59 is followed by 01:00).
        self.assertRegex(text, r"<dt>When</dt><dd>(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day [0-9]{1,2} [A-Z][a-z]+ "
                               r"20[0-9]{2}, [0-9]{2}:[0-9]{2} (GMT|BST) \u00b7 ")

    def test_an_adults_pages_speak_to_an_adult(self):
        # guests have `audience: adults` (as the shipped policy's staff, office and guests do);
        # pupils the default, children.
        words = {}
        for source in (GUEST, PUPIL):
            out = raw_request(self.proxy, f"GET {self.url('instagram.test', '/p')} HTTP/1.1\r\n"
                                          f"Host: instagram.test\r\nConnection: close\r\n\r\n".encode(), source=source)
            self.assertEqual(status_of(out), 403)
            words[source] = person_block_page(self.proxy, out, source).decode()
        self.assertIn("Need this page for your work?", words[GUEST])
        self.assertIn("Details for the ICT technician", words[GUEST])
        self.assertNotIn("your teacher", words[GUEST])
        self.assertNotIn("school work", words[GUEST])
        self.assertIn("Need this page for your school work?", words[PUPIL])
        self.assertIn("your teacher", words[PUPIL])
        # An error page: an origin that refuses the connection.
        closed = free_port()
        for source, want, unwanted in ((GUEST, "tell the ICT technician what you were trying", "your teacher"),
                                       (PUPIL, "tell your teacher or the ICT technician what you were trying", None)):
            out = raw_request(self.proxy, f"GET http://origin.test:{closed}/ HTTP/1.1\r\nHost: origin.test\r\n"
                                          "Connection: close\r\n\r\n".encode(), source=source)
            self.assertEqual(status_of(out), 502, out[:300])
            self.assertIn(want, out.decode())
            if unwanted:
                self.assertNotIn(unwanted, out.decode())

    def test_an_overlong_request_form_gets_413_declared_or_counted(self):
        # read_posted_form (posted_form.hpp): at most 64 KiB, refused from the declared length
        # before a byte of the body is read, or once the chunks read pass it.
        declared = raw_request(self.proxy, b"POST http://hallpass.invalid/request HTTP/1.1\r\n"
                                           b"Host: hallpass.invalid\r\nContent-Length: 70000\r\n"
                                           b"Connection: close\r\n\r\n")
        self.assertEqual(status_of(declared), 413, declared[:300])
        self.assertIn(b"The form is too long", declared)
        chunk = b"url=" + b"a" * 9996
        counted = raw_request(self.proxy, b"POST http://hallpass.invalid/request HTTP/1.1\r\n"
                                          b"Host: hallpass.invalid\r\nTransfer-Encoding: chunked\r\n"
                                          b"Connection: close\r\n\r\n" +
                              (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 7 + b"0\r\n\r\n")
        self.assertEqual(status_of(counted), 413, counted[:300])
        self.assertIn(b"The form is too long", counted)

    def test_the_block_pages_details_link_followed_with_head(self):
        # HEAD of a blocked page: the 403's head alone, its link in no body; the person's page
        # behind the link, asked for with HEAD (a link checker, a browser's prefetch), is the
        # same 200 head with its length and no body, and decides the page as a GET.
        target = self.url("facebook.test", "/head-check")
        head_only = raw_request(self.proxy, f"HEAD {target} HTTP/1.1\r\nHost: facebook.test\r\n"
                                            "Connection: close\r\n\r\n".encode())
        self.assertEqual(status_of(head_only), 403)
        self.assertTrue(head_only.endswith(b"\r\n\r\n"), head_only[-200:])
        link = "http://hallpass.invalid/blocked?url=" + urllib.parse.quote(target, safe=":/")
        got = raw_request(self.proxy, f"GET {link} HTTP/1.1\r\nHost: hallpass.invalid\r\n"
                                      "Connection: close\r\n\r\n".encode())
        self.assertEqual(status_of(got), 200, got[:300])
        self.assertIn(b'action="http://hallpass.invalid/request"', got)
        length = int(re.search(rb"Content-Length: (\d+)", got).group(1))
        headed = raw_request(self.proxy, f"HEAD {link} HTTP/1.1\r\nHost: hallpass.invalid\r\n"
                                         "Connection: close\r\n\r\n".encode())
        self.assertEqual(status_of(headed), 200, headed[:300])
        self.assertTrue(headed.endswith(b"\r\n\r\n"), headed[-200:])  # no body
        self.assertIn(b"X-Frame-Options: DENY", headed)
        # The same page, give or take the form's token and the time in it.
        self.assertLess(abs(int(re.search(rb"Content-Length: (\d+)", headed).group(1)) - length), 64)

    def test_methods_with_bodies_and_method_rules(self):
        data = os.urandom(200_000)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/echo", source=STAFF,
                                     extra=["--data-binary", f"@{f.name}", "-X", "PUT"])
            self.assertEqual((status, body), (200, data), err)
            # Chunked request body (curl sends chunked when told to).
            status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/echo", source=STAFF,
                                     extra=["--data-binary", f"@{f.name}", "-H", "Transfer-Encoding: chunked"])
            self.assertEqual((status, body), (200, data), err)
        # A method rule: POST to noupload.test is blocked for pupils, GET is not.
        status, _, _ = curl(self.proxy, f"http://noupload.test:{self.py.port}/echo", extra=["--data", "x=1"])
        self.assertEqual(status, 403)
        status, _, _ = curl(self.proxy, f"http://noupload.test:{self.py.port}/echo")
        self.assertEqual(status, 200)
        # A GET that names POST in a method-override header, which many frameworks act on, is
        # decided as a POST too; the log line says why.
        for field in ("X-HTTP-Method-Override", "x-http-method", "X-Method-Override"):
            status, _, _ = curl(self.proxy, f"http://noupload.test:{self.py.port}/echo?via={field}",
                                extra=["-H", f"{field}: post"])
            self.assertEqual(status, 403, field)
        def override_lines():
            found = [l for l in self.proxy.log_lines() if "decided as the method POST" in l.get("note", "")
                     and l["path"] == "/echo"]
            return found if len(found) >= 3 else None
        lines = wait_for(override_lines, what="the overrides' three log lines")
        self.assertEqual([(l["status"], l["method"], l["host"]) for l in lines], [(403, "GET", "noupload.test")] * 3)
        status, _, _ = curl(self.proxy, f"http://noupload.test:{self.py.port}/echo", extra=["-H", "X-HTTP-Method-Override: GET"])
        self.assertEqual(status, 200)

    def test_a_site_with_many_cookies_passes_and_one_over_the_response_limits_is_named(self):
        """An origin's answer head has limits of its own (limits.response_header_bytes, 128 KiB,
        and response_header_count, 500), not the request's 32 KiB and 100 fields: 150 cookies
        (15 KiB) passed to no one (outside-in audit of real clients, 2026-12-05, F2)."""
        status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/cookies?n=150", source=STAFF,
                                 extra=["-D", "-"])
        self.assertEqual(status, 200, err)
        self.assertEqual(body.count(b"Set-Cookie: "), 150)
        self.assertTrue(body.endswith(b"\r\n\r\nok"))
        malformed = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"})
        status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/cookies?n=600", source=STAFF)
        self.assertEqual(status, 502, err)
        self.assertIn("more header data with its answer than the school\u2019s internet filter accepts".encode(), body)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("path") == "/cookies"
                                 and l.get("status") == 502], what="the refusal's line")[-1]
        self.assertEqual(line["reason"], "the site's answer head was too large")
        self.assertIn("more than 500 header fields in the response (limits.response_header_count)", line["note"])
        self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "malformed"}), malformed + 1)

    def test_chunked_and_close_delimited_responses(self):
        status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/chunked", source=STAFF)
        self.assertEqual((status, body), (200, b"hello world"), err)
        status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/close", source=STAFF)
        self.assertEqual((status, body), (200, b"until-close"), err)

    def test_bodiless_responses_keep_the_connection_in_step(self):
        """HEAD, 304 and a Content-Length body on one client connection: each response is
        framed right, so the next one is read correctly."""
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        f = s.makefile("rb")

        def exchange(method, extra=""):
            s.sendall(f"{method} http://origin.test:{self.nginx.port}/small HTTP/1.1\r\nHost: origin.test\r\n"
                      f"{extra}\r\n".encode())
            status = int(f.readline().split()[1])
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = b"" if method == "HEAD" or status in (204, 304) else f.read(int(headers["content-length"]))
            return status, headers, body

        status, headers, body = exchange("HEAD")
        self.assertEqual((status, headers["content-length"], body), (200, "1024", b""))
        status, headers, body = exchange("GET", f'If-None-Match: {headers["etag"]}\r\n')
        self.assertEqual((status, body), (304, b""))
        status, headers, body = exchange("GET")
        self.assertEqual((status, body), (200, b"s" * 1024))
        self.assertEqual(headers["via"], "1.1 hallpass")
        s.close()

    def test_expect_100_continue_is_answered_for_http_1_1_and_ignored_for_1_0(self):
        for version, interim in (("1.1", True), ("1.0", False)):
            with self.subTest(version=version):
                s = socket.socket()
                s.bind((STAFF, 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", self.proxy.port))
                f = s.makefile("rb")
                s.sendall(f"POST http://py.test:{self.py.port}/echo HTTP/{version}\r\nHost: py.test\r\n"
                          "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n".encode())
                if interim:
                    self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
                    self.assertEqual(f.readline(), b"\r\n")
                s.sendall(b"hello")
                status = f.readline()
                self.assertTrue(status.startswith(b"HTTP/1.") and b" 200 " in status, status)  # never a 100 to 1.0
                s.close()

    def test_a_head_answered_by_the_proxy_itself_has_no_body(self):
        """The block page and the other pages the proxy writes: a HEAD gets the head alone
        (with the page's length), so the next response on the connection is read as itself."""
        s = socket.socket()
        s.bind((PUPIL, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        f = s.makefile("rb")

        def head(method, host, path="/small"):
            s.sendall(f"{method} http://{host}:{self.nginx.port}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status = int(f.readline().split()[1])
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            return status, headers

        status, headers = head("HEAD", "facebook.test")  # blocked for pupils: the block page's head
        self.assertEqual(status, 403)
        self.assertGreater(int(headers["content-length"]), 1000)
        # In step: the next answer on the connection is the origin's, not the rest of a page.
        status, headers = head("GET", "origin.test")
        self.assertEqual(status, 200)
        self.assertEqual(f.read(int(headers["content-length"])), b"s" * 1024)
        status, headers = head("HEAD", "hallpass.invalid", "/nothing")  # the proxy's own address: 404
        self.assertEqual(status, 404)
        self.assertGreater(int(headers["content-length"]), 100)
        self.assertEqual(f.read(), b"")  # the head alone, then the proxy closes
        s.close()

    def test_hop_by_hop_headers_and_via(self):
        out = raw_request(self.proxy, (
            f"GET http://py.test:{self.py.port}/headers HTTP/1.1\r\nHost: py.test\r\n"
            "Connection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nProxy-Authorization: Basic eDp5\r\n"
            "Proxy-Connection: keep-alive\r\nTE: trailers\r\nKeep-Alive: 300\r\nX-Kept: yes\r\n"
            "X-Original-URL: /blocked\r\nx-rewrite-url: /blocked\r\n\r\n").encode(),
            source=STAFF)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertEqual(status_of(out), 200)
        import json
        names = {n.lower(): v for n, v in json.loads(body)}
        # And the path overrides an origin may serve instead of the request line's (not hop-by-hop,
        # but never a browser's: hostile-input audit, 2026-12-05).
        for hop in ("x-secret-hop", "proxy-authorization", "proxy-connection", "te", "keep-alive", "x-original-url",
                    "x-rewrite-url"):
            self.assertNotIn(hop, names)
        self.assertEqual(names.get("x-kept"), "yes")
        self.assertIn("hallpass", names.get("via", ""))
        # Response side: the origin's hop-by-hop fields do not reach the client.
        self.assertNotIn(b"X-Hop", head)
        self.assertNotIn(b"Keep-Alive: timeout", head)
        self.assertIn(b"Via: 1.1 hallpass", head)

    def test_keep_alive_client_and_pooled_upstream(self):
        before = self.py.connections
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        f = s.makefile("rb")
        def exchange(request):
            s.sendall(request)
            status = f.readline()
            self.assertIn(b"200", status)
            length = 0
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            return f.read(length)

        for i in range(5):
            self.assertEqual(exchange(f"GET http://py.test:{self.py.port}/echo?{i} HTTP/1.1\r\nHost: py.test\r\n\r\n".encode()), b"")
        # Five requests on one client connection used at most one new upstream connection
        # (none when an earlier test left one in the pool).
        self.assertLessEqual(self.py.connections - before, 1)
        s.close()
        # A connection that carried a request body is not reused (forward.cpp: an origin that
        # misread the body as a request would answer it later). From a device of its own (pooled
        # connections are each device's): GET (new), POST (takes it: not the stream's first
        # request), GET (new again: the POST's was closed), POST, GET: three connections.
        s = socket.socket()
        s.bind(("127.0.0.77", 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        f = s.makefile("rb")
        before = self.py.connections
        get = f"GET http://py.test:{self.py.port}/echo HTTP/1.1\r\nHost: py.test\r\n\r\n".encode()
        post = f"POST http://py.test:{self.py.port}/echo HTTP/1.1\r\nHost: py.test\r\nContent-Length: 5\r\n\r\nhello".encode()
        for request, answer in ((get, b""), (post, b"hello"), (get, b""), (post, b"hello"), (get, b"")):
            self.assertEqual(exchange(request), answer)
        s.close()
        self.assertEqual(self.py.connections - before, 3)

    def test_a_request_hidden_in_a_body_never_gets_its_answer_through(self):
        # An origin that does not read a body on some path ("CL.0": /cl0 answers from the head
        # and leaves the body unread) takes the body for a request of its own and answers it
        # late. The pupil hides a request for a path the policy blocks in the body: its answer
        # must reach nobody, neither the pupil's next request nor another device's.
        # One worker, so that every connection meets the same pool (each worker has its own).
        proxy = Proxy(workers=1, policy_edit=with_secret_rule)
        self.addCleanup(proxy.stop)
        blocked = raw_request(proxy, f"GET http://py.test:{self.py.port}/secret-slow HTTP/1.1\r\nHost: py.test\r\n"
                                     "Connection: close\r\n\r\n".encode(), source=PUPIL)
        self.assertEqual(status_of(blocked), 403)
        hidden = b"GET /secret-slow HTTP/1.1\r\nHost: py.test\r\n\r\n"
        for source in (PUPIL, STAFF):
            out = raw_request(proxy, f"POST http://py.test:{self.py.port}/cl0 HTTP/1.1\r\nHost: py.test\r\n"
                                     f"Content-Length: {len(hidden)}\r\nConnection: close\r\n\r\n".encode() + hidden,
                              source=PUPIL)
            self.assertEqual(status_of(out), 200, out[:200])
            for _ in range(3):
                status, body, _ = curl(proxy, f"http://py.test:{self.py.port}/echo", source=source)
                self.assertEqual((status, body), (200, b""), "the hidden request's answer came back")
            time.sleep(0.5)  # the hidden request's late answer has been sent by now
            status, body, _ = curl(proxy, f"http://py.test:{self.py.port}/echo", source=source)
            self.assertEqual((status, body), (200, b""), "the hidden request's answer came back")

    def test_a_blocked_path_is_blocked_however_servers_read_it(self):
        # Tomcat and Jetty read "/x/..;/secret" as "/secret", IIS "/x/..\\secret" so: a block
        # holds in every reading, and an allow (here the staff's) is unaffected. explain agrees.
        proxy = Proxy(policy_edit=with_secret_rule)
        self.addCleanup(proxy.stop)
        for path in ("/x/..;/secret-slow", "/x/..;jsessionid=1/secret-slow", "/x/..\\secret-slow",
                     "/x/..%5Csecret-slow", "/x%5c..%5csecret-slow", "/secret-slow//..", "/secret-slow/%2F.."):
            out = raw_request(proxy, f"GET http://py.test:{self.py.port}{path} HTTP/1.1\r\nHost: py.test\r\n"
                                     "Connection: close\r\n\r\n".encode(), source=PUPIL)
            self.assertEqual(status_of(out), 403, (path, out[:200]))
            self.assertNotIn(b"SECRET", out)
            r = subprocess.run([BIN, "explain", "--config", proxy.config, "--client", PUPIL, "--json",
                                f"http://py.test:{self.py.port}{path}"], capture_output=True, text=True, timeout=30)
            got = json.loads(r.stdout)
            self.assertEqual((got["action"], got["rule"]), ("block", "pupils rule 3 (secret)"), path)
            self.assertTrue(any("as some servers read it" in n for n in got["notes"]), got["notes"])
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("status") == 403 and l.get("path", "").startswith("/x/..")],
                        what="the blocked reading's line")[-1]
        self.assertEqual(line["rule"], "pupils rule 3 (secret)")
        self.assertIn("'/secret-slow'", line["note"])
        out = raw_request(proxy, f"GET http://py.test:{self.py.port}/x/..;/secret-slow HTTP/1.1\r\nHost: py.test\r\n"
                                 "Connection: close\r\n\r\n".encode(), source=STAFF)
        self.assertEqual(status_of(out), 404)  # forwarded as written: the Python origin has no such path
        self.assertEqual(self.py.requests[-1]["target"], "/x/..;/secret-slow")

    def test_a_blocked_url_is_blocked_in_any_case(self):
        # IIS reads "/SECRET-slow" as "/secret-slow": a policy URL block holds in any ASCII case,
        # the log and explain say why, and an allow elsewhere is not widened.
        proxy = Proxy(policy_edit=with_secret_rule)
        self.addCleanup(proxy.stop)
        for path in ("/SECRET-slow", "/Secret-slow?x=1", "/%53ECRET-slow"):
            out = raw_request(proxy, f"GET http://py.test:{self.py.port}{path} HTTP/1.1\r\nHost: py.test\r\n"
                                     "Connection: close\r\n\r\n".encode(), source=PUPIL)
            self.assertEqual(status_of(out), 403, (path, out[:200]))
            r = subprocess.run([BIN, "explain", "--config", proxy.config, "--client", PUPIL, "--json",
                                f"http://py.test:{self.py.port}{path}"], capture_output=True, text=True, timeout=30)
            got = json.loads(r.stdout)
            self.assertEqual((got["action"], got["rule"]), ("block", "pupils rule 3 (secret)"), path)
            self.assertTrue(any("only without regard to case" in n for n in got["notes"]), got["notes"])
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("status") == 403 and l.get("path", "") == "/SECRET-slow"],
                        what="the case-folded block's line")[-1]
        self.assertEqual(line["rule"], "pupils rule 3 (secret)")
        self.assertIn("'/secret' only without regard to case", line["note"])
        # Another path, and staff, unaffected.
        status, _, _ = curl(proxy, f"http://py.test:{self.py.port}/echo", source=PUPIL)
        self.assertEqual(status, 200)
        out = raw_request(proxy, f"GET http://py.test:{self.py.port}/SECRET-slow HTTP/1.1\r\nHost: py.test\r\n"
                                 "Connection: close\r\n\r\n".encode(), source=STAFF)
        self.assertEqual(status_of(out), 404)  # forwarded: the Python origin has no such path

    def test_pooled_origin_connections_are_each_devices_own(self):
        # Whatever an origin sends late on a connection can reach only the device whose request
        # it followed: a device never takes another's pooled connection.
        # One worker: each worker has its own pool, and a new client connection may go to either.
        proxy = Proxy(workers=1)
        self.addCleanup(proxy.stop)
        reused = lambda: proxy.metric("hallpass_upstream_connections_reused_total")
        url = f"http://py.test:{self.py.port}/echo"
        self.assertEqual(curl(proxy, url, source=GUEST)[0], 200)
        before = reused()
        self.assertEqual(curl(proxy, url, source=GUEST)[0], 200)  # the guest's own: reused
        self.assertEqual(reused(), before + 1)
        before = self.py.connections
        self.assertEqual(curl(proxy, url, source=UNKNOWN)[0], 200)  # another device: a new one
        self.assertEqual(self.py.connections, before + 1)
        before_reuse_unknown = reused()
        self.assertEqual(curl(proxy, url, source=UNKNOWN)[0], 200)  # and then its own
        self.assertEqual(reused(), before_reuse_unknown + 1)

    def test_a_body_cut_short_by_the_origin_is_cut_short_for_the_client(self):
        """The proxy never pads or re-frames a truncated Content-Length body: it closes the
        client connection, so the client sees the truncation (and cannot reuse the connection)."""
        resets = self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"})
        for path, sent in (("/truncated", 2048), ("/truncated-big", 300 * 1024)):
            s = socket.socket()
            s.bind((STAFF, 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", self.proxy.port))
            s.sendall(f"GET http://py.test:{self.py.port}{path} HTTP/1.1\r\nHost: py.test\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertEqual(status_of(head), 200)
            self.assertEqual(len(body), sent, path)
        def logged():
            found = [l for l in self.proxy.log_lines() if l["path"].startswith("/truncated") and l["client"] == STAFF]
            return found if len(found) >= 2 else None
        lines = wait_for(logged, what="two log lines for the truncated bodies")
        # The site's doing, not the client's, and counted with the origin failures.
        self.assertTrue(all("the site cut its answer short" in l.get("note", "") for l in lines), lines)
        self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": "reset"}), resets + 2)

    def test_a_download_the_client_cancels_is_logged_as_the_clients_doing(self):
        """A client that stops a download (a pupil cancelling, a closed tab) is told apart from a
        site that cut its answer short: its own note, and not counted against the site."""
        failures = {kind: self.proxy.metric("hallpass_upstream_failures_total", {"kind": kind})
                    for kind in ("reset", "timeout")}
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", self.proxy.port))
        s.sendall(f"GET {self.url('origin.test', '/huge')} HTTP/1.1\r\nHost: origin.test\r\n\r\n".encode())
        got = 0
        for _ in range(1000):  # 256 KiB of the 1 GiB, then away
            chunk = s.recv(65536)
            self.assertTrue(chunk, "the proxy closed first")
            got += len(chunk)
            if got >= 256 * 1024:
                break
        s.close()
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["path"] == "/huge" and l["client"] == STAFF],
                        timeout=20, what="the cancelled download's line")[-1]
        self.assertIn("the client closed the connection before the answer ended", line.get("note", ""), line)
        self.assertNotIn("the site cut its answer short", line.get("note", ""))
        for kind, before in failures.items():
            self.assertEqual(self.proxy.metric("hallpass_upstream_failures_total", {"kind": kind}), before, kind)

    def test_a_client_that_stops_reading_is_logged_as_such(self):
        """A client still connected that takes nothing more (a frozen tab, a sleeping device) is
        cut off after upstream.idle_timeout (10 s here), and the line says so: it used to read as
        a client that closed."""
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for it
        s.connect(("127.0.0.1", self.proxy.port))
        self.addCleanup(s.close)
        s.sendall(f"GET {self.url('origin.test', '/big')} HTTP/1.1\r\nHost: origin.test\r\n\r\n".encode())
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["path"] == "/big" and l["client"] == STAFF],
                        timeout=30, interval=0.5, what="the stalled download's line")[-1]
        self.assertIn("the client stopped reading for 10 s (upstream.idle_timeout)", line.get("note", ""), line)
        self.assertLess(line["bytes_out"], 32 * 1024 * 1024)  # cut off, not sent whole

    def test_an_origin_that_refuses_an_upload_early_is_heard(self):
        """An origin that answers 413 from the head and closes without reading the body makes
        the proxy's upload fail (a broken pipe or a reset); the origin's answer, already
        received, goes to the client instead of a 502, and the client connection then closes
        (the rest of its body is still on its way)."""
        folder = tempfile.mkdtemp(prefix="hallpass-upload-")
        self.addCleanup(shutil.rmtree, folder)
        upload = os.path.join(folder, "big.bin")
        with open(upload, "wb") as f:
            f.write(b"u" * (16 << 20))
        # Without Expect (curl's own for a large body): that path, where the origin sees the
        # head only, is proxy_framing_test's.
        status, body, err = curl(self.proxy, f"http://py.test:{self.py.port}/early-413", source=STAFF,
                                 extra=["--data-binary", "@" + upload, "-H", "Expect:"])
        self.assertEqual((status, body), (413, b"too large"), err)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["path"] == "/early-413"] or None,
                        what="the upload's log line")[0]
        self.assertEqual((line["status"], line["action"]), (413, "allow"), line)
        self.assertIn("answered before the request was sent whole", line["note"])

    def test_an_upload_answered_from_its_head_is_not_reset(self):
        """A request answered without its body being read (a blocked upload; a site that
        cannot be reached) ends with a lingering close even when none of the body has arrived
        yet at the answer: the body that follows is read and dropped, not answered by a reset
        that would destroy the answer (proxy/README.md, "A lingering close")."""
        closed_port = free_port()
        for url, want in ((f"http://noupload.test:{self.py.port}/x", 403),
                          (f"http://py.test:{closed_port}/x", 502)):
            with self.subTest(url=url):
                s = socket.socket()
                s.bind((PUPIL, 0))
                s.settimeout(10)
                s.connect(("127.0.0.1", self.proxy.port))
                self.addCleanup(s.close)
                s.sendall(f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".encode())
                time.sleep(0.1)  # the answer is written before any of the body arrives
                for _ in range(40):  # 2.5 MiB, without reading, as an uploading client does
                    s.sendall(b"x" * 65536)
                    time.sleep(0.005)
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
                self.assertEqual(status_of(answer), want, answer[:200])

    def test_a_pooled_connection_the_origin_closed_is_not_a_failure(self):
        """Every pooled connection is checked (a peek) before reuse: neither a GET nor a POST
        goes out on one the origin has closed (issue 9: stray bytes must never be reused)."""
        proxy = Proxy(workers=1)  # one worker: one pool, so the stale connection is the one offered
        try:
            for method, extra, reused in (("GET", [], 0), ("POST", ["--data", "x=1"], 0)):
                status, body, err = curl(proxy, f"http://py.test:{self.py.port}/then-close", source=STAFF,
                                         extra=["-X", method, *extra])
                self.assertEqual((status, body), (200, b"ok"), err)
                time.sleep(0.5)  # the origin has closed the pooled connection by now
                before = proxy.metric("hallpass_upstream_connections_reused_total")
                status, body, err = curl(proxy, f"http://py.test:{self.py.port}/echo", source=STAFF,
                                         extra=["-X", method, *extra])
                self.assertEqual(status, 200, f"{method} after a stale pooled connection: {err}")
                self.assertEqual(proxy.metric("hallpass_upstream_connections_reused_total") - before, reused, method)
        finally:
            proxy.stop()

    def test_a_post_the_origin_drops_on_a_pooled_connection_is_resent_by_the_client(self):
        """The origin closes a pooled connection in the instant a POST goes out on it, which no
        peek before reuse can see. The proxy never repeats a POST itself (RFC 9110 9.2.2), and
        the form must not be lost to a 502: on a client connection's first request such a
        request takes a new origin connection; on a later one the client's connection closes
        unanswered, as the origin's own close would look to a client connected directly, and
        the client sends it again (curl here; browsers do the same)."""
        proxy = Proxy(workers=1)  # one worker: one pool, so the doomed connection is the one offered
        self.addCleanup(proxy.stop)
        url = f"http://py.test:{self.py.port}"
        # 1. The POST is the first request of its client connection: a new origin connection,
        # and the pooled one is left alone.
        status, body, err = curl(proxy, f"{url}/drop-next", source=STAFF)
        self.assertEqual((status, body), (200, b"ok"), err)
        connections = self.py.connections
        reused = proxy.metric("hallpass_upstream_connections_reused_total")
        status, body, err = curl(proxy, f"{url}/echo", source=STAFF, extra=["--data", "form=1"])
        self.assertEqual((status, body), (200, b"form=1"), err)
        self.assertEqual(proxy.metric("hallpass_upstream_connections_reused_total"), reused)
        self.assertEqual(self.py.connections, connections + 1)
        # 2. The POST follows a GET on one client connection, and the GET's origin connection is
        # the pooled one it takes (the origin drops it as the POST arrives): curl is told by the
        # close, unanswered, and sends the POST again on a new connection, where it succeeds.
        cmd = ["curl", "-sS", "-v", "--max-time", "20", "-x", f"http://127.0.0.1:{proxy.port}",
               "--interface", STAFF, "-o", "/dev/null", f"{url}/drop-next",
               "--next", "-x", f"http://127.0.0.1:{proxy.port}", "--interface", STAFF, "--data", "form=2",
               "-o", "-", "-w", "\n%{http_code}", f"{url}/echo"]
        r = subprocess.run(cmd, capture_output=True, timeout=30)
        err = r.stderr.decode()
        body, _, code = r.stdout.rpartition(b"\n")
        self.assertEqual((int(code or 0), body), (200, b"form=2"), err)
        self.assertIn("Re-using existing connection", err)  # the POST went out on the GET's connection first
        self.assertIn("retrying a fresh connect", err)       # ... and was sent again by curl, not by the proxy
        posts = [r for r in self.py.requests if r["method"] == "POST" and r["target"] == "/echo"]
        self.assertEqual(posts[-1]["body_len"], len(b"form=2"))
        # The log says what happened to the first attempt.
        line = wait_for(lambda: next((e for e in reversed(proxy.log_lines())
                                      if "closed unanswered" in e.get("note", "")), None),
                        what="the log line of the dropped POST")
        self.assertEqual(line["action"], "error")
        self.assertEqual(line["method"], "POST")
        # A GET in the same place is still repeated by the proxy itself: the client sees a 200.
        cmd = ["curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{proxy.port}", "--interface", STAFF,
               "-o", "/dev/null", f"{url}/drop-next", "--next", "-x", f"http://127.0.0.1:{proxy.port}",
               "--interface", STAFF, "-o", "-", "-w", "\n%{http_code}", f"{url}/chunked"]
        r = subprocess.run(cmd, capture_output=True, timeout=30)
        body, _, code = r.stdout.rpartition(b"\n")
        self.assertEqual((int(code or 0), body), (200, b"hello world"), r.stderr.decode())

    def test_websocket_upgrade_is_relayed(self):
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.proxy.port))
        s.sendall(f"GET http://py.test:{self.py.port}/ws HTTP/1.1\r\nHost: py.test\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        f = s.makefile("rb")
        self.assertIn(b"101", f.readline())
        while f.readline() not in (b"\r\n", b""):
            pass
        s.sendall(ws_frame(b"ping-1"))
        self.assertEqual(ws_read_frame(f), b"echo:ping-1")
        s.sendall(ws_frame(b"ping-2"))
        self.assertEqual(ws_read_frame(f), b"echo:ping-2")
        s.close()
        # Blocked before the upgrade for pupils.
        out = raw_request(self.proxy, f"GET http://facebook.test:{self.py.port}/ws HTTP/1.1\r\nHost: facebook.test\r\n"
                                      "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n".encode(), source=PUPIL)
        self.assertEqual(status_of(out), 403)

    def test_close_in_a_second_connection_line_is_honoured(self):
        # Connection is a list, and its field lines add up (RFC 9110 5.3): `close` in any of
        # them ends the connection after the answer (Beast's message reads the first line only).
        for fields in ["Connection: x-foo\r\nConnection: close\r\n",
                       "Upgrade: websocket\r\nConnection: Upgrade\r\nConnection: close\r\n"]:
            started = time.monotonic()
            out = raw_request(self.proxy, f"GET http://py.test:{self.py.port}/echo HTTP/1.1\r\nHost: py.test\r\n"
                                          f"{fields}\r\n".encode(), source=STAFF)
            self.assertEqual(status_of(out), 200, out[:200])
            self.assertIn(b"\r\nConnection: close\r\n", out.split(b"\r\n\r\n")[0] + b"\r\n")
            self.assertLess(time.monotonic() - started, 2, f"the connection stayed open after {fields!r}")

    def test_an_h2c_upgrade_is_never_relayed(self):
        # "h2c smuggling": an origin that switches to HTTP/2 cleartext would take HTTP/2
        # requests for any path on the relayed connection, unseen by the rules. Offered beside
        # WebSocket, h2c is dropped (the origin sees `Upgrade: websocket` alone); a 101 to
        # anything but WebSocket is refused with a 502, never relayed.
        offer = ("Upgrade: h2c, websocket\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
        out = raw_request(self.proxy, f"GET http://py.test:{self.py.port}/h2c HTTP/1.1\r\nHost: py.test\r\n{offer}"
                                      "Connection: close\r\n\r\n".encode(), source=STAFF, timeout=3)
        self.assertEqual(status_of(out), 200, out[:300])
        self.assertTrue(out.endswith(b"\r\n\r\nwebsocket"), out[-200:])
        out = raw_request(self.proxy, f"GET http://py.test:{self.py.port}/h2c?always HTTP/1.1\r\nHost: py.test\r\n"
                                      f"{offer}\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".encode(), source=STAFF)
        self.assertEqual(status_of(out), 502, out[:300])
        self.assertNotIn(b"h2c:", out)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("path") == "/h2c" and l["status"] == 502],
                        what="the refused switch's line")[-1]
        self.assertIn("other than the WebSocket", json.dumps(line))

    def test_websocket_through_a_connect_tunnel_as_browsers_send_it(self):
        """Chromium and Firefox send a ws:// WebSocket through a CONNECT (RFC 6455 4.1), then
        plain HTTP inside: each request in the tunnel is decided and forwarded like any other,
        for the tunnel's host only, never relayed unseen."""
        # The origin's port as a port for plain HTTP only (connect.http_ports), as 80 is by default.
        proxy = Proxy(policy_edit=lambda t: t.replace("  hello_timeout: 3s\n",
                                                      f"  http_ports: [{self.py.port}]\n  hello_timeout: 3s\n"))
        self.addCleanup(proxy.stop)

        def tunnel(host, source):
            s = socket.socket()
            s.bind((source, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", proxy.port))
            s.sendall(f"CONNECT {host}:{self.py.port} HTTP/1.1\r\nHost: {host}:{self.py.port}\r\n\r\n".encode())
            f = s.makefile("rb")
            status = f.readline()
            while f.readline() not in (b"\r\n", b""):
                pass
            return s, f, status

        s, f, status = tunnel("py.test", STAFF)
        self.addCleanup(s.close)
        self.assertIn(b" 200 ", status)
        # The method's bytes in two writes, as a slow client may send them.
        s.sendall(b"GE")
        time.sleep(0.2)
        s.sendall(f"T /ws HTTP/1.1\r\nHost: py.test:{self.py.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.assertIn(b"101", f.readline())
        while f.readline() not in (b"\r\n", b""):
            pass
        s.sendall(ws_frame(b"ping-1"))
        self.assertEqual(ws_read_frame(f), b"echo:ping-1")
        f.close()
        s.close()  # the WebSocket's line is written when it ends
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("path") == "/ws"], what="the /ws line")[-1]
        self.assertEqual((line["method"], line["scheme"], line["host"], line["status"]), ("GET", "http", "py.test", 101))
        self.assertNotIn("tls", line)  # nothing was decrypted

        # A pupil's tunnel to an allowed site: a request inside naming another site gets 421.
        s2, f2, status = tunnel("py.test", PUPIL)
        self.addCleanup(s2.close)
        self.assertIn(b" 200 ", status)
        s2.sendall(f"GET /echo HTTP/1.1\r\nHost: facebook.test:{self.py.port}\r\n\r\n".encode())
        self.assertIn(b" 421 ", f2.readline())
        # A blocked site's CONNECT is refused before any byte goes through.
        s3, _, status = tunnel("facebook.test", PUPIL)
        self.addCleanup(s3.close)
        self.assertIn(b" 403 ", status)
        # Bytes that are neither TLS nor HTTP are still refused (connect.allow_non_tls: false).
        s4, f4, status = tunnel("py.test", STAFF)
        self.addCleanup(s4.close)
        self.assertIn(b" 200 ", status)
        s4.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        self.assertEqual(f4.read(), b"")
        # Nor does TLS go through a port for plain HTTP only: the tunnel closes at the ClientHello.
        s5, _, status = tunnel("py.test", STAFF)
        self.addCleanup(s5.close)
        self.assertIn(b" 200 ", status)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(s5, server_hostname="py.test")
        line = wait_for(lambda: [l for l in proxy.log_lines() if l.get("note") == "TLS in a tunnel to a port for "
                                 "plain HTTP only"], what="the closed TLS tunnel's line")[-1]
        self.assertEqual((line["action"], line["circumvention"]), ("block", True))
        # A port in neither list is refused at the CONNECT, as before.
        out = raw_request(proxy, b"CONNECT py.test:25 HTTP/1.1\r\nHost: py.test:25\r\n\r\n", source=STAFF)
        self.assertEqual(status_of(out), 403)

    def test_origin_refuses_resets_or_hangs(self):
        closed_port = __import__("harness").free_port()
        status, body, _ = curl(self.proxy, f"http://origin.test:{closed_port}/", source=STAFF)
        self.assertEqual(status, 502)
        self.assertIn(b"could not be reached", body)
        status, _, _ = curl(self.proxy, f"http://py.test:{self.py.port}/reset", source=STAFF)
        self.assertEqual(status, 502)
        start = time.monotonic()
        status, body, _ = curl(self.proxy, f"http://py.test:{self.py.port}/hang", source=STAFF)
        self.assertEqual(status, 504)
        self.assertLess(time.monotonic() - start, 10)

    def test_a_client_that_leaves_while_the_origin_thinks_ends_the_request(self):
        """A client that gives up on a slow site (a reload, a closed tab) ends the request at
        once: the origin's connection is closed and the line says the client left, where the
        proxy held both for the response timeout and logged a 504 nobody received (audit,
        2026-12-06). A client with its next request pipelined is not taken as gone."""
        proxy = Proxy(response_timeout="20s")
        self.addCleanup(proxy.stop)
        s = socket.socket()
        s.bind((STAFF, 0))
        s.connect(("127.0.0.1", proxy.port))
        s.sendall(f"GET http://py.test:{self.py.port}/hang HTTP/1.1\r\nHost: py.test\r\n\r\n".encode())
        time.sleep(0.5)
        s.close()
        started = time.monotonic()
        line = wait_for(lambda: [l for l in proxy.log_lines() if l["path"] == "/hang"], timeout=10,
                        what="the abandoned request's line")[-1]
        self.assertLess(time.monotonic() - started, 5)
        self.assertRegex(line.get("note", ""), r"the client closed its connection \d+ s after its request went to the site, before the answer came")
        self.assertNotEqual(line["status"], 504, line)
        wait_for(lambda: proxy.metric("hallpass_active_connections") == 0, timeout=5,
                 what="no connection left open")
        # Pipelined: the first answer waits for the origin; the second request's bytes are no
        # departure, and both are answered in order.
        s = socket.socket()
        s.bind((STAFF, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", proxy.port))
        s.sendall((f"GET http://py.test:{self.py.port}/secret-slow HTTP/1.1\r\nHost: py.test\r\n\r\n"
                   f"GET http://py.test:{self.py.port}/secret-slow HTTP/1.1\r\nHost: py.test\r\n"
                   "Connection: close\r\n\r\n").encode())
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertEqual(got.count(b"HTTP/1.1 200"), 2, got)
        self.assertEqual(got.count(b"SECRET"), 2, got)

    def test_requests_to_the_proxy_itself_and_unknown_names(self):
        out = raw_request(self.proxy, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(out), 400)
        self.assertIn("This address is the school\u2019s internet filter, not a website".encode(), out)
        status, _, _ = curl(self.proxy, f"http://127.0.0.1:{self.proxy.port}/", source=STAFF)
        self.assertEqual(status, 403)  # a loop to the proxy's own port is never allowed
        status, _, _ = curl(self.proxy, "http://no-such-name.invalid/", source=STAFF)
        self.assertEqual(status, 502)

    def test_access_log_one_line_per_request_and_metrics(self):
        time.sleep(0.3)
        before = len(self.proxy.log_lines())
        blocked_before = self.proxy.metric("hallpass_requests_total", {"role": "guests", "action": "block"})
        allowed_before = self.proxy.metric("hallpass_requests_total", {"role": "guests", "action": "allow"})
        for _ in range(3):
            curl(self.proxy, self.url("instagram.test"), source=GUEST)
        for _ in range(4):
            curl(self.proxy, self.url("origin.test"), source=GUEST)
        lines = self.proxy.log_lines(before + 7)
        self.assertEqual(len(lines), before + 7)
        mine = [l for l in lines[before:] if l["client"] == GUEST]
        self.assertEqual(len(mine), 7)
        blocked = [l for l in mine if l["action"] == "block"]
        self.assertEqual(len(blocked), 3)
        b = blocked[0]
        self.assertEqual((b["role"], b["host"], b["status"], b["category"]), ("guests", "instagram.test", 403, "social_media"))
        for key in ("time", "client", "user", "role", "method", "scheme", "host", "port", "path", "status", "action",
                    "rule", "category", "reason", "bytes_in", "bytes_out", "duration_ms", "circumvention"):
            self.assertIn(key, b)
        self.assertRegex(b["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
        ok = [l for l in mine if l["action"] == "allow"][0]
        self.assertGreaterEqual(ok["bytes_out"], 1024)
        self.assertEqual(self.proxy.metric("hallpass_requests_total", {"role": "guests", "action": "block"}) - blocked_before, 3)
        self.assertEqual(self.proxy.metric("hallpass_requests_total", {"role": "guests", "action": "allow"}) - allowed_before, 4)
        self.assertGreater(self.proxy.metric("hallpass_decision_seconds_count"), 0)

    def test_responses_with_ambiguous_framing_get_502(self):
        for path in ("/ambiguous-te", "/ambiguous-cl"):
            with self.subTest(path=path):
                out = raw_request(self.proxy, f"GET http://py.test:{self.py.port}{path} HTTP/1.1\r\nHost: py.test\r\n"
                                              "Connection: close\r\n\r\n".encode(), source=STAFF)
                self.assertEqual(status_of(out), 502, out[:300])
                self.assertNotIn(b"smuggled", out)
                self.assertNotIn(b"hello", out)
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l["path"] == "/ambiguous-cl"] or None,
                        what="the log line")[-1]
        self.assertEqual(line["status"], 502)
        self.assertIn("upstream response", line["note"])

    def test_query_strings_are_not_logged_by_default(self):
        before = len(self.proxy.log_lines())
        status, _, err = curl(self.proxy, self.url("origin.test", "/small?secret=pupil-name"), source=STAFF)
        self.assertEqual(status, 200, err)
        # Lines from earlier tests may still be arriving: wait for this request's own line.
        mine = wait_for(lambda: [l for l in self.proxy.log_lines()[before:]
                                 if l["host"] == "origin.test" and l["client"] == STAFF] or None,
                        what="this request's log line")
        self.assertEqual(len(mine), 1, mine)
        self.assertEqual(mine[0]["path"], "/small")
        with open(self.proxy.access_log) as f:
            self.assertNotIn("pupil-name", f.read())


class AllowListTopLevelDomainTest(unittest.TestCase):
    """A top-level domain (`com`) in a list an allow rule uses opened every site under it
    (outside-in audit of the feeds as hostile input, 2026-12-05, second session): the entry is
    refused for the allow with a warning at its line, and a block rule still blocks with it."""

    def test_com_in_an_allowed_list_opens_only_the_listed_sites(self):
        origin = Origin()
        self.addCleanup(origin.stop)
        lists = tempfile.mkdtemp(prefix="hallpass-allow-list-")
        self.addCleanup(shutil.rmtree, lists, True)
        allowed = os.path.join(lists, "visitor-sites.txt")
        with open(allowed, "w") as f:
            f.write("# the sites visitors may use\nexample.com\ncom\n")
        visitor = "127.0.0.5"

        def edit(text):
            text = text.replace("  circumvention: {domains: [vpn.test]}\n",
                                "  circumvention: {domains: [vpn.test]}\n"
                                f"  visitor_sites: {{domain_files: [\"{allowed}\"]}}\n", 1)
            text = text.replace(f"  staff:\n    networks: [{STAFF}/32]\n    default: allow\n",
                                f"  staff:\n    networks: [{STAFF}/32]\n    default: allow\n    rules:\n"
                                "      - {action: block, categories: [visitor_sites]}\n", 1)
            text = text.replace("fallback_role: pupils\n",
                                f"  visitors:\n    networks: [{visitor}/32]\n    default: block\n    rules:\n"
                                "      - {action: allow, categories: [visitor_sites]}\n"
                                "fallback_role: pupils\n", 1)
            return text.replace("hosts:\n", "hosts:\n  example.com: 127.0.0.1\n  www.example.com: 127.0.0.1\n"
                                              "  other.com: 127.0.0.1\n", 1)

        proxy = Proxy(policy_edit=edit)
        self.addCleanup(proxy.stop)
        self.assertIn("visitors:", proxy.policy_text)
        self.assertIn("block, categories: [visitor_sites]", proxy.policy_text)
        r = subprocess.run([BIN, "check", "--config", proxy.config], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"{allowed}:3:1: 'com' is a top-level domain or a public suffix", r.stdout + r.stderr)
        self.assertIn("visitors rule 1 allows category 'visitor_sites'", r.stdout + r.stderr)
        self.assertTrue(any(f"{allowed}:3:1: 'com'" in l for l in proxy.stderr_lines), proxy.stderr_lines)
        for host, source, want in (("example.com", visitor, 200), ("www.example.com", visitor, 200),
                                   ("other.com", visitor, 403),
                                   # A block rule of the same list still blocks with the whole .com.
                                   ("other.com", STAFF, 403), ("origin.test", STAFF, 200)):
            with self.subTest(host=host, source=source):
                status, _, err = curl(proxy, f"http://{host}:{origin.port}/small", source=source)
                self.assertEqual(status, want, err)




class IPv4ReachedByIPv6Test(unittest.TestCase):
    """A listed IPv4 address is not reached by spelling it as IPv6 (::ffff:a.b.c.d, NAT64):
    outside-in audit, 2026-12-05 (the UT1 doh list's 1.1.1.1 through [::ffff:1.1.1.1])."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()
        cls.proxy = Proxy(policy_edit=lambda t: t.replace("social_media: {domains: [facebook.test, instagram.test]}",
                                                           "social_media: {domains: [facebook.test, instagram.test, "
                                                           "127.0.0.1]}"))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.nginx.stop()

    def test_the_ipv6_spellings_of_a_blocked_ipv4_address_are_blocked(self):
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]"):
            with self.subTest(host=host):
                status, _, err = curl(self.proxy, f"http://{host}:{self.nginx.port}/small", source=PUPIL)
                self.assertEqual(status, 403, err)
        # Staff are not blocked from it, in either spelling.
        status, body, err = curl(self.proxy, f"http://[::ffff:127.0.0.1]:{self.nginx.port}/small", source=STAFF)
        self.assertEqual((status, body), (200, b"s" * 1024), err)
        # A tunnel to it likewise: refused before any connection is made.
        out = raw_request(self.proxy, b"CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:443\r\n\r\n",
                          source=PUPIL)
        self.assertEqual(status_of(out), 403, out[:200])
        line = wait_for(lambda: [l for l in self.proxy.log_lines() if l.get("method") == "CONNECT"], what="the CONNECT's line")[-1]
        self.assertIn("decided as the IPv4 address 127.0.0.1, which the IPv6 address ::ffff:127.0.0.1 reaches",
                      line.get("note", ""))


class SearchTermsBlockedOnlyTest(unittest.TestCase):
    """`access_log.search_terms: blocked` keeps the terms of blocked searches only, what the DfE
    standard asks for, so that a school can keep less (outside-in audit J, 2026-12-05)."""

    def test_only_the_blocked_searchs_terms_are_logged(self):
        origin = Origin()
        self.addCleanup(origin.stop)

        def edit(text):
            text = text.replace("      - {name: no uploads,",
                                "      - {action: block, urls: [\"www.google.com/search?q=forbidden\"]}\n"
                                "      - {name: no uploads,", 1)
            text = text.replace("hosts:\n", "hosts:\n  www.google.com: 127.0.0.1\n", 1)
            return text + "access_log:\n  search_terms: blocked\n"

        proxy = Proxy(policy_edit=edit)
        self.addCleanup(proxy.stop)
        base = f"http://www.google.com:{origin.port}/search?q="
        self.assertNotEqual(curl(proxy, base + "owls+and+bats", source=PUPIL)[0], 403)
        self.assertEqual(curl(proxy, base + "forbidden+words", source=PUPIL)[0], 403)
        lines = wait_for(lambda: [l for l in proxy.log_lines() if l.get("host") == "www.google.com"][1:] and
                         [l for l in proxy.log_lines() if l.get("host") == "www.google.com"], what="two lines")
        self.assertEqual([(l["action"], l.get("search")) for l in lines],
                         [("allow", None), ("block", "forbidden words")])
        # A value other than true, false or blocked is refused by check.
        bad = os.path.join(proxy.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write(proxy.policy_text.replace("search_terms: blocked", "search_terms: sometimes"))
        r = subprocess.run([BIN, "check", "--config", bad], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("access_log.search_terms must be true (every search's terms), blocked", r.stdout + r.stderr)


class ConnectionSignInOrigin(ThreadedServer):
    """An origin with connection-based sign-in, as IIS does NTLM (RFC 4559 for Negotiate): a
    request with `Authorization: NTLM <type 1>` gets a 401 challenge, one with a type 3 signs
    the TCP connection in, and every later request on that connection is answered as the
    signed-in user without any Authorization field. Anything else on a connection not signed in
    gets 401 asking for NTLM."""

    def _serve(self, conn):
        conn.settimeout(30)
        f = conn.makefile("rb")
        signed_in = False
        try:
            while True:
                head = read_request_head(f)
                if head is None:
                    return
                auth = head[3].get("authorization", "")
                if auth.startswith("NTLM TlRMTVNTUAAB"):
                    status, extra, body = "401 Unauthorized", "WWW-Authenticate: NTLM TlRMTVNTUAACAAAA\r\n", b"challenge"
                elif auth.startswith("NTLM TlRMTVNTUAAD"):
                    signed_in = True
                    status, extra, body = "200 OK", "", b"signed in as teacher"
                elif signed_in:
                    status, extra, body = "200 OK", "", b"signed in as teacher"
                else:
                    status, extra, body = "401 Unauthorized", "WWW-Authenticate: NTLM\r\n", b"who are you?"
                conn.sendall(f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except OSError:
            return
        finally:
            conn.close()


class ConnectionSignInTest(unittest.TestCase):
    """NTLM and Negotiate sign in the origin's TCP connection, not the request: such a
    connection must never be pooled for another client connection, even from the same address
    (a terminal server, NAT). It was: a second curl from the teacher's address, with no
    credentials, got the teacher's signed-in connection (outside-in audit with real clients,
    2026-12-07, H1)."""

    @classmethod
    def setUpClass(cls):
        cls.origin = ConnectionSignInOrigin()
        cls.proxy = Proxy()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.stop()

    def test_a_connection_signed_in_to_an_origin_is_never_another_clients(self):
        url = f"http://origin.test:{self.origin.port}/"

        def ask(s, auth=None):
            s.sendall((f"GET {url} HTTP/1.1\r\nHost: origin.test:{self.origin.port}\r\n" +
                       (f"Authorization: {auth}\r\n" if auth else "") + "\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return b"", b""
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += s.recv(4096)
            return head.split(b"\r\n")[0], body

        teacher = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10, source_address=(STAFF, 0))
        self.addCleanup(teacher.close)
        self.assertEqual(ask(teacher)[0], b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(ask(teacher, "NTLM TlRMTVNTUAABAAAA")[0], b"HTTP/1.1 401 Unauthorized")
        self.assertEqual(ask(teacher, "NTLM TlRMTVNTUAADAAAA"), (b"HTTP/1.1 200 OK", b"signed in as teacher"))
        self.assertEqual(ask(teacher), (b"HTTP/1.1 200 OK", b"signed in as teacher"))  # the same connection
        teacher.close()  # the teacher's browser moves on; the signed-in origin connection stays open
        for _ in range(3):  # another client at the same address, a few times over: never signed in
            other = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10, source_address=(STAFF, 0))
            self.addCleanup(other.close)
            self.assertEqual(ask(other), (b"HTTP/1.1 401 Unauthorized", b"who are you?"))
            other.close()


if __name__ == "__main__":
    unittest.main()
