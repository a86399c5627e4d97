"""Device names from the DHCP server's leases file (dhcp_leases): the running hallpass reads a
dnsmasq.leases written by the test, puts the device's name and hardware address in the access
log line (`device`, `mac`) and its name on the block page; when the file changes, the new name
appears within seconds; malformed lines are skipped and counted; a reload can switch the file
and its format (ISC dhcpd, Kea)."""
import os
import shutil
import tempfile
import time
import unittest

from harness import GUEST, PUPIL, STAFF, Origin, Proxy, curl, wait_for

MAC_PUPIL = "3c:22:fb:12:9a:01"
MAC_STAFF = "a4:83:e7:0b:11:22"


def later(hours=12):
    return int(time.time()) + hours * 3600


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def dnsmasq_leases(pupil_name):
    return (f"{later()} {MAC_PUPIL} {PUPIL} {pupil_name} 01:{MAC_PUPIL}\n"
            f"{later()} {MAC_STAFF} {STAFF} * *\n"
            "this line is not a lease\n"
            f"{int(time.time()) - 60} f0:18:98:00:00:01 {GUEST} ended-lease *\n")


class DhcpLeasesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()

    @classmethod
    def tearDownClass(cls):
        cls.origin.stop()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hallpass-leases-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.leases = os.path.join(self.dir, "dnsmasq.leases")
        write_atomically(self.leases, dnsmasq_leases("pupil-laptop-07"))
        self.proxy = Proxy(extra=f"dhcp_leases:\n  path: {self.leases}\n  format: dnsmasq\n")
        self.addCleanup(self.proxy.stop)
        self.url = f"http://origin.test:{self.origin.port}/small"

    def line_for(self, source, count):
        lines = self.proxy.log_lines(count)
        mine = [l for l in lines if l["client"] == source]
        self.assertTrue(mine, f"no line for {source}")
        return mine[-1]

    def test_log_lines_and_block_page_name_the_device(self):
        status, _, _ = curl(self.proxy, self.url, source=PUPIL)
        self.assertEqual(status, 200)
        line = self.line_for(PUPIL, 1)
        self.assertEqual(line["device"], "pupil-laptop-07")
        self.assertEqual(line["mac"], MAC_PUPIL)
        self.assertEqual(list(line)[:5], ["time", "client", "user", "device", "mac"])

        curl(self.proxy, self.url, source=STAFF)  # a lease without a name ("*"): the MAC alone
        line = self.line_for(STAFF, 2)
        self.assertNotIn("device", line)
        self.assertEqual(line["mac"], MAC_STAFF)

        curl(self.proxy, self.url, source=GUEST)  # its lease ended: neither
        line = self.line_for(GUEST, 3)
        self.assertNotIn("device", line)
        self.assertNotIn("mac", line)

        status, body, _ = curl(self.proxy, "http://www.facebook.test/", source=PUPIL)
        self.assertEqual(status, 403)
        self.assertNotIn(b"pupil-laptop-07", body)  # the plain-HTTP site's page: on the proxy's own
        block = self.line_for(PUPIL, 4)
        self.assertEqual((block["host"], block["device"]), ("www.facebook.test", "pupil-laptop-07"))
        status, body, _ = curl(self.proxy, "http://hallpass.invalid/blocked?url=http://www.facebook.test/",
                               source=PUPIL)
        self.assertEqual(status, 200)
        self.assertIn(b"<dt>Device name</dt><dd>pupil-laptop-07</dd>", body)
        self.assertIn(b"<dt>Hardware address</dt><dd>" + MAC_PUPIL.encode() + b"</dd>", body)

        self.assertEqual(self.proxy.metric("hallpass_dhcp_lease_devices"), 2)
        self.assertGreaterEqual(self.proxy.metric("hallpass_dhcp_lease_entries_skipped_total"), 1)
        # stderr is read by the harness's own thread: the line is waited for, not raced.
        wait_for(lambda: any("device names: 2 devices from " + self.leases in l and "1 malformed" in l
                             for l in self.proxy.stderr_lines), timeout=5, what="the table's line on stderr")

    def test_a_changed_file_gives_the_new_name_within_seconds(self):
        curl(self.proxy, self.url, source=PUPIL)
        self.assertEqual(self.line_for(PUPIL, 1)["device"], "pupil-laptop-07")
        write_atomically(self.leases, dnsmasq_leases("renamed-laptop"))
        t0 = time.monotonic()
        count = [1]

        def renamed():
            curl(self.proxy, self.url, source=PUPIL)
            count[0] += 1
            return self.line_for(PUPIL, count[0]).get("device") == "renamed-laptop"
        wait_for(renamed, timeout=5, interval=0.2, what="the new device name in the access log")
        self.assertLess(time.monotonic() - t0, 5)

        # Written in place (as dnsmasq does), not replaced: still picked up.
        with open(self.leases, "w") as f:
            f.write(dnsmasq_leases("rewritten-in-place"))

        def rewritten():
            curl(self.proxy, self.url, source=PUPIL)
            count[0] += 1
            return self.line_for(PUPIL, count[0]).get("device") == "rewritten-in-place"
        wait_for(rewritten, timeout=5, interval=0.2, what="the name from the file rewritten in place")

        # The file gone: the names read before stay, and the failure is reported and counted.
        os.unlink(self.leases)
        wait_for(lambda: self.proxy.metric("hallpass_dhcp_lease_read_failures_total") >= 1, timeout=5,
                 what="the read failure to be counted")
        curl(self.proxy, self.url, source=PUPIL)
        count[0] += 1
        self.assertEqual(self.line_for(PUPIL, count[0]).get("device"), "rewritten-in-place")
        wait_for(lambda: any("does not exist" in l for l in self.proxy.stderr_lines), timeout=5,
                 what="the read failure on stderr")

    def test_reload_switches_to_isc_and_kea_files(self):
        isc = os.path.join(self.dir, "dhcpd.leases")
        write_atomically(isc, f"""# written by isc-dhcp-4.4.3-P1
authoring-byte-order little-endian;
lease {PUPIL} {{
  starts 3 2026/12/02 07:55:12;
  ends never;
  binding state active;
  next binding state free;
  hardware ethernet 3c:22:fb:12:9a:1;
  uid "\\001<\\"\\373\\022\\232\\001";
  client-hostname "ISC-LAPTOP";
}}
""")
        text = self.proxy.policy_text.replace(f"path: {self.leases}\n  format: dnsmasq", f"path: {isc}\n  format: isc")
        self.proxy.write_policy(text)
        self.proxy.reload()
        count = [0]

        def named(name):
            def check():
                curl(self.proxy, self.url, source=PUPIL)
                count[0] += 1
                line = self.line_for(PUPIL, count[0])
                return line.get("device") == name and line.get("mac") == MAC_PUPIL
            return check
        wait_for(named("ISC-LAPTOP"), timeout=5, interval=0.2, what="the name from dhcpd.leases")

        kea = os.path.join(self.dir, "kea-leases4.csv")
        write_atomically(kea, "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,"
                              "hostname,state,user_context,pool_id\n"
                              f"{PUPIL},{MAC_PUPIL},,43200,{later()},1,0,0,kea-laptop.school.internal.,0,,0\n")
        self.proxy.write_policy(text.replace(f"path: {isc}\n  format: isc", f"path: {kea}\n  format: kea"))
        self.proxy.reload()
        wait_for(named("kea-laptop.school.internal"), timeout=5, interval=0.2, what="the name from the Kea CSV")

        # dhcp_leases removed: no names at all.
        self.proxy.write_policy(self.proxy.policy_text.split("dhcp_leases:")[0])
        self.proxy.reload()
        curl(self.proxy, self.url, source=PUPIL)
        count[0] += 1
        self.assertNotIn("device", self.line_for(PUPIL, count[0]))


if __name__ == "__main__":
    unittest.main()
