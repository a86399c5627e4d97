// Short names for the networking libraries, as in Beast's examples.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <string_view>

namespace hallpass {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

// The completion token of every awaited operation: `auto [ec, n] = co_await op(..., nothrow)`
// returns the error as a value instead of throwing it.
inline constexpr auto nothrow = net::as_tuple(net::use_awaitable);

// Whether two addresses are one: an IPv4-mapped IPv6 address ("::ffff:127.0.0.1") counts as
// its IPv4 address.
inline bool same_ip(net::ip::address a, net::ip::address b) {
  auto unmapped = [](net::ip::address x) {
    return x.is_v6() && x.to_v6().is_v4_mapped() ? net::ip::address(net::ip::make_address_v4(net::ip::v4_mapped, x.to_v6()))
                                                  : x;
  };
  return unmapped(a) == unmapped(b);
}

// The bytes a flat_buffer holds, as text (a view: valid until the buffer changes).
inline std::string_view buffered(const beast::flat_buffer& b) {
  return {static_cast<const char*>(b.data().data()), b.size()};
}
}  // namespace hallpass
