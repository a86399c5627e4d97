#include "proxy/signin_table.hpp"

#include <algorithm>

#include "proxy/login_service.hpp"

namespace hallpass {

bool signin_table::expired(const binding& b, const page_settings& limits, clock::time_point now) {
  return now - b.last_seen >= limits.idle || now - b.signed_in >= limits.lifetime;
}

void signin_table::sweep(const page_settings& limits, clock::time_point now) {
  std::erase_if(bindings_, [&](const auto& kv) { return expired(kv.second, limits, now); });
  next_sweep_ = now + std::chrono::minutes(1);
}

std::shared_ptr<const login_identity> signin_table::find(const std::string& client, const page_settings& limits,
                                                         clock::time_point now, std::string_view hardware_address,
                                                         clock::time_point* groups_until) {
  std::lock_guard lock(mutex_);
  if (now >= next_sweep_) sweep(limits, now);
  const auto it = bindings_.find(client);
  if (it == bindings_.end()) return nullptr;
  auto& bound = it->second.hardware_address;
  const bool other_device = !bound.empty() && !hardware_address.empty() && bound != hardware_address;
  if (other_device || expired(it->second, limits, now)) {
    bindings_.erase(it);
    return nullptr;
  }
  // Bound before the device's hardware address was known (the leases and the ARP table are
  // read once a second): the first seen since is the device's, so that another device taking
  // the address later is told apart (outside-in audit of logins, 2026-12-06, M1). Until then,
  // and for a second after a takeover, the address alone decides.
  if (bound.empty() && !hardware_address.empty()) bound = std::string(hardware_address);
  it->second.last_seen = now;
  if (groups_until) *groups_until = it->second.groups_until;
  return it->second.who;
}

bool signin_table::holds(const std::string& client, const login_identity* who, const page_settings& limits,
                         clock::time_point now) const {
  std::lock_guard lock(mutex_);
  const auto it = bindings_.find(client);
  return it != bindings_.end() && it->second.who.get() == who && !expired(it->second, limits, now) &&
         now < it->second.groups_until;
}

void signin_table::bind(const std::string& client, std::shared_ptr<const login_identity> who,
                        const page_settings& limits, clock::time_point now, clock::time_point groups_until,
                        std::string_view hardware_address) {
  std::lock_guard lock(mutex_);
  if (bindings_.size() >= max_bindings && !bindings_.contains(client)) {
    sweep(limits, now);
    if (bindings_.size() >= max_bindings) {
      const auto oldest = std::min_element(bindings_.begin(), bindings_.end(), [](const auto& a, const auto& b) {
        return a.second.last_seen < b.second.last_seen;
      });
      bindings_.erase(oldest);
    }
  }
  bindings_[client] = binding{std::move(who), now, now, groups_until, std::string(hardware_address)};
}

void signin_table::refresh(const std::string& client, std::shared_ptr<const login_identity> who,
                           clock::time_point groups_until) {
  std::lock_guard lock(mutex_);
  const auto it = bindings_.find(client);
  // Not a binding made meanwhile for someone else (a sign-out and another sign-in).
  if (it == bindings_.end() || it->second.who == nullptr || it->second.who->user != who->user) return;
  it->second.who = std::move(who);
  it->second.groups_until = groups_until;
}

bool signin_table::unbind(const std::string& client) {
  std::lock_guard lock(mutex_);
  return bindings_.erase(client) > 0;
}

std::size_t signin_table::size() const {
  std::lock_guard lock(mutex_);
  return bindings_.size();
}

}  // namespace hallpass
