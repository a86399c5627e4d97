#include "rules/engine.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace hallpass::rules {
namespace {

// The sets a request's host and URL belong to, as a bitset of set ids: sets 0 to 511 in
// inline words (every policy we have seen), higher ids in a list that only pathological
// policies use.
class matched_sets {
 public:
  static constexpr std::size_t inline_words = 8;

  // Clears only the words a policy with `set_count` sets uses when it has at most 128 sets
  // (written out: GCC turns a loop or a larger clear into "rep stos", slow to start).
  explicit matched_sets(std::size_t set_count) : words_(std::min(inline_words, (set_count + 63) / 64)) {
    inline_[0] = 0;
    inline_[1] = 0;
    if (words_ > 2) std::fill(inline_.begin() + 2, inline_.end(), std::uint64_t{0});
  }

  void add(set_id s) {
    if (s / 64 < words_) {
      inline_[s / 64] |= std::uint64_t{1} << (s % 64);
    } else {
      spill_.push_back(s);
    }
  }

  // The bits of `mask` (over ids word * 64 ... word * 64 + 63) that are in the set.
  std::uint64_t in_word(std::uint32_t word, std::uint64_t mask) const {
    if (word < words_) return inline_[word] & mask;
    std::uint64_t bits = 0;
    for (set_id s : spill_) {
      if (s / 64 == word) bits |= std::uint64_t{1} << (s % 64);
    }
    return bits & mask;
  }

  bool contains(set_id s) const { return in_word(s / 64u, std::uint64_t{1} << (s % 64)) != 0; }

 private:
  std::size_t words_;
  std::array<std::uint64_t, inline_words> inline_;  // the first words_ are in use
  std::vector<set_id> spill_;
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

std::uint16_t default_port(std::string_view scheme) {
  if (scheme == "https" || scheme == "wss") return 443;
  if (scheme == "http" || scheme == "ws") return 80;
  return 0;
}

struct context {
  const policy& p;
  const request_facts& f;
  const normalized_host& host;
  std::optional<std::string_view> path;  // f.path in canonical form (normalize_path)
  matched_sets sets;
  // f.path_seen_later without a path: the sets that have URL prefixes on the host, whatever
  // their path (rules on them may match a request in the tunnel later).
  bool later;
  matched_sets later_sets;
  int first_locked = -1;  // the first locked set added, as the verdict reports it
  bool patterns_done = false;
  // RE2 could not match the URL patterns (its DFA ran out of memory): the request cannot be
  // checked, and is blocked (fail closed), never read as matching no pattern (a code review,
  // 2026-12-06: RE2::Set::Match returns false for both). Defence in depth: RE2's CompileSet
  // already refuses a set whose DFA cannot start ("too large to compile" at load), and a set's
  // DFA resets its cache rather than fail once started (tried with max_mem from 29 KB up and
  // 20 KB URLs), so no test here can make it fail.
  bool patterns_failed = false;
  // Sets whose URL prefix the path matches only without ASCII case ("/SECRET" for
  // "example.com/secret"), with that prefix: they count for blocks (a locked category, a rule
  // that blocks) and never for allows, since servers such as IIS read "/SECRET" as "/secret".
  // Rare, so kept in a list.
  std::vector<std::pair<set_id, std::string_view>> folded;

  void add(set_id s) {
    sets.add(s);
    if (first_locked < 0 && p.set_is_locked[s]) first_locked = s;
  }

  // The first locked set matched only without case, or -1.
  const std::pair<set_id, std::string_view>* first_locked_folded() const {
    for (const auto& f : folded) {
      if (p.set_is_locked[f.first]) return &f;
    }
    return nullptr;
  }

  void match_patterns() {
    if (patterns_done) return;
    patterns_done = true;
    if (!p.patterns || later) return;  // later: patterns see each request's URL in the tunnel
    // The subject is built in a buffer each thread keeps, so a decision allocates nothing here.
    thread_local std::string subject;
    if (subject.capacity() > 16384) std::string().swap(subject);  // a huge URL's buffer is not kept
    append_pattern_subject(subject, f.scheme, host, f.port, path);
    // Most URLs match no pattern. Asked only whether any matches, RE2::Set runs its DFA to the
    // earliest match and allocates nothing; asked which ones, it allocates a match set and
    // reads the whole URL. So ask which only after a match, and only when that can matter.
    re2::RE2::Set::ErrorInfo info{};
    if (!p.patterns->Match(subject, nullptr, &info)) {
      patterns_failed = info.kind != re2::RE2::Set::kNoError;
      return;
    }
    if (p.patterns_one_set) {
      add(*p.patterns_one_set);
      return;
    }
    std::vector<int> hits;
    if (p.patterns->Match(subject, &hits, &info)) {
      std::sort(hits.begin(), hits.end());  // pattern order, so sets are added in policy order
      for (int h : hits) add(p.pattern_set[static_cast<std::size_t>(h)]);
    } else {
      patterns_failed = true;  // it matched, but could not say which
    }
  }

  // Returns the first listed target set the request is in, or -1.
  int match_targets(const rule& r) {
    if (!r.has_targets) return std::numeric_limits<int>::max();  // matches without a target
    if (r.needs_patterns) match_patterns();
    for (const auto& wm : r.targets.words()) {
      const std::uint64_t bits = sets.in_word(wm.word, wm.mask);
      if (bits == 0) continue;
      // Words are in order, so this is the lowest matching id: the first listed one when the
      // rule lists its targets in increasing order, as the loader usually does.
      if (r.targets.ascending()) return static_cast<int>(wm.word * 64 + std::countr_zero(bits));
      for (set_id t : r.targets) {
        if (sets.contains(t)) return t;
      }
    }
    return -1;
  }

  // For a rule that blocks and whose targets did not match: the first of its targets the path
  // matches only without case, or nullptr.
  const std::pair<set_id, std::string_view>* match_targets_folded(const rule& r) const {
    if (folded.empty() || !r.has_targets || r.act != action::block) return nullptr;
    for (set_id t : r.targets) {  // the first listed target, as match_targets reports it
      for (const auto& f : folded) {
        if (f.first == t) return &f;
      }
    }
    return nullptr;
  }

  // Whether a rule whose targets did not match the host alone may match a request in an
  // inspected tunnel: it has patterns, or URL prefixes on this host.
  bool may_match_later(const rule& r) const {
    if (!later) return false;
    if (r.needs_patterns) return true;
    for (const auto& wm : r.targets.words()) {
      if (later_sets.in_word(wm.word, wm.mask) != 0) return true;
    }
    return false;
  }

  bool method_matches(const rule& r) const {
    if (r.methods.empty()) return true;
    for (const auto& m : r.methods) {
      if (iequals(m, f.method)) return true;
    }
    return false;
  }
};

void set_category(const policy& p, verdict& v, int set) {
  if (set < 0 || static_cast<std::size_t>(set) >= p.set_category.size()) return;
  const std::size_t c = p.set_category[static_cast<std::size_t>(set)];
  if (c < p.categories.size()) v.matched_category = &p.categories[c];
}

}  // namespace

// ASCII case folded, as iequals compares (group names as directories compare them).
std::size_t policy::group_name_hash::operator()(std::string_view s) const {
  std::size_t h = 14695981039346656037ull;  // FNV-1a
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  return h;
}

bool policy::group_name_equal::operator()(std::string_view a, std::string_view b) const { return iequals(a, b); }

std::string_view to_string(action a) { return a == action::allow ? "allow" : "block"; }
std::string_view to_string(feed_format f) { return f == feed_format::ut1 ? "ut1" : "lines"; }

std::string_view to_string(role_source s) {
  switch (s) {
    case role_source::given: return "given";
    case role_source::network: return "network";
    case role_source::fallback: return "fallback";
    case role_source::group: return "group";
  }
  return "fallback";
}

std::string_view verdict::category_name() const {
  return matched_category ? std::string_view(matched_category->name) : std::string_view();
}

std::string verdict::period_name() const {
  if (when.current) {
    return when.current->name + " (" + std::string(to_string(when.current->kind)) + ")";
  }
  return "outside school hours (" + std::string(when.outside_why) + ")";
}

std::string pattern_subject(std::string_view scheme, const normalized_host& host,
                            std::uint16_t port, std::optional<std::string_view> path) {
  std::string s;
  append_pattern_subject(s, scheme, host, port, path);
  return s;
}

void append_pattern_subject(std::string& s, std::string_view scheme, const normalized_host& host,
                            std::uint16_t port, std::optional<std::string_view> path) {
  s.clear();
  s.reserve(scheme.size() + host.text.size() + (path ? path->size() : 1) + 16);
  s.append(scheme.empty() ? "http" : scheme).append("://");
  if (host.kind == host_kind::ipv6) {
    s.append("[").append(host.text).append("]");
  } else {
    s.append(host.text);
  }
  if (port != 0 && port != default_port(scheme)) s.append(":").append(std::to_string(port));
  if (path && !path->empty()) {
    if (path->front() != '/') s.push_back('/');
    s.append(*path);
  } else {
    s.push_back('/');
  }
}

verdict decide(const policy& p, const request_facts& f) {
  verdict v;

  // 1. Who is asking.
  const role* r = nullptr;
  if (!f.role.empty()) {
    r = p.find_role(f.role);
    if (r) {
      v.role_from = role_source::given;
      v.role_detail = "named by the caller";
    }
  }
  // A signed-in user's groups come before the address: the first role in policy order that
  // lists one of them (a pupil signed in on a staff laptop is still a pupil).
  // Each user group's first place in the policy (policy::group_roles); the earliest wins.
  if (!r && !f.groups.empty() && !p.group_roles.empty()) {
    const policy::group_role* best = nullptr;
    for (const auto& mine : f.groups) {
      const auto it = p.group_roles.find(std::string_view(mine));
      if (it == p.group_roles.end()) continue;
      const auto& at = it->second;
      if (!best || at.role < best->role || (at.role == best->role && at.group < best->group)) best = &at;
    }
    if (best) {
      r = &p.roles[best->role];
      v.role_from = role_source::group;
      v.role_detail = r->groups[best->group];
    }
  }
  // Signed in (a user, or groups: explain --groups) in no group a role lists: the fallback role
  // when roles are chosen by groups (policy::ungrouped_users_fallback).
  if (!r && (!f.user.empty() || !f.groups.empty()) && !p.group_roles.empty() && p.ungrouped_users_fallback) {
    r = &p.roles[p.fallback_role];
    v.role_from = role_source::fallback;
    v.role_detail = "no role lists the signed-in user's groups (ungrouped_users: fallback)";
  }
  if (!r && f.client) {
    for (const auto& net : p.networks) {
      if (net.contains(*f.client)) {
        r = &p.roles[net.role];
        v.role_from = role_source::network;
        v.role_detail = net.text;
        break;
      }
    }
  }
  if (!r) {
    r = &p.roles[p.fallback_role];
    v.role_from = role_source::fallback;
    v.role_detail = !f.role.empty()   ? "the named role does not exist"
                    : f.groups.empty() ? "the client address is in no role's networks"
                                       : "no role lists the user's groups, and the client address is in no role's networks";
  }
  v.chosen_role = r;

  // 2. When.
  v.local_time = p.zone.to_local(f.time);
  v.when = p.timetable.at(v.local_time);
  const std::uint64_t now_bit = v.when.bit();

  // 3. What.
  auto host = normalize_host(f.host, &v.host_error);
  if (!host) {
    v.act = action::block;
    v.by = decided_by::unchecked;
    v.rule_id = "invalid host";
    v.reason = "The address asks for a host name that is not valid, so it cannot be checked.";
    return v;
  }
  v.host = std::move(*host);
  // Paths compare in canonical form, so "/%62ad", "//bad" and "/x/../bad" are all "/bad".
  std::string canonical_path;
  std::optional<std::string_view> path_seen = f.path;
  if (f.path && normalize_path(*f.path, canonical_path)) path_seen = canonical_path;
  const bool later = f.path_seen_later && !f.path;
  context ctx{p, f, v.host, path_seen, matched_sets(p.set_names.size()), later,
              matched_sets(later ? p.set_names.size() : 0), -1, false};
  // The domain table's walk gives each suffix's sets and whether it has URL prefixes; the
  // URL-prefix map is then read only for those suffixes, after every domain set (the order
  // in which sets are added decides which locked category a verdict names).
  const std::string_view name = v.host.text;
  const bool want_urls = !p.url_prefixes.empty() && (f.path || later);
  // Where the suffixes that have URL prefixes start, in walk order; should there be more than
  // fit (never in practice), every suffix is looked up afterwards as if none had been marked.
  std::array<std::size_t, 8> url_suffixes;  // only the first url_levels are set
  std::size_t url_levels = 0;
  p.domains.for_each_level(name, v.host.kind == host_kind::name,
                           [&](std::string_view suffix, std::span<const set_id> sets, bool has_urls) {
                             for (set_id s : sets) ctx.add(s);
                             if (has_urls && want_urls) {
                               if (url_levels < url_suffixes.size()) {
                                 url_suffixes[url_levels] = static_cast<std::size_t>(suffix.data() - name.data());
                               }
                               ++url_levels;
                             }
                           });
  if (url_levels > 0) {
    const std::string_view path = path_seen ? *path_seen : std::string_view();
    auto add_url_sets = [&](std::string_view suffix) {
      if (auto it = p.url_prefixes.find(suffix); it != p.url_prefixes.end()) {
        if (later) {
          for (set_id s : it->second.sets()) ctx.later_sets.add(s);
          return;
        }
        // Found in the list's order (by path); added in policy order (set id), so that the
        // verdict names the first locked category as the policy lists them. Matches are few;
        // the buffer is each thread's, so a decision allocates nothing here once it has grown.
        thread_local std::vector<const url_prefix*> found;
        found.clear();
        it->second.for_each_match(path, [&](const url_prefix& u) { found.push_back(&u); });
        std::sort(found.begin(), found.end(), [](const url_prefix* a, const url_prefix* b) {
          return a->set != b->set ? a->set < b->set : a < b;  // then the list's order
        });
        for (const url_prefix* u : found) {
          if (path.starts_with(u->path)) {
            ctx.add(u->set);
          } else {
            ctx.folded.emplace_back(u->set, u->path);  // matched in another ASCII case only
          }
        }
      }
    };
    if (url_levels <= url_suffixes.size()) {
      for (std::size_t k = 0; k < url_levels; ++k) add_url_sets(name.substr(url_suffixes[k]));
    } else {
      std::string_view h = name;
      while (true) {
        add_url_sets(h);
        if (v.host.kind != host_kind::name) break;
        auto dot = h.find('.');
        if (dot == std::string_view::npos) break;
        h.remove_prefix(dot + 1);
      }
    }
  }

  const auto unchecked_patterns = [&] {
    // Nothing a rule that matched before the failure set stays (try_rules).
    v.matched_rule = nullptr;
    v.matched_category = nullptr;
    v.clause = {};
    v.url_without_case = {};
    v.act = action::block;
    v.by = decided_by::unchecked;
    v.rule_id = "URL patterns not matched";
    v.reason = "The address could not be checked against the school's URL patterns, so it is blocked.";
    return v;
  };

  // 4. Locked categories: nothing overrides them.
  // A site locked by its domain or URL prefix is that, even when the patterns could not be
  // matched: its category is logged and alerted (review, 2026-12-06).
  if (p.locked_has_patterns) ctx.match_patterns();
  const auto* locked_folded = ctx.first_locked < 0 ? ctx.first_locked_folded() : nullptr;
  if (ctx.patterns_failed && ctx.first_locked < 0 && !locked_folded) return unchecked_patterns();
  if (ctx.first_locked >= 0 || locked_folded) {
    v.act = action::block;
    v.by = decided_by::locked_category;
    if (locked_folded) v.url_without_case = locked_folded->second;
    set_category(p, v, locked_folded ? static_cast<int>(locked_folded->first) : ctx.first_locked);
    v.rule_id = "locked category";
    v.reason = "This site is on a list of illegal content that the school is required to block.";
    return v;
  }

  // 5. Rules, first match wins: everyone's, then the role's.
  auto try_rules = [&](const std::vector<rule>& list) -> bool {
    for (const auto& rl : list) {
      if (!(rl.during & now_bit)) continue;
      int t = -1;
      if (later) {
        // An inspected CONNECT: a rule that needs the path or the method cannot block it (each
        // request is decided later), but if it allows it may open the tunnel for them.
        const bool method_known = ctx.method_matches(rl);
        t = ctx.match_targets(rl);
        const bool maybe = (t < 0 && ctx.may_match_later(rl)) || (t >= 0 && !method_known);
        if (t < 0 && !maybe) continue;
        if (maybe && rl.act == action::block) continue;
      } else {
        if (!ctx.method_matches(rl)) continue;
        t = ctx.match_targets(rl);
        if (t < 0) {
          const auto* f = ctx.match_targets_folded(rl);
          if (!f) continue;
          t = static_cast<int>(f->first);
          v.url_without_case = f->second;
        }
      }
      if (ctx.patterns_failed) return false;  // the caller blocks: see below
      v.act = rl.act;
      v.by = decided_by::rule;
      v.matched_rule = &rl;
      v.rule_id = rl.id;
      v.reason = rl.reason;
      v.clause = rl.clause;
      set_category(p, v, t);
      return true;
    }
    return false;
  };
  const bool ruled = try_rules(p.everyone_rules) || try_rules(r->rules);
  // A rule that needed the patterns met a failed match: no rule after it may decide instead.
  if (ctx.patterns_failed) return unchecked_patterns();
  if (ruled) return v;

  // 6. The role's default.
  v.act = r->default_action;
  v.by = decided_by::role_default;
  v.rule_id = r->default_id;
  v.reason = r->default_reason;
  return v;
}

host_sets sets_of_host(const policy& p, const normalized_host& host) {
  host_sets out;
  if (host.text.empty()) return out;
  const bool parents = host.kind == host_kind::name;
  p.domains.for_each_level(host.text, parents, [&](std::string_view suffix, std::span<const set_id> sets,
                                                   bool has_urls) {
    out.by_domain.insert(out.by_domain.end(), sets.begin(), sets.end());
    if (!has_urls) return;
    if (auto it = p.url_prefixes.find(suffix); it != p.url_prefixes.end()) {
      const auto& sets = it->second.sets();
      out.by_url_prefix.insert(out.by_url_prefix.end(), sets.begin(), sets.end());
    }
  });
  for (auto* v : {&out.by_domain, &out.by_url_prefix}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return out;
}

}  // namespace hallpass::rules
