// The durable record of the exception workflow (000 7.3, 7.5 and the appendix forms; 002):
// blocked content access requests with every field of the form, the headteacher's decisions
// and the exceptions they create, inappropriate-content reports, the technician's local
// block/allow entries, and an append-only audit log of every change and every refusal.
//
// SQLite in WAL mode with synchronous=FULL, one transaction per change: a change is
// acknowledged (the call returns ok) only after it is committed, so no acknowledged change
// is lost to a crash, kill -9 or power loss. open() brings a store made by an older hallpass
// up to date in one transaction (its rows are kept); a store made by a newer one is refused.
//
// Not thread-safe: one store thread owns an exception_store and calls it. Never call it from
// a proxy event loop.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <sys/types.h>
#include <string>
#include <vector>

#include "rules/exception_index.hpp"
#include "rules/time_zone.hpp"
#include "store/incident_summary.hpp"
#include "store/sqlite.hpp"

namespace hallpass::store {

using clock = std::chrono::system_clock;
using seconds_t = std::chrono::sys_seconds;

// Who is acting: the OS user from SO_PEERCRED (or "block page" for the form) and the admin
// role under which the action was allowed.
struct actor {
  std::string os_user;
  std::string admin_role;
};

struct result {
  bool ok = true;
  boost::json::value data;
  std::string error;
  std::string code;  // bad_request, forbidden, not_found, conflict, internal
  std::string warning;  // when ok: something the caller should hear although it succeeded
  static result fail(std::string code, std::string error) {
    result r;
    r.ok = false;
    r.code = std::move(code);
    r.error = std::move(error);
    return r;
  }
};

// The blocked content access request form (000 appendix), plus the scope asked for.
struct request_form {
  std::string url, requester, reasons, site_content, risks, control_measures;
  std::vector<std::string> roles;
  std::optional<std::string> user, client;  // client: CIDR or address
  std::string source = "hallpassctl";      // or "block page"
  std::optional<std::string> client_address;  // the device the form came from
  // Who asked, as the proxy knew it when the block page's form came (schema 4): the signed-in
  // user, and the device's DHCP name and hardware address. approve --who narrows to them.
  std::optional<std::string> asker_user, device_name, device_mac;
  // A block page's form for a page blocked in a category the school watches (alerts): filed
  // past max_pending_per_asker, as the DSL must hear of it whatever else the child asked.
  bool past_pending_cap = false;
};

// The most requests one asker (a device's address, and the signed-in user if any) may have
// waiting from the block page's form: more are refused, code "too_many_pending", so that one
// pupil's 200 forms a day (five every ten minutes) cannot bury the class's requests in the
// headteacher's list. Requests filed with hallpassctl are not counted or capped.
inline constexpr std::int64_t max_pending_per_asker = 20;

// The adult questions of the same form ("Identified risks and control measures"), completed
// while the request is pending by the technician or the headteacher who passes it on: the
// block page asks a pupil only what they need and why, in their own words. A field left
// unset keeps its value. site_content here is the adult's description of the site, kept
// beside the requester's own; the requester's words (requester, reasons, site_content) are
// never changed by a review.
struct request_review {
  std::optional<std::string> risks, control_measures, site_content, note;
};

// The longest text a review field may hold, in characters (Unicode code points): the block
// page's own textareas allow 2,000, and a form's box needs no more.
inline constexpr std::size_t max_review_chars = 2000;

enum class list_filter { pending, active, expired, all };

// The most JSON one audit() answer holds: with room to spare under hallpassctl's 16 MiB
// answer limit, should text the store holds grow when made valid UTF-8 for the answer.
inline constexpr std::size_t max_audit_bytes = 4 * 1024 * 1024;

// A ban (000 7.2; 002): a user name or a device address put on the policy's supervised-use
// list (rules/ban.hpp) for `length`. `how`: "command" (hallpassctl ban by the DSL or the
// headteacher: in force at once), "proposal" (by the technician: stored pending, no effect
// until the DSL or the headteacher confirms it), "automatic" (the threshold rule: in force at
// once, 000 7.2 "will result in a ban"; proxy/circumvention_tracker.hpp).
struct ban_form {
  bool device = false;
  std::string subject;  // user name, or the device's address (canonical)
  std::chrono::seconds length{0};
  std::string reason;
  std::string how = "command";
};

// An incident record (the DfE filtering and monitoring standard: "an incident record of action
// and outcome"; 000 7.4; 002): the DSL's or the headteacher's account of what happened to a
// user or a device, the actions taken, one by one, and the outcome that closes it. Opened by
// hand, often from an alert (README.md "Incident records"). `happened` is when it happened (the
// alert's time); `action` and `outcome`, when given, are recorded with the opening.
struct incident_form {
  bool device = false;
  std::string subject;  // user name, or the device (canonical: rules/device_ref.hpp)
  std::string what;
  std::string category;  // a policy category, "circumvention" or "ban"; "" when none
  seconds_t happened{};
  std::string action, outcome;  // "" when not given
};

// The most actions one incident holds: `show` answers with all of them.
inline constexpr std::size_t max_incident_actions = 200;

class exception_store {
 public:
  // Opens or creates <dir>/hallpass.db. The zone formats times in responses. Refuses (nullptr,
  // *error saying how to go on) a store that was made here and is now missing (<dir>/
  // hallpass.db.made, written when a store is first opened, says one was) or a 0-byte file
  // with no write-ahead log: never a quiet, empty store in place of one that held things.
  static constexpr const char* made_marker = "hallpass.db.made";
  static std::unique_ptr<exception_store> open(const std::string& dir, const rules::time_zone& zone,
                                               std::string* error);
  // Whether open made a new, empty store (no hallpass.db was there): the daemon says so at
  // start, since a changed state_dir starts on one (admin audit, 2026-12-05, F8).
  bool made_now() const { return made_now_; }

  // Whether the files this store has open are still the ones at its path: "" when they are;
  // else why not (hallpass.db deleted, or replaced by another file, say a backup restored with
  // mv while hallpass runs; its -wal deleted). Changes made then go to files nobody will open
  // again, lost at the next start (admin audit, 2026-12-06: acknowledged blocks and a ban
  // vanished at a restart). A few stat calls; the admin thread asks before each change.
  std::string files_replaced() const;

  // Opens an existing <dir>/hallpass.db for reading only (load_active and the other reads);
  // nullptr with *error when there is none or it cannot be read. Never creates or migrates.
  static std::unique_ptr<exception_store> open_read_only(const std::string& dir, const rules::time_zone& zone,
                                                         std::string* error);

  void set_zone(const rules::time_zone& zone) { zone_ = zone; }

  result file_request(const actor& who, const request_form& form);
  // Completes the adult questions of a pending request (request_review). Refuses, with
  // nothing changed: an unknown id (not_found), a request no longer pending (conflict), no
  // field given, a field empty or only spaces, or longer than max_review_chars (bad_request).
  // Audited with the request before and after.
  result review(const actor& who, std::int64_t id, const request_review& review);
  // Approves a pending request. A request whose identified risks or control measures are
  // still empty is approved too (scripts file then approve, issue 4): the result's warning
  // names what is missing and how to complete it, and the audit entry's reason ends with
  // "(approved without the form's identified risks and control measures)".
  //
  // `narrow` (hallpassctl approve --who) is whom the exception opens the site for: "user" (the
  // signed-in user who asked from the block page, or the request's --user), "group:NAME" (a
  // signed-in user in that directory group), "device" (the device the form came from: by its
  // DHCP name when the leases named it, else its address), "role" (the request's roles).
  // nullopt: the narrowest that makes sense: the user when a signed-in user asked, else the
  // device when the form came from one, else the scope the request was filed with
  // (hallpassctl request --role/--user/--client). A narrowing the request cannot give (no
  // signed-in user, no device, no role) is refused (bad_request) and audited.
  result approve(const actor& who, std::int64_t id, seconds_t from, seconds_t until, rules::target target,
                 const std::string& reason, const std::optional<std::string>& narrow = std::nullopt);
  result deny(const actor& who, std::int64_t id, const std::string& reason);
  result revoke(const actor& who, std::int64_t id, const std::string& reason);
  // Moves an approved exception's end to `until` (the headteacher's, as approving is): a
  // project that runs on, a lesson moved. Its request must be approved or expired (an expired
  // one opens again; a revoked or denied one does not: file it again); `until` must be later
  // than its end now. The audit entry records the old and the new end and `reason`.
  result extend(const actor& who, std::int64_t id, seconds_t until, const std::string& reason);
  result show(std::int64_t id);
  // The newest `limit` requests that pass `filter`, oldest first; "omitted" counts the older
  // ones left out (absent when none were).
  // The newest `limit` requests matching `filter`, older than request `before` when given.
  result list(list_filter filter, std::size_t limit = 200, std::optional<std::int64_t> before = std::nullopt);
  result file_report(const actor& who, const std::string& url, const std::string& nature, const std::string& reporter,
                     const std::optional<std::string>& individual, const std::optional<rules::target>& block);
  result reports();
  result add_local(const actor& who, bool block, const rules::target& target, const std::string& reason);
  result remove_local(const actor& who, std::int64_t id, const std::string& reason);
  // The local block entries, oldest first: those in force, or (all) removed ones too.
  result local_blocks(bool all);
  // The audit log, oldest first: the newest `limit` entries written at or after `since` (all
  // when nullopt) with an id below `before` (all when nullopt; for paging back), and of those
  // no more than the newest that fit in `max_bytes` of JSON (the newest always). "omitted"
  // counts the older ones that match but were left out (absent when none were).
  result audit(std::optional<seconds_t> since, std::optional<std::int64_t> before = std::nullopt,
               std::size_t limit = 200, std::size_t max_bytes = max_audit_bytes);
  // Records an action that changes no table here (a policy reload) in the audit log. On
  // failure (a full disk) says so on stderr (who, what: never the reason's text) and returns
  // the error, so an answer can say the action was not audited; empty when written.
  std::string audit_event(const actor& who, const std::string& action, const std::string& object,
                          const std::string& reason, const std::string& outcome);
  // Records a refused command (who, what, why) in the audit log; a failure as audit_event's.
  std::string audit_refusal(const actor& who, const std::string& action, const std::string& object,
                            const std::string& why);

  // Bans (store/bans.cpp). ban() files a ban (in force from now) or a proposal (how
  // "proposal"); an automatic ban on a subject that already has one in force is refused
  // (conflict), so a burst of attempts files one. confirm_ban() puts a proposal in force from
  // now for the length it asked. unban() lifts one ban or proposal by id, or every ban and
  // proposal in force on a subject (not_found when there is none). Every change is audited
  // with the ban before and after. bans(): those in force and proposed (all: every one).
  result ban(const actor& who, const ban_form& form);
  result confirm_ban(const actor& who, std::int64_t id, const std::string& reason);
  result unban(const actor& who, std::optional<std::int64_t> id, bool device, const std::string& subject,
               const std::string& reason);
  result bans(bool all);
  // Whether a ban in force or proposed names this device (canonical name or hardware address).
  bool device_banned(const std::string& subject);
  // Incident records (store/incidents.cpp). open_incident() files one (open, or closed at once
  // when the form has an outcome). record_incident() adds an action, closes it with an
  // outcome, or both: an outcome on a closed incident is refused (conflict), an action on one
  // is recorded (a later follow-up), an incident with max_incident_actions refuses more. Every
  // change is audited (what its entry holds: below). incident() is one with its actions;
  // incidents() the newest `limit` open ones (all: closed too), optionally of one subject,
  // oldest first, with "omitted" as list's. open_incidents() counts the open ones. The audit
  // entry of a change holds what changed (the incident when opened; the action or the outcome
  // after), never the whole incident again: an incident of 200 long actions would otherwise
  // write 200 copies of itself (audit of 2026-12-06: 323 MB for 1.6 MB of words).
  result open_incident(const actor& who, const incident_form& form);
  result record_incident(const actor& who, std::int64_t id, const std::string& action, const std::string& outcome);
  result incident(std::int64_t id);
  struct incident_filter {
    bool all = false;
    std::optional<std::pair<bool, std::string>> subject;  // (device, subject)
    // The same device under other spellings (its name, hardware address or address, as the
    // leases give them now): records filed under any of them match too. At most three used.
    std::vector<std::string> also;
  };
  // At most `max_bytes` of JSON too (the newest always), as audit's: an answer stays well within
  // hallpassctl's 16 MiB however long the incidents are.
  result incidents(const incident_filter& filter, std::size_t limit = 200, std::size_t max_bytes = max_audit_bytes);
  std::size_t open_incidents();
  // The weekly report's: the newest `limit` incidents open at any time in [from, to) (not closed
  // before `from`; happened or opened before `to`), oldest first, without their words;
  // *omitted counts the rest. nullopt with *error when the store cannot be read.
  std::optional<std::vector<incident_summary>> incident_summaries(seconds_t from, seconds_t to, std::size_t limit,
                                                                  std::uint64_t* omitted, std::string* error);

  // The bans in force now or later (not lifted, not proposals, until > now), for the overlay;
  // nullopt with *error when the store cannot be read completely.
  std::optional<std::vector<rules::ban_entry>> load_bans(seconds_t now, std::string* error);

  // The URL a request asks for, and whether it came from the block page's form (whose URL is
  // stored without its query unless access_log.keep_query); nullopt when the id does not exist.
  struct requested_url {
    std::string url;
    bool from_block_page = false;
  };
  std::optional<requested_url> request_url(std::int64_t id);
  std::size_t pending_requests();
  // Everything the proxy needs now: unexpired, unrevoked exceptions and live local entries.
  // Everything the exception index needs: live exceptions and local entries. Returns nullopt
  // with *error set when the store cannot be read completely, so that the caller keeps the
  // index it has rather than publishing a partial one (which would drop local blocks). A row
  // whose client scope does not parse is left out: that exception allows nothing.
  std::optional<std::pair<std::vector<rules::exception_entry>, std::vector<rules::local_entry>>> load_active(
      seconds_t now, std::string* error);

  // Retention (store/retention.cpp; deploy/README.md "Logs and retention"): deletes every
  // record that closed before `cutoff` and every audit entry written before it, in one
  // transaction: access requests denied, or whose exception ended (expired or revoked), with
  // their exceptions, and requests still pending that were filed before it (never decided in
  // the whole period); local blocks and allows removed; reports whose local block (if any) is
  // no longer in force; bans lifted, withdrawn or expired, and ban proposals filed before it
  // (never confirmed in the whole period). Open records stay whatever their age: exceptions
  // and bans in force, local entries in force.
  // When any record was deleted, says what in one audit entry (by "hallpass", role "retention",
  // naming `rule`, the setting) and then checkpoints the WAL, so that with secure_delete the
  // deleted text is gone from the files too. data: {"requests", "reports", "local_entries",
  // "bans", "audit"} (counts). Refused as a whole (nothing deleted) on any error.
  // Incident records have their own setting (retention.incidents: safeguarding records are kept
  // far longer than the rest): closed incidents that closed before `incident_cutoff` go, with
  // their actions ("incidents" in data). nullopt, for either cutoff: that kind is kept forever.
  result apply_retention(std::optional<seconds_t> cutoff, std::optional<seconds_t> incident_cutoff,
                         const std::string& rule);
  // Whether the last round's checkpoint could not complete (a reader held the WAL): deleted
  // text may still be in hallpass.db-wal until a later round's checkpoint does.
  bool checkpoint_owed() const { return checkpoint_owed_; }

 private:
  explicit exception_store(database db, const rules::time_zone& zone) : db_(std::move(db)), zone_(zone) {}
  bool made_now_ = false;
  bool checkpoint_owed_ = false;  // apply_retention's checkpoint did not complete
  bool checkpoint_wal();          // PRAGMA wal_checkpoint(TRUNCATE); true when it completed
  std::string path_;                               // <dir>/hallpass.db, as opened
  std::optional<std::pair<dev_t, ino_t>> opened_;  // its file when opened (files_replaced)
  bool wal_watched_ = false;                       // its -wal was there when opened
  std::string migrate();
  std::optional<boost::json::object> request_object(std::int64_t id, seconds_t now);
  std::string write_audit(const actor& who, const std::string& action, const std::string& object,
                          const boost::json::value& before, const boost::json::value& after, const std::string& reason,
                          const std::string& outcome);
  // The end of every change: writes its audit entry, commits `tx` and answers `data`. When
  // either fails the answer is an internal error and `tx` rolls back as it goes, so no change
  // stands unaudited.
  result audit_and_commit(transaction& tx, const actor& who, const std::string& action,
                          const std::string& object, const boost::json::value& before,
                          const boost::json::value& after, const std::string& reason,
                          const std::string& outcome, boost::json::value data);
  // Commits `tx` and answers `data`: for a change whose audit entries are written already.
  static result commit(transaction& tx, boost::json::value data);
  std::string iso(std::int64_t unix_seconds) const;
  std::optional<boost::json::object> ban_object(std::int64_t id, seconds_t now);
  // nullopt when there is no such incident, or (with *error set) when it cannot be read.
  std::optional<boost::json::object> incident_object(std::int64_t id, std::string* error = nullptr);
  // The newest `limit` rows of `from` (" FROM ... WHERE ...", its parameters bound by `bind`;
  // the limit is parameter `limit_parameter`), each made an object by `object` (nullopt: left
  // out), oldest first under `key`, within `max_bytes` of JSON (the newest always), with
  // "omitted" counting the matching rows left out. For list and incidents.
  result newest_page(const char* key, const std::string& id_column, const std::string& from,
                     const std::function<void(statement&)>& bind, int limit_parameter, std::size_t limit,
                     std::size_t max_bytes,
                     const std::function<std::optional<boost::json::object>(std::int64_t)>& object);
  // One change to a request in one transaction: checks the status is `need` (one of them, when
  // several are joined with '|'), asks refuse()
  // (when given) whether the request as it stands may take the change (a refusal is audited
  // and returned, nothing else changes), runs apply(), audits before and after, commits.
  // approve, deny, revoke and review are this with their UPDATEs.
  // A check may also add to the reason the audit entry gives (approve notes an incomplete form).
  using refusal_check =
      std::function<std::optional<result>(const boost::json::object& before, std::string& audit_reason)>;
  result change_request(const actor& who, std::int64_t id, const char* action, const char* need,
                        const std::string& reason, const std::function<std::string()>& apply,
                        const refusal_check& refuse = {});
  std::string decide_request(std::int64_t id, const actor& who, const char* decision, const std::string& reason);

  database db_;
  rules::time_zone zone_;
};

seconds_t now_seconds();

// The trigger that keeps audit rows from being deleted; only apply_retention() lifts it, for
// the length of its own transaction (store/retention.cpp).
inline constexpr const char* audit_update_trigger =
    "CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit\n"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";
inline constexpr const char* audit_delete_trigger =
    "CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit\n"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

}  // namespace hallpass::store
