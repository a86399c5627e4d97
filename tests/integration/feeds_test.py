"""Category feeds as the shipped policy uses them: the real binary, a feed folder made in the
test from the UT1 lists in ../shared/ut1 (symlinked, never committed)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

BIN = os.environ["HALLPASS_BIN"]
SRC = os.environ["HALLPASS_SOURCE_DIR"]
SCHOOL = os.path.join(SRC, "rules", "school.yaml")
UT1 = os.path.normpath(os.path.join(SRC, "..", "shared", "ut1", "blacklists"))
if not os.path.isdir(UT1):
    UT1 = "/work/shared/ut1/blacklists"

# Each UT1 list the shipped policy maps, and the categories a pupil's block may name for it
# (rules/README.md, "The shipped categories").
MAPPED = {
    "agressif": {"discrimination", "extremism", "violence"},
    "dangerous_material": {"violence"},
    "drogue": {"drugs"},
    "gambling": {"gambling"},
    "arjel": {"gambling"},
    "malware": {"malware_hacking"},
    "hacking": {"malware_hacking"},
    "ddos": {"malware_hacking"},
    "cryptojacking": {"malware_hacking"},
    "phishing": {"phishing"},
    "adult": {"pornography"},
    "mixed_adult": {"pornography"},
    "warez": {"piracy"},
    "vpn": {"circumvention"},
    "doh": {"circumvention"},
    "redirector": {"circumvention"},
    "strong_redirector": {"circumvention"},
}


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def read_entries(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


def make_feed(state_dir, lists, fetched_at=1764676800):
    """STATE_DIR/feeds/ut1/current/blacklists/<list> -> ../shared/ut1, and feed.info."""
    cur = os.path.join(state_dir, "feeds", "ut1", "current")
    os.makedirs(os.path.join(cur, "blacklists"))
    for name in lists:
        os.symlink(os.path.join(UT1, name), os.path.join(cur, "blacklists", name))
    with open(os.path.join(cur, "feed.info"), "w") as f:
        f.write(f"fetched_at: {fetched_at}\n")
    return cur


@unittest.skipUnless(os.path.isdir(UT1), "the UT1 lists of ../shared/ut1 are not here")
class ShippedFeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.state = cls.tmp.name
        make_feed(cls.state, MAPPED)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def explain(self, role, url, state_dir=None):
        r = run("explain", "--config", SCHOOL, "--json", "--state-dir", state_dir or self.state, "--role", role, url)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_pupils_blocked_for_an_entry_of_each_mapped_list(self):
        domains = {n: read_entries(os.path.join(UT1, n, "domains")) for n in MAPPED}
        urls = {n: read_entries(os.path.join(UT1, n, "urls")) for n in MAPPED}
        everywhere, every_url = {}, {}
        for n, ds in domains.items():
            for d in ds:
                everywhere.setdefault(d, set()).add(n)
        for n, us in urls.items():
            for u in us:
                every_url.setdefault(u, set()).add(n)
        for name, expected in MAPPED.items():
            with self.subTest(list=name):
                # An entry of this list alone, so that the category the block names is this list's.
                url = None
                for d in domains[name]:
                    if everywhere[d] == {name} and not d[-1].isdigit():
                        url = f"http://{d}/"
                        break
                if url is None:
                    for u in urls[name]:
                        host = u.split("/", 1)[0]
                        if ("/" in u and every_url[u] == {name} and host not in everywhere
                                and not host[-1].isdigit()):
                            url = "http://" + u
                            break
                self.assertIsNotNone(url, f"no entry of {name} alone")
                v = self.explain("pupils", url)
                self.assertEqual(v["action"], "block", f"{url}: {v}")
                self.assertIn(v["category"], expected, f"{url}: {v}")

    def test_staff_blocked_for_pornography_malware_phishing_not_gambling(self):
        gambling = read_entries(os.path.join(UT1, "gambling", "domains"))[0]
        self.assertEqual(self.explain("staff", f"http://{gambling}/")["action"], "allow")
        adult = next(u for u in read_entries(os.path.join(UT1, "adult", "urls")) if "/" in u)
        v = self.explain("staff", "http://" + adult)
        self.assertEqual((v["action"], v["category"]), ("block", "pornography"))

    def test_check_shows_the_feed_and_its_lists(self):
        r = run("check", "--config", SCHOOL, "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ut1 (ut1): fetched 2025-12-02 12:00 GMT", r.stdout)  # school time
        self.assertRegex(r.stdout, r"ut1/gambling: [1-9][0-9]+ entries")
        self.assertNotIn("is missing", r.stderr)


class MissingFeedTest(unittest.TestCase):
    """Before the first update: the rest of the policy serves, and it says which feed is missing."""

    def test_check_warns_and_explain_serves_the_rest(self):
        with tempfile.TemporaryDirectory() as d:
            r = run("check", "--config", SCHOOL, "--state-dir", d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("feed 'ut1' is missing (" + os.path.join(d, "feeds", "ut1", "current") + " does not exist)",
                          r.stderr)
            # The command to run names the configuration and state directory the check was given,
            # so that run as printed it fetches into the directory the proxy reads.
            fetch = f"hallpass feeds update --config {SCHOOL} --state-dir {d} --feed ut1"
            self.assertIn(f"until `{fetch}` fetches it", r.stderr)
            self.assertIn("ut1 (ut1): MISSING, never fetched", r.stdout)
            self.assertIn(f"run `{fetch}`", r.stdout)
            v = json.loads(run("explain", "--config", SCHOOL, "--json", "--state-dir", d, "--role", "pupils",
                               "https://www.facebook.com/").stdout)
            self.assertEqual(v["action"], "block")

    def test_required_feed_refuses_to_load(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "school.yaml")
            with open(SCHOOL) as src:
                text = src.read()
            text = text.replace("  # required: true\n", "  required: true\n")
            self.assertIn("  required: true\n", text)
            with open(path, "w") as f:
                f.write(text)
            r = run("check", "--config", path, "--state-dir", d)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertRegex(r.stderr, r"school\.yaml:\d+:\d+: feed 'ut1' is missing .*feeds\.required is true")
            make_feed(d, ["gambling"])
            r = run("check", "--config", path, "--state-dir", d)
            self.assertEqual(r.returncode, 0, r.stderr)
            # Lists the feed does not have are warnings (the category blocks nothing from them).
            self.assertIn("feed list ut1/drogue is not in the feed", r.stderr)


if __name__ == "__main__":
    unittest.main()
