// The key failed sign-ins are counted under (proxy/login_service.hpp, failure_client_key).
#include "proxy/login_service.hpp"

#include <doctest/doctest.h>

// A device chooses its own IPv6 addresses in its network's /64: counted per address, each new
// one had fresh guesses, and enough of them filled the failure tracker, which then counted
// nothing (audit3, 2026-12-05, F1 and F5). The whole /64 is one client.
TEST_CASE("failed sign-ins are counted per IPv4 address and per IPv6 /64") {
  using hallpass::failure_client_key;
  CHECK(failure_client_key("10.10.4.20") == "10.10.4.20");
  CHECK(failure_client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64");
  CHECK(failure_client_key("2001:db8:1:2:a8f1:ff:fe00:1") == "2001:db8:1:2::/64");
  CHECK(failure_client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64");  // another network
  CHECK(failure_client_key("::1") == "::/64");
  CHECK(failure_client_key("::ffff:10.10.4.20") == "::ffff:10.10.4.20");  // IPv4, as written
  CHECK(failure_client_key("not an address") == "not an address");
}
