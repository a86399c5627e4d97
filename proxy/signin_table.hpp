// signin_table: which client addresses are signed in through the sign-in page (issue 12,
// `login: page`), and as whom. A device that cannot do proxy logins (a guest phone, a tablet
// on the transparent gateway) signs in once on the page; its address then carries the user
// and their groups until it signs out, makes no request for `logins.page.idle`, or
// `logins.page.lifetime` has passed since it signed in.
//
// One per daemon, in shared_state (not in the configuration), so a reload keeps every
// binding; the limits are the configuration's at each lookup, so a reload that shortens them
// applies at once. In memory only: a restart signs every device out. The password is never
// here, only the identity the directory answered with.
//
// Thread-safety: every member function may be called from any thread (one mutex; each call
// is a hash lookup, a sweep of expired bindings at most once a minute, or both).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "proxy/login_config.hpp"

namespace hallpass {

struct login_identity;

class signin_table {
 public:
  using clock = std::chrono::steady_clock;

  // Who `client` is signed in as, or null. A binding past its idle time or lifetime is removed
  // and not returned. A hit is activity: its idle time starts again at `now`.
  // `hardware_address`: the device's, when the DHCP leases (or the ARP table) name one for the
  // address now. A binding made by a device with another hardware address is removed and not
  // returned: the address has passed to another device, which must not browse as the user
  // (audit3, 2026-12-05, F2). Unknown on either side, the address alone decides.
  // `groups_until` (when given): until when the binding's groups are trusted, cache_ttl after
  // the directory gave them; past it the caller reads them again (login_gate.cpp) and
  // refresh()es the binding, so that a group change in the directory takes effect within
  // logins.ldap.cache_ttl here too, not at the binding's lifetime (outside-in audit of logins,
  // 2026-12-05, M2).
  std::shared_ptr<const login_identity> find(const std::string& client, const page_settings& limits,
                                             clock::time_point now, std::string_view hardware_address = {},
                                             clock::time_point* groups_until = nullptr);
  // Binds `client` (and its hardware address, when known) to `who` from `now` (replacing any
  // binding it had), its groups trusted until `groups_until`. REQUIRES: who is not null.
  void bind(const std::string& client, std::shared_ptr<const login_identity> who, const page_settings& limits,
            clock::time_point now, clock::time_point groups_until, std::string_view hardware_address = {});
  // Replaces the identity of `client`'s binding with `who` (the same user's groups read again),
  // trusted until `groups_until`, when `client` is still bound to that user. Its sign-in time,
  // idle time and hardware address stay.
  void refresh(const std::string& client, std::shared_ptr<const login_identity> who, clock::time_point groups_until);
  // Whether `client` is still bound to `who` (the same identity, not refreshed since), neither
  // idle nor past its lifetime, with its groups still trusted: a relayed tunnel opened under the
  // binding goes on only while this holds (exchange.cpp, decision_still_holds). Not activity:
  // an open tunnel does not keep a shared tablet signed in.
  bool holds(const std::string& client, const login_identity* who, const page_settings& limits,
             clock::time_point now) const;
  // Signs `client` out. Returns whether it was signed in.
  bool unbind(const std::string& client);
  std::size_t size() const;

  // Bindings beyond this many (a flood of sign-ins from spoofed addresses cannot grow the
  // table without bound): the one idle longest is dropped for a new one.
  static constexpr std::size_t max_bindings = 100000;

 private:
  struct binding {
    std::shared_ptr<const login_identity> who;
    clock::time_point signed_in, last_seen;
    clock::time_point groups_until;
    std::string hardware_address;  // empty when the leases did not name the device
  };
  static bool expired(const binding& b, const page_settings& limits, clock::time_point now);
  void sweep(const page_settings& limits, clock::time_point now);  // REQUIRES: mutex_ held

  mutable std::mutex mutex_;
  std::unordered_map<std::string, binding> bindings_;
  clock::time_point next_sweep_{};
};

}  // namespace hallpass
