"""A real browser resends a form's POST that the origin dropped on a pooled connection.

Real parts: headless Chromium (Debian's `chromium`, driven over DevTools by browser_test.py's
`Browser`), the real `hallpass run` with one worker (one upstream pool) and PyOrigin, whose
/form-drop-next page answers with keep-alive and then closes that connection, unanswered, as
the next request arrives on it: the origin's close of an idle connection in the instant a
request goes out on it. The proxy must not repeat a POST itself (RFC 9110 9.2.2), so it closes
the browser's connection unanswered (proxy/README.md, "Upstream pool"), and Chromium sends the
POST again, body and all, because it went out on a reused keep-alive socket that closed before
any byte of an answer. The form must arrive, not a 502. Needs root (Chromium without its
sandbox, as browser_test.py)."""
import os
import shutil
import unittest

from browser_test import Browser
from harness import Proxy, PyOrigin, wait_for


@unittest.skipUnless(shutil.which("chromium"), "needs Debian's chromium")
@unittest.skipUnless(os.geteuid() == 0, "runs Chromium without its sandbox: needs root")
class BrowserResendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = PyOrigin()
        # One worker: one upstream pool, so the connection the page came on is the one the
        # POST is offered. Chromium connects from 127.0.0.1: the fallback role, pupils, for
        # whom py.test is allowed (POST included; only noupload.test refuses it).
        cls.proxy = Proxy(workers=1)
        cls.browser = Browser(cls.proxy.port)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.proxy.stop()
        cls.py.stop()

    def page_js(self, expression):
        return self.browser.page_js(expression)

    def load(self, start, what, timeout=20):
        """Marks the document, runs `start` (which makes Chromium navigate), and waits until a
        new document has loaded; returns its text."""
        self.browser.js("document.documentElement.setAttribute('data-old', '1')")
        start()
        wait_for(lambda: self.page_js("document.readyState === 'complete' && "
                                      "!document.documentElement.hasAttribute('data-old')"),
                 timeout=timeout, interval=0.1, what=f"Chromium to load {what}")
        return self.browser.js("document.body ? document.body.innerText : ''")

    def test_a_form_post_the_origin_drops_on_a_pooled_connection_is_resent_by_chromium(self):
        url = f"http://py.test:{self.py.port}"
        # The page has an inline icon: Chromium's /favicon.ico request would otherwise be the
        # next request on the pooled connection, take the drop (a GET the proxy repeats
        # itself) and leave a connection the origin keeps for the POST.
        text = self.load(lambda: self.browser.call("Page.navigate", url=f"{url}/form-drop-next"), "the form")
        self.assertEqual(self.browser.js("document.forms.length"), 1, text)
        connections = self.py.connections
        # Submitted at once, well inside the proxy's 5 s keep-alive for the browser's connection:
        # Chromium sends the POST on its idle socket to the proxy, the one the page came on
        # (its socket pool prefers a used idle socket to a new or unused one), so the proxy
        # takes the pooled origin connection for it, which the origin then drops. (Submitted
        # from a timer, so that the evaluation has answered before the navigation starts.)
        text = self.load(lambda: self.browser.js("setTimeout(() => document.forms[0].submit(), 0)"),
                         "the form's answer")
        body = "pupil=Ben&note=trip+photos"
        self.assertEqual(text.strip(), body)
        self.assertEqual(self.browser.js("location.pathname"), "/echo")
        # The origin got the POST, whole, once, on a connection made after the drop (the
        # dropped attempt's head was read by /form-drop-next, not recorded as a request).
        posts = [r for r in self.py.requests if r["method"] == "POST" and r["target"] == "/echo"]
        self.assertEqual([p["body_len"] for p in posts], [len(body)], self.py.requests)
        self.assertGreater(self.py.connections, connections)
        # The first attempt went out on the pooled connection and was dropped: the proxy
        # closed the browser's connection unanswered (no 502), and its line says so. (The proxy
        # puts a POST on a pooled origin connection only when it is not the first request of
        # its client connection: this line also proves Chromium sent it on the reused socket.)
        def post_lines():
            found = [l for l in self.proxy.log_lines() if l.get("host") == "py.test" and l.get("method") == "POST"]
            return found if len(found) >= 2 else None

        posts = wait_for(post_lines, timeout=10, what="two POST lines in the access log")
        self.assertEqual([(l["path"], l["status"], l["action"]) for l in posts],
                         [("/echo", 0, "error"), ("/echo", 200, "allow")], posts)
        self.assertIn("closed unanswered", posts[0].get("note", ""), posts[0])
        # Chromium's own background requests (update.googleapis.com, ...) fail with 502s for
        # want of DNS here; none of the page's did.
        mine = [l for l in self.proxy.log_lines() if l.get("host") == "py.test"]
        self.assertFalse([l for l in mine if l.get("status") == 502], mine)


if __name__ == "__main__":
    unittest.main()
