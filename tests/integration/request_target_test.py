"""The request-target through the real proxy: bytes outside visible ASCII are refused with 400
and never reach the origin (issue 9; proxy/request_target.hpp)."""
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

    def test_non_ascii_connect_target_is_refused(self):
        out = self.send(b"www.exampl\xe9.org:443", method=b"CONNECT")
        self.assertEqual(status_of(out), 400, out[:200])
        self.assertIn(b"only visible ASCII is allowed", out)


if __name__ == "__main__":
    unittest.main()
