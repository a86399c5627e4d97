#include "proxy/circumvention_tracker.hpp"

namespace hallpass {

std::vector<circumvention_tracker::subject> circumvention_tracker::note_attempt(
    std::string_view device, std::string_view user, std::string_view site, std::chrono::sys_seconds time,
    const rules::ban_settings& bans) {
  std::vector<subject> reached;
  if (bans.attempts == 0) return reached;
  const std::size_t site_hash = std::hash<std::string_view>{}(site);
  std::lock_guard lock(mutex_);
  if (!user.empty() && count("u " + std::string(user), site_hash, time, bans))
    reached.push_back({false, std::string(user)});
  if (count("d " + std::string(device), site_hash, time, bans)) reached.push_back({true, std::string(device)});
  return reached;
}

bool circumvention_tracker::count(const std::string& key, std::size_t site, std::chrono::sys_seconds time,
                                  const rules::ban_settings& bans) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) {
    if (attempts_.size() >= max_subjects_ && time != last_sweep_) {
      // Full: forget subjects with no attempt inside the window (at most once a second).
      last_sweep_ = time;
      std::erase_if(attempts_, [&](const auto& kv) {
        return kv.second.empty() || kv.second.back().time <= time - bans.within;
      });
    }
    if (attempts_.size() >= max_subjects_) {
      ++dropped_;
      return false;
    }
    it = attempts_.emplace(key, std::deque<attempt>{}).first;
  }
  auto& times = it->second;
  while (!times.empty() && times.front().time <= time - bans.within) times.pop_front();
  // The same site again within the pause: the same visit, not another attempt.
  for (const auto& a : times) {
    if (a.site == site && time - a.time < same_site_pause) return false;
  }
  // Another site within bans.threshold.apart of the last counted: the same burst (a page's
  // images or frames of several sites at once), not another attempt.
  if (!times.empty() && time - times.back().time < bans.apart) return false;
  times.push_back({time, site});
  while (times.size() > bans.attempts) times.pop_front();
  if (times.size() < bans.attempts) return false;
  attempts_.erase(it);
  return true;
}

void circumvention_tracker::not_filed(const subject& s, std::chrono::sys_seconds time,
                                     const rules::ban_settings& bans) {
  if (bans.attempts == 0) return;
  std::lock_guard lock(mutex_);
  const std::string key = (s.device ? "d " : "u ") + s.name;
  if (!attempts_.contains(key) && attempts_.size() >= max_subjects_) return;
  // Put back as attempts on no site (hash 0 is not a real site's, in practice): the next
  // attempt, on any site, reaches the threshold again.
  attempts_[key] = std::deque<attempt>(bans.attempts - 1, attempt{time, 0});
}

std::size_t circumvention_tracker::tracked() const {
  std::lock_guard lock(mutex_);
  return attempts_.size();
}

std::size_t circumvention_tracker::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace hallpass
