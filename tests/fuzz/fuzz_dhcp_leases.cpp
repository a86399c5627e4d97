// libFuzzer target: the DHCP leases parsers (proxy/dhcp_leases.hpp), which read a file written
// by another program (dnsmasq, ISC dhcpd, Kea) whose host names come from the devices
// themselves. The first byte chooses the format; the rest is the file.
//
// Asserted beyond "no crash, no sanitizer report":
//  - a skipped entry always says where and why ("line N: ..."); none skipped, no error text;
//  - every name is at most 253 bytes, has no final dot and no character that acts on a terminal
//    (rules::is_unsafe_on_a_terminal); every hardware address is lower-case
//    hex octets joined by ':' (or empty);
//  - the table built from the result holds at most one device per entry, and finds each
//    address whose last entry named a device;
//  - a device named as the leases give it (rules/device_ref.hpp: `ban --device NAME|MAC`) is
//    canonical once (parsing the canonical form again gives it back) and matches the request
//    facts the proxy fills from that lease.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/dhcp_leases.hpp"
#include "rules/device_ref.hpp"
#include "rules/engine.hpp"
#include "tests/fuzz/fuzz_require.hpp"
#include "rules/utf8.hpp"

using namespace hallpass;

namespace {

bool hardware_address_ok(std::string_view s) {
  if (s.empty()) return true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return s.size() % 3 == 2;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 256 * 1024) return 0;
  const auto format = static_cast<lease_format>(data[0] % 3);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::int64_t now = 1796205600;
  const auto r = parse_leases(format, text, now);
  FUZZ_REQUIRE((r.skipped == 0) == r.first_error.empty());
  FUZZ_REQUIRE(r.skipped == 0 || r.first_error.starts_with("line "));
  for (const auto& e : r.entries) {
    if (!e.device) continue;
    FUZZ_REQUIRE(!e.device->name.empty() || !e.device->hardware_address.empty());
    FUZZ_REQUIRE(e.device->name.size() <= 253);
    FUZZ_REQUIRE(rules::is_valid_utf8(e.device->name));  // it goes into stored requests and JSON
    FUZZ_REQUIRE(e.device->name.empty() || e.device->name.back() != '.');
    bool terminal_safe = true;  // no ESC, bidi override or invisible character (admin audit F6)
    rules::for_each_character(
        e.device->name,
        [&](std::uint32_t cp, std::string_view) { terminal_safe = terminal_safe && !rules::is_unsafe_on_a_terminal(cp); },
        [&](unsigned char) { terminal_safe = false; });
    FUZZ_REQUIRE(terminal_safe);
    FUZZ_REQUIRE(hardware_address_ok(e.device->hardware_address));
    rules::request_facts f;
    f.client = e.address;
    f.device = e.device->name;
    f.mac = e.device->hardware_address;
    // A name that reads as an address or a hardware address is taken as one (the adult gets
    // what they typed); the property is for a name read as a name, a MAC as a MAC.
    for (const auto& [named, key] : {std::pair{&e.device->name, rules::device_key::name},
                                     std::pair{&e.device->hardware_address, rules::device_key::mac}}) {
      const auto d = rules::parse_device(*named);
      if (!d || named->empty() || d->by != key) continue;
      const auto again = rules::parse_device(d->text);
      FUZZ_REQUIRE(again && again->text == d->text && again->by == d->by);
      FUZZ_REQUIRE(rules::device_matches(*d, f));
    }
  }
  const device_table table({r});
  FUZZ_REQUIRE(table.size() <= r.entries.size());
  for (const auto& e : r.entries) {
    const device_identity* found = table.find(e.address);
    // The last entry for this address decides.
    const lease_parse_result::entry* last = nullptr;
    for (const auto& f : r.entries) {
      if (f.address == e.address) last = &f;
    }
    FUZZ_REQUIRE((found != nullptr) == last->device.has_value());
  }
  return 0;
}
