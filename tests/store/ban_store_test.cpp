// Bans in the store (000 7.2; 002) on real SQLite files: filed, proposed and confirmed,
// lifted, loaded for the overlay, audited, durable across a reopen, and a store made by
// schema 2 (before the bans table) brought up to date with its rows kept.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "store/exception_store.hpp"
#include "tests/store/store_fixture.hpp"

namespace {

namespace json = boost::json;
using namespace hallpass;
using store::actor;
using store::exception_store;
using store_test::open_store;
using store_test::read_file;
using store_test::temp_dir;
using store_test::user_version;

const actor dsl{"mr.dsl", "dsl"};
const actor technician{"ict.tech", "technician"};
const actor automatic{"hallpass", "automatic"};

store::ban_form device_ban(std::string how = "command", std::string address = "10.10.4.20") {
  store::ban_form f;
  f.device = true;
  f.subject = std::move(address);
  f.length = std::chrono::hours(24);
  f.reason = "VPN app in ICT";
  f.how = std::move(how);
  return f;
}

std::vector<rules::ban_entry> in_force(exception_store& s,
                                       store::seconds_t at = store::now_seconds()) {
  std::string error;
  auto bans = s.load_bans(at, &error);
  INFO(error);
  REQUIRE(bans.has_value());
  return std::move(*bans);
}

std::vector<json::object> audit_of(exception_store& s, std::int64_t id) {
  std::vector<json::object> out;
  const auto all = s.audit(std::nullopt);
  for (const auto& e : all.data.at("entries").as_array()) {
    if (e.at("object").as_string() == "ban " + std::to_string(id)) out.push_back(e.as_object());
  }
  return out;
}

}  // namespace

TEST_CASE("a ban by the DSL is in force at once, for its length, and survives a reopen") {
  temp_dir dir;
  std::int64_t id = 0;
  {
    auto s = open_store(dir);
    auto r = s->ban(dsl, device_ban());
    REQUIRE(r.ok);
    id = r.data.at("id").as_int64();
    CHECK(r.data.at("status") == "active");
    CHECK(r.data.at("how") == "command");
    CHECK(r.data.at("length") == "1d");
    const auto bans = in_force(*s);
    REQUIRE(bans.size() == 1);
    CHECK(bans[0].device);
    CHECK(bans[0].subject == "10.10.4.20");
    CHECK(bans[0].until - bans[0].from == std::chrono::hours(24));
    CHECK(bans[0].reason == "VPN app in ICT");
    // Not in force after its end.
    CHECK(in_force(*s, store::now_seconds() + std::chrono::hours(25)).empty());
  }
  auto s = open_store(dir);  // a restart
  REQUIRE(in_force(*s).size() == 1);
  CHECK(in_force(*s)[0].id == id);
  const auto audit = audit_of(*s, id);
  REQUIRE(audit.size() == 1);
  CHECK(audit[0].at("action") == "ban");
  CHECK(audit[0].at("os_user") == "mr.dsl");
  CHECK(audit[0].at("after").at("subject") == "10.10.4.20");
}

TEST_CASE(
    "a technician's proposal has no effect until confirmed, then runs for its length from then") {
  temp_dir dir;
  auto s = open_store(dir);
  auto r = s->ban(technician, device_ban("proposal"));
  REQUIRE(r.ok);
  const auto id = r.data.at("id").as_int64();
  CHECK(r.data.at("status") == "proposed");
  CHECK(r.data.at("until").is_null());
  CHECK(in_force(*s).empty());
  CHECK(s->bans(false).data.at("bans").as_array().size() == 1);  // listed for the DSL
  auto c = s->confirm_ban(dsl, id, "agreed");
  REQUIRE(c.ok);
  CHECK(c.data.at("status") == "active");
  CHECK(c.data.at("confirmed").at("by") == "mr.dsl");
  REQUIRE(in_force(*s).size() == 1);
  CHECK(in_force(*s)[0].until - in_force(*s)[0].from == std::chrono::hours(24));
  // Twice is refused.
  auto again = s->confirm_ban(dsl, id, "");
  CHECK_FALSE(again.ok);
  CHECK(again.code == "conflict");
  CHECK(s->confirm_ban(dsl, 99, "").code == "not_found");
  const auto audit = audit_of(*s, id);
  REQUIRE(audit.size() == 2);
  CHECK(audit[0].at("action") == "propose ban");
  CHECK(audit[1].at("action") == "confirm ban");
  CHECK(audit[1].at("before").at("status") == "proposed");
  CHECK(audit[1].at("after").at("status") == "active");
}

TEST_CASE("unban lifts by id or every ban on a subject, and a withdrawn proposal says so") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto a = s->ban(dsl, device_ban()).data.at("id").as_int64();
  const auto b = s->ban(dsl, device_ban()).data.at("id").as_int64();
  const auto p = s->ban(technician, device_ban("proposal", "10.10.4.30")).data.at("id").as_int64();
  CHECK(in_force(*s).size() == 2);
  auto r = s->unban(dsl, std::nullopt, true, "10.10.4.20", "spoke with parents");
  REQUIRE(r.ok);
  CHECK(r.data.at("bans").as_array().size() == 2);
  CHECK(in_force(*s).empty());
  auto w = s->unban(dsl, p, false, "", "not needed");
  REQUIRE(w.ok);
  CHECK(w.data.at("bans").as_array()[0].at("status") == "withdrawn");
  CHECK(s->unban(dsl, a, false, "", "again").code == "conflict");
  CHECK(s->unban(dsl, std::nullopt, false, "nobody", "x").code == "not_found");
  CHECK(s->bans(false).data.at("bans").as_array().empty());
  CHECK(s->bans(true).data.at("bans").as_array().size() == 3);
  CHECK(audit_of(*s, b).back().at("after").at("lifted").at("reason") == "spoke with parents");
  // A user's ban is lifted by the name in any ASCII case, as the proxy matches it.
  auto user = device_ban("command", "Ava.B");
  user.device = false;
  REQUIRE(s->ban(dsl, user).ok);
  CHECK(s->unban(dsl, std::nullopt, false, "ava.b", "spoke with her").ok);
  CHECK(in_force(*s).empty());
}

TEST_CASE("an automatic ban on a subject already banned is refused, so a burst files one") {
  temp_dir dir;
  auto s = open_store(dir);
  auto first = s->ban(automatic, device_ban("automatic"));
  REQUIRE(first.ok);
  auto second = s->ban(automatic, device_ban("automatic"));
  CHECK_FALSE(second.ok);
  CHECK(second.code == "conflict");
  CHECK(in_force(*s).size() == 1);
  CHECK(audit_of(*s, first.data.at("id").as_int64())[0].at("outcome") == "automatic");
  // A user of the same name as nothing else: kinds are apart.
  auto user = device_ban("automatic", "10.10.4.20");
  user.device = false;
  CHECK(s->ban(automatic, user).ok);
}

TEST_CASE("a store made by schema 2 gets the bans table and keeps its rows") {
  temp_dir dir;
  {
    // Schema 2: schema 1 and the review columns, user_version 2, one request.
    std::string error;
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d.has_value());
    REQUIRE(d->exec(read_file(std::filesystem::path(HALLPASS_SOURCE_DIR) /
                              "tests/store/schema_1.sql")) == "");
    for (const char* sql : store_test::schema_2_additions) REQUIRE(d->exec(sql) == "");
    for (const char* sql : {
             "PRAGMA user_version = 2",
             "INSERT INTO requests(created_at, url, requester, reasons, scope_roles, filed_by, "
             "source) "
             "VALUES(1700000000, 'https://www.tiktok.com/', 'Mr Smith', 'lesson', 'pupils', "
             "'ict.tech', 'hallpassctl')",
         }) {
      INFO(sql);
      REQUIRE(d->exec(sql) == "");
    }
  }
  REQUIRE(user_version(dir.db()) == 2);
  auto s = open_store(dir);
  CHECK(user_version(dir.db()) == 5);
  CHECK(s->show(1).data.at("url") == "https://www.tiktok.com/");
  CHECK(s->bans(true).data.at("bans").as_array().empty());
  REQUIRE(s->ban(dsl, device_ban()).ok);
  CHECK(in_force(*s).size() == 1);
}
