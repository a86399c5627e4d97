// Retention (store/retention.cpp) on real SQLite files: what closed before the cutoff goes,
// what is open stays whatever its age, the audit log keeps one entry saying what went, and
// the deleted words are gone from the database files, not only from its tables.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "store/exception_store.hpp"
#include "tests/store/store_fixture.hpp"

namespace {

using namespace hallpass;
using namespace store_test;  // temp_dir, open_store, the actors
using store::exception_store;

std::int64_t file(exception_store& s, const std::string& url, const std::string& words) {
  store::request_form f;
  f.url = url;
  f.requester = "Ava (Year 6)";
  f.reasons = words;
  f.roles = {"pupils"};
  f.source = "block page";
  f.client_address = "10.10.4.20";
  auto r = s.file_request(block_page, f);
  REQUIRE(r.ok);
  return r.data.at("id").as_int64();
}

rules::target target_of(const std::string& url, rules::target_kind kind = rules::target_kind::domain) {
  std::string error;
  auto t = rules::make_target(url, kind, &error);
  REQUIRE(t.has_value());
  return *t;
}

void approve_for(exception_store& s, std::int64_t id, const std::string& url, std::chrono::seconds length) {
  const auto now = store::now_seconds();
  REQUIRE(s.approve(headteacher, id, now, now + length, target_of(url), "for the lesson").ok);
}

std::set<std::int64_t> request_ids(exception_store& s) {
  std::set<std::int64_t> ids;
  const auto r = s.list(store::list_filter::all);
  REQUIRE(r.ok);
  for (const auto& q : r.data.at("requests").as_array()) ids.insert(q.at("id").as_int64());
  return ids;
}

// Every byte of the database and its WAL: deleted text must be in neither.
std::string files_of(const temp_dir& dir) {
  std::string all;
  for (const char* name : {"hallpass.db", "hallpass.db-wal"}) {
    std::ifstream in(dir.path / name, std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return all;
}

}  // namespace

TEST_CASE("retention deletes what closed before the cutoff and keeps everything still open") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto hour = std::chrono::hours(1);
  const auto day = std::chrono::hours(24);

  const auto denied = file(*s, "https://denied.test/", "words-of-the-denied-request");
  REQUIRE(s->deny(headteacher, denied, "not for school").ok);
  const auto ended = file(*s, "https://ended.test/", "words-of-the-ended-exception");
  approve_for(*s, ended, "https://ended.test/", hour);
  const auto revoked = file(*s, "https://revoked.test/", "words-of-the-revoked-exception");
  approve_for(*s, revoked, "https://revoked.test/", day);
  REQUIRE(s->revoke(headteacher, revoked, "lesson over").ok);
  const auto in_force = file(*s, "https://in-force.test/", "words-still-in-force");
  approve_for(*s, in_force, "https://in-force.test/", day);
  const auto pending = file(*s, "https://pending.test/", "words-still-pending");

  // Reports: one with no block, one whose block is in force, one whose block was removed.
  auto plain = s->file_report(technician, "http://a.test/", "violent images", "Mrs Jones", "a pupil in 4B",
                              std::nullopt);
  REQUIRE(plain.ok);
  auto blocking = s->file_report(technician, "http://b.test/", "gambling", "Mr Brown", "SECRETCHILD in 4B",
                                 target_of("http://b.test/"));
  REQUIRE(blocking.ok);
  auto unblocked = s->file_report(technician, "http://c.test/", "scam", "Ms Green", std::nullopt,
                                  target_of("http://c.test/"));
  REQUIRE(unblocked.ok);
  REQUIRE(s->remove_local(technician, unblocked.data.at("entry").as_int64(), "reviewed: fine").ok);

  // Bans: one ended by its length, one lifted, one in force, one proposal never confirmed
  // (filed before the cutoff: stale, like the pending request).
  auto ban = [&](const store::actor& who, std::string subject, std::chrono::seconds length, std::string how) {
    store::ban_form f;
    f.subject = std::move(subject);
    f.length = length;
    f.reason = "reason-of-" + f.subject;
    f.how = std::move(how);
    auto r = s->ban(who, f);
    REQUIRE(r.ok);
    return r.data.at("id").as_int64();
  };
  ban(dsl, "ended.user", hour, "command");
  ban(dsl, "lifted.user", day, "command");
  REQUIRE(s->unban(dsl, std::nullopt, false, "lifted.user", "apologised").ok);
  ban(dsl, "banned.user", day, "command");
  ban(technician, "proposed.user", day, "proposal");

  // Everything that ends within two hours from now has closed by the cutoff; the day-long
  // ones have not.
  const auto r = s->apply_retention(store::now_seconds() + 2 * hour, std::nullopt, "retention.records 1d");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 4);  // the pending one too: filed before the cutoff
  CHECK(r.data.at("reports").as_int64() == 2);
  CHECK(r.data.at("local_entries").as_int64() == 1);
  CHECK(r.data.at("bans").as_int64() == 3);
  CHECK(r.data.at("audit").as_int64() > 10);

  CHECK(request_ids(*s) == std::set<std::int64_t>{in_force});
  CHECK(s->show(pending).code == "not_found");
  CHECK(s->show(denied).code == "not_found");
  std::string error;
  const auto active = s->load_active(store::now_seconds(), &error);
  REQUIRE(active.has_value());
  CHECK(active->first.size() == 1);   // the exception in force
  CHECK(active->second.size() == 1);  // the local block in force
  const auto reports = s->reports().data.at("reports").as_array();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].at("url") == "http://b.test/");
  // Kept for its block, without the child it named (safeguarding audit, 2026-12-06, M7).
  CHECK(reports[0].at("individual").is_null());
  CHECK(r.data.at("report_names").as_int64() == 1);
  std::set<std::string> banned;
  const auto bans = s->bans(true);
  for (const auto& b : bans.data.at("bans").as_array()) banned.insert(std::string(b.at("subject").as_string()));
  CHECK(banned == std::set<std::string>{"banned.user"});

  // The audit log: the entry saying what went, and the history of each record still kept (the
  // exception in force, the report whose block is in force and that block, the ban in force);
  // every other entry was written before the cutoff and went.
  const auto entries = s->audit(std::nullopt).data.at("entries").as_array();
  std::multiset<std::string> objects;
  for (const auto& e : entries) objects.insert(std::string(e.at("object").as_string()));
  const std::multiset<std::string> kept{"store",
                                        "request " + std::to_string(in_force),  // filed
                                        "request " + std::to_string(in_force),  // approved
                                        "report " + std::to_string(blocking.data.at("id").as_int64()),
                                        "ban 3"};  // banned.user, in force
  CHECK(objects == kept);
  boost::json::value retention_entry;
  for (const auto& e : entries)
    if (e.at("action") == "retention") retention_entry = e;
  REQUIRE(retention_entry.is_object());
  CHECK(retention_entry.at("os_user") == "hallpass");
  const std::string reason(retention_entry.at("reason").as_string());
  INFO(reason);
  CHECK(reason.find("deleted 4 access requests (with their exceptions), 2 reports, 1 names of children in reports kept "
                    "for their blocks, 1 removed local blocks and allows, 3 ended or unconfirmed bans and ") == 0);
  // The report's audit entry keeps its history, not the name.
  bool scrubbed = false;
  for (const auto& e : entries) {
    if (e.at("object").as_string() == "report " + std::to_string(blocking.data.at("id").as_int64())) {
      scrubbed = boost::json::serialize(e).find("(removed after retention.records)") != std::string::npos;
    }
  }
  CHECK(scrubbed);
  CHECK(reason.find("(retention.records 1d)") != std::string::npos);

  // secure_delete and the checkpoint: the words are gone from the files, the kept ones are there.
  const std::string bytes = files_of(dir);
  for (const char* gone : {"words-of-the-denied-request", "words-of-the-ended-exception",
                           "words-of-the-revoked-exception", "violent images", "a pupil in 4B", "scam",
                           "reason-of-lifted.user", "reason-of-ended.user", "words-still-pending",
                           "reason-of-proposed.user", "SECRETCHILD"}) {
    INFO(gone);
    CHECK(bytes.find(gone) == std::string::npos);
  }
  CHECK(bytes.find("words-still-in-force") != std::string::npos);

  // A later round that finds only audit entries to age out (the retention entry itself) writes
  // no entry about it: each round would otherwise log the last one's entry going.
  const auto again = s->apply_retention(store::now_seconds() + 3 * hour, std::nullopt, "retention.records 1d");
  REQUIRE(again.ok);
  CHECK(again.data.at("audit").as_int64() == 1);
  CHECK(again.data.at("requests").as_int64() == 0);
  objects.clear();
  const auto after_again = s->audit(std::nullopt);
  for (const auto& e : after_again.data.at("entries").as_array())
    objects.insert(std::string(e.at("object").as_string()));
  auto without_store = kept;
  without_store.erase("store");
  CHECK(objects == without_store);

  // The audit log is append-only again: the trigger is back.
  REQUIRE(s->audit_event(headteacher, "reload", "policy generation 2", "", "ok").empty());
  CHECK_FALSE(s->apply_retention(store::now_seconds() - day, std::nullopt, "retention.records 1d").data.at("audit").as_int64());
  auto db = store::database::open(dir.db(), &error);
  REQUIRE(db.has_value());
  CHECK(db->exec("DELETE FROM audit").find("append-only") != std::string::npos);
  CHECK(db->exec("UPDATE audit SET reason = 'x'").find("append-only") != std::string::npos);
}

TEST_CASE("retention with nothing to delete writes no audit entry") {
  temp_dir dir;
  auto s = open_store(dir);
  file(*s, "https://pending.test/", "words");
  const auto r = s->apply_retention(store::now_seconds() - std::chrono::hours(24), std::nullopt, "retention.records 1d");
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 0);
  CHECK(r.data.at("audit").as_int64() == 0);
  const auto entries = s->audit(std::nullopt).data.at("entries").as_array();
  REQUIRE(entries.size() == 1);  // the filing only
  CHECK(entries[0].at("action") != "retention");
}

TEST_CASE("a request nobody decided is deleted a whole period after it was filed, not before") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, "https://pending.test/", "words-never-decided");
  const auto hour = std::chrono::hours(1);
  auto r = s->apply_retention(store::now_seconds() - hour, std::nullopt, "retention.records 1h");
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 0);
  CHECK(request_ids(*s) == std::set<std::int64_t>{id});
  {
    // Filed two hours ago, as far as the store knows.
    std::string error;
    auto db = store::database::open(dir.db(), &error);
    REQUIRE(db.has_value());
    REQUIRE(db->exec("UPDATE requests SET created_at = created_at - 7200").empty());
  }
  r = s->apply_retention(store::now_seconds() - hour, std::nullopt, "retention.records 1h");
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 1);
  CHECK(request_ids(*s).empty());
}

TEST_CASE("a ban proposal nobody confirmed is deleted a whole period after it was filed, not before") {
  temp_dir dir;
  auto s = open_store(dir);
  store::ban_form f;
  f.subject = "proposed.pupil";
  f.length = std::chrono::hours(24);
  f.reason = "words-of-the-proposal";
  f.how = "proposal";
  auto filed = s->ban(technician, f);
  REQUIRE(filed.ok);
  const auto hour = std::chrono::hours(1);
  auto r = s->apply_retention(store::now_seconds() - hour, std::nullopt, "retention.records 1h");
  REQUIRE(r.ok);
  CHECK(r.data.at("bans").as_int64() == 0);
  CHECK(s->bans(true).data.at("bans").as_array().size() == 1);
  {
    // Proposed two hours ago, as far as the store knows.
    std::string error;
    auto db = store::database::open(dir.db(), &error);
    REQUIRE(db.has_value());
    REQUIRE(db->exec("UPDATE bans SET created_at = created_at - 7200").empty());
  }
  r = s->apply_retention(store::now_seconds() - hour, std::nullopt, "retention.records 1h");
  REQUIRE(r.ok);
  CHECK(r.data.at("bans").as_int64() == 1);
  CHECK(s->bans(true).data.at("bans").as_array().empty());
  // Its words stay in its audit entry, written within the period, until that entry ages out
  // (the first test case: the words gone from the files).
}

TEST_CASE("list filters by status and keeps the newest requests, counting the older ones it leaves out") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto now = store::now_seconds();
  const auto pending_old = file(*s, "http://a.test/", "one");
  const auto approved = file(*s, "http://b.test/", "two");
  REQUIRE(s->approve(headteacher, approved, now, now + std::chrono::hours(1), target_of("http://b.test/"), "ok").ok);
  const auto expired = file(*s, "http://c.test/", "three");
  REQUIRE(s->approve(headteacher, expired, now - std::chrono::hours(2), now - std::chrono::hours(1),
                     target_of("http://c.test/"), "was ok")
              .ok);
  const auto revoked = file(*s, "http://d.test/", "four");
  REQUIRE(s->approve(headteacher, revoked, now, now + std::chrono::hours(1), target_of("http://d.test/"), "ok").ok);
  REQUIRE(s->revoke(headteacher, revoked, "changed my mind").ok);
  const auto denied = file(*s, "http://e.test/", "five");
  REQUIRE(s->deny(headteacher, denied, "no").ok);
  const auto pending_new = file(*s, "http://f.test/", "six");

  auto ids = [&](store::list_filter f, std::size_t limit) {
    auto r = s->list(f, limit);
    REQUIRE(r.ok);
    std::vector<std::int64_t> out;
    for (const auto& q : r.data.at("requests").as_array()) out.push_back(q.at("id").as_int64());
    const auto* omitted = r.data.as_object().if_contains("omitted");
    return std::pair{out, omitted ? omitted->as_int64() : std::int64_t{0}};
  };
  using v = std::vector<std::int64_t>;
  CHECK(ids(store::list_filter::pending, 200) == std::pair{v{pending_old, pending_new}, std::int64_t{0}});
  CHECK(ids(store::list_filter::active, 200) == std::pair{v{approved}, std::int64_t{0}});
  CHECK(ids(store::list_filter::expired, 200) == std::pair{v{expired}, std::int64_t{0}});
  CHECK(ids(store::list_filter::all, 200) ==
        std::pair{v{pending_old, approved, expired, revoked, denied, pending_new}, std::int64_t{0}});
  // The newest, oldest first; the rest counted.
  CHECK(ids(store::list_filter::all, 2) == std::pair{v{denied, pending_new}, std::int64_t{4}});
  CHECK(ids(store::list_filter::pending, 1) == std::pair{v{pending_new}, std::int64_t{1}});
}

TEST_CASE("retention that ages out audit entries alone still leaves their words in neither file") {
  // An entry about no record (a reload's) ages out alone: its words must leave the WAL too
  // (before 2026-12-05 they stayed there until a restart).
  temp_dir dir;
  auto s = open_store(dir);
  REQUIRE(s->audit_event(technician, "reload", "policy generation 2", "words-of-an-aged-out-entry", "ok").empty());
  // A review's first note lives on only in the audit entry once a second review replaces it:
  // part of the history of a request still in force, it stays as long as the request does.
  const auto id = file(*s, "https://in-force.test/", "words-of-the-pupil");
  store::request_review first;
  first.note = "first-note-since-replaced";
  REQUIRE(s->review(technician, id, first).ok);
  store::request_review second;
  second.note = "the note in force";
  REQUIRE(s->review(technician, id, second).ok);
  approve_for(*s, id, "https://in-force.test/", std::chrono::hours(24));
  REQUIRE(files_of(dir).find("words-of-an-aged-out-entry") != std::string::npos);  // there before

  auto r = s->apply_retention(store::now_seconds() + std::chrono::hours(2), std::nullopt, "retention.records 1d");
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 0);
  CHECK(r.data.at("audit").as_int64() == 1);
  CHECK(request_ids(*s) == std::set<std::int64_t>{id});
  std::string bytes = files_of(dir);
  CHECK(bytes.find("words-of-an-aged-out-entry") == std::string::npos);
  CHECK(bytes.find("first-note-since-replaced") != std::string::npos);
  CHECK(bytes.find("the note in force") != std::string::npos);

  // Once the exception has ended and the request ages out, its history goes with it.
  REQUIRE(s->revoke(headteacher, id, "lesson over").ok);
  r = s->apply_retention(store::now_seconds() + std::chrono::hours(2), std::nullopt, "retention.records 1d");
  REQUIRE(r.ok);
  CHECK(r.data.at("requests").as_int64() == 1);
  bytes = files_of(dir);
  CHECK(bytes.find("first-note-since-replaced") == std::string::npos);
  CHECK(bytes.find("the note in force") == std::string::npos);
  const auto audit = s->audit(std::nullopt);
  for (const auto& e : audit.data.at("entries").as_array())
    CHECK(e.at("object").as_string() != "request " + std::to_string(id));
}

TEST_CASE("a checkpoint a reader held back is tried again at the next round until the words are gone") {
  // A reader (a nightly `sqlite3 .backup`, a DSL's sqlite3 session) held the checkpoint after
  // the deletions back; it was tried once, and the words stayed in hallpass.db-wal until a
  // later round deleted something (audit of privacy, 2026-12-06, M1).
  temp_dir dir;
  auto s = open_store(dir);
  const auto denied = file(*s, "https://denied.test/", "words-held-in-the-wal");
  REQUIRE(s->deny(headteacher, denied, "not for school").ok);
  std::string error;
  {
    auto reader = store::database::open_read_only(dir.db(), &error);
    REQUIRE(reader.has_value());
    REQUIRE(reader->exec("BEGIN").empty());
    auto st = reader->prepare("SELECT count(*) FROM requests", &error);
    REQUIRE(st);
    REQUIRE(st.step(&error));  // the read transaction now holds a snapshot
    const auto r = s->apply_retention(store::now_seconds() + std::chrono::hours(1), std::nullopt, "retention.records 1d");
    REQUIRE(r.ok);
    CHECK(r.data.at("requests").as_int64() == 1);
    CHECK(s->checkpoint_owed());
    CHECK(files_of(dir).find("words-held-in-the-wal") != std::string::npos);
    st = {};
    REQUIRE(reader->exec("COMMIT").empty());
  }
  // The next round deletes nothing, and still completes the checkpoint it owes.
  const auto again = s->apply_retention(store::now_seconds() - std::chrono::hours(1), std::nullopt, "retention.records 1d");
  REQUIRE(again.ok);
  CHECK(again.data.at("requests").as_int64() == 0);
  CHECK_FALSE(s->checkpoint_owed());
  CHECK(files_of(dir).find("words-held-in-the-wal") == std::string::npos);
}
