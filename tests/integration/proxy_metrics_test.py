"""The real daemon's /metrics: the families Prometheus users expect (request duration,
responses by status class, process_*, build info) and bucket labels that print cleanly."""
import os
import re
import subprocess
import time
import unittest

from harness import BIN, STAFF, Origin, Proxy, curl, wait_for


def samples(text):
    """{(name, frozenset(labels)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


class ProxyMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nginx = Origin()
        cls.proxy = Proxy()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.nginx.stop()

    def test_process_metrics_describe_the_daemon(self):
        s = samples(self.proxy.metrics())
        pid = self.proxy.proc.pid
        rss = s[("process_resident_memory_bytes", frozenset())]
        self.assertGreater(rss, 1e6)
        self.assertLess(rss, 2e9)
        self.assertGreaterEqual(s[("process_virtual_memory_bytes", frozenset())], rss)
        # The daemon's descriptors: listeners, metrics socket, log, store... and a scrape in flight.
        open_fds = s[("process_open_fds", frozenset())]
        self.assertGreaterEqual(open_fds, 5)
        self.assertLessEqual(abs(open_fds - len(os.listdir(f"/proc/{pid}/fd"))), 3)
        with open(f"/proc/{pid}/limits") as f:
            soft = next(l.split()[3] for l in f if l.startswith("Max open files"))
        self.assertEqual(s[("process_max_fds", frozenset())], float(soft))
        self.assertGreaterEqual(s[("process_cpu_seconds_total", frozenset())], 0)
        # The kernel's own record of when the daemon started: boot time + start ticks.
        with open(f"/proc/{pid}/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        expected = time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
        self.assertLess(abs(s[("process_start_time_seconds", frozenset())] - expected), 5)

    def test_build_info_names_the_running_version(self):
        version = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
        s = samples(self.proxy.metrics())
        self.assertEqual(s.get(("hallpass_build_info", frozenset({("version", version)}))), 1.0)

    def test_request_duration_and_response_classes_are_served(self):
        text = self.proxy.metrics()
        self.assertIn("# TYPE hallpass_request_duration_seconds histogram", text)
        self.assertIn("# TYPE hallpass_responses_total counter", text)
        s = samples(text)
        for code in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            self.assertIn(("hallpass_responses_total", frozenset({("code", code)})), s)

    def test_every_ban_series_is_there_before_the_first_ban(self):
        # An alert on increase(hallpass_bans_total{how="automatic"}[1h]) needs the series from
        # the start, not from the first ban (docs audit, 2026-12-05).
        s = samples(self.proxy.metrics())
        for how in ("command", "confirmed", "automatic"):
            self.assertEqual(s.get(("hallpass_bans_total", frozenset({("how", how)}))), 0.0, how)

    def test_bucket_labels_print_cleanly(self):
        labels = re.findall(r'[{,]le="([^"]*)"', self.proxy.metrics())
        self.assertIn("1e-05", labels)
        noisy = [l for l in labels if len(l) > 7]
        self.assertEqual(noisy, [], "bucket bounds printed with float noise")

    def test_an_exchange_is_timed_and_counted(self):
        before = samples(self.proxy.metrics())
        self.assertEqual(curl(self.proxy, f"http://origin.test:{self.nginx.port}/small", source=STAFF)[0], 200)
        key = ("hallpass_responses_total", frozenset({("code", "2xx")}))
        count = ("hallpass_request_duration_seconds_count", frozenset())
        # The exchange is counted when it ends, which may be just after curl has its answer (a
        # sanitizer build is slow enough to show it): wait for it, then check it moved by one.
        after = wait_for(lambda: (lambda s: s if s[key] > before[key] and s[count] > before[count] else None)(
            samples(self.proxy.metrics())), what="the exchange counted")
        self.assertEqual(after[key] - before[key], 1)
        self.assertEqual(after[count] - before[count], 1)


if __name__ == "__main__":
    unittest.main()
