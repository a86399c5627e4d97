// The domain table: every domain the policy names, from every category and rule, in one flat
// open-addressing hash table, mapped to the "sets" (categories, rule lists) that hold it.
//
// A host is decided by a suffix walk: "a.b.example.co.uk" looks up itself, then
// "b.example.co.uk", "example.co.uk", "co.uk", "uk", each one probe. So an entry matches itself
// and its subdomains on a label boundary and nothing else ("facebook.com" matches
// "m.facebook.com", never "notfacebook.com"). IP literals are looked up exactly. The walk hashes
// every suffix first and prefetches their slots, so that the levels' cache misses overlap
// instead of following one another.
//
// Memory at 4.5 M domains: 8-byte slots at <= 0.6 load plus one arena record per domain
// ([length:1][bytes]); no per-entry allocation. A domain in several sets points at an
// interned "membership", a sorted list of set ids shared by every domain in the same sets, so
// the usual case (one set) costs two bytes. The membership id sits in the slot beside the
// hash tag, not in the record: the record is read only to confirm the name, and while that
// read is on its way from memory the processor already goes on with the sets (it predicts that
// a slot whose tag matches holds the name, which is nearly always so). Arrays of 2 MiB or more are backed by
// huge pages where the kernel allows it (fewer TLB misses on random probes).
//
// A host can also be marked as having URL prefixes (add(host, url_prefix_marker)); the walk
// reports the mark, so the engine looks in its URL-prefix map only for suffixes that have some.
// The mark is not a set: for_each_match never reports it and size() does not count a host
// that only has the mark.
//
// Built once by the loader on one thread, then immutable: const members are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hallpass::rules {

// Allocates 2 MiB-aligned memory advised for transparent huge pages when `bytes` is at least
// 2 MiB, and plain operator new memory otherwise. Defined in domain_table.cpp.
void* allocate_maybe_huge(std::size_t bytes);
void deallocate_maybe_huge(void* p, std::size_t bytes) noexcept;

template <class T>
struct maybe_huge_allocator {
  using value_type = T;
  maybe_huge_allocator() = default;
  template <class U>
  maybe_huge_allocator(const maybe_huge_allocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_maybe_huge(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { deallocate_maybe_huge(p, n * sizeof(T)); }
  friend bool operator==(const maybe_huge_allocator&, const maybe_huge_allocator&) { return true; }
};

class domain_table {
 public:
  using set_id = std::uint16_t;
  static constexpr std::size_t max_memberships = 65535;
  // Not a set (set ids stop at 65,534): marks a host that has URL prefixes.
  static constexpr set_id url_prefix_marker = 0xFFFF;

  enum class add_result : std::uint8_t {
    added,    // the domain is now in `set` (new to the table, or new to the set)
    already,  // it was in `set` before: a repeated entry
    full,     // refused: the table would need more than max_memberships distinct
              // combinations of sets (the policy is then rejected with a clear error)
  };
  // REQUIRES: domain is normalized (normalize_host), non-empty, at most 255 bytes.
  add_result add(std::string_view domain, set_id set);

  // Makes room for `more_domains` further entries of about `more_bytes` bytes of text in all,
  // so that adding them does not rehash the table or copy the arena. An estimate is fine.
  void reserve(std::size_t more_domains, std::size_t more_bytes);

  std::size_t size() const { return count_ - marker_only_; }
  std::size_t memory_bytes() const;
  // Releases build-time spare capacity. Call once after the last add().
  void finish();

  // Calls f(set_id) for each set holding `host` or (when walk_parents) any parent domain.
  // A set may be reported more than once when it holds several suffixes of the host.
  template <class F>
  void for_each_match(std::string_view host, bool walk_parents, F&& f) const {
    for_each_level(host, walk_parents, [&](std::string_view, std::span<const set_id> sets, bool) {
      for (set_id s : sets) f(s);
    });
  }

  // The walk itself: calls f(suffix, sets, has_url_prefixes) for each suffix of `host` (host
  // first, then its parents when walk_parents) that is in the table, in that order. `sets` is
  // sorted and may be empty when the suffix only has URL prefixes.
  template <class F>
  void for_each_level(std::string_view host, bool walk_parents, F&& f) const {
    if (count_ == 0 || host.empty()) return;
    std::array<std::size_t, max_batch> start;  // offsets of the batch's suffixes in host
    std::array<std::uint64_t, max_batch> hashes;
    std::array<std::size_t, max_batch> at;
    std::size_t next = 0;  // offset of the next suffix to look up
    bool more = true;
    while (more) {
      // Hash a batch of suffixes and prefetch their first slots, so their misses overlap.
      std::size_t n = 0;
      while (more && n < max_batch) {
        const std::string_view suffix = host.substr(next);
        start[n] = next;
        hashes[n] = hash(suffix);
        at[n] = hashes[n] & mask_;
        __builtin_prefetch(&slots_[at[n]]);
        ++n;
        const auto dot = walk_parents ? suffix.find('.') : std::string_view::npos;
        if (dot == std::string_view::npos || dot + 1 == suffix.size()) {
          more = false;
        } else {
          next += dot + 1;
        }
      }
      // Find each suffix's first candidate slot and prefetch its record, then compare.
      for (std::size_t k = 0; k < n; ++k) at[k] = first_candidate(hashes[k], at[k]);
      for (std::size_t k = 0; k < n; ++k) {
        const std::string_view suffix = host.substr(start[k]);
        const std::uint16_t m = find_from(suffix, hashes[k], at[k]);
        if (m == no_membership) continue;
        const auto& sets = memberships_[m];
        f(suffix, std::span<const set_id>(sets.data(), sets.size()), membership_has_urls_[m] != 0);
      }
    }
  }

  // A small multiply-xorshift hash over 8-byte words. Host names are short, so the tail
  // handling matters more than bulk speed: the last 1 to 7 bytes are read with fixed-size loads
  // (two overlapping 4-byte ones, or three single bytes: either determines them for a given
  // count) rather than with a variable-length copy.
  static std::uint64_t hash(std::string_view s) {
    constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
    auto mix = [](std::uint64_t h, std::uint64_t w) {
      h = (h ^ w) * k;
      return h ^ (h >> 29);
    };
    std::uint64_t h = 0xC2B2AE3D27D4EB4Full ^ (s.size() * k);
    const char* p = s.data();
    std::size_t n = s.size();
    for (; n >= 8; p += 8, n -= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      h = mix(h, w);
    }
    if (n >= 4) {
      std::uint32_t lo, hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + n - 4, 4);
      h = mix(h, lo | (std::uint64_t{hi} << 32));
    } else if (n > 0) {
      h = mix(h, static_cast<unsigned char>(p[0]) | (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
                     (std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16));
    }
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr std::uint16_t no_membership = 0xFFFF;
  static constexpr std::size_t max_batch = 16;  // suffixes looked up together
  struct slot {
    std::uint32_t record = 0;      // arena offset + 1; 0 means empty
    std::uint16_t tag = 0;         // high bits of the hash, compared before the bytes
    std::uint16_t membership = 0;  // index into memberships_
  };
  static std::uint16_t tag_of(std::uint64_t h) { return static_cast<std::uint16_t>(h >> 48); }

  // The first slot from `i` on that is empty or has h's tag; prefetches that slot's record.
  std::size_t first_candidate(std::uint64_t h, std::size_t i) const {
    const std::uint16_t tag = tag_of(h);
    while (true) {
      const slot& s = slots_[i];
      if (s.record == 0) return i;
      if (s.tag == tag) {
        __builtin_prefetch(arena_.data() + (s.record - 1));
        return i;
      }
      i = (i + 1) & mask_;
    }
  }
  // The membership of `key` (whose hash is h), probing from slot i; no_membership if absent.
  std::uint16_t find_from(std::string_view key, std::uint64_t h, std::size_t i) const;
  std::uint16_t find(std::string_view key) const;
  void rehash(std::size_t new_size);
  std::uint16_t membership_with(std::uint16_t current, set_id set);

  std::vector<slot, maybe_huge_allocator<slot>> slots_;
  std::vector<char, maybe_huge_allocator<char>> arena_;
  std::size_t count_ = 0;        // records, including hosts that only have the URL mark
  std::size_t marker_only_ = 0;  // records whose only "set" is the URL mark
  std::size_t mask_ = 0;
  std::vector<std::vector<set_id>> memberships_;  // the sets, without the URL mark
  std::vector<std::uint8_t> membership_has_urls_;  // 1 when the membership has the URL mark
  std::uint16_t marker_only_membership_ = no_membership;
  std::map<std::vector<set_id>, std::uint16_t> membership_ids_;         // build only
  std::unordered_map<std::uint32_t, std::uint16_t> membership_steps_;  // build only
};

}  // namespace hallpass::rules
