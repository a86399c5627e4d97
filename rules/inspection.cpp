#include "rules/inspection.hpp"

#include <algorithm>

#include "rules/safesearch.hpp"

namespace hallpass::rules {
namespace {

bool contains(const std::vector<set_id>& sorted, set_id s) { return std::binary_search(sorted.begin(), sorted.end(), s); }

bool any_in(const target_sets& targets, const std::vector<set_id>& sorted) {
  return std::any_of(targets.begin(), targets.end(), [&](set_id s) { return contains(sorted, s); });
}

bool entry_covers_role(const policy& p, const inspect_entry& e, const role* r) {
  if (e.roles.empty()) return true;
  return r && std::any_of(e.roles.begin(), e.roles.end(), [&](std::size_t i) { return &p.roles[i] == r; });
}

std::string entry_why(const inspect_entry& e, const role& r, std::string_view host) {
  if (!e.why.empty()) return e.why;
  if (e.safesearch) return "search engines are inspected for " + r.name + " (SafeSearch)";
  if (e.everything) return "everything except the never-inspect list is inspected for " + r.name + " (" + e.id + ")";
  return std::string(host) + " is inspected for " + r.name + " (" + e.id + ")";
}

}  // namespace

std::string_view to_string(tls_handling h) { return h == tls_handling::inspect ? "inspect" : "relay"; }

bool never_inspected(const policy& p, const normalized_host& host) {
  bool never = false;
  p.inspection.never.for_each_match(host.text, host.kind == host_kind::name, [&](set_id) { never = true; });
  return never;
}

inspection_verdict decide_inspection(const policy& p, const exception_index* overlay, const request_facts& facts,
                                     const verdict& connect) {
  inspection_verdict out;
  const std::string_view host = connect.host.text;
  if (connect.by == decided_by::unchecked || host.empty() || !connect.chosen_role) {
    out.why = connect.host_error.empty() && !host.empty()
                  ? "the URL patterns could not be matched, so the tunnel is blocked uninspected"
                  : "the host name is not valid, so there is nothing to inspect";
    return out;
  }
  const role& r = *connect.chosen_role;
  const bool parents = connect.host.kind == host_kind::name;

  // 1. Never: banking, health, updates, pinned apps. Whatever else asks for inspection.
  if (never_inspected(p, connect.host)) {
    out.never = true;
    out.why = std::string(host) +
              " is on the never-inspect list (banking, health, updates, apps that pin certificates): relayed, "
              "never decrypted";
    return out;
  }
  auto inspect = [&](std::string why) {
    out.handling = tls_handling::inspect;
    out.why = std::move(why);
    return out;
  };

  // 2. The policy's inspection.inspect entries.
  const host_sets sets = sets_of_host(p, connect.host);
  std::vector<set_id> own_domains;  // the entries whose own domains hold the host
  p.inspection.inspect_domains.for_each_match(host, parents, [&](set_id s) { own_domains.push_back(s); });
  const auto service = search_service_of(host);
  for (std::size_t i = 0; i < p.inspection.inspect.size(); ++i) {
    const auto& e = p.inspection.inspect[i];
    if (!entry_covers_role(p, e, &r)) continue;
    bool hit = e.everything;
    hit = hit || std::find(own_domains.begin(), own_domains.end(), static_cast<set_id>(i)) != own_domains.end();
    hit = hit || std::any_of(e.categories.begin(), e.categories.end(), [&](set_id s) { return contains(sets.by_domain, s); });
    hit = hit || (e.safesearch && safesearch_for(p, connect, service) != safesearch_level::off);
    if (hit) return inspect(entry_why(e, r, host));
  }

  // 3. Entries that need the path or the method on this host.
  for (const auto* list : {&p.everyone_rules, &r.rules}) {
    for (const auto& rl : *list) {
      if (any_in(rl.targets, sets.by_url_prefix)) {
        return inspect(rl.id + " names pages on " + std::string(host) +
                       " (URL prefixes), so its requests are read to apply it to those pages");
      }
      if (!rl.methods.empty() && rl.has_targets && any_in(rl.targets, sets.by_domain)) {
        return inspect(rl.id + " depends on the request method on " + std::string(host) +
                       ", so its requests are read to apply it");
      }
    }
  }
  for (set_id s : sets.by_url_prefix) {
    if (s < p.set_is_locked.size() && p.set_is_locked[s]) {
      return inspect("the locked list '" + p.set_names[s] + "' names pages on " + std::string(host) +
                     ", so its requests are read to block those pages");
    }
  }
  if (overlay) {
    if (const auto id = overlay->path_entry_for(connect, facts); !id.empty()) {
      return inspect(std::string(id) + " is for a page on " + std::string(host) +
                     ", so its requests are read to apply it to that page, not the whole site");
    }
  }

  // 4. Nothing needs more than the host name.
  out.why = "nothing in the policy for " + r.name + " needs the path or method on " + std::string(host) +
            ": relayed without decryption";
  return out;
}

}  // namespace hallpass::rules
