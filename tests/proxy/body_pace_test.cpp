#include <doctest/doctest.h>

#include "proxy/body_pace.hpp"
#include "tests/proxy/test_support.hpp"

using namespace hallpass;
using namespace std::chrono_literals;

TEST_CASE("body pace: the grace, then each byte buys 1/min_rate of a second of waiting") {
  body_pace p;
  p.grace = 30s;
  p.min_rate = 500;
  CHECK(p.active());
  CHECK(p.left(0) == 30s);
  CHECK(p.left(1000) == 32s);  // 1,000 bytes at 500 a second
  p.waited = 31s;
  CHECK(p.left(0) == -1s);     // behind: nothing sent during the grace
  CHECK(p.left(1000) == 1s);
  // A read waits the idle timeout or what is left, whichever is shorter; nothing left: zero or less.
  CHECK(p.next_wait(1000, 120000ms) == 1000ms);
  CHECK(p.next_wait(100000, 120000ms) == 120000ms);
  CHECK(p.next_wait(0, 120000ms) <= 0ms);
  // What is left is rounded up: 0.4 ms left is a wait of 1 ms, not a timeout already.
  p.waited = 30s - 400us;
  CHECK(p.next_wait(0, 120000ms) == 1ms);
}

TEST_CASE("body pace: off at 0, and no overflow for an enormous body") {
  body_pace off;
  off.min_rate = 0;
  CHECK_FALSE(off.active());
  CHECK(off.next_wait(0, 5000ms) == 5000ms);
  body_pace fast;
  fast.min_rate = 1;
  fast.grace = 1s;
  // A declared petabyte at one byte a second: capped at 2^40 bytes, far from overflowing.
  CHECK(fast.left(std::uint64_t{1} << 50) > std::chrono::hours(24 * 365));
  fast.grace = std::chrono::hours(24 * 365 * 100);  // parse_duration's largest
  CHECK(fast.left(std::uint64_t{1} << 50) > std::chrono::hours(24 * 365 * 100));
}

TEST_CASE("body pace: limits.body_min_rate and limits.body_grace, with defaults and range checks") {
  const auto defaults = hallpass_test::load_config("listen: 127.0.0.1:3128\n");
  CHECK(defaults.errors.empty());
  CHECK(defaults.config.limits.body_min_rate == 500);
  CHECK(defaults.config.limits.body_grace == 30s);
  const auto set = hallpass_test::load_config("limits:\n  body_min_rate: 0\n  body_grace: 2m\n");
  CHECK(set.errors.empty());
  CHECK(set.config.limits.body_min_rate == 0);
  CHECK(set.config.limits.body_grace == 120s);
  const auto bad = hallpass_test::load_config("limits:\n  body_min_rate: -5\n  body_grace: 30\n");
  CHECK(hallpass_test::contains(bad.errors, "limits.body_min_rate"));
  CHECK(hallpass_test::contains(bad.errors, "limits.body_grace"));
  // A grace under a second would refuse every body that did not come with its head.
  const auto no_grace = hallpass_test::load_config("limits:\n  body_grace: 0s\n");
  CHECK(hallpass_test::contains(no_grace.errors, "limits.body_grace must be at least 1s"));
  CHECK(hallpass_test::load_config("limits:\n  body_min_rate: 0\n  body_grace: 0s\n").errors.empty());
}
