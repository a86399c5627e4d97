// Where a connection that nftables redirected to a transparent listener was going: the
// address and port the client connected to before the `redirect` in the nat prerouting hook
// rewrote them (getsockopt SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6, read from
// the connection tracking entry).
//
// A connection made straight to the listener (not redirected) has a tracking entry without
// NAT: its original destination is the listener itself, which the caller refuses (a loop).
// Without connection tracking at all (no nat table loaded) the call fails with ENOENT.
//
// One system call, no Asio; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "rules/host.hpp"

namespace hallpass {

struct socket_address {
  rules::ip_address ip;
  std::uint16_t port = 0;
};

// The original destination of accepted socket `fd` (an IPv6 socket when `v6`). nullopt with
// `error` set (strerror's words) when the kernel has none.
std::optional<socket_address> original_destination(int fd, bool v6, std::string& error);

// The local address of `fd` (the listener's address and port, after the redirect).
std::optional<socket_address> local_address(int fd);

}  // namespace hallpass
