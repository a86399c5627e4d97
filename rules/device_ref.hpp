// How an adult names one device in a ban or a device-scoped exception (issue 12): by its
// address, by the host name the DHCP server's leases give it, or by its hardware address.
// A ban or exception by name or hardware address follows the device when its lease moves to
// another address; one by address stays on that address.
//
// Canonical forms (what the store keeps and what is compared): an address as
// ip_address::to_string writes it; a name case-folded to ASCII lower case; a hardware address
// in lower case, colon-separated ("3c:22:fb:12:9a:01"; "-" separators are accepted).
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rules/host.hpp"

namespace hallpass::rules {

struct request_facts;

enum class device_key : std::uint8_t { address, name, mac };
std::string_view to_string(device_key k);  // "address", "name", "hardware address"

struct device_ref {
  device_key by = device_key::address;
  std::string text;  // canonical
  // When by == address: that address. When by == name or mac and set: the device must also
  // be at this address (a device-scoped exception records where the form came from, so that
  // another device taking the name gets nothing: an exception never widens on a name alone).
  std::optional<ip_address> address;
};

// Reads what an adult wrote: an IPv4 or IPv6 address, a hardware address (six pairs of hex
// digits), or a device name (1 to 253 characters of letters, digits, '.', '-' and '_', as
// DHCP servers write host names). nullopt with *error saying what was wrong.
std::optional<device_ref> parse_device(std::string_view text, std::string* error = nullptr);
// The canonical hardware address, or nullopt when `text` is not one.
std::optional<std::string> parse_mac(std::string_view text);

// Whether the request comes from the device: its client address, or the name or hardware
// address the proxy found for it in the leases (request_facts::device, ::mac; a name compared
// without case), and then the address too when d.address is set. A request with no lease
// matches no name or hardware address.
bool device_matches(const device_ref& d, const request_facts& f);

}  // namespace hallpass::rules
