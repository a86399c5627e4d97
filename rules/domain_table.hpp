// The domain table: every domain the policy names, from every category and rule, in one flat
// open-addressing hash table, mapped to the "sets" (categories, rule lists) that hold it.
//
// A host is decided by a suffix walk: "a.b.example.co.uk" looks up itself, then
// "b.example.co.uk", "example.co.uk", "co.uk", "uk", each one probe. So an entry matches itself
// and its subdomains on a label boundary and nothing else ("facebook.com" matches
// "m.facebook.com", never "notfacebook.com"). IP literals are looked up exactly.
//
// Memory at 4.5 M domains: 8-byte slots at <= 0.6 load plus one arena record per domain
// ([membership:2][length:1][bytes]); no per-entry allocation. A domain in several sets points
// at an interned "membership", a sorted list of set ids shared by every domain in the same
// sets, so the usual case (one set) costs two bytes.
//
// Built once by the loader on one thread, then immutable: const members are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hallpass::rules {

class domain_table {
 public:
  using set_id = std::uint16_t;
  static constexpr std::size_t max_memberships = 65535;

  // REQUIRES: domain is normalized (normalize_host), non-empty, at most 255 bytes.
  // Returns false only when the table would need more than max_memberships distinct
  // combinations of sets (the policy is then rejected with a clear error).
  bool add(std::string_view domain, set_id set);

  std::size_t size() const { return count_; }
  std::size_t memory_bytes() const;
  // Releases build-time spare capacity. Call once after the last add().
  void finish();

  // Calls f(set_id) for each set holding `host` or (when walk_parents) any parent domain.
  // A set may be reported more than once when it holds several suffixes of the host.
  template <class F>
  void for_each_match(std::string_view host, bool walk_parents, F&& f) const {
    if (count_ == 0) return;
    while (true) {
      if (std::uint16_t m = find(host); m != no_membership) {
        for (set_id s : memberships_[m]) f(s);
      }
      if (!walk_parents) return;
      auto dot = host.find('.');
      if (dot == std::string_view::npos) return;
      host.remove_prefix(dot + 1);
    }
  }

  static std::uint64_t hash(std::string_view s);

 private:
  static constexpr std::uint16_t no_membership = 0xFFFF;
  struct slot {
    std::uint32_t record = 0;  // arena offset + 1; 0 means empty
    std::uint32_t tag = 0;     // high bits of the hash, compared before the bytes
  };

  std::uint16_t find(std::string_view key) const;
  void grow();
  std::uint16_t membership_with(std::uint16_t current, set_id set);

  std::vector<slot> slots_;
  std::vector<char> arena_;
  std::size_t count_ = 0;
  std::size_t mask_ = 0;
  std::vector<std::vector<set_id>> memberships_;
  std::map<std::vector<set_id>, std::uint16_t> membership_ids_;          // build only
  std::unordered_map<std::uint32_t, std::uint16_t> membership_steps_;   // build only
};

}  // namespace hallpass::rules
