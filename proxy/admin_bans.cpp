// The admin socket's ban verbs (docs/admin-protocol.md, "Bans"; 000 7.2; 002) and automatic
// bans from the circumvention tracker. Part of admin_server: runs on the store thread only.
#include <boost/json.hpp>

#include <iostream>

#include "proxy/admin_request.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/alerts.hpp"
#include "proxy/dhcp_leases.hpp"
#include "proxy/shared_state.hpp"
#include "rules/device_ref.hpp"
#include "rules/explain.hpp"
#include "rules/utf8.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {
namespace json = boost::json;
namespace {

constexpr std::size_t max_queued_bans = 64;

// A ban's 'for': admin_duration's shape, from 1m to 366d.
std::optional<std::chrono::seconds> ban_length(const std::string& t, std::string& error) {
  const auto d = admin_duration(t, error);
  if (d && (*d < std::chrono::minutes(1) || *d > std::chrono::days(366))) {
    error = "'for' " + t + " is out of range: a ban lasts from 1m to 366d";
    return std::nullopt;
  }
  return d;
}

// One line on the access log for each ban put in force, so the DSL's monitoring (the log)
// sees it beside the attempts that led to it. The reason goes on the line only for an
// automatic ban (the proxy's own words: so many attempts); a person's reason may be a
// safeguarding concern, which stays in the store (retention.records) and the audit log, not
// in a log file that logrotate keeps and the adm group reads (audit, 2026-12-05).
void log_ban(shared_state& state, const rules::time_zone& zone, const json::object& ban,
             const std::string& how) {
  if (!state.access_log.enabled()) return;
  json::object line{{"time", rules::iso8601_local(zone, store::now_seconds())},
                    {"event", "ban"},
                    {"how", how},
                    {"ban", ban.at("id")},
                    {"kind", ban.at("kind")},
                    {"subject", ban.at("subject")},
                    {"until", ban.at("until")}};
  if (how == "automatic") line["reason"] = ban.at("reason");
  state.access_log.write(json::serialize(line) + "\n");
}


// Why a ban cannot match any request now, in words, or "": a user where nobody signs in (no
// logins section), or a device name or hardware address no DHCP lease gives (a typo, or no
// dhcp_leases at all). An address always can. The ban is kept either way: the leases may name
// the device tomorrow, and the record is the DSL's.
std::string ban_matches_nobody_note(const configuration& cfg, const device_table* devices, bool device,
                                    const std::string& subject) {
  if (!device) {
    if (cfg.daemon.logins.any()) return {};
    return "nobody signs in to this proxy (there is no logins section), so no request is ever made as user '" + subject +
           "' and this ban stops nothing; ban the pupil's device (--device, its name or address) instead";
  }
  const auto d = rules::parse_device(subject);
  if (!d || d->by == rules::device_key::address) return {};
  if (cfg.daemon.dhcp_leases.path.empty()) {
    return "the proxy reads no DHCP leases (dhcp_leases), so it knows no device by " +
           std::string(rules::to_string(d->by)) + " and this ban stops nothing; ban the device's address instead";
  }
  if (devices && devices->names(d->text)) return {};
  return "no DHCP lease gives the " + std::string(rules::to_string(d->by)) + " '" + subject +
         "' now, so this ban stops nothing until one does: check its spelling (hallpassctl bans lists it; unban "
         "removes it), or ban the device's address";
}

}  // namespace

// A ban's reason is the DSL's or the headteacher's record of a safeguarding concern ("disclosed
// self-harm, CP referral"): for those two roles, and for whoever wrote it, not for every
// technician who lists bans (need to know, UK GDPR and KCSIE; outside-in audit J, 2026-12-05:
// a technician read the DSL's reason in `bans` and `audit`). The technician still sees who is
// banned, by whom, for how long, and reasons they wrote themselves (their own proposals).
void withhold_ban_reasons(json::object& ban, const std::string& viewer) {
  static const json::string withheld = "(withheld: for the DSL and the headteacher)";
  const auto by = [](const json::object& o) -> std::string_view {
    const auto* b = o.if_contains("by");
    return b && b->is_string() ? std::string_view(b->as_string()) : std::string_view();
  };
  if (ban.contains("reason") && by(ban) != viewer) ban["reason"] = withheld;
  if (auto* lifted = ban.if_contains("lifted"); lifted && lifted->is_object()) {
    auto& l = lifted->as_object();
    if (l.contains("reason") && by(l) != viewer) l["reason"] = withheld;
  }
}

void withhold_ban_reasons_in_audit(json::object& entry, const std::string& viewer) {
  const auto* object = entry.if_contains("object");
  if (!object || !object->is_string() || !object->as_string().starts_with("ban ")) return;
  const auto* os_user = entry.if_contains("os_user");
  if (!(os_user && os_user->is_string() && os_user->as_string() == viewer)) {
    entry["reason"] = "(withheld: for the DSL and the headteacher)";
  }
  for (const char* side : {"before", "after"}) {
    if (auto* v = entry.if_contains(side); v && v->is_object()) withhold_ban_reasons(v->as_object(), viewer);
  }
}

store::result admin_server::handle_ban_verb(const std::string& verb, const json::object& args,
                                            const std::string& os_user,
                                            const std::set<std::string>& roles, bool& changed) {
  const auto cfg = state_.configs.current();
  const auto& zone = cfg->policy->zone;
  // The DSL and the headteacher decide bans (000 7.2; 002); a technician proposes.
  const char* deciding_role = roles.count("dsl")           ? "dsl"
                              : roles.count("headteacher") ? "headteacher"
                                                           : nullptr;
  const store::actor actor{os_user, deciding_role ? deciding_role : "technician"};
  if (verb == "bans") {
    bool all = false;
    if (auto it = args.find("all"); it != args.end()) {
      if (!it->value().is_bool()) return bad_request("'all' must be true or false");
      all = it->value().as_bool();
    }
    auto r = store_->bans(all);
    if (!deciding_role && r.ok && r.data.is_object()) {
      if (auto* list = r.data.as_object().if_contains("bans"); list && list->is_array()) {
        for (auto& b : list->as_array()) {
          if (b.is_object()) withhold_ban_reasons(b.as_object(), os_user);
        }
      }
    }
    return r;
  }
  const auto reason = admin_text_arg(args, "reason");
  if (verb == "ban" && args.contains("confirm")) {
    // Confirming a proposal takes its subject and length from the proposal: a subject or length
    // given too would be silently ignored (audit H, 2026-12-05), so it is refused.
    for (const char* other : {"user", "device", "for", "until"}) {
      if (args.contains(other)) return bad_request(std::string("'confirm' takes the proposed ban as it is: drop '") + other + "'");
    }
    const auto id = admin_positive_number(args, "confirm");
    if (!id) return bad_request("'confirm' must be the number of a proposed ban");
    if (!deciding_role) {
      const std::string why =
          "OS user '" + os_user +
          "' (admin role technician) may not confirm a ban: that needs the dsl or headteacher role";
      // Through the same limit as every other refusal (admin audit, 2026-12-05, F2).
      return store::result::fail("forbidden", audit_refusal(actor, "confirm ban", "ban " + std::to_string(*id), why));
    }
    auto r = store_->confirm_ban(actor, *id, reason.value_or(""));
    if (r.ok) {
      changed = true;
      state_.metrics.bans("confirmed").Increment();
      log_ban(state_, zone, r.data.as_object(), "confirmed");
    }
    return r;
  }
  // Free text as everywhere in the protocol: its kind (no NUL or ESC) was checked with the line
  // (admin_request.cpp); not blank; at most 2,000 characters (code points, as review counts).
  if (!reason || rules::is_blank(*reason))
    return bad_request("'reason' is required");
  if (rules::code_points(*reason) > 2000) return bad_request("'reason' is longer than 2000 characters");
  std::string why;
  const auto who = admin_subject(args, why);  // (false, "") when neither is given
  if (!who) return bad_request(why);
  const auto id = verb == "unban" ? admin_positive_number(args, "id") : std::nullopt;
  if (verb == "unban" && args.contains("id") && !id) return bad_request("'id' must be a ban number");
  if (int(!who->second.empty()) + int(id.has_value()) != 1) {
    return bad_request(verb == "ban" ? "give exactly one of 'user' (a user name) and 'device' (an address, "
                               "name or hardware address)"
                             : "give exactly one of 'id', 'user' and 'device'");
  }
  const bool device = who->first;
  const std::string& subject = who->second;
  if (verb == "unban") {
    auto r = store_->unban(actor, id, device, subject, *reason);
    // The alert gives the DSL a device's name, hardware address and address, and any of them
    // may be to hand: an unban by the address of a device banned by its name said only "no ban",
    // and the pupil stayed limited (people-side audit, 2026-12-07, M4). The answer names the
    // device at that address now and its bans, for the DSL to lift by that name: not lifted
    // here, as the address may have moved to another child since the alert (review, same day).
    if (!r.ok && r.code == "not_found" && device && !id) {
      const auto address = rules::ip_address::parse(subject);
      const auto devices = state_.devices.load();
      const device_identity* d = address && devices ? devices->find(*address) : nullptr;
      std::string held;
      for (const std::string* key : {d ? &d->name : nullptr, d ? &d->hardware_address : nullptr}) {
        if (!key || key->empty()) continue;
        if (const auto canonical = rules::parse_device(*key); canonical && store_->device_banned(canonical->text)) {
          held += (held.empty() ? "" : " and ") + ("hallpassctl unban --device " + canonical->text);
        }
      }
      if (!held.empty()) {
        r.error += "; the device at that address now (" + (d->name.empty() ? d->hardware_address : d->name) +
                   ") is banned by its " + (d->name.empty() ? "hardware address" : "name or hardware address") +
                   ": if that is the device you mean, " + held;
      }
    }
    changed = r.ok;
    return r;
  }
  const auto for_text = admin_text_arg(args, "for");
  if (!for_text) return bad_request("'for' is required: how long the ban lasts (e.g. 1d)");
  std::string err;
  const auto length = ban_length(*for_text, err);
  if (!length) return bad_request(err);
  store::ban_form f;
  f.device = device;
  f.subject = subject;
  f.length = *length;
  f.reason = *reason;
  f.how = deciding_role ? "command" : "proposal";
  auto r = store_->ban(actor, f);
  if (r.ok && deciding_role) {
    changed = true;
    state_.metrics.bans("command").Increment();
    log_ban(state_, zone, r.data.as_object(), "command");
  }
  if (r.ok) {
    // A ban of nobody said only "banned" (people-side audit, 2026-12-07, M5): the DSL believed
    // a pupil was on supervised use when no request could ever match the ban.
    if (const std::string note = ban_matches_nobody_note(*cfg, state_.devices.load().get(), device, subject);
        !note.empty()) {
      add_warning(r, note);
    }
  }
  return r;
}

bool admin_server::file_automatic_ban(bool device, std::string subject, std::chrono::seconds length,
                                      std::string reason) {
  if (queued_bans_.fetch_add(1) >= max_queued_bans) {
    queued_bans_.fetch_sub(1);
    // On the worker that counted the attempt: said through the diagnostics thread.
    state_.diagnostics.say("hallpass: bans: too many automatic bans waiting; not filed: " +
                           std::string(device ? "device " : "user ") + subject + " (" + reason + ")");
    return false;
  }
  net::post(ioc_, [this, device, subject = std::move(subject), length, reason = std::move(reason)] {
    queued_bans_.fetch_sub(1);
    if (!store_) return;
    const auto cfg = state_.configs.current();
    store_->set_zone(cfg->policy->zone);
    store::ban_form f;
    f.device = device;
    f.subject = subject;
    f.length = length;
    f.reason = reason;
    f.how = "automatic";
    auto r = store_->ban(store::actor{"hallpass", "automatic"}, f);
    if (!r.ok) {
      // Already banned (conflict): that ban stands. Anything else is a store error.
      if (r.code != "conflict")
        std::cerr << "hallpass: bans: cannot file an automatic ban: " << r.error << "\n";
      return;
    }
    publish_index();
    state_.metrics.bans("automatic").Increment();
    log_ban(state_, cfg->policy->zone, r.data.as_object(), "automatic");
    if (state_.alerts && cfg->daemon.alerts.bans) {
      alert a;
      a.kind = alert_kind::ban;
      a.at = store::now_seconds();
      a.ban = r.data.at("id").as_int64();
      a.ban_subject = std::string(device ? "the device " : "the user ") + subject;
      a.ban_until_text = rules::time_in_words(cfg->policy->zone, store::now_seconds() + length);
      a.ban_reason = reason;
      if (!device) a.user = subject;
      else a.client = subject;
      state_.alerts->raise(std::move(a), cfg->daemon.alerts, cfg->policy->school_name, cfg->policy->zone,
                           state_.access_log, cfg->generation);
    }
    std::cerr << "hallpass: bans: " << (device ? "device " : "user ") << subject
              << " banned automatically until " << r.data.at("until").as_string().c_str()
              << " (ban " << r.data.at("id").as_int64() << ": " << reason << ")\n";
  });
  return true;
}

}  // namespace hallpass
