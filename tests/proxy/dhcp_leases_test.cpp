#include "proxy/dhcp_leases.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/proxy/test_support.hpp"
#include "tests/temp_dir.hpp"

using namespace hallpass;

namespace {

// 2026-12-02 10:00:00 UTC; the samples' leases end at 20:00 that day (1796241600) or ended the
// evening before (1796155200).
constexpr std::int64_t now = 1796205600;

using hallpass_test::ip;

std::optional<device_identity> find(const lease_parse_result& r, std::string_view address) {
  const device_table table({r});
  const auto d = table.find(ip(address));
  return d ? std::optional<device_identity>(*d) : std::nullopt;
}

// A dnsmasq.leases as dnsmasq 2.89 writes it: DHCPv4 leases, then the server's DUID and the
// DHCPv6 leases.
const std::string dnsmasq_sample =
    "1796241600 3c:22:fb:12:9a:01 10.10.4.20 pupil-laptop-07 01:3c:22:fb:12:9a:01\n"
    "1796241600 a4:83:e7:0b:11:22 10.20.1.5 * 01:a4:83:e7:0b:11:22\n"
    "0 00:1b:21:aa:bb:cc 10.20.0.2 staffroom-printer *\n"
    "1796155200 f0:18:98:00:00:01 10.10.4.21 gone-ipad 01:f0:18:98:00:00:01\n"
    "1796241600 06-00:11:22:33:44:55 10.10.4.22 token-ring-pc *\n"
    "duid 00:01:00:01:2c:5f:1a:3e:52:54:00:12:34:56\n"
    "1796241600 305419896 fd00:10::1234 pupil-laptop-07 00:01:00:01:2d:11:22:33:3c:22:fb:12:9a:01\n"
    "1796241600 T12 fd00:10::99 Tablet-3 00:03:00:01:aa:bb:cc:dd:ee:ff\n";

// The header of kea-leases4.csv as Kea 2.2 writes it (2.4 adds a pool_id column).
const std::string kea4_header =
    "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,"
    "user_context\n";

}  // namespace

TEST_CASE("dnsmasq: names and hardware addresses of current DHCPv4 and DHCPv6 leases") {
  const auto r = parse_dnsmasq_leases(dnsmasq_sample, now);
  CHECK(r.skipped == 0);
  CHECK(r.first_error.empty());
  const auto laptop = find(r, "10.10.4.20");
  REQUIRE(laptop);
  CHECK(laptop->name == "pupil-laptop-07");
  CHECK(laptop->hardware_address == "3c:22:fb:12:9a:01");
  const auto unnamed = find(r, "10.20.1.5");  // "*": the device sent no name
  REQUIRE(unnamed);
  CHECK(unnamed->name.empty());
  CHECK(unnamed->hardware_address == "a4:83:e7:0b:11:22");
  REQUIRE(find(r, "10.20.0.2"));  // expiry 0: an infinite lease
  CHECK(find(r, "10.20.0.2")->name == "staffroom-printer");
  CHECK(find(r, "10.10.4.21") == std::nullopt);  // ended last night
  REQUIRE(find(r, "10.10.4.22"));  // "06-": the hardware type, not part of the address
  CHECK(find(r, "10.10.4.22")->hardware_address == "00:11:22:33:44:55");
  const auto v6 = find(r, "fd00:10::1234");
  REQUIRE(v6);
  CHECK(v6->name == "pupil-laptop-07");
  CHECK(v6->hardware_address.empty());  // dnsmasq writes the IAID and DUID, not the MAC
  REQUIRE(find(r, "fd00:10::99"));
  CHECK(find(r, "fd00:10::99")->name == "Tablet-3");
}

TEST_CASE("a neighbour's address takes the name a lease gives its hardware address") {
  // The review of the session, 2026-12-07: an IPv6 neighbour (a SLAAC address) was known by its
  // hardware address only, so a ban by the device's name did not follow it onto IPv6.
  const auto leases = parse_dnsmasq_leases(dnsmasq_sample, now);
  lease_parse_result neighbours;
  neighbours.entries.push_back({ip("fd00:10::5"), device_identity{"", "3c:22:fb:12:9a:01"}});
  neighbours.entries.push_back({ip("fd00:10::6"), device_identity{"", "de:ad:be:ef:00:01"}});
  const device_table table({leases}, neighbours);
  const auto* slaac = table.find(ip("fd00:10::5"));
  REQUIRE(slaac);
  CHECK(slaac->name == "pupil-laptop-07");
  CHECK(slaac->hardware_address == "3c:22:fb:12:9a:01");
  const auto* unknown = table.find(ip("fd00:10::6"));
  REQUIRE(unknown);
  CHECK(unknown->name.empty());  // no lease names that hardware address
}

TEST_CASE("the gateway's neighbour overrules a stale lease for who holds an address now") {
  // Outside-in audit of identity, 2026-12-07, F1: a device that took the address of an absent
  // teacher's unexpired lease was known as the teacher's laptop, and its own ban (by name and
  // hardware address) was missed, though the ARP table gave its real hardware address.
  const auto leases = parse_dnsmasq_leases(dnsmasq_sample, now);
  REQUIRE(device_table({leases}).find(ip("10.10.4.20"))->name == "pupil-laptop-07");
  lease_parse_result neighbours;
  neighbours.entries.push_back({ip("10.10.4.20"), device_identity{"", "de:ad:be:ef:00:09"}});  // a device no lease names
  neighbours.entries.push_back({ip("10.20.1.5"), device_identity{"", "00:11:22:33:44:55"}});   // token-ring-pc, moved
  neighbours.entries.push_back({ip("10.20.0.2"), device_identity{"", "00:1b:21:aa:bb:cc"}});   // agrees with its lease
  neighbours.entries.push_back({ip("fd00:10::1234"), device_identity{"", "de:ad:be:ef:00:02"}});  // lease gives no MAC
  const device_table table({leases}, neighbours);
  const auto* taken = table.find(ip("10.10.4.20"));
  REQUIRE(taken);
  CHECK(taken->hardware_address == "de:ad:be:ef:00:09");
  CHECK(taken->name.empty());
  const auto* moved = table.find(ip("10.20.1.5"));
  REQUIRE(moved);
  CHECK(moved->name == "token-ring-pc");  // its own lease (at 10.10.4.22) names it where it is now
  CHECK(moved->hardware_address == "00:11:22:33:44:55");
  CHECK(table.find(ip("10.20.0.2"))->name == "staffroom-printer");
  CHECK(table.find(ip("fd00:10::1234"))->name == "pupil-laptop-07");  // nothing to disagree with
  CHECK(table.find(ip("fd00:10::1234"))->hardware_address.empty());
  CHECK(table.find(ip("10.10.4.22"))->name == "token-ring-pc");  // its lease stands where no neighbour says otherwise
}

TEST_CASE("dnsmasq: malformed lines are skipped and counted, the others still read") {
  const std::string text =
      "1796241600 3c:22:fb:12:9a:01 10.10.4.20 pupil-laptop-07 *\n"
      "garbage\n"
      "soon 3c:22:fb:12:9a:02 10.10.4.30 a *\n"
      "1796241600 3c:22:fb:12:9a:03 10.10.4.300 b *\n"
      "1796241600 not-a-mac 10.10.4.31 c *\n"
      "1796241600 3c:22:fb:12:9a:04 [10.10.4.32] d *\n"
      "\n"
      "1796241600 3c:22:FB:12:9A:05 10.10.4.33 e *\r\n";
  const auto r = parse_dnsmasq_leases(text, now);
  CHECK(r.skipped == 5);
  CHECK(r.first_error.starts_with("line 2: "));
  REQUIRE(find(r, "10.10.4.20"));
  REQUIRE(find(r, "10.10.4.33"));
  CHECK(find(r, "10.10.4.33")->name == "e");  // the CR of a CRLF line is not part of the name
  CHECK(find(r, "10.10.4.33")->hardware_address == "3c:22:fb:12:9a:05");
  CHECK(find(r, "10.10.4.30") == std::nullopt);
}

TEST_CASE("isc: the last block of an address wins: only active leases that have not ended") {
  // As isc-dhcp-server 4.4.3 writes dhcpd.leases: header, then blocks appended as leases change.
  const std::string text =
      R"(# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001,_\032>RT\000\0224V";

lease 10.10.4.20 {
  starts 3 2026/12/02 07:55:12;
  ends 3 2026/12/02 20:00:00;
  cltt 3 2026/12/02 07:55:12;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 3c:22:fb:12:9a:1;
  uid "\001<\"\373\022\232\001";
  set vendor-class-identifier = "MSFT 5.0";
  client-hostname "PUPIL-LAPTOP-07";
}
lease 10.10.4.21 {
  starts 2 2026/12/01 08:00:00;
  ends 2 2026/12/01 20:00:00;
  tstp 2 2026/12/01 20:00:00;
  cltt 2 2026/12/01 08:00:00;
  binding state active;
  hardware ethernet f0:18:98:00:00:01;
  client-hostname "gone-ipad";
}
lease 10.20.1.5 {
  starts 3 2026/12/02 08:10:00;
  ends epoch 1796241600; # Wed Dec 02 20:00:00 2026
  binding state active;
  hardware ethernet a4:83:e7:0b:11:22;
}
lease 10.20.1.6 {
  starts 3 2026/12/02 08:10:00;
  ends 3 2026/12/02 20:00:00;
  binding state active;
  hardware ethernet a4:83:e7:0b:11:23;
  client-hostname "office-pc-2";
}
lease 10.20.1.6 {
  starts 3 2026/12/02 09:00:00;
  ends 3 2026/12/02 09:00:00;
  tstp 3 2026/12/02 09:00:00;
  binding state free;
  hardware ethernet a4:83:e7:0b:11:23;
}
lease 10.20.0.2 {
  starts 1 2026/11/30 08:00:00;
  ends never;
  binding state active;
  hardware ethernet 00:1b:21:aa:bb:cc;
  client-hostname "staffroom-printer";
  on expiry { set ddns-fwd-name = "x"; }
}
)";
  const auto r = parse_isc_leases(text, now);
  CHECK(r.skipped == 0);
  const auto laptop = find(r, "10.10.4.20");
  REQUIRE(laptop);
  CHECK(laptop->name == "PUPIL-LAPTOP-07");
  CHECK(laptop->hardware_address == "3c:22:fb:12:9a:01");  // dhcpd writes "1" for 01
  CHECK(find(r, "10.10.4.21") == std::nullopt);            // its end has passed
  REQUIRE(find(r, "10.20.1.5"));                           // "ends epoch N" (db-time-format local)
  CHECK(find(r, "10.20.1.5")->name.empty());
  CHECK(find(r, "10.20.1.6") == std::nullopt);  // released since: the later block wins
  REQUIRE(find(r, "10.20.0.2"));
  CHECK(find(r, "10.20.0.2")->name == "staffroom-printer");
}

TEST_CASE("isc: a malformed block is skipped and counted: an unclosed one ends the read") {
  const std::string text = R"(lease 10.10.4.40 {
  binding state active;
  ends 3 2026/13/02 20:00:00;
  client-hostname "bad-date";
}
lease 10.10.4.41 {
  binding state active;
  hardware ethernet zz:zz;
}
lease not-an-address {
  binding state active;
}
lease 10.10.4.42 {
  binding state active;
  client-hostname "fine";
}
lease 10.10.4.43 {
  binding state active;
  client-hostname "never closed";
)";
  const auto r = parse_isc_leases(text, now);
  CHECK(r.skipped == 4);
  CHECK(r.first_error.starts_with("line 1: "));
  REQUIRE(find(r, "10.10.4.42"));
  CHECK(find(r, "10.10.4.42")->name == "fine");
  CHECK(find(r, "10.10.4.40") == std::nullopt);
  CHECK(find(r, "10.10.4.43") == std::nullopt);

  const auto open_string = parse_isc_leases("lease 10.10.4.44 {\n  client-hostname \"open\n", now);
  CHECK(open_string.skipped == 1);
  CHECK(open_string.entries.empty());
}

TEST_CASE("kea: DHCPv4 memfile CSV, columns found by the header, the last row wins") {
  // kea-leases4.csv as Kea 2.4 writes it (2.2 has no pool_id column: read the same way).
  const std::string text =
      "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,"
      "user_context,pool_id\n"
      "10.10.4.20,3c:22:fb:12:9a:01,01:3c:22:fb:12:9a:01,43200,1796241600,1,0,0,pupil-laptop-07."
      "school.internal.,0,,0\n"
      "10.10.4.21,f0:18:98:00:00:01,,43200,1796155200,1,0,0,gone-ipad,0,,0\n"
      "10.20.1.5,a4:83:e7:0b:11:22,,43200,1796241600,2,0,0,,0,{ \"comment\": \"a&#x2c b\" },0\n"
      "10.20.1.6,a4:83:e7:0b:11:23,,43200,1796241600,2,0,0,office-pc-2,0,,0\n"
      "10.20.1.6,a4:83:e7:0b:11:23,,0,1796205000,2,0,0,office-pc-2,0,,0\n"
      "10.20.1.7,a4:83:e7:0b:11:24,,43200,1796241600,2,0,0,declined,1,,0\n"
      "10.20.1.8,a4:83:e7:0b:11:25,,43200,1796241600,2,0,0,comma&#x2cname,0,,0\n";
  const auto r = parse_kea_leases(text, now);
  CHECK(r.skipped == 0);
  const auto laptop = find(r, "10.10.4.20");
  REQUIRE(laptop);
  CHECK(laptop->name == "pupil-laptop-07.school.internal");  // the FQDN without its final dot
  CHECK(laptop->hardware_address == "3c:22:fb:12:9a:01");
  CHECK(find(r, "10.10.4.21") == std::nullopt);  // expired
  REQUIRE(find(r, "10.20.1.5"));
  CHECK(find(r, "10.20.1.5")->hardware_address == "a4:83:e7:0b:11:22");
  CHECK(find(r, "10.20.1.6") ==
        std::nullopt);  // valid_lifetime 0: memfile's record of a deleted lease
  CHECK(find(r, "10.20.1.7") == std::nullopt);  // state 1: declined
  REQUIRE(find(r, "10.20.1.8"));
  CHECK(find(r, "10.20.1.8")->name == "comma,name");
}

TEST_CASE("kea: DHCPv6 memfile CSV: delegated prefixes are not devices") {
  const std::string text =
      "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_"
      "fwd,fqdn_rev,"
      "hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n"
      "fd00:10::1234,00:01:00:01:2d:11:22:33:3c:22:fb:12:9a:01,43200,1796241600,1,30000,0,"
      "305419896,128,0,0,"
      "pupil-laptop-07,3c:22:fb:12:9a:01,0,,1,2,0\n"
      "fd00:10::99,00:03:00:01:aa:bb:cc:dd:ee:ff,43200,1796241600,1,30000,0,12,128,0,0,tablet-3,,0,"
      ",0,0,0\n"
      "fd00:99:1::,00:03:00:01:11:22:33:44:55:66,43200,1796241600,1,30000,2,7,56,0,0,router,,0,,0,"
      "0,0\n";
  const auto r = parse_kea_leases(text, now);
  CHECK(r.skipped == 0);
  REQUIRE(find(r, "fd00:10::1234"));
  CHECK(find(r, "fd00:10::1234")->hardware_address == "3c:22:fb:12:9a:01");
  REQUIRE(find(r, "fd00:10::99"));
  CHECK(find(r, "fd00:10::99")->name == "tablet-3");
  CHECK(find(r, "fd00:10::99")->hardware_address.empty());
  CHECK(find(r, "fd00:99:1::") == std::nullopt);
}

TEST_CASE("kea: rows that do not fit the header are skipped and counted: no header, nothing read") {
  const std::string text = kea4_header +
                           "10.10.4.20,3c:22:fb:12:9a:01,,43200,1796241600,1,0,0,ok,0,\n"
                           "10.10.4.21,3c:22:fb:12:9a:02,,43200,1796241600,1,0,0,short\n"
                           "10.10.4.22,3c:22:fb:12:9a:03,,43200,soon,1,0,0,bad-expire,0,\n"
                           "10.10.4.300,3c:22:fb:12:9a:04,,43200,1796241600,1,0,0,bad-address,0,\n";
  const auto r = parse_kea_leases(text, now);
  CHECK(r.skipped == 3);
  CHECK(r.first_error.starts_with("line 3: "));
  REQUIRE(find(r, "10.10.4.20"));

  const auto headless =
      parse_kea_leases("10.10.4.20,3c:22:fb:12:9a:01,,43200,1796241600,1,0,0,x,0,\n", now);
  CHECK(headless.skipped >= 1);
  CHECK(headless.entries.empty());
}

TEST_CASE("lease formats by name") {
  CHECK(parse_lease_format("dnsmasq") == lease_format::dnsmasq);
  CHECK(parse_lease_format("isc") == lease_format::isc);
  CHECK(parse_lease_format("kea") == lease_format::kea);
  CHECK_FALSE(parse_lease_format("ISC"));
  CHECK(to_string(lease_format::kea) == "kea");
}

namespace {

struct leases_dir : hallpass_test::temp_dir {
  leases_dir() : hallpass_test::temp_dir("hallpass-leases") {}
};

// Replaces the file as a DHCP server would, with a different size or modification time.
void write_file(const std::filesystem::path& p, const std::string& text) {
  const auto tmp = p.string() + ".tmp";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
  std::filesystem::rename(tmp, p);
}

// The Unix time `later` from now, as the lease files write an expiry: the watcher's tests read
// with the real clock, so their leases must not have ended.
std::string seconds_from_now(std::chrono::seconds later) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch() + later)
                            .count());
}

std::string dnsmasq_line(std::string_view address, std::string_view name) {
  return seconds_from_now(std::chrono::hours(12)) + " 3c:22:fb:12:9a:01 " + std::string(address) +
         " " + std::string(name) + " *\n";
}

}  // namespace

TEST_CASE("the ARP table: complete Ethernet entries are devices by hardware address, over a lease naming another") {
  const std::string arp =
      "IP address       HW type     Flags       HW address            Mask     Device\n"
      "10.10.0.3        0x1         0x2         02:AA:00:00:00:03     *        lan0\n"
      "10.10.0.4        0x1         0x0         00:00:00:00:00:00     *        lan0\n"   // incomplete
      "10.10.0.5        0x1         0x6         02:aa:00:00:00:05     *        lan0\n"   // permanent, complete
      "10.10.0.6        0x20        0x2         80:00:02:08:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01 * ib0\n"
      "garbage\n";
  const auto r = parse_arp_table(arp);
  REQUIRE(r.entries.size() == 2);
  CHECK(r.entries[0].address == ip("10.10.0.3"));
  CHECK(r.entries[0].device->hardware_address == "02:aa:00:00:00:03");
  CHECK(r.entries[0].device->name.empty());
  CHECK(r.entries[1].address == ip("10.10.0.5"));
  CHECK(r.skipped == 1);
  // Watched with the leases: a lease that agrees with the neighbour names the device; one that
  // names another hardware address is overruled (who holds the address now: outside-in audit
  // of identity, 2026-12-07, F1); the neighbour fills in a static address.
  leases_dir dir;
  const auto file = dir.path / "dnsmasq.leases";
  const auto neighbours = dir.path / "arp";
  write_file(file, dnsmasq_line("10.10.0.5", "leased-laptop") + seconds_from_now(std::chrono::hours(12)) +
                       " 02:aa:00:00:00:03 10.10.0.3 agreeing-laptop *\n");
  write_file(neighbours, arp);
  lease_watcher::source src{file.string(), lease_format::dnsmasq};
  std::atomic<std::shared_ptr<const device_table>> target;
  lease_watcher w([&] { return src; }, target);
  w.read_neighbours_from(neighbours.string());
  CHECK(w.poll());
  REQUIRE(target.load()->find(ip("10.10.0.3")));
  CHECK(target.load()->find(ip("10.10.0.3"))->hardware_address == "02:aa:00:00:00:03");
  CHECK(target.load()->find(ip("10.10.0.3"))->name == "agreeing-laptop");
  CHECK(target.load()->find(ip("10.10.0.5"))->name.empty());  // the lease's 3c:22:... is elsewhere now
  CHECK(target.load()->find(ip("10.10.0.5"))->hardware_address == "02:aa:00:00:00:05");
  CHECK_FALSE(target.load()->find(ip("10.10.0.4")));
  // A change in the neighbours alone is picked up at the next poll.
  write_file(neighbours, "header\n10.10.0.9 0x1 0x2 02:aa:00:00:00:09 * lan0\n");
  CHECK(w.poll());
  CHECK(target.load()->find(ip("10.10.0.9")));
  CHECK_FALSE(target.load()->find(ip("10.10.0.4")));
  CHECK(target.load()->find(ip("10.10.0.3"))->name == "agreeing-laptop");  // its lease stands
  CHECK(target.load()->find(ip("10.10.0.5"))->name == "leased-laptop");    // no neighbour overrules it now
  // The same entries with other flags, in another order, with a device probing an address
  // (incomplete) and the hardware address's case changed: the table says the same, so nothing
  // is read again (before 2026-12-06 the text was compared, and each such change re-read the
  // whole leases file).
  write_file(neighbours, "header\n10.10.0.8 0x1 0x0 00:00:00:00:00:00 * lan0\n"
                         "10.10.0.9 0x1 0x6 02:AA:00:00:00:09 * lan0\n");
  CHECK_FALSE(w.poll());
  // A new hardware address at the same address is a change.
  write_file(neighbours, "header\n10.10.0.9 0x1 0x2 02:aa:00:00:00:10 * lan0\n");
  CHECK(w.poll());
  CHECK(target.load()->find(ip("10.10.0.9"))->hardware_address == "02:aa:00:00:00:10");
}

TEST_CASE("lease_watcher: reads, re-reads on change only, keeps the old table when the file goes") {
  leases_dir dir;
  const auto file = dir.path / "dnsmasq.leases";
  write_file(file, dnsmasq_line("10.10.4.20", "first-name") + "garbage line\n");
  lease_watcher::source src{file.string(), lease_format::dnsmasq};
  std::atomic<std::shared_ptr<const device_table>> target;
  std::size_t skipped = 0, failures = 0, devices = 0;
  lease_watcher w([&] { return src; }, target,
                  {[&](std::size_t n) { skipped += n; }, [&] { ++failures; },
                   [&](std::size_t n) { devices = n; }});
  w.read_neighbours_from("");  // this machine's own neighbours would count as devices

  CHECK(w.poll());
  REQUIRE(target.load());
  REQUIRE(target.load()->find(ip("10.10.4.20")));
  CHECK(target.load()->find(ip("10.10.4.20"))->name == "first-name");
  CHECK(skipped == 1);
  CHECK(devices == 1);
  CHECK_FALSE(w.poll());  // unchanged: not read again

  write_file(file, dnsmasq_line("10.10.4.20", "second-name") + dnsmasq_line("10.10.4.21", "other"));
  CHECK(w.poll());
  CHECK(target.load()->find(ip("10.10.4.20"))->name == "second-name");
  CHECK(devices == 2);

  std::filesystem::remove(file);
  CHECK_FALSE(w.poll());
  CHECK(failures == 1);
  REQUIRE(target.load());  // the names read before stay
  CHECK(target.load()->find(ip("10.10.4.21")));

  src.path.clear();  // dhcp_leases removed by a reload: no names at all
  CHECK(w.poll());
  CHECK(target.load() == nullptr);
}

TEST_CASE("lease_watcher: kea's older files are read first, the current file wins") {
  leases_dir dir;
  const auto file = dir.path / "kea-leases4.csv";
  const auto later = seconds_from_now(std::chrono::hours(1));
  write_file(dir.path / "kea-leases4.csv.2",
             kea4_header + "10.10.4.20,3c:22:fb:12:9a:01,,3600," + later + ",1,0,0,old-name,0,\n" +
                 "10.10.4.21,3c:22:fb:12:9a:02,,3600," + later + ",1,0,0,kept,0,\n");
  write_file(file,
             kea4_header + "10.10.4.20,3c:22:fb:12:9a:01,,3600," + later + ",1,0,0,new-name,0,\n");
  std::atomic<std::shared_ptr<const device_table>> target;
  lease_watcher w([&] { return lease_watcher::source{file.string(), lease_format::kea}; }, target);
  CHECK(w.poll());
  REQUIRE(target.load());
  CHECK(target.load()->find(ip("10.10.4.20"))->name == "new-name");
  REQUIRE(target.load()->find(ip("10.10.4.21")));
  CHECK(target.load()->find(ip("10.10.4.21"))->name == "kept");
}

TEST_CASE("lease_watcher: its thread picks a change up within its interval, and stops promptly") {
  leases_dir dir;
  const auto file = dir.path / "dnsmasq.leases";
  write_file(file, dnsmasq_line("10.10.4.20", "before"));
  std::atomic<std::shared_ptr<const device_table>> target;
  lease_watcher w(
      [&] {
        return lease_watcher::source{file.string(), lease_format::dnsmasq};
      },
      target, {}, std::chrono::milliseconds(20));
  w.start();  // reads once on this thread
  REQUIRE(target.load());
  CHECK(target.load()->find(ip("10.10.4.20"))->name == "before");
  write_file(file, dnsmasq_line("10.10.4.20", "after-the-change"));
  bool seen = false;
  for (int i = 0; i < 250 && !seen; ++i) {  // up to 5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto t = target.load();
    seen = t && t->find(ip("10.10.4.20")) && t->find(ip("10.10.4.20"))->name == "after-the-change";
  }
  CHECK(seen);
  const auto t0 = std::chrono::steady_clock::now();
  w.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
}

TEST_CASE("a device name is cut to 253 bytes and never ends with a dot, even where the cut falls") {
  // A name whose 253rd byte is a dot: cut there, it would end with one.
  const std::string long_name = std::string(252, 'a') + ".bbbb";
  const auto r = parse_dnsmasq_leases(
      "1796241600 3c:22:fb:12:9a:01 10.10.4.20 " + long_name + " *\n" +
          "1796241600 3c:22:fb:12:9a:02 10.10.4.21 laptop.. *\n",
      now);
  REQUIRE(find(r, "10.10.4.20"));
  CHECK(find(r, "10.10.4.20")->name == std::string(252, 'a'));
  REQUIRE(find(r, "10.10.4.21"));
  CHECK(find(r, "10.10.4.21")->name == "laptop");
}

TEST_CASE("a device name that is not UTF-8 is stored as valid text, still within 253 bytes") {
  // Each byte that is not UTF-8 becomes U+FFFD (three bytes): cut back to 253 bytes on a
  // character boundary, so a stored request and the admin protocol's JSON can carry it.
  const auto r = parse_dnsmasq_leases("1796241600 3c:22:fb:12:9a:01 10.10.4.20 " + std::string(200, '\xff') +
                                          " *\n1796241600 3c:22:fb:12:9a:02 10.10.4.21 caf\xc3\xa9\xff *\n",
                                      now);
  REQUIRE(find(r, "10.10.4.20"));
  const std::string name = find(r, "10.10.4.20")->name;
  CHECK(name.size() == 252);  // 84 replacement characters: an 85th would pass 253
  CHECK(name.substr(0, 3) == "\xEF\xBF\xBD");
  REQUIRE(find(r, "10.10.4.21"));
  CHECK(find(r, "10.10.4.21")->name == "caf\xc3\xa9\xEF\xBF\xBD");
}

TEST_CASE("a device name keeps no character that acts on a terminal or hides itself") {
  // ISC dhcpd keeps the escapes a device sends in its name: ESC sequences and a right-to-left
  // override reached the access log (and `jq -r`), the store and the block page (admin audit,
  // 2026-12-05, F6). They are dropped; the rest of the name stays.
  const auto r = parse_isc_leases(R"(lease 10.10.4.20 {
  starts 3 2026/12/02 07:55:12;
  ends epoch 1796241600;
  binding state active;
  hardware ethernet 3c:22:fb:12:9a:01;
  client-hostname "pc\033[2J\033[31mRED\342\200\256x\342\200\213y\000z";
}
)",
                                  now);
  REQUIRE(find(r, "10.10.4.20"));
  CHECK(find(r, "10.10.4.20")->name == "pc[2J[31mREDxyz");
}
