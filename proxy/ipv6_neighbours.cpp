#include "proxy/ipv6_neighbours.hpp"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace hallpass {
namespace {

constexpr std::size_t max_entries = 65536;   // a school's LANs have far fewer neighbours
constexpr int max_reads = 4096;              // each up to 64 KiB: the dump is bounded however it grows

struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

lease_parse_result read_ipv6_neighbours(std::string* error) {
  lease_parse_result r;
  auto fail = [&](const char* what) {
    if (error) *error = std::string(what) + ": " + std::strerror(errno);
    return r;
  };
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return fail("netlink socket");
  fd_closer closer{fd};
  const timeval wait{1, 0};  // a local dump answers at once; never hang the names' thread
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  struct {
    nlmsghdr head;
    ndmsg body;
  } ask{};
  ask.head.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
  ask.head.nlmsg_type = RTM_GETNEIGH;
  ask.head.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  ask.head.nlmsg_seq = 1;
  ask.body.ndm_family = AF_INET6;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &ask, ask.head.nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0) {
    return fail("netlink request");
  }
  std::vector<char> buf(64 * 1024);
  for (int reads = 0; reads < max_reads; ++reads) {
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
    if (got <= 0) return fail("netlink answer");
    int left = static_cast<int>(got);  // signed, as NLMSG_OK compares it
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return r;
      if (h->nlmsg_type == NLMSG_ERROR) {
        errno = EPROTO;
        return fail("netlink dump");
      }
      if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) continue;
      const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
      constexpr unsigned known = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;
      if (nd->ndm_family != AF_INET6 || !(nd->ndm_state & known)) continue;
      // The attributes after the ndmsg (the kernel's NDA_RTA, not in the user-space headers).
      int attributes = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
      const auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nd) + NLMSG_ALIGN(sizeof(ndmsg)));
      std::optional<rules::ip_address> address;
      std::array<unsigned char, 6> mac{};
      bool has_mac = false;
      for (; RTA_OK(a, attributes); a = RTA_NEXT(a, attributes)) {
        if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 16) {
          rules::ip_address ip;
          ip.v6 = true;
          std::memcpy(ip.bytes.data(), RTA_DATA(a), 16);
          address = ip;
        } else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
          std::memcpy(mac.data(), RTA_DATA(a), 6);
          has_mac = true;
        }
      }
      const bool zero = mac == std::array<unsigned char, 6>{};
      if (!address || !has_mac || zero || (mac[0] & 1)) continue;  // multicast (odd first byte): no device
      if (r.entries.size() >= max_entries) return r;
      char text[18];
      std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
      r.entries.push_back({*address, device_identity{std::string(), text}});
    }
  }
  if (error) *error = "netlink dump: more than " + std::to_string(max_reads) + " reads";
  return r;
}

}  // namespace hallpass
