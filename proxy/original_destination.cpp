#include "proxy/original_destination.hpp"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace hallpass {
namespace {

// IPv4-mapped IPv6 (::ffff:a.b.c.d) is written as the IPv4 address, as the accept loop does
// for clients, so that roles, hosts: entries and the destination rules see one spelling.
std::optional<socket_address> from_sockaddr(const sockaddr_storage& ss) {
  socket_address a;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(a.ip.bytes.data(), &sin->sin_addr, 4);
    a.port = ntohs(sin->sin_port);
    return a;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    a.port = ntohs(sin6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      std::memcpy(a.ip.bytes.data(), reinterpret_cast<const unsigned char*>(&sin6->sin6_addr) + 12, 4);
    } else {
      a.ip.v6 = true;
      std::memcpy(a.ip.bytes.data(), &sin6->sin6_addr, 16);
    }
    return a;
  }
  return std::nullopt;
}

}  // namespace

std::optional<socket_address> original_destination(int fd, bool v6, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const int r = v6 ? ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len)
                   : ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
  if (r != 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  auto a = from_sockaddr(ss);
  if (!a) error = "not an IP address";
  return a;
}

std::optional<socket_address> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return from_sockaddr(ss);
}

}  // namespace hallpass
