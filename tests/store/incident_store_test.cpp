// Incident records (store/incidents.cpp) on real SQLite files: opened, actions recorded one by
// one, closed once with an outcome, listed by status and subject, audited with the record
// before and after, and deleted by retention.incidents only, never by retention.records.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "store/exception_store.hpp"
#include "tests/store/store_fixture.hpp"

namespace {

using namespace hallpass;
using namespace store_test;

std::int64_t open_one(store::exception_store& s, const std::string& subject, bool device = false,
                      const std::string& outcome = "") {
  store::incident_form f;
  f.device = device;
  f.subject = subject;
  f.what = "self-harm alert at 11:05 for " + subject;
  f.category = "self_harm";
  f.happened = store::now_seconds() - std::chrono::hours(1);
  f.action = "Spoke to " + subject + " with the form tutor";
  f.outcome = outcome;
  auto r = s.open_incident(dsl, f);
  INFO(r.error);
  REQUIRE(r.ok);
  return r.data.at("id").as_int64();
}

std::vector<std::int64_t> ids(const store::result& r) {
  REQUIRE(r.ok);
  std::vector<std::int64_t> out;
  for (const auto& i : r.data.at("incidents").as_array()) out.push_back(i.at("id").as_int64());
  return out;
}

}  // namespace

TEST_CASE("an incident records each action and closes once with its outcome") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = open_one(*s, "ava.b");
  auto shown = s->incident(id);
  REQUIRE(shown.ok);
  CHECK(shown.data.at("status") == "open");
  CHECK(shown.data.at("category") == "self_harm");
  CHECK(shown.data.at("opened").at("by") == "mr.dsl");
  CHECK(shown.data.at("actions").as_array().size() == 1);

  auto r = s->record_incident(headteacher, id, "Parents informed by phone", "");
  REQUIRE(r.ok);
  CHECK(r.data.at("actions").as_array().back().at("by") == "mrs.head");
  CHECK(r.data.at("status") == "open");
  r = s->record_incident(dsl, id, "", "Early help referral made; no further filtering concern");
  REQUIRE(r.ok);
  CHECK(r.data.at("status") == "closed");
  CHECK(r.data.at("closed").at("outcome") == "Early help referral made; no further filtering concern");

  // The outcome stands; what follows is an action.
  r = s->record_incident(dsl, id, "", "another outcome");
  CHECK(r.code == "conflict");
  r = s->record_incident(dsl, id, "Checked in a month later: fine", "");
  REQUIRE(r.ok);
  CHECK(r.data.at("actions").as_array().size() == 3);
  CHECK(r.data.at("closed").at("outcome") == "Early help referral made; no further filtering concern");
  CHECK(s->record_incident(dsl, id + 100, "x", "").code == "not_found");
  CHECK(s->incident(id + 100).code == "not_found");

  // Every change is in the audit log under "incident N", with the record before and after.
  auto audit = s->audit(std::nullopt);
  REQUIRE(audit.ok);
  std::vector<std::string> actions;
  for (const auto& e : audit.data.at("entries").as_array()) {
    if (e.at("object") == boost::json::value("incident " + std::to_string(id))) actions.emplace_back(e.at("action").as_string());
  }
  CHECK(actions == std::vector<std::string>{"open incident", "incident action", "close incident", "incident action"});
  // Each entry holds what changed, not the whole incident again (which grew with the square of
  // its length: audit, 2026-12-06).
  for (const auto& e : audit.data.at("entries").as_array()) {
    if (e.at("object") != boost::json::value("incident " + std::to_string(id)) || e.at("action") == "open incident") continue;
    CHECK_FALSE(e.at("after").as_object().contains("actions"));
    CHECK_FALSE(e.at("before").as_object().contains("what"));
  }
}

TEST_CASE("incidents lists the open ones, all of them, or one subject's") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto a = open_one(*s, "ava.b");
  const auto b = open_one(*s, "Sam.C", false, "Resolved at once");
  const auto c = open_one(*s, "10.0.0.8", true);
  CHECK(ids(s->incidents({})) == std::vector<std::int64_t>{a, c});
  store::exception_store::incident_filter all;
  all.all = true;
  CHECK(ids(s->incidents(all)) == std::vector<std::int64_t>{a, b, c});
  store::exception_store::incident_filter sam;
  sam.all = true;
  sam.subject = std::pair{false, std::string("sam.c")};  // a user name compares without case
  CHECK(ids(s->incidents(sam)) == std::vector<std::int64_t>{b});
  store::exception_store::incident_filter device;
  device.subject = std::pair{true, std::string("10.0.0.8")};
  CHECK(ids(s->incidents(device)) == std::vector<std::int64_t>{c});
  // The weekly report's: those open at any time in a period (and happened or opened before its
  // end), without their words, the newest `limit`, the rest counted.
  const auto now = store::now_seconds();
  const auto summary_ids = [&](store::seconds_t from, store::seconds_t to, std::size_t limit = 200) {
    std::uint64_t omitted = 0;
    std::string error;
    auto rows = s->incident_summaries(from, to, limit, &omitted, &error);
    INFO(error);
    REQUIRE(rows.has_value());
    std::vector<std::int64_t> out;
    for (const auto& r : *rows) out.push_back(r.id);
    return std::pair{out, omitted};
  };
  CHECK(summary_ids(now + std::chrono::hours(1), now + std::chrono::hours(2)).first ==
        std::vector<std::int64_t>{a, c});  // b closed before the period
  CHECK(summary_ids(now - std::chrono::hours(3), now + std::chrono::hours(1)).first == std::vector<std::int64_t>{a, b, c});
  CHECK(summary_ids(now - std::chrono::hours(5), now - std::chrono::hours(4)).first.empty());  // before all of them
  CHECK(summary_ids(now - std::chrono::hours(3), now + std::chrono::hours(1), 2) ==
        std::pair{std::vector<std::int64_t>{b, c}, std::uint64_t{1}});
  {
    std::uint64_t omitted = 0;
    std::string error;
    const auto rows = s->incident_summaries(now - std::chrono::hours(3), now + std::chrono::hours(1), 200, &omitted, &error);
    REQUIRE(rows.has_value());
    const auto& sam = (*rows)[1];
    CHECK((sam.subject == "Sam.C" && !sam.device && sam.category == "self_harm" && sam.actions == 1));
    CHECK(sam.closed.has_value());
    CHECK(sam.last_action.has_value());
    CHECK(std::chrono::abs(sam.happened - (now - std::chrono::hours(1))) <= std::chrono::seconds(2));
    CHECK((*rows)[2].device);
  }
  // At most max_bytes of answer, the newest always, the rest counted.
  auto small = s->incidents(all, 200, 10);
  CHECK(ids(small) == std::vector<std::int64_t>{c});
  CHECK(small.data.at("omitted").as_int64() == 2);
  // The newest `limit`, and how many older ones were left out.
  auto limited = s->incidents(all, 2);
  CHECK(ids(limited) == std::vector<std::int64_t>{b, c});
  CHECK(limited.data.at("omitted").as_int64() == 1);
  CHECK(s->open_incidents() == 2);
}

TEST_CASE("retention deletes closed incidents by retention.incidents only, with their audit entries") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto open = open_one(*s, "ava.b");
  const auto closed = open_one(*s, "sam.c", false, "Resolved");
  const auto later = store::now_seconds() + std::chrono::hours(2);
  // retention.records alone never touches incident records nor their history.
  auto r = s->apply_retention(later, std::nullopt, "retention.records 1d");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.data.at("incidents").as_int64() == 0);
  CHECK(s->incident(closed).ok);
  // retention.incidents deletes the closed one, its actions and then its audit entries;
  // the open one stays whatever its age, with its history.
  r = s->apply_retention(std::nullopt, later, "retention.records forever, retention.incidents 30d");
  REQUIRE(r.ok);
  CHECK(r.data.at("incidents").as_int64() == 1);
  CHECK(s->incident(closed).code == "not_found");
  REQUIRE(s->incident(open).ok);
  CHECK(s->incident(open).data.at("actions").as_array().size() == 1);
  auto audit = s->audit(std::nullopt);
  REQUIRE(audit.ok);
  bool open_history = false, closed_history = false;
  for (const auto& e : audit.data.at("entries").as_array()) {
    open_history = open_history || e.at("object") == boost::json::value("incident " + std::to_string(open));
    closed_history = closed_history || e.at("object") == boost::json::value("incident " + std::to_string(closed));
  }
  CHECK(open_history);
  CHECK_FALSE(closed_history);
}

TEST_CASE("an incident's audit entries go with it even when retention.records keeps everything, and a follow-up keeps it") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto gone = open_one(*s, "ava.b", false, "Resolved");
  const auto followed = open_one(*s, "sam.c", false, "Resolved");
  const auto later = store::now_seconds() + std::chrono::hours(2);
  // A follow-up after the close, and after the cutoff: that incident stays, whole.
  std::string error;
  {
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d.has_value());
    REQUIRE(d->exec("INSERT INTO incident_actions(incident_id, at, by, role, action) VALUES(" + std::to_string(followed) +
                    ", " + std::to_string(later.time_since_epoch().count() + 60) + ", 'mr.dsl', 'dsl', 'checked in')") == "");
  }
  auto r = s->apply_retention(std::nullopt, later, "retention.records forever, retention.incidents 30d");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.data.at("incidents").as_int64() == 1);
  CHECK(s->incident(gone).code == "not_found");
  REQUIRE(s->incident(followed).ok);
  CHECK(s->incident(followed).data.at("actions").as_array().size() == 2);
  auto audit = s->audit(std::nullopt);
  REQUIRE(audit.ok);
  for (const auto& e : audit.data.at("entries").as_array()) {
    CHECK(e.at("object") != boost::json::value("incident " + std::to_string(gone)));
  }
}
