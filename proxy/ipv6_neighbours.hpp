// The kernel's IPv6 neighbour table (NDP), read over rtnetlink: complete Ethernet entries as
// devices with a hardware address and no name, as parse_arp_table gives IPv4's. IPv6 has no
// /proc file for it. A device on the LAN link using a SLAAC or temporary address (in no DHCP
// lease) is then known by its hardware address, so a ban of that device, by name or hardware
// address, follows it onto IPv6, and a new temporary address does not end one (outside-in audit
// of IPv6, 2026-12-07, F4). Devices on the gateway's own links only, as for IPv4.
//
// Blocking I/O on a netlink socket (a local dump, bounded in time and size): for the device
// names' thread (dhcp_leases.cpp), never an event loop.
#pragma once

#include <string>

#include "proxy/dhcp_leases.hpp"

namespace hallpass {

// The table's reachable, stale, delayed, probed and permanent entries with a 6-byte hardware
// address (not multicast, not all zeros). On failure, what was read before it, and *error says why.
lease_parse_result read_ipv6_neighbours(std::string* error = nullptr);

}  // namespace hallpass
