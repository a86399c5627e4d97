#include "rules/engine.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace hallpass::rules {
namespace {

// The sets a request's host and URL belong to. Usually a handful; spills to the heap only
// for pathological policies.
class matched_sets {
 public:
  void add(set_id s) {
    if (n_ < inline_.size()) {
      inline_[n_++] = s;
    } else {
      spill_.push_back(s);
    }
  }
  bool contains(set_id s) const {
    for (std::size_t i = 0; i < n_; ++i) {
      if (inline_[i] == s) return true;
    }
    return std::find(spill_.begin(), spill_.end(), s) != spill_.end();
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < n_; ++i) f(inline_[i]);
    for (set_id s : spill_) f(s);
  }

 private:
  std::array<set_id, 24> inline_{};
  std::size_t n_ = 0;
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
  matched_sets sets;
  bool patterns_done = false;

  void match_patterns() {
    if (patterns_done) return;
    patterns_done = true;
    if (!p.patterns) return;
    const std::string subject = pattern_subject(f.scheme, host, f.port, f.path);
    std::vector<int> hits;
    if (p.patterns->Match(subject, &hits)) {
      for (int h : hits) sets.add(p.pattern_set[static_cast<std::size_t>(h)]);
    }
  }

  // Returns the matching target set, or -1.
  int match_targets(const rule& r) {
    if (!r.has_targets) return std::numeric_limits<int>::max();  // matches without a target
    if (r.needs_patterns) match_patterns();
    for (set_id t : r.targets) {
      if (sets.contains(t)) return t;
    }
    return -1;
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

std::string_view to_string(action a) { return a == action::allow ? "allow" : "block"; }

std::string_view to_string(role_source s) {
  switch (s) {
    case role_source::given: return "given";
    case role_source::network: return "network";
    case role_source::fallback: return "fallback";
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
  return s;
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
    v.role_detail = f.role.empty() ? "the client address is in no role's networks"
                                   : "the named role does not exist";
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
    v.by = decided_by::invalid_host;
    v.rule_id = "invalid host";
    v.reason = "The address asks for a host name that is not valid, so it cannot be checked.";
    return v;
  }
  v.host = std::move(*host);
  context ctx{p, f, v.host, {}, false};
  p.domains.for_each_match(v.host.text, v.host.kind == host_kind::name,
                           [&](set_id s) { ctx.sets.add(s); });
  if (!p.url_prefixes.empty() && f.path) {
    std::string_view h = v.host.text;
    const std::string_view path = *f.path;
    while (true) {
      if (auto it = p.url_prefixes.find(h); it != p.url_prefixes.end()) {
        for (const auto& u : it->second) {
          if (path.starts_with(u.path)) ctx.sets.add(u.set);
        }
      }
      if (v.host.kind != host_kind::name) break;
      auto dot = h.find('.');
      if (dot == std::string_view::npos) break;
      h.remove_prefix(dot + 1);
    }
  }

  // 4. Locked categories: nothing overrides them.
  if (p.locked_has_patterns) ctx.match_patterns();
  int locked_set = -1;
  ctx.sets.for_each([&](set_id s) {
    if (locked_set < 0 && p.set_is_locked[s]) locked_set = s;
  });
  if (locked_set >= 0) {
    v.act = action::block;
    v.by = decided_by::locked_category;
    set_category(p, v, locked_set);
    v.rule_id = "locked category";
    v.reason = "This site is on a list of illegal content that the school is required to block.";
    return v;
  }

  // 5. Rules, first match wins: everyone's, then the role's.
  auto try_rules = [&](const std::vector<rule>& list) -> bool {
    for (const auto& rl : list) {
      if (!(rl.during & now_bit)) continue;
      if (!ctx.method_matches(rl)) continue;
      const int t = ctx.match_targets(rl);
      if (t < 0) continue;
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
  if (try_rules(p.everyone_rules) || try_rules(r->rules)) return v;

  // 6. The role's default.
  v.act = r->default_action;
  v.by = decided_by::role_default;
  v.rule_id = r->default_id;
  v.reason = r->default_reason;
  return v;
}

}  // namespace hallpass::rules
