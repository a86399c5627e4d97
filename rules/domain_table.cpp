#include "rules/domain_table.hpp"

#include <algorithm>
#include <cstring>

namespace hallpass::rules {

std::uint64_t domain_table::hash(std::string_view s) {
  // A small multiply-xorshift hash over 8-byte words; host names are short, so the tail
  // handling matters more than bulk speed.
  constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0xC2B2AE3D27D4EB4Full ^ (s.size() * k);
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

std::uint16_t domain_table::find(std::string_view key) const {
  const std::uint64_t h = hash(key);
  const auto tag = static_cast<std::uint32_t>(h >> 32);
  std::size_t i = h & mask_;
  while (true) {
    const slot& s = slots_[i];
    if (s.record == 0) return no_membership;
    if (s.tag == tag) {
      const char* r = arena_.data() + (s.record - 1);
      const auto len = static_cast<unsigned char>(r[2]);
      if (len == key.size() && std::memcmp(r + 3, key.data(), len) == 0) {
        std::uint16_t m;
        std::memcpy(&m, r, 2);
        return m;
      }
    }
    i = (i + 1) & mask_;
  }
}

void domain_table::grow() {
  const std::size_t new_size = slots_.empty() ? 1024 : slots_.size() * 2;
  std::vector<slot> fresh(new_size);
  const std::size_t new_mask = new_size - 1;
  for (const slot& s : slots_) {
    if (s.record == 0) continue;
    const char* r = arena_.data() + (s.record - 1);
    const std::uint64_t h = hash({r + 3, static_cast<unsigned char>(r[2])});
    std::size_t i = h & new_mask;
    while (fresh[i].record != 0) i = (i + 1) & new_mask;
    fresh[i] = s;
  }
  slots_.swap(fresh);
  mask_ = new_mask;
}

std::uint16_t domain_table::membership_with(std::uint16_t current, set_id set) {
  const std::uint32_t step_key = (static_cast<std::uint32_t>(current) << 16) | set;
  if (auto it = membership_steps_.find(step_key); it != membership_steps_.end()) return it->second;
  std::vector<set_id> sets;
  if (current != no_membership) sets = memberships_[current];
  if (!std::binary_search(sets.begin(), sets.end(), set)) {
    sets.insert(std::upper_bound(sets.begin(), sets.end(), set), set);
  }
  std::uint16_t id;
  if (auto it = membership_ids_.find(sets); it != membership_ids_.end()) {
    id = it->second;
  } else {
    if (memberships_.size() >= max_memberships) return no_membership;
    id = static_cast<std::uint16_t>(memberships_.size());
    memberships_.push_back(sets);
    membership_ids_.emplace(std::move(sets), id);
  }
  membership_steps_.emplace(step_key, id);
  return id;
}

bool domain_table::add(std::string_view domain, set_id set) {
  if ((count_ + 1) * 5 > slots_.size() * 3) grow();  // keep load <= 0.6
  const std::uint64_t h = hash(domain);
  const auto tag = static_cast<std::uint32_t>(h >> 32);
  std::size_t i = h & mask_;
  while (true) {
    slot& s = slots_[i];
    if (s.record == 0) break;
    if (s.tag == tag) {
      char* r = arena_.data() + (s.record - 1);
      const auto len = static_cast<unsigned char>(r[2]);
      if (len == domain.size() && std::memcmp(r + 3, domain.data(), len) == 0) {
        std::uint16_t m;
        std::memcpy(&m, r, 2);
        const std::uint16_t next = membership_with(m, set);
        if (next == no_membership) return false;
        std::memcpy(r, &next, 2);
        return true;
      }
    }
    i = (i + 1) & mask_;
  }
  const std::uint16_t m = membership_with(no_membership, set);
  if (m == no_membership) return false;
  const std::size_t at = arena_.size();
  arena_.resize(at + 3 + domain.size());
  std::memcpy(arena_.data() + at, &m, 2);
  arena_[at + 2] = static_cast<char>(domain.size());
  std::memcpy(arena_.data() + at + 3, domain.data(), domain.size());
  slots_[i] = slot{static_cast<std::uint32_t>(at + 1), tag};
  ++count_;
  return true;
}

void domain_table::finish() {
  arena_.shrink_to_fit();
  membership_ids_.clear();
  membership_steps_.clear();
}

std::size_t domain_table::memory_bytes() const {
  std::size_t n = slots_.capacity() * sizeof(slot) + arena_.capacity();
  for (const auto& m : memberships_) n += m.capacity() * sizeof(set_id) + sizeof(m);
  return n;
}

}  // namespace hallpass::rules
