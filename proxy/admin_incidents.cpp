// The admin socket's incident verbs (docs/admin-protocol.md, "Incident records"; the DfE
// standard's "incident record of action and outcome"; 000 7.4; 002). Part of admin_server:
// runs on the store thread only. The DSL and the headteacher only (admin_request.cpp): what
// happened to a child and what was done about it is theirs to know (KCSIE: need to know).
#include <boost/json.hpp>

#include "proxy/admin_request.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/dhcp_leases.hpp"
#include "proxy/shared_state.hpp"
#include "rules/device_ref.hpp"
#include "rules/explain.hpp"
#include "rules/utf8.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {
namespace json = boost::json;
namespace {

constexpr std::size_t max_incident_chars = 2000;  // what, an action, the outcome (code points)

// Free text of an incident: absent, or not blank and at most max_incident_chars. Its kind (no
// NUL or ESC) was checked with the line (admin_request.cpp).
std::optional<std::string> incident_text(const json::object& args, const char* key, std::string& error) {
  auto t = admin_text_arg(args, key);
  if (!t) return std::string();
  if (rules::is_blank(*t)) {
    error = std::string("'") + key + "' is blank";
    return std::nullopt;
  }
  if (rules::code_points(*t) > max_incident_chars) {
    error = std::string("'") + key + "' is longer than " + std::to_string(max_incident_chars) + " characters";
    return std::nullopt;
  }
  return t;
}

}  // namespace

// An audit entry about an incident holds the DSL's words about a child: for the DSL and the
// headteacher only (the technician reads the audit log too). The rest (who, when, which
// incident) stays, so the technician still sees that the record was kept.
void withhold_incident_in_audit(json::object& entry) {
  const auto* object = entry.if_contains("object");
  if (!object || !object->is_string() || !object->as_string().starts_with("incident ")) return;
  for (const char* side : {"before", "after"}) {
    if (auto* v = entry.if_contains(side); v && !v->is_null()) *v = "(withheld: for the DSL and the headteacher)";
  }
}

store::result admin_server::handle_incident_verb(const std::string& verb, const json::object& args,
                                                 const store::actor& actor) {
  const auto cfg = state_.configs.current();
  const auto& policy = *cfg->policy;
  std::string err;
  if (verb == "incidents") {
    store::exception_store::incident_filter f;
    // A flag (its kind checked with the line), or null: not given (audit, 2026-12-06: null
    // threw, and the connection closed without an answer).
    if (const auto* all = args.if_contains("all"); all && all->is_bool()) f.all = all->as_bool();
    auto subject = admin_subject(args, err);
    if (!subject) return bad_request(err);
    if (!subject->second.empty()) f.subject = *subject;
    // A device under the other spellings the leases give it now: the alert names it by name,
    // hardware address and address, and records filed under one were not found by another
    // (people-side audit, 2026-12-07, M4). Said in the answer ("also_as").
    if (f.subject && f.subject->first) {
      const auto devices = state_.devices.load();
      const auto d = rules::parse_device(f.subject->second);
      const auto canonical = [](const std::string& s) {
        const auto c = rules::parse_device(s);
        return c ? c->text : s;
      };
      const auto add_other_keys = [&](const device_identity& id) {
        for (const std::string* key : {&id.name, &id.hardware_address}) {
          if (key->empty()) continue;
          const std::string k = canonical(*key);
          if (k != d->text && std::find(f.also.begin(), f.also.end(), k) == f.also.end()) f.also.push_back(k);
        }
      };
      if (devices && d && d->by == rules::device_key::address) {
        if (const device_identity* id = devices->find(*rules::ip_address::parse(d->text))) add_other_keys(*id);
      } else if (devices && d) {
        const auto here = devices->addresses_of(d->text);
        if (!here.empty()) {
          f.also.push_back(here.front().to_string());
          if (const device_identity* id = devices->find(here.front())) add_other_keys(*id);
        }
      }
    }
    auto r = store_->incidents(f, incident_list_limit);
    if (r.ok && !f.also.empty() && r.data.is_object()) {
      json::array also;
      for (const auto& a : f.also) also.emplace_back(a);
      r.data.as_object()["also_as"] = std::move(also);
    }
    return r;
  }
  const auto id = admin_positive_number(args, "id");
  if (args.contains("id") && !args.at("id").is_null() && !id) return bad_request("'id' must be an incident's number");
  const auto action = incident_text(args, "action", err);
  if (!action) return bad_request(err);
  const auto outcome = incident_text(args, "outcome", err);
  if (!outcome) return bad_request(err);
  if (id) {
    // What an incident is about and when it happened are written once, when it is opened.
    for (const char* fixed : {"user", "device", "what", "category", "at"}) {
      if (const auto* v = args.if_contains(fixed); v && !v->is_null()) {
        return bad_request(std::string("'") + fixed + "' is written when an incident is opened and never changed: give " +
                   "'action' or 'outcome' with 'id' (or open a new incident)");
      }
    }
    if (action->empty() && outcome->empty()) return store_->incident(*id);
    return store_->record_incident(actor, *id, *action, *outcome);
  }
  store::incident_form f;
  auto subject = admin_subject(args, err);
  if (!subject) return bad_request(err);
  if (subject->second.empty()) {
    return bad_request("say whom the incident is about: 'user' (a user name) or 'device' (an address, DHCP name or "
                       "hardware address)");
  }
  f.device = subject->first;
  f.subject = subject->second;
  const auto what = incident_text(args, "what", err);
  if (!what) return bad_request(err);
  if (what->empty()) return bad_request("'what' is required: what happened, in a sentence (the alert, what was seen or said)");
  f.what = *what;
  if (auto c = admin_text_arg(args, "category")) {
    // A category of the policy, or one of the alerts' own kinds.
    if (*c != "circumvention" && *c != "ban" && !policy.find_category(*c)) {
      return bad_request("'category' " + rules::quote(*c) + " is neither a category of the policy (" +
                         policy.category_list() + ") nor circumvention or ban");
    }
    f.category = *c;
  }
  const auto now = store::now_seconds();
  f.happened = now;
  std::string clock_note;
  if (auto at = admin_text_arg(args, "at")) {
    const auto when = rules::parse_school_time(policy.zone, *at);
    if (!when) return bad_request("'at' must be a school-local time like \"2026-11-23 11:05\"");
    f.happened = when->at;
    // A minute's grace for clocks; an incident cannot have happened later than it is recorded.
    if (f.happened > now + std::chrono::minutes(1)) return bad_request("'at' " + rules::quote(*at) + " is in the future");
    // A time the clocks skip or repeat: recorded, and the answer says which instant was used,
    // as approve's 'until' does.
    clock_note = when->note;
  }
  f.action = *action;
  f.outcome = *outcome;
  auto r = store_->open_incident(actor, f);
  if (r.ok && !clock_note.empty()) r.warning = clock_note;
  return r;
}

}  // namespace hallpass
