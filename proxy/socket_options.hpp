// Socket options every proxied connection gets, client side and origin side alike.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <boost/asio/detail/socket_option.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace hallpass {

// At most this many bytes written but not yet sent wait in the kernel for one connection
// (TCP_NOTSENT_LOWAT). Without it a socket's send buffer grows to megabytes, and the kernel
// wakes a blocked writer only after half of what it queued has gone: a client reading steadily
// at 8 KB/s showed no progress for minutes, and the idle timeout (upstream.idle_timeout) cut its
// download as one that "stopped reading" (outside-in audit with real clients, 2026-12-07, M3);
// uploads to a slow origin the same. With it a writer wakes after some 128 KiB have gone: every
// 16 s at 8 KB/s. Loopback and LAN throughput is unchanged (the bench's downloads).
inline constexpr int max_unsent_bytes = 256 * 1024;

inline void set_proxy_socket_options(boost::asio::ip::tcp::socket& s) {
  boost::system::error_code ignored;
  s.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  s.set_option(boost::asio::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>(max_unsent_bytes), ignored);
}

}  // namespace hallpass
