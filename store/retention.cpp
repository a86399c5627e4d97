// Retention: the store keeps a closed record only as long as the school's setting
// (retention.records in the daemon's config; deploy/README.md "Logs and retention"). Part of
// exception_store: the same connection, transactions and audit log. The admin thread calls it
// at start, after each reload and every ten minutes (proxy/admin_server.cpp).
#include <boost/json.hpp>

#include <vector>

#include "store/exception_store.hpp"

namespace hallpass::store {
namespace json = boost::json;

namespace {

// When each kind of record closed, as SQL over its row; a record with no end yet (pending,
// in force, proposed) never matches `< ?1`. Each statement takes the cutoff as ?1.
struct deletion {
  const char* name;  // the count's key in the answer
  const char* sql;
};

// An incident `i` that retention.incidents (?2) deletes: closed, and nothing recorded on it since.
#define INCIDENT_GONE \
  "i.closed_at < ?2 AND NOT EXISTS (SELECT 1 FROM incident_actions a WHERE a.incident_id = i.id AND a.at >= ?2)"

// The requests go after their exceptions (foreign key); reports before local entries, so
// that a report whose block was removed before the cutoff still finds that block's row.
constexpr deletion deletions[] = {
    {nullptr,
     "DELETE FROM exceptions WHERE request_id IN (SELECT r.id FROM requests r JOIN exceptions e "
     "ON e.request_id = r.id WHERE r.decision = 'approved' AND MIN(e.valid_until, COALESCE(e.revoked_at, "
     "e.valid_until)) < ?1)"},
    // Approved requests whose exception was just deleted (no exception row left), denied ones,
    // and ones never decided within the whole period (filed before the cutoff: stale).
    {"requests",
     "DELETE FROM requests WHERE (decision = 'denied' AND decided_at < ?1) OR (decision = 'approved' AND "
     "decided_at < ?1 AND NOT EXISTS (SELECT 1 FROM exceptions e WHERE e.request_id = requests.id)) OR "
     "(decision IS NULL AND created_at < ?1)"},
    {"reports",
     "DELETE FROM reports WHERE created_at < ?1 AND NOT EXISTS (SELECT 1 FROM local_entries l WHERE "
     "l.id = reports.entry_id AND (l.removed_at IS NULL OR l.removed_at >= ?1))"},
    {"local_entries", "DELETE FROM local_entries WHERE removed_at IS NOT NULL AND removed_at < ?1"},
    // Bans lifted or withdrawn, ended by their length, or proposed and never confirmed within
    // the whole period (stale, like a request never decided; before 2026-12-06 a proposal,
    // which names a pupil, stayed until someone confirmed or withdrew it).
    {"bans",
     "DELETE FROM bans WHERE (lifted_at IS NOT NULL AND lifted_at < ?1) OR (lifted_at IS NULL AND valid_until "
     "IS NOT NULL AND valid_until < ?1) OR (lifted_at IS NULL AND valid_from IS NULL AND created_at < ?1)"},
    // Incident records by their own cutoff, ?2 (retention.incidents): closed before it, and
    // no action recorded since (a follow-up after the close keeps it: audit, 2026-12-06).
    // Their actions first; their audit entries after the trigger is dropped (below).
    {nullptr,
     "DELETE FROM incident_actions WHERE incident_id IN (SELECT id FROM incidents i WHERE " INCIDENT_GONE ")"},
    {"incidents", "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents i WHERE " INCIDENT_GONE ")"},
};

// Audit entries written before the cutoff, except those about a record the store still keeps
// (an exception in force, a ban, a local block and its report, a recent request): a record's
// history lives as long as the record, so an exception granted for a year under a 90-day
// setting still shows who approved it and why (before 2026-12-05 its entries went after 90
// days while it stayed in force). They go with the record, in a later round. An entry names
// its record as "request N", "local entry N", "report N", "ban N" or "incident N"
// (exception_store.cpp, bans.cpp, incidents.cpp). An incident's entries hold its words, so they
// go with it and never before it, whatever retention.records says.
constexpr const char* audit_deletion =
    "DELETE FROM audit WHERE at < ?1 AND NOT ("
    "(object LIKE 'request %' AND CAST(substr(object, 9) AS INTEGER) IN (SELECT id FROM requests)) OR "
    "(object LIKE 'local entry %' AND CAST(substr(object, 13) AS INTEGER) IN (SELECT id FROM local_entries)) OR "
    "(object LIKE 'report %' AND CAST(substr(object, 8) AS INTEGER) IN (SELECT id FROM reports)) OR "
    "(object LIKE 'ban %' AND CAST(substr(object, 5) AS INTEGER) IN (SELECT id FROM bans)) OR "
    "(object LIKE 'incident %' AND CAST(substr(object, 10) AS INTEGER) IN (SELECT id FROM incidents)))";

}  // namespace

bool exception_store::checkpoint_wal() {
  // One row: busy (1 when a reader or writer kept it from completing), the WAL's frames, and
  // the frames checkpointed.
  std::string err;
  auto st = db_.prepare("PRAGMA wal_checkpoint(TRUNCATE)", &err);
  if (!st || !st.step(&err)) return false;
  return st.integer(0) == 0;
}

result exception_store::apply_retention(std::optional<seconds_t> cutoff, std::optional<seconds_t> incident_cutoff,
                                        const std::string& rule) {
  // A kind kept forever binds NULL: `x < NULL` is never true, so nothing of it goes.
  auto bind_cut = [](statement& st, int i, const std::optional<seconds_t>& c) {
    if (c) st.bind(i, static_cast<std::int64_t>(c->time_since_epoch().count()));
    else st.bind_null(i);
  };
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  json::object counts;
  std::int64_t records = 0;  // deleted records; audit entries are not counted here
  auto run = [&](const char* name, const std::string& sql) -> std::string {
    std::string err;
    auto st = db_.prepare(sql, &err);
    if (!st) return err;
    bind_cut(st, 1, cutoff);
    if (sql.find("?2") != std::string::npos) bind_cut(st, 2, incident_cutoff);
    if (auto e = st.run(); !e.empty()) return e;
    if (name) counts[name] = db_.changes();
    if (name && std::string_view(name) != "audit") records += db_.changes();
    return {};
  };
  // The incidents about to go: their audit entries go with them whatever retention.records
  // says, as they hold the incident's words (audit of 2026-12-06: they stayed, with records
  // kept forever). Refusals about them hold no words and age out as other entries do.
  std::vector<std::int64_t> incidents_gone;
  {
    std::string err;
    auto st = db_.prepare("SELECT id FROM incidents i WHERE " INCIDENT_GONE, &err);
    if (!st) return result::fail("internal", err);
    bind_cut(st, 2, incident_cutoff);
    while (st.step(&err)) incidents_gone.push_back(st.integer(0));
    if (!err.empty()) return result::fail("internal", err);
  }
  for (const auto& d : deletions) {
    if (auto e = run(d.name, d.sql); !e.empty()) return result::fail("internal", e);
  }
  // A report whose block stays in force stays, but the child it names goes once the report is
  // older than the period: local blocks seldom end, and the name stayed with them for ever
  // (safeguarding audit, 2026-12-06, M7). Its audit entries' copy of the name goes too.
  if (auto e = run("report_names", "UPDATE reports SET individual = NULL WHERE created_at < ?1 AND individual IS NOT NULL");
      !e.empty())
    return result::fail("internal", e);
  records += counts.at("report_names").as_int64();
  // The audit log is append-only but for this: its triggers are dropped and made again inside
  // the same transaction, so no other writer ever sees them missing.
  if (auto e = db_.exec("DROP TRIGGER IF EXISTS audit_append_only_update"); !e.empty()) return result::fail("internal", e);
  {
    std::string err;
    auto st = db_.prepare(
        "UPDATE audit SET after_json = json_set(after_json, '$.individual', '(removed after retention.records)') "
        "WHERE at < ?1 AND object LIKE 'report %' AND json_valid(after_json) AND "
        "json_type(after_json, '$.individual') = 'text' AND "
        "json_extract(after_json, '$.individual') != '(removed after retention.records)'",
        &err);
    if (!st) return result::fail("internal", err);
    bind_cut(st, 1, cutoff);
    if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  }
  if (auto e = db_.exec(audit_update_trigger); !e.empty()) return result::fail("internal", e);
  if (auto e = db_.exec("DROP TRIGGER IF EXISTS audit_append_only_delete"); !e.empty())
    return result::fail("internal", e);
  if (auto e = run("audit", audit_deletion); !e.empty()) return result::fail("internal", e);
  for (const auto id : incidents_gone) {
    std::string err;
    auto st = db_.prepare("DELETE FROM audit WHERE object = ? AND outcome != 'refused'", &err);
    if (!st) return result::fail("internal", err);
    st.bind(1, "incident " + std::to_string(id));
    if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
    counts["audit"] = counts.at("audit").as_int64() + db_.changes();
  }
  if (auto e = db_.exec(audit_delete_trigger); !e.empty()) return result::fail("internal", e);
  // An entry only when records went: old audit entries (this one's predecessors among them)
  // age out every round, and an entry for each would fill the log with entries about itself.
  // The WAL still holds the pages as they were before; a checkpoint copies the overwritten
  // ones into the database and empties it. Also when only audit entries went: an entry can be
  // the only copy of words since replaced (a review's first note), and the files must not keep
  // them (audit, 2026-12-05: they stayed in the WAL until a restart). A reader (a backup, a
  // sqlite3 session, hallpass explain) can hold the checkpoint back: it is then owed, and tried
  // again at every later round, with or without deletions, until it completes. (It was tried
  // once: SQLite's own checkpoints never truncate the WAL, and the words stayed in it until a
  // later round deleted something: audit of privacy, 2026-12-06, M1.)
  const bool audit_deleted = counts.at("audit").as_int64() > 0;
  auto checkpointed = [&](result r) {
    if (r.ok && (records > 0 || audit_deleted || checkpoint_owed_)) checkpoint_owed_ = !checkpoint_wal();
    return r;
  };
  if (records == 0) return checkpointed(commit(tx, std::move(counts)));

  std::string what;
  for (const auto& [key, label] : {std::pair{"requests", "access requests (with their exceptions)"},
                                   std::pair{"reports", "reports"},
                                   std::pair{"report_names", "names of children in reports kept for their blocks"},
                                   std::pair{"local_entries", "removed local blocks and allows"},
                                   std::pair{"bans", "ended or unconfirmed bans"}, std::pair{"incidents", "closed incidents"},
                                   std::pair{"audit", "audit entries"}}) {
    if ((key == std::string_view("incidents") || key == std::string_view("report_names")) &&
        counts.at(key).as_int64() == 0)
      continue;  // said only when some went
    what += std::string(what.empty() ? "" : key == std::string_view("audit") ? " and " : ", ") +
            std::to_string(counts.at(key).as_int64()) + " " + label;
  }
  const std::string reason = "deleted " + what + ", closed or written before " +
                             (cutoff ? iso(cutoff->time_since_epoch().count()) : std::string("(records: forever)")) +
                             (incident_cutoff ? "; incidents closed before " + iso(incident_cutoff->time_since_epoch().count())
                                              : std::string()) +
                             " (" + rule + ")";
  return checkpointed(audit_and_commit(tx, actor{"hallpass", "retention"}, "retention", "store", nullptr, nullptr,
                                       reason, "ok", std::move(counts)));
}

}  // namespace hallpass::store
#undef INCIDENT_GONE
