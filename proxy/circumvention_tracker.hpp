// Counts circumvention attempts (000 7.2; 002) for the threshold rule of the policy's `bans:`
// section: per user (when known) and per device address, over a sliding window of
// bans.threshold.within. An attempt is a request blocked by a category the policy marks as
// circumvention, or one the proxy flagged itself (a tunnel whose TLS does not match its
// CONNECT, a transparent connection whose Host/SNI does not match where it was going):
// exchange::circumvention. note_attempt() says which subjects reached bans.threshold.attempts
// with this attempt; their counts start again from zero, and the caller files the ban through
// the store thread (admin_server::file_automatic_ban), never on the event loop.
//
// One visit is one attempt: a browser opens several connections to a site at once (a
// preconnect, the page, its favicon, retries), and each was counted, so one visit to a VPN
// site banned a pupil for a day in the same second (audit of the pages, 2026-12-06). An
// attempt on a site (its registrable domain: www.nordvpn.com and nordvpn.com are one) that the
// same subject already tried within `same_site_pause` is not counted again, nor an attempt on
// any site within bans.threshold.apart (default 10 s) of the subject's last counted one: a page
// that loads three VPN sites' images or frames at once is one attempt (review, 2026-12-06).
//
// Bounded: at most bans.threshold.attempts times are kept per subject, and at most
// `max_subjects` subjects at once (when full, subjects with no attempt inside the window are
// forgotten first; a new subject that still finds no room is not counted, and dropped() says
// how many were not). Thread-safe: one short mutex, no I/O and no allocation beyond the map.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/host.hpp"
#include "rules/policy.hpp"

namespace hallpass {

class circumvention_tracker {
 public:
  struct subject {
    bool device = false;
    std::string name;  // the user name, or the device (its hardware address, else its address)
  };

  static constexpr std::chrono::seconds same_site_pause{60};

  explicit circumvention_tracker(std::size_t max_subjects = 65536) : max_subjects_(max_subjects) {}

  // Counts one attempt on `site` at `time` by `device` (and `user`, when not empty) against
  // `bans`' threshold, unless that subject tried `site` within same_site_pause; returns the
  // subjects that reached it now (none when the threshold is off).
  // `device` is what a ban of the device names (note_circumvention, exchange.cpp): its
  // hardware address when the DHCP leases know it, so that the count and the ban follow the
  // device to a new address; else its address.
  std::vector<subject> note_attempt(std::string_view device, std::string_view user, std::string_view site,
                                    std::chrono::sys_seconds time, const rules::ban_settings& bans);

  // A subject note_attempt() returned whose ban could not be filed (the store thread's queue
  // full): its count is put back one short of the threshold at `time`, so that its next
  // attempt within bans.within reaches it again instead of starting from zero (event-loop
  // review, 2026-12-06).
  void not_filed(const subject& s, std::chrono::sys_seconds time, const rules::ban_settings& bans);

  std::size_t tracked() const;
  std::size_t dropped() const;

 private:
  struct attempt {
    std::chrono::sys_seconds time;
    std::size_t site;  // the site's hash: a few bytes per attempt, whatever the name's length
  };
  bool count(const std::string& key, std::size_t site, std::chrono::sys_seconds time,
             const rules::ban_settings& bans);

  mutable std::mutex mutex_;
  const std::size_t max_subjects_;
  std::size_t dropped_ = 0;
  std::chrono::sys_seconds last_sweep_{};
  // "d 10.1.2.3" (or "d 3c:22:fb:12:9a:01") or "u name" -> the attempts inside the window, oldest first.
  std::unordered_map<std::string, std::deque<attempt>> attempts_;
};

}  // namespace hallpass
