// The URL prefixes on one host (policy::url_prefixes), searched in time that grows with the
// request's path, not with the number of entries: UT1 has 956 prefixes on docs.google.com, and a
// hostile or careless feed could put millions on one host, each compared in turn on every
// request to it (a known gap until 2026-12-05).
//
// A prefix matches as path_starts_with(path, prefix, true) does (host.cpp): in any ASCII case
// before the prefix's '?', exactly from it on. The entries are sorted by that folded form, so
// the entries that share a request's first L folded characters are one run, which narrows
// character by character: O(path length x log entries) comparisons of one character.
//
// Pure; built once by the loader (add, then finish), then read by any thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "rules/domain_table.hpp"

namespace hallpass::rules {

using set_id = domain_table::set_id;

// A URL prefix entry: host (and its subdomains) + path prefix.
struct url_prefix {
  std::string path;  // begins with '/'
  set_id set = 0;
};

class url_prefix_list {
 public:
  void add(url_prefix u) { entries_.push_back(std::move(u)); }

  // Sorts the entries for the search and collects their sets. Called once, after the last add.
  void finish() {
    std::sort(entries_.begin(), entries_.end(), [](const url_prefix& a, const url_prefix& b) {
      const folding fa(a.path), fb(b.path);
      const std::size_t n = std::min(a.path.size(), b.path.size());
      for (std::size_t i = 0; i < n; ++i) {
        const unsigned char ca = fa.at(i), cb = fb.at(i);
        if (ca != cb) return ca < cb;
      }
      if (a.path.size() != b.path.size()) return a.path.size() < b.path.size();
      return a.set < b.set;
    });
    sets_.clear();
    for (const auto& u : entries_) sets_.push_back(u.set);
    std::sort(sets_.begin(), sets_.end());
    sets_.erase(std::unique(sets_.begin(), sets_.end()), sets_.end());
  }

  std::size_t size() const { return entries_.size(); }
  const std::vector<url_prefix>& entries() const { return entries_; }
  // Every set an entry here belongs to, once each, sorted.
  const std::vector<set_id>& sets() const { return sets_; }

  // Calls f(entry) for each entry that `path` starts with in any ASCII case (before the
  // entry's '?'), in sorted order. Whether it matched in its own case too is the caller's
  // question (path.starts_with(entry.path)).
  template <typename F>
  void for_each_match(std::string_view path, F&& f) const {
    if (entries_.size() <= linear_up_to) {
      for (const auto& u : entries_) {
        if (matches(path, u.path)) f(u);
      }
      return;
    }
    const folding fp(path);
    auto lo = entries_.begin(), hi = entries_.end();
    for (std::size_t depth = 0;; ++depth) {
      // The run [lo, hi) shares the path's first `depth` folded characters; its entries of
      // exactly that length come first, and each is a prefix of the path.
      while (lo != hi && lo->path.size() == depth) f(*lo++);
      if (lo == hi || depth == path.size()) return;
      const unsigned char c = fp.at(depth);
      // An entry in the run has its '?' where the path has (they agree so far), so it is folded
      // at `depth` exactly when the path is.
      const bool fold = depth < fp.query;
      const auto char_at = [depth, fold](const url_prefix& u) {
        const auto ch = static_cast<unsigned char>(u.path[depth]);
        return fold && ch >= 'A' && ch <= 'Z' ? static_cast<unsigned char>(ch - 'A' + 'a') : ch;
      };
      lo = std::lower_bound(lo, hi, c, [&](const url_prefix& u, unsigned char v) { return char_at(u) < v; });
      hi = std::upper_bound(lo, hi, c, [&](unsigned char v, const url_prefix& u) { return v < char_at(u); });
    }
  }

 private:
  // Up to this many, comparing each entry in turn is as fast as the search.
  static constexpr std::size_t linear_up_to = 16;

  // A path's characters as the match compares them: ASCII lower case before its first '?'.
  struct folding {
    std::string_view s;
    std::size_t query;
    explicit folding(std::string_view text) : s(text), query(std::min(text.find('?'), text.size())) {}
    unsigned char at(std::size_t i) const {
      const auto c = static_cast<unsigned char>(s[i]);
      return i < query && c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c - 'A' + 'a') : c;
    }
  };

  static bool matches(std::string_view path, std::string_view prefix) {
    if (path.size() < prefix.size()) return false;
    const folding fp(path), fx(prefix);
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (fp.at(i) != fx.at(i)) return false;
    }
    return true;
  }

  std::vector<url_prefix> entries_;
  std::vector<set_id> sets_;
};

}  // namespace hallpass::rules
