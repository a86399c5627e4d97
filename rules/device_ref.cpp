#include "rules/device_ref.hpp"

#include <algorithm>
#include <array>

#include "rules/engine.hpp"

namespace hallpass::rules {

namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool hex(char c) {
  return (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f');
}

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(device_key k) {
  switch (k) {
    case device_key::address:
      return "address";
    case device_key::name:
      return "name";
    case device_key::mac:
      return "hardware address";
  }
  return "address";
}

std::optional<std::string> parse_mac(std::string_view t) {
  if (t.size() != 17) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i % 3 == 2) {
      if (t[i] != ':' && t[i] != '-') return std::nullopt;
      if (t[i] != t[2]) return std::nullopt;  // one separator throughout
      out += ':';
    } else {
      if (!hex(t[i])) return std::nullopt;
      out += lower(t[i]);
    }
  }
  return out;
}

namespace {

// One to four dot-separated parts, each decimal digits or "0x" and hexadecimal digits, at least
// one of them hexadecimal: an IPv4 address as inet_aton reads it, no DHCP host name.
bool hex_address_form(std::string_view t) {
  int parts = 0;
  bool hex = false;
  for (std::size_t start = 0; start <= t.size(); ++parts) {
    const std::size_t end = std::min(t.find('.', start), t.size());
    std::string_view part = t.substr(start, end - start);
    if (part.size() > 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
      hex = true;
      part.remove_prefix(2);
      if (part.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) return false;
    } else if (part.empty() || part.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    start = end + 1;
  }
  return hex && parts <= 4;
}

}  // namespace

std::optional<device_ref> parse_device(std::string_view t, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<device_ref> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (t.empty())
    return fail("a device is named by its address, its name or its hardware address: none given");
  if (auto mac = parse_mac(t)) return device_ref{device_key::mac, std::move(*mac), std::nullopt};
  if (auto a = ip_address::parse(t)) {
    // An IPv4-mapped address (::ffff:10.1.2.3) is the IPv4 device: the proxy sees its clients'
    // IPv4 addresses so (worker.cpp), and a ban written the other way matched nothing (audit).
    static constexpr std::array<std::uint8_t, 12> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->v6 && std::equal(mapped.begin(), mapped.end(), a->bytes.begin())) {
      ip_address v4;
      std::copy(a->bytes.begin() + 12, a->bytes.end(), v4.bytes.begin());
      a = v4;
    }
    if (a->to_string() == "0.0.0.0" || a->to_string() == "::") {
      return fail("'" + std::string(t) + "' is the unspecified address, which no device has");
    }
    // An IPv4-compatible address (::10.0.0.8, RFC 4291's deprecated form) is no client's: a
    // client is IPv4, or IPv4-mapped and read as IPv4; stored, it banned nobody (outside-in
    // audit of IPv6, 2026-12-07, F9).
    if (const auto carried = ipv4_reached_by(*a); carried && a->v6 && a->bytes[0] == 0 && a->bytes[1] == 0) {
      return fail("'" + std::string(t) + "' is an IPv4-compatible IPv6 address, which no device uses: write the IPv4 "
                  "address " + carried->to_string());
    }
    return device_ref{device_key::address, a->to_string(), a};
  }
  // Digits and dots only, yet not an address (999.1.1.1, 10.0.0): a typo in an address, not a
  // device name (DHCP names do not look like that), which would never match (audit14 D6).
  if (!t.empty() && t.find_first_not_of("0123456789.") == std::string_view::npos) {
    return fail("'" + std::string(t) + "' is not an IPv4 address (four numbers 0-255, like 10.10.4.20)");
  }
  // An address in a form other tools read (inet_aton's hexadecimal: 0x7f.0.0.2, 0x7f000002),
  // which hallpass does not: stored as a device name it banned nobody (audit, 2026-12-06).
  if (hex_address_form(t)) {
    return fail("'" + std::string(t) + "' looks like an address in hexadecimal, which hallpass does not read: write "
                "it as four decimal numbers (like 10.10.4.20)");
  }
  if (t.size() > 1 && t.back() == '.') t.remove_suffix(1);  // "laptop-07." is "laptop-07", as a host name
  if (t.size() > 253) return fail("a device name is at most 253 characters");
  std::string name;
  for (char c : t) {
    const char l = lower(c);
    if (!((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '.' || l == '-' || l == '_')) {
      return fail("'" + std::string(t) +
                  "' is not a device: give an address (10.10.4.20, fd00::20), a hardware address "
                  "(3c:22:fb:12:9a:01) or a device name from the DHCP leases (letters, digits, "
                  "'.', '-', '_')");
    }
    name += l;
  }
  return device_ref{device_key::name, std::move(name), std::nullopt};
}

bool device_matches(const device_ref& d, const request_facts& f) {
  switch (d.by) {
    case device_key::address:
      return d.address && f.client && *d.address == *f.client;
    case device_key::name:
      if (f.device.empty() || !same_name(d.text, f.device)) return false;
      break;
    case device_key::mac:
      if (f.mac.empty() || !same_name(d.text, f.mac)) return false;
      break;
  }
  return !d.address || (f.client && *d.address == *f.client);
}

}  // namespace hallpass::rules
