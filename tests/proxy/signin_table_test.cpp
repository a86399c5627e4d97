// signin_table: the sign-in page's bindings end at sign-out, after `idle` without a request, or
// `lifetime` after signing in; a request inside the idle time keeps one.
#include "proxy/signin_table.hpp"

#include <doctest/doctest.h>

#include "proxy/login_service.hpp"

using namespace hallpass;
using namespace std::chrono_literals;

namespace {
std::shared_ptr<const login_identity> who(const char* name) {
  auto i = std::make_shared<login_identity>();
  i->user = name;
  i->groups = {"Year 6"};
  return i;
}
}  // namespace

TEST_CASE("signin_table: a binding is found until sign-out") {
  signin_table t;
  const page_settings limits;  // 30m idle, 8h lifetime
  const auto t0 = signin_table::clock::time_point{} + 1h;
  CHECK(t.find("10.40.0.2", limits, t0) == nullptr);
  t.bind("10.40.0.2", who("dave"), limits, t0, t0 + 5min);
  const auto got = t.find("10.40.0.2", limits, t0 + 1s);
  REQUIRE(got != nullptr);
  CHECK(got->user == "dave");
  CHECK(got->groups == std::vector<std::string>{"Year 6"});
  CHECK(t.find("10.40.0.3", limits, t0 + 1s) == nullptr);  // another device
  CHECK(t.unbind("10.40.0.2"));
  CHECK_FALSE(t.unbind("10.40.0.2"));
  CHECK(t.find("10.40.0.2", limits, t0 + 2s) == nullptr);
}

TEST_CASE("signin_table: idle ends a binding and a request keeps it") {
  signin_table t;
  page_settings limits;
  limits.idle = 10s;
  const auto t0 = signin_table::clock::time_point{} + 1h;
  t.bind("a", who("sam"), limits, t0, t0 + 5min);
  t.bind("b", who("carol"), limits, t0, t0 + 5min);
  // a is used every 6 s for a minute: never idle 10 s.
  for (int i = 1; i <= 10; ++i) CHECK(t.find("a", limits, t0 + i * 6s) != nullptr);
  CHECK(t.find("b", limits, t0 + 60s) == nullptr);  // b was idle
  CHECK(t.size() == 1);
  CHECK(t.find("a", limits, t0 + 70s) == nullptr);   // now a too
  CHECK(t.size() == 0);
}

TEST_CASE("signin_table: lifetime ends a binding however busy") {
  signin_table t;
  page_settings limits;
  limits.idle = 10s;
  limits.lifetime = 30s;
  const auto t0 = signin_table::clock::time_point{} + 1h;
  t.bind("a", who("sam"), limits, t0, t0 + 5min);
  for (int i = 1; i <= 5; ++i) CHECK(t.find("a", limits, t0 + i * 5s) != nullptr);
  CHECK(t.find("a", limits, t0 + 30s) == nullptr);
  // Signing in again starts a new lifetime.
  t.bind("a", who("sam"), limits, t0 + 31s, t0 + 31s + 5min);
  CHECK(t.find("a", limits, t0 + 40s) != nullptr);
}

TEST_CASE("signin_table: shorter limits after a reload apply to existing bindings") {
  signin_table t;
  const page_settings long_limits;
  const auto t0 = signin_table::clock::time_point{} + 1h;
  t.bind("a", who("sam"), long_limits, t0, t0 + 5min);
  CHECK(t.find("a", long_limits, t0 + 5min) != nullptr);
  page_settings shorter;
  shorter.lifetime = 1min;
  CHECK(t.find("a", shorter, t0 + 6min) == nullptr);
}

TEST_CASE("signin_table: an address that passed to a device with another hardware address is not signed in") {
  // The DHCP lease moved to a pupil's phone, which browsed as the teacher who signed in on the
  // address before (audit3, 2026-12-05, F2).
  signin_table t;
  const page_settings limits;
  const auto t0 = signin_table::clock::time_point{} + 1h;
  t.bind("10.40.0.2", who("sam"), limits, t0, t0 + 5min, "3c:22:fb:12:9a:01");
  CHECK(t.find("10.40.0.2", limits, t0 + 1s, "3c:22:fb:12:9a:01") != nullptr);  // the same device
  CHECK(t.find("10.40.0.2", limits, t0 + 2s) != nullptr);  // the device unknown now: the address decides
  CHECK(t.find("10.40.0.2", limits, t0 + 3s, "f0:18:98:00:00:07") == nullptr);  // another device
  CHECK(t.find("10.40.0.2", limits, t0 + 4s, "3c:22:fb:12:9a:01") == nullptr);  // and the binding is gone
  // Bound before the device's hardware address was known (the ARP table is read once a
  // second; an IPv6 device without a DHCPv6 lease): the first one seen after the sign-in is
  // taken as the device's, and another one later ends the binding. It stayed the address's for
  // good (outside-in audit of logins, 2026-12-06, M1).
  t.bind("10.40.0.5", who("dave"), limits, t0, t0 + 5min);
  CHECK(t.find("10.40.0.5", limits, t0 + 1s) != nullptr);
  CHECK(t.find("10.40.0.5", limits, t0 + 2s, "f0:18:98:00:00:07") != nullptr);
  CHECK(t.find("10.40.0.5", limits, t0 + 3s, "f0:18:98:00:00:07") != nullptr);
  CHECK(t.find("10.40.0.5", limits, t0 + 4s, "3c:22:fb:12:9a:05") == nullptr);
  CHECK(t.find("10.40.0.5", limits, t0 + 5s) == nullptr);
}

TEST_CASE("signin_table: a binding's groups are trusted until given, then refreshed for the same user only") {
  using namespace std::chrono_literals;
  signin_table t;
  const page_settings limits;
  const auto t0 = signin_table::clock::now();
  t.bind("a", who("sam"), limits, t0, t0 + 2s);
  signin_table::clock::time_point until{};
  REQUIRE(t.find("a", limits, t0 + 3s, {}, &until));
  CHECK(until == t0 + 2s);  // past: the caller reads the groups again
  auto fresh = std::make_shared<login_identity>(login_identity{"sam", {"Year 6"}});
  t.refresh("a", fresh, t0 + 10s);
  auto got = t.find("a", limits, t0 + 4s, {}, &until);
  REQUIRE(got);
  CHECK(got->groups == std::vector<std::string>{"Year 6"});
  CHECK(until == t0 + 10s);
  // Signed in as someone else meanwhile: that binding is not overwritten with sam's groups.
  t.bind("a", who("carol"), limits, t0 + 5s, t0 + 20s);
  t.refresh("a", fresh, t0 + 30s);
  got = t.find("a", limits, t0 + 6s, {}, &until);
  REQUIRE(got);
  CHECK(got->user == "carol");
  CHECK(until == t0 + 20s);
  t.refresh("nobody", fresh, t0 + 30s);  // no binding: nothing made
  CHECK_FALSE(t.find("nobody", limits, t0 + 6s));
}
