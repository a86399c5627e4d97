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
  // The weekly report's: open ones and those closed since a time.
  store::exception_store::incident_filter since;
  since.closed_since = store::now_seconds() + std::chrono::hours(1);
  CHECK(ids(s->incidents(since)) == std::vector<std::int64_t>{a, c});
  since.closed_since = store::now_seconds() - std::chrono::hours(1);
  CHECK(ids(s->incidents(since)) == std::vector<std::int64_t>{a, b, c});
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
  r = s->apply_retention(later, later, "retention.incidents 1d");
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
