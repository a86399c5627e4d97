#include "proxy/signin_table.hpp"

#include <algorithm>

namespace hallpass {

bool signin_table::expired(const binding& b, const page_settings& limits, clock::time_point now) {
  return now - b.last_seen >= limits.idle || now - b.signed_in >= limits.lifetime;
}

void signin_table::sweep(const page_settings& limits, clock::time_point now) {
  std::erase_if(bindings_, [&](const auto& kv) { return expired(kv.second, limits, now); });
  next_sweep_ = now + std::chrono::minutes(1);
}

std::shared_ptr<const login_identity> signin_table::find(const std::string& client, const page_settings& limits,
                                                         clock::time_point now, std::string_view hardware_address) {
  std::lock_guard lock(mutex_);
  if (now >= next_sweep_) sweep(limits, now);
  const auto it = bindings_.find(client);
  if (it == bindings_.end()) return nullptr;
  const auto& bound = it->second.hardware_address;
  const bool other_device = !bound.empty() && !hardware_address.empty() && bound != hardware_address;
  if (other_device || expired(it->second, limits, now)) {
    bindings_.erase(it);
    return nullptr;
  }
  it->second.last_seen = now;
  return it->second.who;
}

void signin_table::bind(const std::string& client, std::shared_ptr<const login_identity> who,
                        const page_settings& limits, clock::time_point now, std::string_view hardware_address) {
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
  bindings_[client] = binding{std::move(who), now, now, std::string(hardware_address)};
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
