// The exception store on real SQLite files in a temporary directory: completing a pending
// request's adult questions (review), approval of an incomplete form, and opening stores made
// by the schema before the review columns (tests/store/schema_v1.sql).
#include "store/exception_store.hpp"
#include "tests/store/store_fixture.hpp"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace json = boost::json;
using namespace hallpass;
using store::actor;
using store::exception_store;
using store_test::open_store;
using store_test::read_file;
using store_test::temp_dir;
using store_test::user_version;

const actor technician{"ict.tech", "technician"};
const actor headteacher{"mrs.head", "headteacher"};
const actor block_page{"block page", "requester"};

// What the block page files: the pupil's own words, no adult questions.
store::request_form pupil_form(std::string url = "https://www.facebook.com/") {
  store::request_form f;
  f.url = std::move(url);
  f.requester = "Ava (Year 6)";
  f.reasons = "For my project about how our school uses its page";
  f.site_content = "the school's posts";
  f.roles = {"pupils"};
  f.source = "block page";
  f.client_address = "10.10.4.20";
  return f;
}

std::int64_t file(exception_store& s, const store::request_form& f, const actor& who = block_page) {
  auto r = s.file_request(who, f);
  REQUIRE(r.ok);
  return r.data.at("id").as_int64();
}

json::object shown(exception_store& s, std::int64_t id) {
  auto r = s.show(id);
  REQUIRE(r.ok);
  return r.data.as_object();
}

json::array audit_of(exception_store& s, std::int64_t id) {
  json::array out;
  const auto all = s.audit(std::nullopt);
  for (const auto& e : all.data.at("entries").as_array()) {
    if (e.at("object").as_string() == "request " + std::to_string(id)) out.push_back(e);
  }
  return out;
}

rules::target domain_target() {
  std::string error;
  auto t = rules::make_target("https://www.facebook.com/", rules::target_kind::domain, &error);
  REQUIRE(t.has_value());
  return *t;
}

store::result approve(exception_store& s, std::int64_t id) {
  const auto now = store::now_seconds();
  return s.approve(headteacher, id, now, now + std::chrono::hours(1), domain_target(), "for the lesson");
}

// A store as hallpass made it before the review columns, with a row in every table: a
// pending request from the block page, an approved one with its exception, a report with its
// local block, and their audit entries.
void make_schema_1_store(const temp_dir& dir) {
  std::string error;
  auto d = store::database::open(dir.db(), &error);
  REQUIRE(d.has_value());
  REQUIRE(d->exec(read_file(std::filesystem::path(HALLPASS_SOURCE_DIR) /
                            "tests/store/schema_1.sql")) == "");
  const auto now = store::now_seconds().time_since_epoch().count();
  const std::string n = std::to_string(now);
  for (const std::string& sql : {
           "INSERT INTO requests(created_at, url, requester, reasons, site_content, scope_roles, "
           "filed_by, source, "
           "client_address) VALUES(" +
               n +
               ", 'https://www.instagram.com/', 'Ben (Year 5)', 'Art homework', "
               "'pictures', 'pupils', 'block page', 'block page', '10.10.4.21')",
           "INSERT INTO requests(created_at, url, requester, reasons, site_content, risks, "
           "control_measures, "
           "scope_roles, filed_by, source, decision, decided_by, decided_at, decision_reason) "
           "VALUES(" +
               n +
               ", 'https://www.facebook.com/', 'Mr Smith', 'Year 6 lesson', 'social network', "
               "'contact', "
               "'supervised', 'pupils', 'ict.tech', 'hallpassctl', 'approved', 'mrs.head', " +
               n + ", 'lesson')",
           "INSERT INTO exceptions(request_id, kind, host, path, display, valid_from, valid_until) "
           "VALUES(2, "
           "'domain', 'www.facebook.com', '/', 'www.facebook.com', " +
               n + ", " + std::to_string(now + 3600) + ")",
           "INSERT INTO reports(created_at, reporter, url, nature, filed_by, action_taken, "
           "action_by, action_at, "
           "entry_id) VALUES(" +
               n +
               ", 'Mrs Jones', 'http://bad.example/page', 'violence', 'ict.tech', 'blocked', "
               "'ict.tech', " +
               n + ", 1)",
           "INSERT INTO local_entries(block, kind, host, path, display, reason, created_by, "
           "created_at, report_id) "
           "VALUES(1, 'url', 'bad.example', '/page', 'http://bad.example/page', 'Reported', "
           "'ict.tech', " +
               n + ", 1)",
           "INSERT INTO audit(at, os_user, admin_role, action, object, reason, outcome) VALUES(" +
               n + ", 'mrs.head', 'headteacher', 'approve', 'request 2', 'lesson', 'ok')",
       }) {
    INFO(sql);
    REQUIRE(d->exec(sql) == "");
  }
}

}  // namespace

TEST_CASE("a repeat from the same person on the same device is merged, another person files their own") {
  // Merging by device alone told a second pupil signed in on a classroom PC of the first's
  // request and its number, and kept only the first's (audit of privacy, 2026-12-06, M2).
  temp_dir dir;
  auto s = open_store(dir);
  auto merged = [](const store::result& r) { return r.data.at("merged").as_bool(); };
  const auto nobody = file(*s, pupil_form());
  auto again = s->file_request(block_page, pupil_form());
  REQUIRE(again.ok);
  CHECK(merged(again));
  CHECK(again.data.at("id").as_int64() == nobody);

  auto dave = pupil_form();
  dave.asker_user = "dave";
  const auto dave_id = file(*s, dave);
  CHECK(dave_id != nobody);
  auto carol = pupil_form();
  carol.asker_user = "carol";
  auto carol_r = s->file_request(block_page, carol);
  REQUIRE(carol_r.ok);
  CHECK_FALSE(merged(carol_r));
  CHECK(carol_r.data.at("id").as_int64() != dave_id);
  auto dave_again = s->file_request(block_page, dave);
  REQUIRE(dave_again.ok);
  CHECK(merged(dave_again));
  CHECK(dave_again.data.at("id").as_int64() == dave_id);
}

TEST_CASE("one asker may have max_pending_per_asker requests from the form waiting, and a decision frees a place") {
  temp_dir dir;
  auto s = open_store(dir);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < store::max_pending_per_asker; ++i) {
    ids.push_back(file(*s, pupil_form("http://game" + std::to_string(i) + ".test/")));
  }
  auto over = s->file_request(block_page, pupil_form("http://one-more.test/"));
  CHECK_FALSE(over.ok);
  CHECK(over.code == "too_many_pending");
  // A repeat of a waiting one is still told its number (it adds nothing).
  auto repeat = s->file_request(block_page, pupil_form("http://game3.test/"));
  REQUIRE(repeat.ok);
  CHECK(repeat.data.at("id").as_int64() == ids[3]);
  // Another person on the device, another device, the technician's hallpassctl, and a page in a
  // watched category are each filed.
  auto dave = pupil_form("http://one-more.test/");
  dave.asker_user = "dave";
  CHECK(s->file_request(block_page, dave).ok);
  auto other = pupil_form("http://one-more.test/");
  other.client_address = "10.10.4.21";
  CHECK(s->file_request(block_page, other).ok);
  auto typed = pupil_form("http://one-more.test/");
  typed.source = "hallpassctl";
  CHECK(s->file_request(technician, typed).ok);
  auto watched = pupil_form("http://selfharm.test/");
  watched.past_pending_cap = true;
  CHECK(s->file_request(block_page, watched).ok);
  // That made 21 waiting; a decision on two leaves 19, and the next is filed.
  REQUIRE(s->deny(headteacher, ids[0], "not for school").ok);
  CHECK_FALSE(s->file_request(block_page, pupil_form("http://and-another.test/")).ok);
  REQUIRE(s->deny(headteacher, ids[1], "not for school").ok);
  auto freed = s->file_request(block_page, pupil_form("http://and-another.test/"));
  REQUIRE(freed.ok);
  CHECK_FALSE(freed.data.at("merged").as_bool());
}

TEST_CASE("the cap on waiting requests follows the device's hardware address across its addresses") {
  temp_dir dir;
  auto s = open_store(dir);
  for (int i = 0; i < store::max_pending_per_asker; ++i) {
    auto f = pupil_form("http://game" + std::to_string(i) + ".test/");
    f.client_address = "fd00:10::" + std::to_string(i + 1);  // a new privacy address each time
    f.device_mac = "3c:22:fb:12:9a:01";
    file(*s, f);
  }
  auto next = pupil_form("http://one-more.test/");
  next.client_address = "fd00:10::99";
  next.device_mac = "3c:22:fb:12:9a:01";
  CHECK(s->file_request(block_page, next).code == "too_many_pending");
  next.device_mac = "3c:22:fb:12:9a:02";  // another device
  CHECK(s->file_request(block_page, next).ok);
}

TEST_CASE("review completes a block-page request's adult questions and keeps the pupil's words") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, pupil_form());
  auto before = shown(*s, id);
  CHECK(before.at("to_complete") == json::array{"risks", "control_measures"});
  CHECK(before.at("review").is_null());

  store::request_review rv;
  rv.risks = "Public comments under the posts; adverts";
  rv.control_measures = "Teacher-led on the classroom screen; pupils do not log in";
  rv.site_content = "The school's own Facebook page and its public posts";
  rv.note = "Asked by Ava's teacher, Mr Smith";
  auto r = s->review(technician, id, rv);
  REQUIRE(r.ok);
  auto after = shown(*s, id);
  CHECK(after.at("status") == "pending");
  CHECK(after.at("risks") == "Public comments under the posts; adverts");
  CHECK(after.at("control_measures") ==
        "Teacher-led on the classroom screen; pupils do not log in");
  CHECK(after.at("to_complete").as_array().empty());
  // The pupil's own words, as the block page filed them.
  CHECK(after.at("requester") == "Ava (Year 6)");
  CHECK(after.at("reasons") == "For my project about how our school uses its page");
  CHECK(after.at("site_content") == "the school's posts");
  const auto& review = after.at("review").as_object();
  CHECK(review.at("by") == "ict.tech");
  CHECK(review.at("role") == "technician");
  CHECK(review.at("site_content") == "The school's own Facebook page and its public posts");
  CHECK(review.at("note") == "Asked by Ava's teacher, Mr Smith");
  CHECK(!review.at("at").as_string().empty());
  CHECK(r.data == after);

  // Audited: who, what changed (the request before and after), in words.
  auto entries = audit_of(*s, id);
  REQUIRE(entries.size() == 2);  // filed, reviewed
  const auto& e = entries.back().as_object();
  CHECK(e.at("action") == "review");
  CHECK(e.at("os_user") == "ict.tech");
  CHECK(e.at("admin_role") == "technician");
  CHECK(e.at("outcome") == "ok");
  CHECK(e.at("reason") == "completed identified risks, control measures, site content, note");
  CHECK(e.at("before").at("risks") == "");
  CHECK(e.at("after").at("risks") == "Public comments under the posts; adverts");
}

TEST_CASE("a later review changes only the fields it gives, and the audit keeps the earlier text") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, pupil_form());
  store::request_review first;
  first.risks = "contact with strangers";
  REQUIRE(s->review(technician, id, first).ok);
  CHECK(shown(*s, id).at("to_complete") == json::array{"control_measures"});
  store::request_review second;
  second.control_measures = "supervised";
  second.risks = "contact with strangers; adverts";
  REQUIRE(s->review(headteacher, id, second).ok);
  auto after = shown(*s, id);
  CHECK(after.at("risks") == "contact with strangers; adverts");
  CHECK(after.at("control_measures") == "supervised");
  CHECK(after.at("review").at("by") == "mrs.head");
  CHECK(after.at("review").at("role") == "headteacher");
  auto entries = audit_of(*s, id);
  REQUIRE(entries.size() == 3);
  CHECK(entries[2].at("before").at("risks") == "contact with strangers");
}

TEST_CASE(
    "review refuses an unknown id, a decided request, empty and over-long text, and changes "
    "nothing") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, pupil_form());
  const auto untouched = shown(*s, id);
  store::request_review ok_review;
  ok_review.risks = "contact";

  auto r = s->review(technician, 999, ok_review);
  CHECK(!r.ok);
  CHECK(r.code == "not_found");
  CHECK(r.error == "there is no request 999");

  r = s->review(technician, id, store::request_review{});
  CHECK(r.code == "bad_request");
  CHECK(r.error.find("nothing to complete") != std::string::npos);

  for (const std::string blank : {"", "   ", "\n\t "}) {
    store::request_review rv;
    rv.control_measures = blank;
    r = s->review(technician, id, rv);
    CHECK(r.code == "bad_request");
    CHECK(r.error == "'control_measures' must not be empty");
  }

  store::request_review too_long;
  too_long.note = std::string(store::max_review_chars + 1, 'x');
  r = s->review(technician, id, too_long);
  CHECK(r.code == "bad_request");
  CHECK(r.error == "'note' is 2001 characters long: at most 2000");
  // A field is refused whole: a good one beside it is not saved either.
  too_long.risks = "contact";
  CHECK(s->review(technician, id, too_long).code == "bad_request");
  CHECK(shown(*s, id) == untouched);
  CHECK(audit_of(*s, id).size() == 1);

  // Characters, not bytes: 2,000 accented letters (4,000 bytes) fit.
  store::request_review accented;
  std::string e_acute;
  for (std::size_t i = 0; i < store::max_review_chars; ++i) e_acute += "\xC3\xA9";
  accented.risks = e_acute;
  CHECK(s->review(technician, id, accented).ok);

  // Decided requests keep the form as it was decided.
  store::request_review rv;
  rv.control_measures = "supervised";
  REQUIRE(s->review(technician, id, rv).ok);
  REQUIRE(approve(*s, id).ok);
  const auto decided = shown(*s, id);
  rv.note = "too late";
  r = s->review(technician, id, rv);
  CHECK(r.code == "conflict");
  CHECK(r.error.find("request " + std::to_string(id) + " is approved, not pending") == 0);
  CHECK(shown(*s, id) == decided);

  const auto denied = file(*s, pupil_form("https://www.tiktok.com/"));
  REQUIRE(s->deny(headteacher, denied, "no").ok);
  CHECK(s->review(technician, denied, rv).code == "conflict");
}

TEST_CASE(
    "approve of a form without risks or control measures succeeds with a warning, and the audit says "
    "so") {
  // Issue 4's interface: a request filed without the adult questions is approved as before.
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, pupil_form());
  const auto n = std::to_string(id);
  auto r = approve(*s, id);
  REQUIRE(r.ok);
  CHECK(r.data.at("status") == "approved");
  CHECK(r.data.at("decision").at("reason") == "for the lesson");
  CHECK(r.warning == "request " + n +
                         "'s form was approved without its identified risks and control measures (complete them "
                         "with hallpassctl review " + n + ")");
  auto entries = audit_of(*s, id);
  REQUIRE(entries.size() == 2);
  CHECK(entries[1].at("action") == "approve");
  CHECK(entries[1].at("outcome") == "ok");
  CHECK(entries[1].at("reason") ==
        "for the lesson (approved without the form's identified risks and control measures)");
  std::string error;
  CHECK(s->load_active(store::now_seconds(), &error)->first.size() == 1);
}

TEST_CASE("approve of a form with only one of the two names the other in its warning and audit") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, pupil_form());
  store::request_review rv;
  rv.risks = "contact";
  REQUIRE(s->review(technician, id, rv).ok);
  auto r = approve(*s, id);
  REQUIRE(r.ok);
  CHECK(r.warning.find("approved without its control measures (complete them") != std::string::npos);
  CHECK(audit_of(*s, id).back().at("reason") == "for the lesson (approved without the form's control measures)");
}

TEST_CASE("approve of a complete form warns of nothing and notes nothing") {
  temp_dir dir;
  auto s = open_store(dir);
  auto f = pupil_form();
  f.source = "hallpassctl";
  f.client_address.reset();
  f.risks = "contact";
  f.control_measures = "supervised";
  const auto filed = file(*s, f, technician);
  CHECK(shown(*s, filed).at("to_complete").as_array().empty());
  auto r = approve(*s, filed);
  REQUIRE(r.ok);
  CHECK(r.warning.empty());
  CHECK(audit_of(*s, filed).back().at("reason") == "for the lesson");
}

TEST_CASE("a store made by schema 1 opens with its rows, and its requests can be reviewed") {
  temp_dir dir;
  make_schema_1_store(dir);
  REQUIRE(user_version(dir.db()) == 1);
  auto s = open_store(dir);
  CHECK(user_version(dir.db()) == 5);

  auto pending = shown(*s, 1);
  CHECK(pending.at("status") == "pending");
  CHECK(pending.at("requester") == "Ben (Year 5)");
  CHECK(pending.at("site_content") == "pictures");
  CHECK(pending.at("client") == "10.10.4.21");
  CHECK(pending.at("to_complete") == json::array{"risks", "control_measures"});
  CHECK(pending.at("review").is_null());
  auto approved = shown(*s, 2);
  CHECK(approved.at("status") == "approved");
  CHECK(approved.at("exception").at("value") == "www.facebook.com");
  CHECK(approved.at("to_complete").as_array().empty());
  CHECK(s->reports().data.at("reports").as_array().size() == 1);
  CHECK(s->local_blocks(false).data.at("blocks").as_array().size() == 1);
  CHECK(s->audit(std::nullopt).data.at("entries").as_array().size() == 1);
  std::string error;
  auto active = s->load_active(store::now_seconds(), &error);
  REQUIRE(active.has_value());
  CHECK(active->first.size() == 1);
  CHECK(active->second.size() == 1);

  store::request_review rv;
  rv.risks = "strangers' comments";
  rv.control_measures = "at home with a parent";
  REQUIRE(s->review(technician, 1, rv).ok);
  REQUIRE(approve(*s, 1).ok);
  // New ids follow the old ones.
  CHECK(file(*s, pupil_form("https://www.tiktok.com/")) == 3);

  // Opening again (every restart) changes nothing.
  s.reset();
  s = open_store(dir);
  CHECK(shown(*s, 1).at("risks") == "strangers' comments");
  CHECK(user_version(dir.db()) == 5);
}

TEST_CASE("a store an older hallpass reopened after the upgrade still opens") {
  // The older hallpass writes user_version 1 over columns it does not know.
  temp_dir dir;
  {
    auto s = open_store(dir);
    const auto id = file(*s, pupil_form());
    store::request_review rv;
    rv.note = "kept";
    REQUIRE(s->review(technician, id, rv).ok);
  }
  {
    std::string error;
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d->exec(read_file(std::filesystem::path(HALLPASS_SOURCE_DIR) /
                              "tests/store/schema_1.sql")) == "");
  }
  REQUIRE(user_version(dir.db()) == 1);
  auto s = open_store(dir);
  CHECK(shown(*s, 1).at("review").at("note") == "kept");
  CHECK(user_version(dir.db()) == 5);
}

TEST_CASE("a store made by a newer hallpass is refused, not changed") {
  temp_dir dir;
  {
    auto s = open_store(dir);
    file(*s, pupil_form());
  }
  {
    std::string error;
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d->exec("PRAGMA user_version = 6") == "");
  }
  std::string error;
  auto s = exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  CHECK(s == nullptr);
  CHECK(error.find("made by a newer hallpass (schema 6") != std::string::npos);
  CHECK(user_version(dir.db()) == 6);
}

TEST_CASE("a store another program holds locked at the start says so, not a bare 'database is locked'") {
  // outside-in audit of operations, 2026-12-07, L1.
  temp_dir dir;
  {
    auto s = open_store(dir);
    file(*s, pupil_form());
  }
  std::string error;
  auto holder = store::database::open(dir.db(), &error);
  REQUIRE(holder.has_value());
  REQUIRE(holder->exec("BEGIN EXCLUSIVE") == "");
  auto s = exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  CHECK(s == nullptr);
  CHECK(error.find("another program holds the store's lock") != std::string::npos);
  CHECK(error.find("(SQLite: ") != std::string::npos);
  REQUIRE(holder->exec("ROLLBACK") == "");
}

TEST_CASE("a store with a table dropped is refused, not given the table again empty") {
  // outside-in audit of operations, 2026-12-07, M1: local blocks, bans or the audit log were
  // made again empty, and the filter opened what they closed.
  for (const char* table : {"local_entries", "bans", "audit", "incidents", "exceptions"}) {
    INFO(table);
    temp_dir dir;
    {
      auto s = open_store(dir);
      file(*s, pupil_form());
    }
    {
      std::string error;
      auto d = store::database::open(dir.db(), &error);
      REQUIRE(d.has_value());
      if (std::string(table) == "audit") REQUIRE(d->exec("DROP TRIGGER IF EXISTS audit_append_only_delete") == "");
      REQUIRE(d->exec(std::string("DROP TABLE ") + table) == "");
    }
    std::string error;
    auto s = exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
    CHECK(s == nullptr);
    CHECK(error.find(std::string("its table '") + table + "' is missing") != std::string::npos);
    CHECK(error.find("Restore the store from a backup") != std::string::npos);
  }
}

TEST_CASE("files_replaced: the store own files say nothing, deleted or replaced ones are named") {
  temp_dir dir;
  auto s = open_store(dir);
  file(*s, pupil_form());
  CHECK(s->files_replaced().empty());
  {
    // Another program opens and closes the store (a backup, hallpass explain): still its own.
    std::string error;
    auto other = store::database::open(dir.db(), &error);
    REQUIRE(other.has_value());
  }
  CHECK(s->files_replaced().empty());
  std::filesystem::remove(dir.db() + "-wal");
  CHECK(s->files_replaced().find("hallpass.db-wal was deleted while hallpass runs") != std::string::npos);
  std::filesystem::copy_file(dir.db(), dir.db() + ".copy");
  std::filesystem::rename(dir.db() + ".copy", dir.db());
  CHECK(s->files_replaced().find("was replaced by another file while hallpass runs") != std::string::npos);
  std::filesystem::remove(dir.db());
  CHECK(s->files_replaced().find("was deleted while hallpass runs") != std::string::npos);
}

TEST_CASE("a damaged store is refused at the start, not read with its blocks gone") {
  // admin audit, 2026-12-06: 300 bytes of local_entries' page overwritten, and the daemon
  // started with the reported pages open, reading the damaged rows as NULL (an allow).
  temp_dir dir;
  {
    auto s = open_store(dir);
    std::string error;
    const auto t = rules::make_target("http://reported.test/page", rules::target_kind::prefix, &error);
    REQUIRE(t.has_value());
    REQUIRE(s->add_local(technician, true, *t, "self-harm images").ok);
  }
  std::int64_t root_page = 0, page_size = 0;
  {
    std::string error;
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d.has_value());
    auto st = d->prepare("SELECT rootpage FROM sqlite_master WHERE name = 'local_entries'", &error);
    REQUIRE(st.step(&error));
    root_page = st.integer(0);
    auto ps = d->prepare("PRAGMA page_size", &error);
    REQUIRE(ps.step(&error));
    page_size = ps.integer(0);
  }
  REQUIRE(root_page > 1);
  {
    std::fstream f(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp((root_page - 1) * page_size + 8);  // past the page's header: its cell pointers
    const std::string junk(300, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  std::string error;
  auto s = exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  CHECK(s == nullptr);
  INFO(error);
  CHECK(error.find("is damaged (SQLite's integrity check: ") != std::string::npos);
  CHECK(error.find("restore hallpass.db") != std::string::npos);
}

TEST_CASE("a store that was made and is now missing or empty is refused, not made again empty") {
  temp_dir dir;
  const auto db = dir.path / "hallpass.db";
  {
    auto s = open_store(dir);
    file(*s, pupil_form());
  }
  CHECK(std::filesystem::exists(dir.path / "hallpass.db.made"));
  const auto open = [&](std::string& error) {
    return store::exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  };
  std::string error;
  CHECK(open(error) != nullptr);  // reopened as it is
  for (const char* name : {"hallpass.db", "hallpass.db-wal", "hallpass.db-shm"}) std::filesystem::remove(dir.path / name);
  CHECK(open(error) == nullptr);
  CHECK(error.find("hallpass.db is missing, though a store was made in") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(db));  // nothing made in its place
  // A 0-byte file with no write-ahead log is no store either.
  { std::ofstream empty(db); }
  error.clear();
  CHECK(open(error) == nullptr);
  CHECK(error.find("hallpass.db is empty (0 bytes)") != std::string::npos);
  // Nor with a write-ahead log beside it (a crash, then a bad copy): SQLite would ignore the
  // -wal and delete it at close, every entry in it lost (admin audit, 2026-12-05, F1). The -wal
  // is left as it was, for whoever restores the store.
  const auto wal = dir.path / "hallpass.db-wal";
  { std::ofstream(wal) << "the frames of a crashed store"; }
  error.clear();
  CHECK(open(error) == nullptr);
  CHECK(error.find("hallpass.db is empty (0 bytes)") != std::string::npos);
  CHECK(error.find("hallpass.db-wal beside it cannot be read without it") != std::string::npos);
  CHECK(std::filesystem::file_size(wal) == 29);
  std::filesystem::remove(wal);
  // Deleting both, on purpose, starts an empty store.
  std::filesystem::remove(db);
  std::filesystem::remove(dir.path / "hallpass.db.made");
  auto fresh = open(error);
  REQUIRE(fresh != nullptr);
  CHECK(fresh->list(store::list_filter::all).data.at("requests").as_array().empty());
}

TEST_CASE("a new store says it is new, a store opened again does not") {
  // The daemon says at start when it made a new, empty store (admin audit, 2026-12-05, F8).
  temp_dir dir;
  std::string error;
  auto s = store::exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  REQUIRE_MESSAGE(s != nullptr, error);
  CHECK(s->made_now());
  s.reset();
  auto again = store::exception_store::open(dir.path.string(), rules::time_zone::utc(), &error);
  REQUIRE(again != nullptr);
  CHECK_FALSE(again->made_now());
}

TEST_CASE("a 0-byte store is refused even where no hallpass.db.made says one was made") {
  // The marker is written after the first start, best effort, and a store copied or restored
  // without it is still a store: an emptied one is never replaced (review, 2026-12-05).
  temp_dir dir;
  { std::ofstream empty(dir.path / "hallpass.db"); }
  std::string error;
  CHECK(store::exception_store::open(dir.path.string(), rules::time_zone::utc(), &error) == nullptr);
  CHECK(error.find("hallpass.db is empty (0 bytes)") != std::string::npos);
  CHECK(std::filesystem::exists(dir.path / "hallpass.db"));
}
