"""The request-target through the real proxy: bytes outside visible ASCII are refused with 400
and never reach the origin (issue 9; proxy/request_target.hpp); OPTIONS and TRACE as a proxy
must send them (asterisk-form, Max-Forwards: RFC 9112 3.2.4, RFC 9110 7.6.2)."""
import unittest

from harness import Proxy, PyOrigin, raw_request, status_of


class RequestTargetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = PyOrigin()
        cls.proxy = Proxy()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.py.stop()

    def send(self, target, method=b"GET"):
        return raw_request(self.proxy, method + b" " + target + b" HTTP/1.1\r\nHost: origin.test\r\n"
                           b"Connection: close\r\n\r\n")

    def test_raw_non_ascii_is_refused_before_the_origin(self):
        base = b"http://origin.test:%d" % self.py.port
        # The same path percent-encoded is forwarded: the origin answers it (404).
        before = len(self.py.requests)
        out = self.send(base + b"/caf%C3%A9")
        self.assertEqual(status_of(out), 404, out[:200])
        self.assertEqual(len(self.py.requests), before + 1)
        self.assertEqual(self.py.requests[-1]["target"], "/caf%C3%A9")

        for target in (base + b"/caf\xc3\xa9", base + b"/\x80", b"http://orig\xefn.test/"):
            with self.subTest(target=target):
                before = len(self.py.requests)
                out = self.send(target)
                self.assertEqual(status_of(out), 400, out[:200])
                self.assertIn(b"only visible ASCII is allowed", out)
                self.assertEqual(len(self.py.requests), before, "the origin saw the request")

    def test_the_host_goes_to_the_origin_as_decided_not_as_spelt(self):
        # Lower case, no trailing dot, escapes decoded: an origin refuses "orig%69n.test" (audit of
        # ways round the filter, 2026-12-06, F7); the decision already read it so.
        port = self.py.port
        for host in (b"orig%69n.test", b"ORIGIN.test.", b"Origin.Test"):
            with self.subTest(host=host):
                before = len(self.py.requests)
                out = self.send(b"http://%s:%d/spelt" % (host, port))
                self.assertEqual(status_of(out), 404, out[:200])
                hosts = [v for k, v in self.last_request_after(before)["headers"] if k.lower() == "host"]
                self.assertEqual(hosts, ["origin.test:%d" % port])

    def test_non_ascii_connect_target_is_refused(self):
        out = self.send(b"www.exampl\xe9.org:443", method=b"CONNECT")
        self.assertEqual(status_of(out), 400, out[:200])
        self.assertIn(b"only visible ASCII is allowed", out)

    def last_request_after(self, before):
        self.assertEqual(len(self.py.requests), before + 1, "the origin did not see exactly one request")
        return self.py.requests[-1]

    def test_options_without_a_path_goes_on_as_asterisk(self):
        # RFC 9112 3.2.4: the last proxy sends OPTIONS for a URL with an empty path as "*".
        base = b"http://origin.test:%d" % self.py.port
        for target, sent in ((base, "*"), (base + b"#frag", "*"), (base + b"/", "/"), (base + b"?x=1", "/?x=1")):
            with self.subTest(target=target):
                before = len(self.py.requests)
                self.send(target, method=b"OPTIONS")
                seen = self.last_request_after(before)
                self.assertEqual((seen["method"], seen["target"]), ("OPTIONS", sent))
        # Other methods never send "*".
        before = len(self.py.requests)
        self.send(base)
        self.assertEqual(self.last_request_after(before)["target"], "/")

    def test_max_forwards_counts_down_and_the_proxy_answers_at_zero(self):
        base = b"http://origin.test:%d/x" % self.py.port
        for method in (b"OPTIONS", b"TRACE"):
            with self.subTest(method=method):
                before = len(self.py.requests)
                raw_request(self.proxy, method + b" " + base + b" HTTP/1.1\r\nHost: origin.test\r\n"
                            b"Max-Forwards: 3\r\nConnection: close\r\n\r\n")
                seen = self.last_request_after(before)
                self.assertIn(["Max-Forwards", "2"], seen["headers"])

                before = len(self.py.requests)
                out = raw_request(self.proxy, method + b" " + base + b" HTTP/1.1\r\nHost: origin.test\r\n"
                                  b"Max-Forwards: 0\r\nCookie: session=SECRET\r\nX-Probe: yes\r\n"
                                  b"Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\nConnection: close\r\n\r\n")
                self.assertEqual(status_of(out), 200, out[:300])
                self.assertEqual(len(self.py.requests), before, "a request with Max-Forwards: 0 reached the origin")
                head, _, body = out.partition(b"\r\n\r\n")
                if method == b"OPTIONS":
                    self.assertIn(b"\r\nAllow: GET, HEAD, POST", head)
                    self.assertIn(b"Content-Length: 0", head)
                    self.assertEqual(body, b"")
                else:
                    # TRACE reflects the request as received, without its credentials.
                    self.assertIn(b"Content-Type: message/http", head)
                    self.assertTrue(body.startswith(b"TRACE " + base + b" HTTP/1.1\r\n"), body[:200])
                    self.assertIn(b"X-Probe: yes\r\n", body)
                    self.assertNotIn(b"SECRET", body)
                    self.assertNotIn(b"c2VjcmV0", body)
        # Other methods pass Max-Forwards on untouched.
        before = len(self.py.requests)
        raw_request(self.proxy, b"GET " + base + b" HTTP/1.1\r\nHost: origin.test\r\nMax-Forwards: 0\r\n"
                    b"Connection: close\r\n\r\n")
        self.assertIn(["Max-Forwards", "0"], self.last_request_after(before)["headers"])

    def test_options_asterisk_to_the_proxy_itself(self):
        out = raw_request(self.proxy, b"OPTIONS * HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(out), 200, out[:300])
        self.assertIn(b"\r\nAllow: GET, HEAD, POST", out)
        self.assertIn(b"CONNECT", out.partition(b"\r\n\r\n")[0])
        for method in (b"GET", b"POST", b"TRACE"):
            with self.subTest(method=method):
                out = raw_request(self.proxy, method + b" * HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 0\r\n"
                                  b"Connection: close\r\n\r\n")
                self.assertEqual(status_of(out), 400, out[:300])
                self.assertIn(b"only for OPTIONS", out)


if __name__ == "__main__":
    unittest.main()
