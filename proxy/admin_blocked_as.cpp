#include "proxy/admin_blocked_as.hpp"

#include <algorithm>
#include <vector>

#include "proxy/admin_request.hpp"
#include "rules/exception_index.hpp"
#include "rules/decision.hpp"

namespace hallpass {

namespace json = boost::json;

namespace {

// The roles to decide a request for, and the client's address when its scope is one.
std::vector<std::string> roles_of_request(const configuration& cfg, const json::object& request) {
  std::vector<std::string> roles;
  const auto* scope = request.if_contains("scope");
  if (const auto* s = scope ? scope->if_object() : nullptr) {
    if (const auto* list = s->if_contains("roles"); list && list->is_array()) {
      for (const auto& r : list->as_array()) {
        if (r.is_string() && cfg.policy->find_role(std::string(r.as_string()))) roles.emplace_back(r.as_string());
      }
    }
  }
  return roles;
}

std::optional<request_block> decide_for(const configuration& cfg, const rules::exception_index* index,
                                        const rules::target& page, std::string_view scheme, std::string_view role,
                                        const std::optional<rules::ip_address>& client, std::chrono::sys_seconds now) {
  rules::request_facts f;
  f.role = role;
  f.client = client;
  f.method = "GET";
  f.scheme = scheme;
  f.host = page.host;
  f.path = std::string_view(page.path);
  f.time = now;
  // The policy alone says what the page is (its category and rule); the local entries say
  // whether a reported page's block covers it now. Exceptions are not asked: the request may be
  // the one being approved, and a block is what the decider needs to know about.
  const rules::verdict policy = rules::decide_request(*cfg.policy, nullptr, f);
  const rules::verdict overlaid = index ? rules::decide_request(*cfg.policy, index, f) : policy;
  const bool local = overlaid.act == rules::action::block && rules::local_block_id(overlaid.rule_id).has_value();
  if (policy.act != rules::action::block && !local) return std::nullopt;
  request_block b;
  b.role = policy.chosen_role ? policy.chosen_role->name : std::string(role);
  if (policy.act == rules::action::block) {
    b.category = std::string(policy.category_name());
    b.rule = std::string(policy.rule_id);
    b.reason = std::string(policy.reason);
  }
  if (local) b.local_block = std::string(overlaid.rule_id);
  const auto& watched = cfg.daemon.alerts.categories;
  b.watched = !b.category.empty() && std::find(watched.begin(), watched.end(), b.category) != watched.end();
  return b;
}

}  // namespace

std::optional<request_block> request_blocked_as(const configuration& cfg, const rules::exception_index* index,
                                                const json::object& request, std::chrono::sys_seconds now) {
  const std::string url = admin_text_arg(request, "url").value_or("");
  std::string error;
  const auto page = rules::make_target(url, rules::target_kind::url, &error);
  if (!page) return std::nullopt;
  const std::string_view scheme = url.starts_with("https:") ? "https" : "http";
  std::optional<rules::ip_address> client;
  std::vector<std::string> roles = roles_of_request(cfg, request);
  if (roles.empty()) {
    // A client scope: the role its network gives (an empty role lets the policy choose). A
    // user scope: every role, the first that blocks.
    const auto* scope = request.if_contains("scope");
    const auto* s = scope ? scope->if_object() : nullptr;
    const std::string address = s ? admin_text_arg(*s, "client").value_or("") : "";
    if (!address.empty()) {
      std::string why;
      if (const auto net = rules::ip_network::parse(address, &why)) client = net->base;
      roles.emplace_back();
    } else {
      for (const auto& r : cfg.policy->roles) roles.push_back(r.name);
    }
  }
  std::optional<request_block> first;
  for (const auto& role : roles) {
    auto b = decide_for(cfg, index, *page, scheme, role, client, now);
    if (!b) continue;
    if (b->watched || !b->local_block.empty()) return b;  // what the decider must hear of first
    if (!first) first = std::move(b);
  }
  return first;
}

json::object blocked_as_json(const request_block& b) {
  json::object o;
  if (!b.role.empty()) o["role"] = b.role;
  if (!b.category.empty()) o["category"] = b.category;
  if (!b.rule.empty()) o["rule"] = b.rule;
  if (!b.reason.empty()) o["reason"] = b.reason;
  if (!b.local_block.empty()) o["local_block"] = b.local_block;
  o["watched"] = b.watched;
  return o;
}

namespace {

void annotate_one(json::object& request, const configuration& cfg, const rules::exception_index* index,
                  bool may_read_disclosures, std::chrono::sys_seconds now, bool add_blocked_as = true) {
  const auto b = request_blocked_as(cfg, index, request, now);
  if (!b) return;
  if (add_blocked_as) request["blocked_as"] = blocked_as_json(*b);
  if (!b->watched || may_read_disclosures) return;
  // A pupil's own words about a page the school watches may be a disclosure: the DSL's and the
  // headteacher's to read, on a need-to-know basis (KCSIE; incidents are theirs alone too).
  // The technician still sees that the request exists and what it is for.
  bool withheld = false;
  for (const char* key : {"reasons", "site_content"}) {
    if (auto* v = request.if_contains(key); v && v->is_string() && !v->as_string().empty()) {
      *v = nullptr;
      withheld = true;
    }
  }
  if (auto* review = request.if_contains("review"); review && review->is_object()) {
    if (auto* v = review->as_object().if_contains("site_content"); v && v->is_string() && !v->as_string().empty()) {
      *v = nullptr;
      withheld = true;
    }
  }
  if (withheld) {
    request["withheld"] =
        "what the pupil wrote is for the DSL and the headteacher: the page is in a category the school watches "
        "for safeguarding (" + b->category + ")";
  }
}

}  // namespace

void annotate_requests(json::value& data, const configuration& cfg, const rules::exception_index* index,
                       bool may_read_disclosures, std::chrono::sys_seconds now) {
  auto* o = data.if_object();
  if (!o) return;
  if (auto* rows = o->if_contains("requests"); rows && rows->is_array()) {
    for (auto& row : rows->as_array()) {
      if (auto* r = row.if_object()) annotate_one(*r, cfg, index, may_read_disclosures, now);
    }
    return;
  }
  if (o->contains("url")) annotate_one(*o, cfg, index, may_read_disclosures, now);
}

void withhold_watched_words_in_audit(json::object& entry, const configuration& cfg, const rules::exception_index* index,
                                     std::chrono::sys_seconds now) {
  const auto* object = entry.if_contains("object");
  if (!object || !object->is_string() || !object->as_string().starts_with("request ")) return;
  bool withheld = false;
  for (const char* side : {"before", "after"}) {
    if (auto* v = entry.if_contains(side); v && v->is_object() && v->as_object().contains("url")) {
      annotate_one(v->as_object(), cfg, index, false, now, false);
      withheld = withheld || v->as_object().contains("withheld");
    }
  }
  // The entry's own reason is the request's reasons, as the form gave them.
  if (withheld && entry.contains("reason")) entry["reason"] = "(withheld: for the DSL and the headteacher)";
}

}  // namespace hallpass
