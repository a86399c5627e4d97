#include "rules/ban.hpp"

#include <algorithm>

namespace hallpass::rules {

bool on_supervised_list(const policy& p, const normalized_host& host) {
  const auto& s = p.bans;
  if (host.text.empty()) return false;
  if (!s.domains.empty()) {
    std::string_view h = host.text;
    const bool exact_only = host.kind != host_kind::name;
    while (true) {
      if (std::find(s.domains.begin(), s.domains.end(), h) != s.domains.end()) return true;
      if (exact_only) break;
      const auto dot = h.find('.');
      if (dot == std::string_view::npos) break;
      h.remove_prefix(dot + 1);
    }
  }
  if (!s.categories.empty()) {
    for (set_id id : sets_of_host(p, host).by_domain) {
      if (std::find(s.categories.begin(), s.categories.end(), id) != s.categories.end())
        return true;
    }
  }
  return false;
}

void apply_ban(const policy& p, const ban_entry& b, verdict& v) {
  if (v.by == decided_by::locked_category || v.by == decided_by::unchecked) return;
  if (on_supervised_list(p, v.host)) return;
  // A site the policy blocked anyway keeps its category: the access log and the attempts
  // counter (proxy/exchange.cpp: a block by a circumvention category) still see a banned
  // pupil's further attempts to get round the filter (000 7.4 monitoring).
  if (v.act != action::block) v.matched_category = nullptr;
  v.act = action::block;
  v.by = decided_by::rule;
  v.matched_rule = nullptr;
  v.exception_id.clear();
  v.rule_id = b.rule_id;
  v.reason = p.bans.message;
  v.clause = "000 7.2; 002";
  v.ban = &b;
}

}  // namespace hallpass::rules
