#include "store/exception_store.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <string_view>

#include "rules/explain.hpp"
#include "rules/utf8.hpp"
#include "store/valid_json.hpp"

namespace hallpass::store {
namespace json = boost::json;

namespace {

// Schema 1, the tables as first made; every store is brought from there to schema_version
// by the added columns below, a fresh one too, so that the path an existing school's store
// takes is the path every test takes.
constexpr const char* schema_1 = R"sql(
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  url TEXT NOT NULL,
  requester TEXT NOT NULL,
  reasons TEXT NOT NULL,
  site_content TEXT NOT NULL DEFAULT '',
  risks TEXT NOT NULL DEFAULT '',
  control_measures TEXT NOT NULL DEFAULT '',
  scope_roles TEXT NOT NULL DEFAULT '',
  scope_user TEXT,
  scope_client TEXT,
  filed_by TEXT NOT NULL,
  source TEXT NOT NULL,
  client_address TEXT,
  decision TEXT,                -- NULL pending, 'approved', 'denied'
  decided_by TEXT,
  decided_at INTEGER,
  decision_reason TEXT
);
CREATE TABLE IF NOT EXISTS exceptions (
  request_id INTEGER PRIMARY KEY REFERENCES requests(id),
  kind TEXT NOT NULL,           -- domain, prefix, url
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  display TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_until INTEGER NOT NULL,
  revoked_by TEXT,
  revoked_at INTEGER,
  revoke_reason TEXT
);
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  reporter TEXT NOT NULL,
  individual TEXT,
  url TEXT NOT NULL,
  nature TEXT NOT NULL,
  filed_by TEXT NOT NULL,
  action_taken TEXT,
  action_by TEXT,
  action_at INTEGER,
  entry_id INTEGER
);
CREATE TABLE IF NOT EXISTS local_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  block INTEGER NOT NULL,
  kind TEXT NOT NULL,
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  display TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  report_id INTEGER,
  removed_by TEXT,
  removed_at INTEGER,
  remove_reason TEXT
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  os_user TEXT NOT NULL,
  admin_role TEXT NOT NULL,
  action TEXT NOT NULL,
  object TEXT NOT NULL,
  before_json TEXT,
  after_json TEXT,
  reason TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql";

// PRAGMA user_version. 1: the tables above; 2: who completed a request's adult questions
// (reviewed_*), the adult's own site description beside the requester's, and a note;
// 3: the bans table (added_tables); 4: who asked from the block page (the signed-in user, the
// device's DHCP name and hardware address) and whom an exception opens the site for
// (exceptions.who, who_value: approve --who); 5: incident records (added_tables).
constexpr std::int64_t schema_version = 5;

// Tables added after schema 1, made where missing (CREATE TABLE IF NOT EXISTS).
constexpr const char* added_tables[] = {
    // 3: bans (000 7.2; 002). valid_from/valid_until are NULL while a technician's proposal
    // waits for the DSL or the headteacher; `length` is the time asked for, in seconds.
    R"sql(CREATE TABLE IF NOT EXISTS bans (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,             -- 'user' or 'device'
  subject TEXT NOT NULL,          -- the user name, or the device's address
  reason TEXT NOT NULL,           -- the adult's reason; never shown on the ban page
  how TEXT NOT NULL,              -- 'command', 'proposal', 'automatic'
  created_by TEXT NOT NULL,
  created_role TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  length INTEGER NOT NULL,
  valid_from INTEGER,
  valid_until INTEGER,
  confirmed_by TEXT,
  confirmed_at INTEGER,
  lifted_by TEXT,
  lifted_at INTEGER,
  lift_reason TEXT
))sql",
    // 5: incident records (store/incidents.cpp). Open while outcome is NULL. `what`, the
    // actions and the outcome are the DSL's words: a safeguarding record, never in a log file.
    R"sql(CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,             -- 'user' or 'device'
  subject TEXT NOT NULL,
  what TEXT NOT NULL,
  category TEXT NOT NULL,         -- '' when none was given
  happened_at INTEGER NOT NULL,
  opened_by TEXT NOT NULL,
  opened_role TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  outcome TEXT,
  closed_by TEXT,
  closed_at INTEGER
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS incident_actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  incident_id INTEGER NOT NULL REFERENCES incidents(id),
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  role TEXT NOT NULL,
  action TEXT NOT NULL
))sql",
    // Each incident's actions are read with it (every answer, the report) and by retention.
    "CREATE INDEX IF NOT EXISTS incident_actions_by_incident ON incident_actions(incident_id, at)",
};

struct added_column {
  std::int64_t version;
  const char* table;
  const char* name;
  const char* definition;
};

// Added only where missing, so that a store an older hallpass reopened after an upgrade (it
// writes user_version 1 again over columns it does not know) still opens.
constexpr added_column added_columns[] = {
    {2, "requests", "reviewer_site_content", "TEXT NOT NULL DEFAULT ''"},
    {2, "requests", "review_note", "TEXT NOT NULL DEFAULT ''"},
    {2, "requests", "reviewed_by", "TEXT"},
    {2, "requests", "reviewed_role", "TEXT"},
    {2, "requests", "reviewed_at", "INTEGER"},
    {4, "requests", "asker_user", "TEXT"},
    {4, "requests", "asker_device", "TEXT"},
    {4, "requests", "asker_mac", "TEXT"},
    // 'user', 'group', 'device', 'role' or 'client'; NULL (exceptions approved before schema
    // 4): the request's scope as filed (scope_roles, scope_user, scope_client), as before.
    {4, "exceptions", "who", "TEXT"},
    {4, "exceptions", "who_value", "TEXT"},
};

// The questions of the access request form that are for an adult (000 appendix, "Identified
// risks and control measures"), as the request object names them. approve warns when either is empty.
constexpr const char* adult_questions[] = {"risks", "control_measures"};



json::value nullable(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }

std::vector<std::string> split_roles(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// A request's scope.roles as the who_value column keeps them: "pupils,staff" (split_roles).
std::string joined_roles(const json::object& scope) {
  std::string roles;
  for (const auto& r : scope.at("roles").as_array()) roles += (roles.empty() ? "" : ",") + std::string(r.as_string());
  return roles;
}

// Whom an exception opens the site for, as list and show give it: {"kind", "value"}. An
// exception approved before schema 4 (who NULL) has the request's scope as filed.
json::object exception_who(const std::optional<std::string>& who, const std::optional<std::string>& value,
                           const json::object& scope) {
  if (!who) {
    if (auto roles = joined_roles(scope); !roles.empty()) return {{"kind", "role"}, {"value", roles}};
    if (scope.at("user").is_string()) return {{"kind", "user"}, {"value", scope.at("user")}};
    return {{"kind", "client"}, {"value", scope.at("client")}};
  }
  return {{"kind", *who}, {"value", nullable(value)}};
}

// The scope approve gives an exception (exception_store::approve, `narrow`): the who/who_value
// columns, or an error saying why the request cannot be narrowed so.
struct narrowing {
  std::string who, value, error;
};

narrowing narrow_request(const json::object& request, const std::optional<std::string>& asked) {
  const auto& by = request.at("asked_by").as_object();
  const auto& scope = request.at("scope").as_object();
  const std::string id = std::to_string(request.at("id").as_int64());
  auto text = [](const json::value& v) { return v.is_string() ? std::string(v.as_string()) : std::string(); };
  const std::string asker = text(by.at("user")).empty() ? text(scope.at("user")) : text(by.at("user"));
  // The device the form came from: its address, and the name the DHCP leases gave it when
  // they did ("NAME@ADDRESS"): both must match, so a device that takes the name elsewhere gets
  // nothing (an exception never widens on a name alone), and a moved lease closes it.
  const bool from_device = request.at("source") == "block page" && request.at("client").is_string();
  std::string device = text(request.at("client"));
  if (auto d = rules::parse_device(text(by.at("device"))); d && d->by == rules::device_key::name)
    device = d->text + "@" + device;
  const std::string roles = joined_roles(scope);
  if (!asked) {
    if (!asker.empty()) return {"user", asker, ""};
    if (from_device) return {"device", device, ""};
    if (!roles.empty()) return {"role", roles, ""};
    return {"client", text(scope.at("client")), ""};
  }
  const std::string_view a = *asked;
  if (a == "user") {
    if (asker.empty())
      return {"", "", "request " + id + " was not sent by a signed-in user: there is no user to narrow it to "
                      "(--who device, group:NAME or role)"};
    return {"user", asker, ""};
  }
  if (a == "device") {
    if (!from_device)
      return {"", "", "request " + id + " did not come from a device's block page: there is no device to "
                      "narrow it to (--who user, group:NAME or role)"};
    return {"device", device, ""};
  }
  if (a == "role") {
    if (roles.empty()) return {"", "", "request " + id + " names no role: it was filed for a user or a network"};
    return {"role", roles, ""};
  }
  if (a.starts_with("group:")) {
    std::string group(a.substr(6));
    const auto first = group.find_first_not_of(" \t");
    const auto last = group.find_last_not_of(" \t");
    group = first == std::string::npos ? std::string() : group.substr(first, last - first + 1);
    if (group.empty() || group.size() > 256) return {"", "", "'who' group:NAME needs a directory group's name (1 to 256 characters)"};
    return {"group", group, ""};
  }
  return {"", "", "'who' must be user, group:NAME, device or role, not '" + std::string(a) + "'"};
}

}  // namespace

seconds_t now_seconds() { return std::chrono::floor<std::chrono::seconds>(clock::now()); }

std::string exception_store::iso(std::int64_t unix_seconds) const {
  return rules::iso8601_local(zone_, seconds_t{std::chrono::seconds{unix_seconds}});
}

namespace {

// Why a store could not be opened or prepared, in the technician's words, when the file system
// says: SQLite's own ("disk I/O error", "attempt to write a readonly database") named the
// symptom of a full disk, a read-only mount or a symbolic link, not the cause (admin audit,
// 2026-12-05, F11). Empty when nothing here explains it.
std::string store_problem(const std::filesystem::path& dir, const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      const auto target = std::filesystem::read_symlink(path, ec);
      return path.string() + " is a symbolic link" + (ec ? std::string() : " to " + target.string()) +
             ": SQLite keeps the store's -wal and -shm files beside the file it points to, where hallpass's user may "
             "not write. Keep the store itself in the state directory";
    }
    if (!S_ISREG(st.st_mode)) return path.string() + " is not a regular file";
  }
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) == 0) {
    if (fs.f_flag & ST_RDONLY) return "the file system holding " + dir.string() + " is mounted read-only";
    if (fs.f_bavail == 0 || (fs.f_files > 0 && fs.f_favail == 0)) {
      return "the file system holding " + dir.string() + " is full: free some space";
    }
  }
  if (::lstat(path.c_str(), &st) == 0 && ::access(path.c_str(), R_OK | W_OK) != 0) {
    return path.string() + " cannot be read and written by this user (uid " + std::to_string(::geteuid()) +
           "): give it to hallpass's user (chown)";
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return dir.string() + " cannot be written by this user (uid " + std::to_string(::geteuid()) + ")";
  }
  return {};
}

// SQLite's words, after the cause when one is found.
std::string with_cause(const std::filesystem::path& dir, const std::filesystem::path& path, const std::string& e) {
  auto cause = store_problem(dir, path);
  // Locked by another program at the start: said as a running daemon says it (outside-in audit
  // of operations, 2026-12-07, L1: a bare "database is locked").
  if (cause.empty() && (e.find("locked") != std::string::npos || e.find("busy") != std::string::npos)) {
    cause = "another program holds the store's lock (a backup, or sqlite3 left open on " + path.string() +
            "?): end it, and hallpass can start";
  }
  return cause.empty() ? e : cause + " (SQLite: " + e + ")";
}

}  // namespace

std::unique_ptr<exception_store> exception_store::open(const std::string& dir, const rules::time_zone& zone,
                                                       std::string* error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path path = fs::path(dir) / "hallpass.db";
  const fs::path made = fs::path(dir) / made_marker;
  // A store that was there and is not (deleted, or emptied by a bad copy or a full disk's
  // repair) must not quietly become a new, empty one: every exception, local block, ban and the
  // audit log would be gone without a word, and reported sites open again (outside-in audit H,
  // 2026-12-05). hallpass.db.made, written beside the first store, says one was made here.
  // An empty file is never a store, whatever is beside it: a store in WAL mode has its first
  // page in the main file from the start, and SQLite ignores a -wal beside an empty file and
  // deletes it at close. Opening one after a crash and a bad copy lost the -wal's every block
  // (admin audit, 2026-12-05, F1), so it is refused before SQLite sees it.
  const auto size_of = [&](const fs::path& p) {
    std::error_code e;
    const auto n = fs::file_size(p, e);
    return e ? std::uintmax_t{0} : n;
  };
  const bool exists = fs::exists(path, ec);
  if (!exists && fs::exists(made, ec)) {
    if (error) {
      *error = path.string() + " is missing, though a store was made in " + dir +
               " (hallpass.db.made): its exceptions, local blocks, bans and audit log would be lost. Restore it from "
               "a backup; to start with an empty store on purpose, delete " + made.string();
    }
    return nullptr;
  }
  const std::string wal = path.string() + "-wal";
  if (exists && fs::is_regular_file(path, ec) && size_of(path) == 0) {
    if (error) {
      *error = path.string() + " is empty (0 bytes): its exceptions, local blocks, bans and audit log are not in it. " +
               (size_of(wal) > 0 ? "The " + wal + " beside it cannot be read without it: keep both aside. " : "") +
               "Restore it from a backup; to start with an empty store on purpose, delete it" +
               (size_of(wal) > 0 ? " and its -wal" : "") +
               (fs::exists(made, ec) ? " and " + made.string() : std::string());
    }
    return nullptr;
  }
  // A start that creates the store and then fails (a full disk) takes away what it created:
  // left behind, its empty file would be refused at every later start as a store that lost its
  // data (admin audit, 2026-12-05, F11). A file that was there before is never removed.
  const std::string shm = path.string() + "-shm";
  const bool wal_existed = fs::exists(wal, ec), shm_existed = fs::exists(shm, ec);
  const auto forget_created = [&] {
    if (exists) return;
    fs::remove(path, ec);
    if (!wal_existed) fs::remove(wal, ec);
    if (!shm_existed) fs::remove(shm, ec);
  };
  std::string open_error;
  auto db = database::open(path.string(), &open_error);
  if (!db) {
    if (error) *error = with_cause(dir, path, open_error);
    forget_created();
    return nullptr;
  }
  // A damaged store (a bad sector, a copy cut short, a page overwritten): SQLite reads what it
  // can and gives NULL for what it cannot, so a local block read back as an allow and the page
  // the staff reported opened again without a word, while `reports` still said it was blocked
  // (admin audit, 2026-12-06). quick_check reads every page and index once (a school's store of
  // some MB: milliseconds) and a damaged one is refused, fail closed, before anything is read.
  if (exists) {
    std::string failure;  // the check could not run (a lock held past the busy timeout, I/O)
    auto check = db->prepare("PRAGMA quick_check(5)", &failure);
    std::string found;  // what the check reports: the damage
    while (check && check.step(&failure)) {
      const std::string row = check.text(0);
      if (row == "ok") break;
      found += (found.empty() ? "" : "; ") + row;
    }
    const bool damaged = !found.empty() || failure.find("malformed") != std::string::npos ||
                         failure.find("not a database") != std::string::npos;
    if (damaged) {
      if (error) {
        *error = path.string() + " is damaged (SQLite's integrity check: " + (found.empty() ? failure : found) +
                 "): what it holds of exceptions, local blocks and bans cannot be trusted, and a block read from it "
                 "could come back as an allow. Stop here; keep the damaged files aside, then restore hallpass.db from "
                 "a backup and remove any hallpass.db-wal and hallpass.db-shm beside it (deploy/README.md, \"Backups\"); "
                 "or, to start with an empty store on purpose, move hallpass.db, its -wal and -shm away and delete " +
                 made.string();
      }
      return nullptr;
    }
    if (!failure.empty()) {
      if (error) *error = "cannot check " + path.string() + " (SQLite's integrity check did not run: " + failure + ")";
      return nullptr;
    }
  }
  std::unique_ptr<exception_store> s(new exception_store(std::move(*db), zone));
  if (auto e = s->migrate(); !e.empty()) {
    if (error) *error = "cannot prepare the store's tables: " + with_cause(dir, path, e);
    s.reset();  // closed before its files go
    forget_created();
    return nullptr;
  }
  s->made_now_ = !exists;
  s->path_ = path.string();
  if (struct stat st {}; ::stat(s->path_.c_str(), &st) == 0) s->opened_ = std::pair{st.st_dev, st.st_ino};
  // In WAL mode (store/sqlite.cpp) the -wal is there from the first transaction (migrate's)
  // until the last connection closes; a file system without WAL has none to watch.
  if (struct stat st {}; ::stat((s->path_ + "-wal").c_str(), &st) == 0) s->wal_watched_ = true;
  if (!fs::exists(made, ec)) {
    // Best effort: without it, a store deleted later is made again as before (and said so here).
    std::ofstream out(made);
    out << "A hallpass store was made in this directory at " << s->iso(now_seconds().time_since_epoch().count())
        << ".\nIf hallpass.db is missing, hallpass refuses to start rather than make an empty one.\n";
  }
  return s;
}

std::string exception_store::files_replaced() const {
  if (!opened_) return {};
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno != ENOENT) return {};  // unreadable for a moment (a permission change): not a deletion
    return path_ + " was deleted while hallpass runs: changes now would be lost at the next start";
  }
  if (std::pair{st.st_dev, st.st_ino} != *opened_) {
    return path_ + " was replaced by another file while hallpass runs (a restored backup?): changes now would go to "
                   "the file it replaced, and be lost";
  }
  // In WAL mode the -wal is there as long as the store is open; without it, what is written
  // goes to a deleted file, lost if the gateway stops before a checkpoint.
  if (wal_watched_ && ::stat((path_ + "-wal").c_str(), &st) != 0 && errno == ENOENT) {
    return path_ + "-wal was deleted while hallpass runs: changes now could be lost";
  }
  return {};
}

std::unique_ptr<exception_store> exception_store::open_read_only(const std::string& dir,
                                                                 const rules::time_zone& zone, std::string* error) {
  const auto path = std::filesystem::path(dir) / "hallpass.db";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    if (error) *error = path.string() + " does not exist";
    return nullptr;
  }
  auto db = database::open_read_only(path.string(), error);
  if (!db) return nullptr;
  return std::unique_ptr<exception_store>(new exception_store(std::move(*db), zone));
}

std::string exception_store::migrate() {
  // One transaction: a store is either brought fully up to date or left as it was.
  transaction tx(db_);
  if (!tx.error().empty()) return tx.error();
  std::string err;
  std::int64_t version = 0;
  {
    auto st = db_.prepare("PRAGMA user_version", &err);
    if (!st || !st.step(&err)) return err.empty() ? "cannot read the schema version" : err;
    version = st.integer(0);
  }
  if (version > schema_version) {
    return "it was made by a newer hallpass (schema " + std::to_string(version) + "; this one knows schema " +
           std::to_string(schema_version) + " and older), and could lose what it holds: run the newer hallpass, " +
           "or restore the store from before the upgrade";
  }
  // A store made at `version` has every table of that version: one missing was dropped (by hand
  // in sqlite3, a partial restore) and would be made again empty here, its local blocks, bans or
  // audit log gone and the filter open where they closed it (outside-in audit of operations,
  // 2026-12-07, M1). Refused, as a damaged store is.
  if (version > 0) {
    struct since {
      const char* table;
      std::int64_t version;
    };
    static constexpr since tables[] = {{"requests", 1}, {"exceptions", 1}, {"reports", 1},        {"local_entries", 1},
                                       {"audit", 1},    {"bans", 3},       {"incidents", 5}, {"incident_actions", 5}};
    for (const auto& t : tables) {
      if (version < t.version) continue;
      auto st = db_.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", &err);
      if (!st) return err;
      st.bind(1, std::string_view(t.table));
      if (!st.step(&err)) return err.empty() ? "cannot read the store's tables" : err;
      if (st.integer(0) == 0) {
        return std::string("its table '") + t.table + "' is missing (the store is at schema " + std::to_string(version) +
               ", which has it): it was dropped or lost, and what it held (exceptions, local blocks, bans, the audit "
               "log) would be gone. Restore the store from a backup (deploy/README.md, \"Backups\")";
      }
    }
  }
  if (auto e = db_.exec(schema_1); !e.empty()) return e;
  if (auto e = db_.exec(audit_delete_trigger); !e.empty()) return e;
  for (const auto& c : added_columns) {
    bool present = false;
    auto info = db_.prepare(std::string("PRAGMA table_info(") + c.table + ")", &err);
    if (!info) return err;
    while (info.step(&err)) present = present || info.text(1) == c.name;
    if (!err.empty()) return err;
    if (present) continue;
    if (auto e = db_.exec(std::string("ALTER TABLE ") + c.table + " ADD COLUMN " + c.name + " " + c.definition);
        !e.empty())
      return e;
  }
  for (const char* t : added_tables) {
    if (auto e = db_.exec(t); !e.empty()) return e;
  }
  if (auto e = db_.exec("PRAGMA user_version = " + std::to_string(schema_version)); !e.empty()) return e;
  return tx.commit();
}

std::string exception_store::write_audit(const actor& who, const std::string& action, const std::string& object,
                                         const json::value& before, const json::value& after, const std::string& reason,
                                         const std::string& outcome) {
  std::string err;
  auto st = db_.prepare(
      "INSERT INTO audit(at, os_user, admin_role, action, object, before_json, after_json, reason, outcome) "
      "VALUES(?,?,?,?,?,?,?,?,?)",
      &err);
  if (!st) return err;
  st.bind(1, now_seconds().time_since_epoch().count())
      .bind(2, who.os_user)
      .bind(3, who.admin_role)
      .bind(4, action)
      .bind(5, object);
  // Stored as JSON that reads back: its text made valid UTF-8 (valid_json.hpp).
  const auto text = [](const json::value& v) {
    json::value copy = v;
    make_valid_utf8(copy);
    return json::serialize(copy);
  };
  if (before.is_null()) st.bind_null(6); else st.bind(6, text(before));
  if (after.is_null()) st.bind_null(7); else st.bind(7, text(after));
  st.bind(8, rules::valid_utf8(reason)).bind(9, outcome);
  return st.run();
}

result exception_store::audit_and_commit(transaction& tx, const actor& who,
                                         const std::string& action, const std::string& object,
                                         const json::value& before, const json::value& after,
                                         const std::string& reason, const std::string& outcome,
                                         json::value data) {
  if (auto e = write_audit(who, action, object, before, after, reason, outcome); !e.empty())
    return result::fail("internal", e);
  return commit(tx, std::move(data));
}

result exception_store::commit(transaction& tx, json::value data) {
  if (auto e = tx.commit(); !e.empty()) return result::fail("internal", e);
  result r;
  r.data = std::move(data);
  return r;
}

std::string exception_store::audit_event(const actor& who, const std::string& action, const std::string& object,
                                         const std::string& reason, const std::string& outcome) {
  auto e = write_audit(who, action, object, nullptr, nullptr, reason, outcome);
  if (!e.empty()) {
    // Nothing else records it: the journal must (audit14 D3: a full disk lost these silently).
    std::cerr << "hallpass: warning: the audit log could not be written (" << e << "): " << action << " "
              << rules::terminal_safe(object) << " by " << rules::terminal_safe(who.os_user) << ", " << outcome
              << std::endl;
  }
  return e;
}

std::string exception_store::audit_refusal(const actor& who, const std::string& action, const std::string& object,
                                           const std::string& why) {
  return audit_event(who, action, object, why, "refused");
}

std::optional<json::object> exception_store::request_object(std::int64_t id, seconds_t now) {
  std::string err;
  auto st = db_.prepare(
      "SELECT r.id, r.created_at, r.url, r.requester, r.reasons, r.site_content, r.risks, r.control_measures, "
      "r.scope_roles, r.scope_user, r.scope_client, r.filed_by, r.source, r.client_address, r.decision, "
      "r.decided_by, r.decided_at, r.decision_reason, e.kind, e.display, e.valid_from, e.valid_until, "
      "e.revoked_by, e.revoked_at, e.revoke_reason, r.reviewer_site_content, r.review_note, r.reviewed_by, "
      "r.reviewed_role, r.reviewed_at, r.asker_user, r.asker_device, r.asker_mac, e.who, e.who_value "
      "FROM requests r LEFT JOIN exceptions e ON e.request_id = r.id WHERE r.id = ?",
      &err);
  if (!st) return std::nullopt;
  st.bind(1, id);
  if (!st.step(&err)) return std::nullopt;
  json::object o;
  o["id"] = st.integer(0);
  o["created"] = iso(st.integer(1));
  o["url"] = st.text(2);
  o["requester"] = st.text(3);
  o["reasons"] = st.text(4);
  o["site_content"] = st.text(5);
  o["risks"] = st.text(6);
  o["control_measures"] = st.text(7);
  json::array to_complete;
  for (const auto* field : adult_questions) {
    if (rules::is_blank(o[field].as_string())) to_complete.emplace_back(field);
  }
  o["to_complete"] = std::move(to_complete);
  if (!st.is_null(27)) {
    o["review"] = json::object{{"by", st.text(27)},           {"role", st.text(28)}, {"at", iso(st.integer(29))},
                               {"site_content", st.text(25)}, {"note", st.text(26)}};
  } else {
    o["review"] = nullptr;
  }
  json::array roles;
  for (auto& r : split_roles(st.text(8))) roles.emplace_back(r);
  o["scope"] = json::object{{"roles", roles}, {"user", nullable(st.optional_text(9))}, {"client", nullable(st.optional_text(10))}};
  o["filed_by"] = st.text(11);
  o["source"] = st.text(12);
  o["client"] = nullable(st.optional_text(13));
  o["asked_by"] = json::object{{"user", nullable(st.optional_text(30))},
                               {"device", nullable(st.optional_text(31))},
                               {"mac", nullable(st.optional_text(32))}};
  const auto decision = st.optional_text(14);
  std::string status = "pending";
  if (decision) {
    o["decision"] = json::object{{"by", st.text(15)}, {"at", iso(st.integer(16))}, {"reason", st.text(17)},
                                 {"outcome", *decision}};
    status = *decision;
  } else {
    o["decision"] = nullptr;
  }
  if (!st.is_null(18)) {
    json::object e;
    e["kind"] = st.text(18);
    e["value"] = st.text(19);
    e["from"] = iso(st.integer(20));
    e["until"] = iso(st.integer(21));
    e["who"] = exception_who(st.optional_text(33), st.optional_text(34), o["scope"].as_object());
    if (!st.is_null(22)) {
      e["revoked"] = json::object{{"by", st.text(22)}, {"at", iso(st.integer(23))}, {"reason", st.text(24)}};
      status = "revoked";
    } else {
      e["revoked"] = nullptr;
      status = st.integer(21) <= now.time_since_epoch().count() ? "expired" : "approved";
    }
    o["exception"] = std::move(e);
  } else {
    o["exception"] = nullptr;
  }
  o["status"] = status;
  return o;
}

result exception_store::file_request(const actor& who, const request_form& f) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  std::string err;
  if (f.client_address) {
    // The same person on the same device asking again for the same URL while their request
    // waits: one request, not five (the answer says so). The repeat is audited, so nothing
    // asked is lost. Another person signed in on the device (a classroom PC) files their own:
    // merging by device told the second pupil of the first's request and its number, and left
    // the approval's default scope the first pupil's (audit of privacy, 2026-12-06, M2).
    // `IS` compares NULL with NULL as equal: nobody signed in, the device's own request.
    auto same = db_.prepare(
        "SELECT id FROM requests WHERE decision IS NULL AND client_address = ? AND url = ? AND asker_user IS ? "
        "ORDER BY id LIMIT 1",
        &err);
    if (!same) return result::fail("internal", err);
    same.bind(1, *f.client_address).bind(2, f.url).bind_optional(3, f.asker_user);
    if (same.step(&err)) {
      const auto id = same.integer(0);
      json::object asked{{"requester", f.requester}, {"reasons", f.reasons}, {"client", *f.client_address}};
      return audit_and_commit(tx, who, "request", "request " + std::to_string(id), nullptr, asked,
                              f.reasons, "merged",
                              json::object{{"id", id}, {"status", "pending"}, {"merged", true}});
    }
    if (!err.empty()) return result::fail("internal", err);
    if (f.source == "block page" && !f.past_pending_cap) {
      // The asker: the signed-in user (or nobody) on the device, the device by its address or,
      // where known, its hardware address (a pupil on IPv6 privacy addresses is one device: the
      // review of the session, 2026-12-07).
      auto waiting = db_.prepare(
          "SELECT count(*) FROM requests WHERE decision IS NULL AND source = 'block page' AND asker_user IS ? "
          "AND (client_address = ? OR (?3 IS NOT NULL AND asker_mac = ?3))",
          &err);
      if (!waiting) return result::fail("internal", err);
      waiting.bind_optional(1, f.asker_user).bind(2, *f.client_address).bind_optional(3, f.device_mac);
      if (!waiting.step(&err)) return result::fail("internal", err.empty() ? "no count of waiting requests" : err);
      if (waiting.integer(0) >= max_pending_per_asker) {
        return result::fail("too_many_pending", std::to_string(waiting.integer(0)) +
                                                    " requests from this asker are waiting for a decision");
      }
    }
  }
  auto st = db_.prepare(
      "INSERT INTO requests(created_at, url, requester, reasons, site_content, risks, control_measures, scope_roles, "
      "scope_user, scope_client, filed_by, source, client_address, asker_user, asker_device, asker_mac) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      &err);
  if (!st) return result::fail("internal", err);
  std::string roles;
  for (const auto& r : f.roles) roles += (roles.empty() ? "" : ",") + r;
  // The block page asks a pupil only what they need and why; the adult questions are for the
  // technician or headteacher (review). Answers to them in a form posted from a device did
  // not come from the page, and must not make the form look assessed.
  const bool from_device = f.source == "block page";
  st.bind(1, now_seconds().time_since_epoch().count())
      .bind(2, f.url)
      .bind(3, f.requester)
      .bind(4, f.reasons)
      .bind(5, f.site_content)
      .bind(6, from_device ? std::string() : f.risks)
      .bind(7, from_device ? std::string() : f.control_measures)
      .bind(8, roles)
      .bind_optional(9, f.user)
      .bind_optional(10, f.client)
      .bind(11, who.os_user)
      .bind(12, f.source)
      .bind_optional(13, f.client_address)
      .bind_optional(14, f.asker_user)
      .bind_optional(15, f.device_name)
      .bind_optional(16, f.device_mac);
  if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  const auto id = db_.last_insert_id();
  auto after = request_object(id, now_seconds());
  return audit_and_commit(tx, who, "request", "request " + std::to_string(id), nullptr, *after,
                          f.reasons, "ok",
                          json::object{{"id", id}, {"status", "pending"}, {"merged", false}});
}

result exception_store::change_request(const actor& who, std::int64_t id, const char* action, const char* need,
                                       const std::string& reason, const std::function<std::string()>& apply,
                                       const refusal_check& refuse) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto now = now_seconds();
  auto before = request_object(id, now);
  if (!before) return result::fail("not_found", "there is no request " + std::to_string(id));
  const std::string status((*before)["status"].as_string());
  // `need` may name several statuses, joined with '|' ("approved|expired").
  const auto needed = [&] {
    for (std::string_view rest(need); !rest.empty();) {
      const auto bar = rest.find('|');
      if (rest.substr(0, bar) == status) return true;
      rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    }
    return false;
  };
  if (!needed()) {
    const std::string_view verb(action);
    const char* why = verb == "revoke"   ? ": only an approved, unexpired exception can be revoked"
                      : verb == "review" ? ": only a pending request can be completed (its form stays as it was "
                                           "when it was decided)"
                      : verb == "extend" ? ": only an approved exception, in force or expired, can be extended; a "
                                           "revoked or denied one stays closed (file the request again)"
                                         : "";
    std::string wanted(need);
    std::replace(wanted.begin(), wanted.end(), '|', '/');
    return result::fail("conflict", "request " + std::to_string(id) + " is " + status + ", not " + wanted + why);
  }
  std::string audit_reason = reason;
  if (refuse) {
    if (auto refused = refuse(*before, audit_reason)) {
      auto audited = audit_and_commit(tx, who, action, "request " + std::to_string(id), *before,
                                      nullptr, refused->error, "refused", nullptr);
      return audited.ok ? *refused : audited;
    }
  }
  if (auto e = apply(); !e.empty()) return result::fail("internal", e);
  auto after = request_object(id, now);
  return audit_and_commit(tx, who, action, "request " + std::to_string(id), *before, *after,
                          audit_reason, "ok", *after);
}

result exception_store::review(const actor& who, std::int64_t id, const request_review& rv) {
  struct field {
    const char* arg;     // the protocol's name
    const char* column;  // in requests
    const char* words;   // for the audit entry
    const std::optional<std::string>& value;
  };
  const field fields[] = {{"risks", "risks", "identified risks", rv.risks},
                          {"control_measures", "control_measures", "control measures", rv.control_measures},
                          {"site_content", "reviewer_site_content", "site content", rv.site_content},
                          {"note", "review_note", "note", rv.note}};
  std::string completed;
  for (const auto& f : fields) {
    if (!f.value) continue;
    if (rules::is_blank(*f.value)) return result::fail("bad_request", std::string("'") + f.arg + "' must not be empty");
    if (const auto n = rules::code_points(*f.value); n > max_review_chars) {
      return result::fail("bad_request", std::string("'") + f.arg + "' is " + std::to_string(n) +
                                             " characters long: at most " + std::to_string(max_review_chars));
    }
    completed += (completed.empty() ? "" : ", ") + std::string(f.words);
  }
  if (completed.empty()) {
    return result::fail("bad_request",
                        "nothing to complete: give at least one of 'risks', 'control_measures', 'site_content' and "
                        "'note'");
  }
  return change_request(who, id, "review", "pending", "completed " + completed, [&]() -> std::string {
    // Only the columns given, and the reviewer; the requester's own words are not touched.
    std::string sql = "UPDATE requests SET reviewed_by=?, reviewed_role=?, reviewed_at=?";
    for (const auto& f : fields) {
      if (f.value) sql += std::string(", ") + f.column + "=?";
    }
    sql += " WHERE id=?";
    std::string err;
    auto upd = db_.prepare(sql, &err);
    if (!upd) return err;
    upd.bind(1, who.os_user).bind(2, who.admin_role).bind(3, now_seconds().time_since_epoch().count());
    int i = 4;
    for (const auto& f : fields) {
      if (f.value) upd.bind(i++, std::string_view(*f.value));
    }
    upd.bind(i, id);
    return upd.run();
  });
}

std::string exception_store::decide_request(std::int64_t id, const actor& who, const char* decision,
                                            const std::string& reason) {
  std::string err;
  auto upd = db_.prepare("UPDATE requests SET decision=?, decided_by=?, decided_at=?, decision_reason=? WHERE id=?",
                         &err);
  if (!upd) return err;
  upd.bind(1, decision).bind(2, who.os_user).bind(3, now_seconds().time_since_epoch().count()).bind(4, reason).bind(5, id);
  return upd.run();
}

result exception_store::approve(const actor& who, std::int64_t id, seconds_t from, seconds_t until, rules::target t,
                                const std::string& reason, const std::optional<std::string>& narrow) {
  // The headteacher signs the school's form under its "identified risks and control
  // measures" (000 7.5 and appendix). Issue 4's interface (file a request, then approve it)
  // must keep working for scripts and the block page's forms, so an incomplete form is
  // approved, never refused: the answer warns how to complete it, and the audit entry's
  // reason records that it was approved without them.
  std::string missing;
  narrowing scope;
  auto note_incomplete = [&](const json::object& before, std::string& audit_reason) -> std::optional<result> {
    scope = narrow_request(before, narrow);
    if (!scope.error.empty()) return result::fail("bad_request", scope.error);
    for (const auto& q : before.at("to_complete").as_array()) {
      missing += (missing.empty() ? "" : " and ") +
                 std::string(q.as_string() == "risks" ? "identified risks" : "control measures");
    }
    if (!missing.empty()) {
      audit_reason += std::string(audit_reason.empty() ? "" : " ") + "(approved without the form's " + missing + ")";
    }
    return std::nullopt;
  };
  auto r = change_request(
      who, id, "approve", "pending", reason,
      [&]() -> std::string {
    if (auto e = decide_request(id, who, "approved", reason); !e.empty()) return e;
    std::string err;
    auto ins = db_.prepare(
        "INSERT INTO exceptions(request_id, kind, host, path, display, valid_from, valid_until, who, who_value) "
        "VALUES(?,?,?,?,?,?,?,?,?)",
        &err);
    if (!ins) return err;
    ins.bind(8, scope.who).bind(9, scope.value);
    ins.bind(1, id)
        .bind(2, rules::to_string(t.kind))
        .bind(3, t.host)
        .bind(4, t.path)
        .bind(5, t.text)
        .bind(6, from.time_since_epoch().count())
        .bind(7, until.time_since_epoch().count());
    return ins.run();
      },
      note_incomplete);
  if (r.ok && !missing.empty()) {
    const std::string n = std::to_string(id);
    r.warning = "request " + n + "'s form was approved without its " + missing + " (complete them with hallpassctl review " +
                n + ")";
  }
  return r;
}

result exception_store::deny(const actor& who, std::int64_t id, const std::string& reason) {
  return change_request(who, id, "deny", "pending", reason,
                        [&] { return decide_request(id, who, "denied", reason); });
}

result exception_store::revoke(const actor& who, std::int64_t id, const std::string& reason) {
  return change_request(who, id, "revoke", "approved", reason, [&]() -> std::string {
    std::string err;
    auto upd =
        db_.prepare("UPDATE exceptions SET revoked_by=?, revoked_at=?, revoke_reason=? WHERE request_id=?", &err);
    if (!upd) return err;
    upd.bind(1, who.os_user).bind(2, now_seconds().time_since_epoch().count()).bind(3, reason).bind(4, id);
    return upd.run();
  });
}

result exception_store::extend(const actor& who, std::int64_t id, seconds_t until, const std::string& reason) {
  auto later_only = [&](const json::object&, std::string& audit_reason) -> std::optional<result> {
    std::string err;
    auto q = db_.prepare("SELECT valid_until FROM exceptions WHERE request_id=?", &err);
    if (!q) return result::fail("internal", err);
    q.bind(1, id);
    if (!q.step(&err)) {
      // Approved with no exception row: a damaged or hand-edited store (retention removes both
      // together). Not the store failing: the request must be filed again.
      if (!err.empty()) return result::fail("internal", err);
      return result::fail("conflict", "request " + std::to_string(id) +
                                          " has no exception left to extend: file the request again");
    }
    const std::int64_t was = q.integer(0);
    if (until.time_since_epoch().count() <= was) {
      return result::fail("bad_request", "request " + std::to_string(id) + "'s exception already lasts until " + iso(was) +
                                             ": give a later end (an exception is shortened by revoking it)");
    }
    audit_reason = "until " + iso(until.time_since_epoch().count()) + ", was " + iso(was) +
                   (reason.empty() ? std::string() : ": " + reason);
    return std::nullopt;
  };
  return change_request(
      who, id, "extend", "approved|expired", reason,
      [&]() -> std::string {
        std::string err;
        auto upd = db_.prepare("UPDATE exceptions SET valid_until=? WHERE request_id=?", &err);
        if (!upd) return err;
        upd.bind(1, until.time_since_epoch().count()).bind(2, id);
        return upd.run();
      },
      later_only);
}

result exception_store::show(std::int64_t id) {
  auto o = request_object(id, now_seconds());
  if (!o) return result::fail("not_found", "there is no request " + std::to_string(id));
  result r;
  r.data = *o;
  return r;
}

result exception_store::list(list_filter filter, std::size_t limit, std::optional<std::int64_t> before) {
  const auto now = now_seconds();
  // A request's status as request_object() derives it, in SQL, so that the newest `limit`
  // matching rows are read and the older ones only counted: a store that pupils' forms have
  // filled must not be read whole for one `list` (review, 2026-12-05).
  static constexpr const char* status_sql =
      "CASE WHEN e.kind IS NOT NULL THEN (CASE WHEN e.revoked_by IS NOT NULL THEN 'revoked' "
      "WHEN e.valid_until <= ?1 THEN 'expired' ELSE 'approved' END) "
      "ELSE COALESCE(r.decision, 'pending') END";
  const char* wanted = filter == list_filter::pending   ? "pending"
                       : filter == list_filter::active  ? "approved"
                       : filter == list_filter::expired ? "expired"
                                                        : nullptr;
  std::string where = wanted ? std::string(" WHERE ") + status_sql + " = ?2" : std::string();
  if (before) where += (where.empty() ? " WHERE" : " AND") + std::string(" r.id < ?4");
  const std::string from = " FROM requests r LEFT JOIN exceptions e ON e.request_id = r.id" + where;
  auto bind_filter = [&](statement& st) {
    if (wanted) st.bind(1, now.time_since_epoch().count()).bind(2, std::string(wanted));
    if (before) st.bind(4, *before);
  };
  return newest_page("requests", "r.id", from, bind_filter, 3, limit, max_audit_bytes,
                     [&](std::int64_t id) { return request_object(id, now); });
}

result exception_store::newest_page(const char* key, const std::string& id_column, const std::string& from,
                                    const std::function<void(statement&)>& bind, int limit_parameter, std::size_t limit,
                                    std::size_t max_bytes,
                                    const std::function<std::optional<json::object>(std::int64_t)>& object) {
  std::string err;
  auto count = db_.prepare("SELECT COUNT(*)" + from, &err);
  if (!count) return result::fail("internal", err);
  bind(count);
  if (!count.step(&err)) return result::fail("internal", err.empty() ? std::string("count of ") + key + " failed" : err);
  const auto total = static_cast<std::size_t>(count.integer(0));
  auto st = db_.prepare("SELECT " + id_column + from + " ORDER BY " + id_column + " DESC LIMIT ?" +
                            std::to_string(limit_parameter),
                        &err);
  if (!st) return result::fail("internal", err);
  bind(st);
  st.bind(limit_parameter, static_cast<std::int64_t>(limit));
  json::array newest_first;
  std::size_t bytes = 0;
  while (st.step(&err)) {
    auto o = object(st.integer(0));
    if (!o) continue;  // gone between the two reads, or unreadable: counted in "omitted"
    bytes += json::serialize(*o).size();
    if (!newest_first.empty() && bytes > max_bytes) break;  // the rest are counted in "omitted"
    newest_first.push_back(std::move(*o));
  }
  if (!err.empty()) return result::fail("internal", err);
  json::array out;
  out.reserve(newest_first.size());
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) out.push_back(std::move(*it));
  const std::size_t shown = out.size();
  result r;
  r.data = json::object{{key, std::move(out)}};
  if (total > shown) r.data.as_object()["omitted"] = static_cast<std::int64_t>(total - shown);
  return r;
}

result exception_store::add_local(const actor& who, bool block, const rules::target& t, const std::string& reason) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  std::string err;
  auto st = db_.prepare(
      "INSERT INTO local_entries(block, kind, host, path, display, reason, created_by, created_at) "
      "VALUES(?,?,?,?,?,?,?,?)",
      &err);
  if (!st) return result::fail("internal", err);
  st.bind(1, block ? 1 : 0)
      .bind(2, rules::to_string(t.kind))
      .bind(3, t.host)
      .bind(4, t.path)
      .bind(5, t.text)
      .bind(6, reason)
      .bind(7, who.os_user)
      .bind(8, now_seconds().time_since_epoch().count());
  if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  const auto id = db_.last_insert_id();
  json::object after{{"id", id}, {"block", block}, {"kind", rules::to_string(t.kind)}, {"value", t.text}};
  return audit_and_commit(
      tx, who, block ? "block" : "allow", "local entry " + std::to_string(id), nullptr, after,
      reason, "ok",
      json::object{{"id", id}, {"value", t.text}, {"kind", rules::to_string(t.kind)}});
}

result exception_store::remove_local(const actor& who, std::int64_t id, const std::string& reason) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  std::string err;
  auto sel = db_.prepare(
      "SELECT l.display, l.block, r.id, r.nature, r.reporter, r.filed_by, r.created_at, l.created_by "
      "FROM local_entries l LEFT JOIN reports r ON r.id = l.report_id WHERE l.id=? AND l.removed_at IS NULL",
      &err);
  if (!sel) return result::fail("internal", err);
  sel.bind(1, id);
  if (!sel.step(&err)) return result::fail("not_found", "there is no active local entry " + std::to_string(id));
  json::object before{{"id", id}, {"value", sel.text(0)}, {"block", sel.integer(1) != 0}};
  // A block that came from a report of inappropriate content (000 7.3): the answer says which,
  // so that the daemon can tell the DSL it was removed (alerts.unblocked_reports).
  json::value report = nullptr;
  if (!sel.is_null(2)) {
    report = json::object{{"id", sel.integer(2)},       {"nature", sel.text(3)},
                          {"reporter", sel.text(4)},    {"filed_by", sel.text(5)},
                          {"created", iso(sel.integer(6))}, {"blocked_by", sel.text(7)}};
  }
  auto upd = db_.prepare("UPDATE local_entries SET removed_by=?, removed_at=?, remove_reason=? WHERE id=?", &err);
  if (!upd) return result::fail("internal", err);
  upd.bind(1, who.os_user).bind(2, now_seconds().time_since_epoch().count()).bind(3, reason).bind(4, id);
  if (auto e = upd.run(); !e.empty()) return result::fail("internal", e);
  return audit_and_commit(tx, who, "unblock", "local entry " + std::to_string(id), before, nullptr,
                          reason, "ok", json::object{{"id", id}, {"value", before.at("value")}, {"report", report}});
}

result exception_store::local_blocks(bool all) {
  std::string err;
  auto st = db_.prepare(
      std::string("SELECT id, kind, display, reason, created_by, created_at, report_id, removed_by, removed_at, "
                  "remove_reason FROM local_entries WHERE block = 1") +
          (all ? "" : " AND removed_at IS NULL") + " ORDER BY id",
      &err);
  if (!st) return result::fail("internal", err);
  json::array out;
  while (st.step(&err)) {
    json::object o{{"id", st.integer(0)},       {"kind", st.text(1)},          {"value", st.text(2)},
                   {"reason", st.text(3)},      {"created_by", st.text(4)},    {"created", iso(st.integer(5))},
                   {"report", st.is_null(6) ? json::value(nullptr) : json::value(st.integer(6))}};
    if (!st.is_null(8)) {
      o["removed"] = json::object{{"by", st.text(7)}, {"at", iso(st.integer(8))}, {"reason", st.text(9)}};
    } else {
      o["removed"] = nullptr;
    }
    out.push_back(std::move(o));
  }
  if (!err.empty()) return result::fail("internal", err);
  result r;
  r.data = json::object{{"blocks", std::move(out)}};
  return r;
}

result exception_store::file_report(const actor& who, const std::string& url, const std::string& nature,
                                    const std::string& reporter, const std::optional<std::string>& individual,
                                    const std::optional<rules::target>& block) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto now = now_seconds().time_since_epoch().count();
  std::string err;
  auto st = db_.prepare(
      "INSERT INTO reports(created_at, reporter, individual, url, nature, filed_by) VALUES(?,?,?,?,?,?)", &err);
  if (!st) return result::fail("internal", err);
  st.bind(1, now).bind(2, reporter).bind_optional(3, individual).bind(4, url).bind(5, nature).bind(6, who.os_user);
  if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  const auto report_id = db_.last_insert_id();
  json::value entry = nullptr;
  if (block) {
    auto ins = db_.prepare(
        "INSERT INTO local_entries(block, kind, host, path, display, reason, created_by, created_at, report_id) "
        "VALUES(1,?,?,?,?,?,?,?,?)",
        &err);
    if (!ins) return result::fail("internal", err);
    ins.bind(1, rules::to_string(block->kind))
        .bind(2, block->host)
        .bind(3, block->path)
        .bind(4, block->text)
        .bind(5, "Reported as inappropriate: " + nature)
        .bind(6, who.os_user)
        .bind(7, now)
        .bind(8, report_id);
    if (auto e = ins.run(); !e.empty()) return result::fail("internal", e);
    entry = db_.last_insert_id();
    auto upd = db_.prepare("UPDATE reports SET action_taken='blocked', action_by=?, action_at=?, entry_id=? WHERE id=?",
                           &err);
    if (!upd) return result::fail("internal", err);
    upd.bind(1, who.os_user).bind(2, now).bind(3, entry.as_int64()).bind(4, report_id);
    if (auto e = upd.run(); !e.empty()) return result::fail("internal", e);
  }
  json::object after{{"id", report_id}, {"url", url}, {"nature", nature}, {"reporter", reporter},
                     {"individual", nullable(individual)}, {"blocked", block.has_value()}, {"entry", entry}};
  return audit_and_commit(
      tx, who, "report", "report " + std::to_string(report_id), nullptr, after, nature, "ok",
      json::object{{"id", report_id}, {"blocked", block.has_value()}, {"entry", entry}});
}

result exception_store::reports() {
  std::string err;
  // With the block's removal, when its local entry was removed since: the DSL reading the
  // reports was told "blocked" of a page open again (admin audit, 2026-12-05, F9).
  auto st = db_.prepare(
      "SELECT r.id, r.created_at, r.reporter, r.individual, r.url, r.nature, r.filed_by, r.action_taken, "
      "r.action_by, r.action_at, r.entry_id, l.removed_by, l.removed_at, l.remove_reason FROM reports r "
      "LEFT JOIN local_entries l ON l.id = r.entry_id ORDER BY r.id",
      &err);
  if (!st) return result::fail("internal", err);
  json::array out;
  while (st.step(&err)) {
    json::object o{{"id", st.integer(0)}, {"created", iso(st.integer(1))}, {"reporter", st.text(2)},
                   {"individual", nullable(st.optional_text(3))}, {"url", st.text(4)}, {"nature", st.text(5)},
                   {"filed_by", st.text(6)}};
    if (!st.is_null(7)) {
      json::value removed = nullptr;
      if (!st.is_null(12)) {
        removed = json::object{{"by", st.text(11)}, {"at", iso(st.integer(12))}, {"reason", st.text(13)}};
      }
      o["action"] = json::object{{"taken", st.text(7)}, {"by", st.text(8)}, {"at", iso(st.integer(9))},
                                 {"entry", st.integer(10)}, {"removed", std::move(removed)}};
    } else {
      o["action"] = nullptr;
    }
    out.push_back(std::move(o));
  }
  if (!err.empty()) return result::fail("internal", err);
  result r;
  r.data = json::object{{"reports", std::move(out)}};
  return r;
}

result exception_store::audit(std::optional<seconds_t> since, std::optional<std::int64_t> before, std::size_t limit,
                               std::size_t max_bytes) {
  // The newest `limit` entries that match, read newest first, and the older ones only counted:
  // pupils' forms (each entry up to tens of KB of their text) and refused commands made an
  // answer of the whole log longer than hallpassctl's 16 MiB (admin audit, 2026-12-05, F3).
  std::string err;
  const std::string where = " FROM audit WHERE at >= ?1 AND id < ?2";
  auto bind = [&](statement& st) {
    st.bind(1, since ? since->time_since_epoch().count() : std::int64_t{0})
        .bind(2, before.value_or(std::numeric_limits<std::int64_t>::max()));
  };
  auto count = db_.prepare("SELECT COUNT(*)" + where, &err);
  if (!count) return result::fail("internal", err);
  bind(count);
  if (!count.step(&err)) return result::fail("internal", err.empty() ? "count of audit entries failed" : err);
  const auto total = static_cast<std::size_t>(count.integer(0));
  auto st = db_.prepare(
      "SELECT id, at, os_user, admin_role, action, object, before_json, after_json, reason, outcome" + where +
          " ORDER BY id DESC LIMIT ?3",
      &err);
  if (!st) return result::fail("internal", err);
  bind(st);
  st.bind(3, static_cast<std::int64_t>(limit));
  json::array newest_first;
  std::size_t bytes = 0;
  while (st.step(&err)) {
    auto parse = [](const std::optional<std::string>& s) -> json::value {
      if (!s) return nullptr;
      boost::system::error_code ec;
      auto v = json::parse(*s, ec);
      return ec ? json::value(*s) : v;
    };
    json::object e{{"id", st.integer(0)}, {"at", iso(st.integer(1))}, {"os_user", st.text(2)},
                   {"admin_role", st.text(3)}, {"action", st.text(4)}, {"object", st.text(5)},
                   {"before", parse(st.optional_text(6))}, {"after", parse(st.optional_text(7))},
                   {"reason", st.text(8)}, {"outcome", st.text(9)}};
    // And no more than max_bytes of JSON: the newest entry always.
    bytes += json::serialize(e).size() + 1;
    if (!newest_first.empty() && bytes > max_bytes) break;
    newest_first.push_back(std::move(e));
  }
  if (!err.empty()) return result::fail("internal", err);
  json::array out;
  out.reserve(newest_first.size());
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) out.push_back(std::move(*it));
  result r;
  r.data = json::object{{"entries", std::move(out)}};
  if (total > newest_first.size()) r.data.as_object()["omitted"] = static_cast<std::int64_t>(total - newest_first.size());
  return r;
}

std::optional<exception_store::requested_url> exception_store::request_url(std::int64_t id) {
  std::string err;
  auto st = db_.prepare("SELECT url, source FROM requests WHERE id=?", &err);
  if (!st) return std::nullopt;
  st.bind(1, id);
  if (!st.step(&err)) return std::nullopt;
  return requested_url{st.text(0), st.text(1) == "block page"};
}

std::size_t exception_store::pending_requests() {
  std::string err;
  auto st = db_.prepare("SELECT count(*) FROM requests WHERE decision IS NULL", &err);
  if (!st || !st.step(&err)) return 0;
  return static_cast<std::size_t>(st.integer(0));
}

std::optional<std::pair<std::vector<rules::exception_entry>, std::vector<rules::local_entry>>>
exception_store::load_active(seconds_t now, std::string* error) {
  std::pair<std::vector<rules::exception_entry>, std::vector<rules::local_entry>> out;
  std::string err;
  auto failed = [&] {
    if (error) *error = err.empty() ? std::string("unknown SQLite error") : err;
    return std::nullopt;
  };
  auto st = db_.prepare(
      "SELECT r.id, r.scope_roles, r.scope_user, r.scope_client, e.kind, e.host, e.path, e.display, e.valid_from, "
      "e.valid_until, r.decided_by, e.who, e.who_value FROM exceptions e JOIN requests r ON r.id = e.request_id "
      "WHERE e.revoked_at IS NULL AND e.valid_until > ?",
      &err);
  if (!st) return failed();
  {
    st.bind(1, now.time_since_epoch().count());
    while (st.step(&err)) {
      rules::exception_entry e;
      e.id = st.integer(0);
      const auto who = st.optional_text(11);
      const std::string value = st.optional_text(12).value_or("");
      std::optional<std::string> client;
      if (!who) {  // approved before schema 4: the request's scope as filed
        e.roles = split_roles(st.text(1));
        if (auto u = st.optional_text(2)) e.user = *u;
        client = st.optional_text(3);
      } else if (*who == "role") {
        e.roles = split_roles(value);
      } else if (*who == "user") {
        e.user = value;
      } else if (*who == "group") {
        e.group = value;
      } else if (*who == "device") {
        // "ADDRESS", or "NAME@ADDRESS": that name at that address (narrow_request).
        const auto at = value.rfind('@');
        auto d = rules::parse_device(at == std::string::npos ? value : value.substr(0, at));
        if (!d) continue;  // cannot name a device: it allows nothing
        if (at != std::string::npos) {
          d->address = rules::ip_address::parse(value.substr(at + 1));
          if (!d->address) continue;
        }
        e.device = std::move(*d);
      } else if (*who == "client") {
        client = value;
      } else {
        continue;  // a scope this hallpass does not know: it allows nothing (never everyone)
      }
      if (client) {
        auto n = rules::ip_network::parse(*client, nullptr, /*strict=*/false);
        if (!n) continue;  // filed before clients were checked fully: it allows nothing
        e.client = std::move(*n);
      }
      e.target.kind = rules::parse_target_kind(st.text(4)).value_or(rules::target_kind::url);
      e.target.host = st.text(5);
      e.target.path = st.text(6);
      e.target.text = st.text(7);
      e.from = seconds_t{std::chrono::seconds{st.integer(8)}};
      e.until = seconds_t{std::chrono::seconds{st.integer(9)}};
      e.reason = "Allowed by exception " + std::to_string(e.id) + ", approved by " + st.text(10) + " until " +
                 iso(st.integer(9)) + " (blocked content access request, 000 7.5).";
      out.first.push_back(std::move(e));
    }
    if (!err.empty()) return failed();
  }
  auto le = db_.prepare("SELECT id, block, kind, host, path, display, reason FROM local_entries WHERE removed_at IS NULL",
                        &err);
  if (!le) return failed();
  {
    while (le.step(&err)) {
      rules::local_entry e;
      e.id = le.integer(0);
      e.block = le.integer(1) != 0;
      e.target.kind = rules::parse_target_kind(le.text(2)).value_or(rules::target_kind::url);
      e.target.host = le.text(3);
      e.target.path = le.text(4);
      e.target.text = le.text(5);
      e.reason = le.text(6);
      out.second.push_back(std::move(e));
    }
    if (!err.empty()) return failed();
  }
  return out;
}

}  // namespace hallpass::store
