#include "rules/domain_table.hpp"

// madvise() is the one system call here: it only advises the kernel how to back memory this
// table owns (huge pages), which keeps rules/ free of I/O.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>

namespace hallpass::rules {
namespace {
constexpr std::size_t huge_page = std::size_t{2} << 20;
}  // namespace

void* allocate_maybe_huge(std::size_t bytes) {
  if (bytes < huge_page) return ::operator new(bytes);
  const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
  void* p = std::aligned_alloc(huge_page, rounded);
  if (!p) throw std::bad_alloc();
  // With 4.5 M domains the slots and the arena are 60-80 MB each and every probe lands on a
  // random page: with 4 KiB pages nearly each one also misses the TLB. Transparent huge pages
  // are in "madvise" mode on our machines, so ask for them; if the kernel cannot (no THP, or
  // no free huge pages), this only costs speed.
  madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void deallocate_maybe_huge(void* p, std::size_t bytes) noexcept {
  if (bytes < huge_page) {
    ::operator delete(p);
  } else {
    std::free(p);
  }
}

std::uint16_t domain_table::find_from(std::string_view key, std::uint64_t h, std::size_t i) const {
  const std::uint16_t tag = tag_of(h);
  while (true) {
    const slot& s = slots_[i];
    if (s.record == 0) return no_membership;
    if (s.tag == tag) {
      const char* r = arena_.data() + (s.record - 1);
      const auto len = static_cast<unsigned char>(r[0]);
      if (len == key.size() && std::memcmp(r + 1, key.data(), len) == 0) return s.membership;
    }
    i = (i + 1) & mask_;
  }
}

std::uint16_t domain_table::find(std::string_view key) const {
  const std::uint64_t h = hash(key);
  return find_from(key, h, h & mask_);
}

void domain_table::rehash(std::size_t new_size) {
  std::vector<slot, maybe_huge_allocator<slot>> fresh(new_size);
  const std::size_t new_mask = new_size - 1;
  for (const slot& s : slots_) {
    if (s.record == 0) continue;
    const char* r = arena_.data() + (s.record - 1);
    const std::uint64_t h = hash({r + 1, static_cast<unsigned char>(r[0])});
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
  // The full list, the URL mark included (it sorts last), is what identifies a membership.
  std::vector<set_id> sets;
  if (current != no_membership) {
    sets = memberships_[current];
    if (membership_has_urls_[current]) sets.push_back(url_prefix_marker);
  }
  if (!std::binary_search(sets.begin(), sets.end(), set)) {
    sets.insert(std::upper_bound(sets.begin(), sets.end(), set), set);
  }
  std::uint16_t id;
  if (auto it = membership_ids_.find(sets); it != membership_ids_.end()) {
    id = it->second;
  } else {
    if (memberships_.size() >= max_memberships) return no_membership;
    id = static_cast<std::uint16_t>(memberships_.size());
    const bool has_urls = sets.back() == url_prefix_marker;
    memberships_.emplace_back(sets.begin(), sets.end() - (has_urls ? 1 : 0));
    membership_has_urls_.push_back(has_urls ? 1 : 0);
    membership_ids_.emplace(std::move(sets), id);
  }
  membership_steps_.emplace(step_key, id);
  return id;
}

domain_table::add_result domain_table::add(std::string_view domain, set_id set) {
  if ((count_ + 1) * 5 > slots_.size() * 3) rehash(slots_.empty() ? 1024 : slots_.size() * 2);  // load <= 0.6
  const std::uint64_t h = hash(domain);
  const auto tag = tag_of(h);
  std::size_t i = h & mask_;
  while (true) {
    slot& s = slots_[i];
    if (s.record == 0) break;
    if (s.tag == tag) {
      const char* r = arena_.data() + (s.record - 1);
      const auto len = static_cast<unsigned char>(r[0]);
      if (len == domain.size() && std::memcmp(r + 1, domain.data(), len) == 0) {
        const std::uint16_t m = s.membership;
        const std::uint16_t next = membership_with(m, set);
        if (next == no_membership) return add_result::full;
        if (next == m) return add_result::already;  // the same sets: `set` was one of them
        if (memberships_[m].empty() && !memberships_[next].empty()) --marker_only_;
        s.membership = next;
        return add_result::added;
      }
    }
    i = (i + 1) & mask_;
  }
  const std::uint16_t m = membership_with(no_membership, set);
  if (m == no_membership) return add_result::full;
  const std::size_t at = arena_.size();
  arena_.resize(at + 1 + domain.size());
  arena_[at] = static_cast<char>(domain.size());
  std::memcpy(arena_.data() + at + 1, domain.data(), domain.size());
  slots_[i] = slot{static_cast<std::uint32_t>(at + 1), tag, m};
  ++count_;
  if (memberships_[m].empty()) ++marker_only_;
  return add_result::added;
}

void domain_table::reserve(std::size_t more_domains, std::size_t more_bytes) {
  const std::size_t want = count_ + more_domains;
  std::size_t size = slots_.empty() ? 1024 : slots_.size();
  while (want * 5 > size * 3) size *= 2;  // the load add() keeps: <= 0.6
  if (size != slots_.size()) rehash(size);
  const std::size_t need = arena_.size() + more_bytes;
  if (need > arena_.capacity()) arena_.reserve(std::max(need, arena_.capacity() + arena_.capacity() / 2));
}

void domain_table::finish() {
  arena_.shrink_to_fit();
  membership_ids_.clear();
  membership_steps_.clear();
}

std::size_t domain_table::memory_bytes() const {
  std::size_t n = slots_.capacity() * sizeof(slot) + arena_.capacity() + membership_has_urls_.capacity();
  for (const auto& m : memberships_) n += m.capacity() * sizeof(set_id) + sizeof(m);
  return n;
}

}  // namespace hallpass::rules
