// The pace a client must keep up while it sends a request body: body_relay.hpp and
// splice_pump.hpp bound their reads by it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace hallpass {

// How slowly a client may send a request body (limits.body_min_rate and body_grace): once it
// has been waited for `grace` in all, it must keep up an average of `min_rate` bytes a second
// (each byte buys 1/min_rate s more). Only the time spent waiting for the client's bytes
// counts, so an origin slow to take an upload never makes its client too slow. Each read
// stays bounded by the idle timeout as well. Without it a body trickled a byte at a time, just
// inside the idle timeout, held a connection (and an origin's) for as long as the client
// liked. Apache's mod_reqtimeout (body=20,MinRate=500) is the same rule with the origin's
// share counted.
struct body_pace {
  std::chrono::milliseconds grace{};
  std::uint64_t min_rate = 0;  // bytes a second; 0: no pace, the idle timeout alone
  std::chrono::steady_clock::duration waited{};  // spent waiting for the client so far
  bool too_slow = false;  // a relay stopped because the client fell behind

  bool active() const { return min_rate > 0; }
  // What is left to wait before the client falls behind, having sent `moved` bytes (zero or
  // less: it has).
  std::chrono::steady_clock::duration left(std::uint64_t moved) const {
    // Microseconds: a byte at a million bytes a second still buys time. Capped so that nothing
    // overflows, in the product or in nanoseconds: 2^40 bytes (a terabyte) and 10^15 us (about
    // 31 years; a grace is at most 100 years, parse_duration's bound).
    const auto capped = std::min<std::uint64_t>(moved, std::uint64_t{1} << 40);
    const auto earned_us = std::min<std::uint64_t>(capped * 1000000 / min_rate, 1000000000000000ULL);
    return grace + std::chrono::microseconds(static_cast<std::int64_t>(earned_us)) - waited;
  }
  // The longest the next read may wait: `idle`, or less when the pace runs out first (rounded
  // up: 0.4 ms left is a wait, not a timeout already).
  std::chrono::milliseconds next_wait(std::uint64_t moved, std::chrono::milliseconds idle) const {
    if (!active()) return idle;
    return std::min(idle, std::chrono::ceil<std::chrono::milliseconds>(left(moved)));
  }
};

}  // namespace hallpass
