// approve --who (issue 12): whom an exception opens the site for, stored with it (schema 4):
// the default is the narrowest that makes sense (the signed-in user who asked, else the device
// the form came from, else the scope a hallpassctl request was filed with); a narrowing the
// request cannot give is refused and audited; exceptions approved before schema 4 keep the
// request's scope.
#include <doctest/doctest.h>

#include <boost/json.hpp>

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

const actor headteacher{"mrs.head", "headteacher"};
const actor technician{"ict.tech", "technician"};
const actor block_page{"block page", "requester"};

store::request_form form_from_device(std::optional<std::string> user,
                                     std::optional<std::string> device) {
  store::request_form f;
  f.url = "https://www.facebook.com/";
  f.requester = "Ava";
  f.reasons = "project";
  f.roles = {"pupils"};
  f.source = "block page";
  f.client_address = "10.10.4.20";
  f.asker_user = std::move(user);
  f.device_name = std::move(device);
  if (f.device_name) f.device_mac = "3c:22:fb:12:9a:01";
  return f;
}

std::int64_t file(exception_store& s, const store::request_form& f, const actor& who = block_page) {
  auto r = s.file_request(who, f);
  REQUIRE(r.ok);
  return r.data.at("id").as_int64();
}

store::result approve(exception_store& s, std::int64_t id,
                      std::optional<std::string> who = std::nullopt) {
  std::string err;
  auto t = rules::make_target("https://www.facebook.com/", rules::target_kind::domain, &err);
  REQUIRE(t);
  const auto now = store::now_seconds();
  return s.approve(headteacher, id, now, now + std::chrono::hours(1), *t, "lesson", who);
}

// The one exception in force, as the proxy's index gets it.
rules::exception_entry active(exception_store& s) {
  std::string err;
  auto a = s.load_active(store::now_seconds(), &err);
  REQUIRE(a);
  REQUIRE(a->first.size() == 1);
  return a->first.front();
}

std::string who_of(exception_store& s, std::int64_t id) {
  const auto e = s.show(id).data.at("exception").as_object().at("who").as_object();
  return std::string(e.at("kind").as_string()) + " " +
         (e.at("value").is_string() ? std::string(e.at("value").as_string()) : std::string("-"));
}

}  // namespace

TEST_CASE("approve narrows a signed-in pupil's request to that pupil by default") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, form_from_device("ava.b", "Pupil-Laptop-07"));
  const auto asked = s->show(id).data.at("asked_by").as_object();
  CHECK(asked.at("user") == "ava.b");
  CHECK(asked.at("device") == "Pupil-Laptop-07");
  CHECK(asked.at("mac") == "3c:22:fb:12:9a:01");
  REQUIRE(approve(*s, id).ok);
  CHECK(who_of(*s, id) == "user ava.b");
  const auto e = active(*s);
  CHECK(e.user == "ava.b");
  CHECK(e.roles.empty());
  CHECK_FALSE(e.client);
}

TEST_CASE(
    "without a signed-in user the default is the device: its address, and its DHCP name when "
    "known") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto named = file(*s, form_from_device(std::nullopt, "Pupil-Laptop-07"));
  REQUIRE(approve(*s, named).ok);
  CHECK(who_of(*s, named) == "device pupil-laptop-07@10.10.4.20");
  const auto e = active(*s);
  REQUIRE(e.device);
  CHECK(e.device->by == rules::device_key::name);
  CHECK(e.device->text == "pupil-laptop-07");
  CHECK(e.device->address == rules::ip_address::parse("10.10.4.20"));
  CHECK(e.roles.empty());

  temp_dir dir2;
  auto s2 = open_store(dir2);
  const auto unnamed = file(*s2, form_from_device(std::nullopt, std::nullopt));
  REQUIRE(approve(*s2, unnamed).ok);
  CHECK(who_of(*s2, unnamed) == "device 10.10.4.20");
  CHECK(active(*s2).device->by == rules::device_key::address);
}

TEST_CASE(
    "approve --who group, role and user, and what a request cannot give is refused and audited") {
  temp_dir dir;
  auto s = open_store(dir);
  const auto id = file(*s, form_from_device(std::nullopt, std::nullopt));
  auto r = approve(*s, id, "user");
  CHECK_FALSE(r.ok);
  CHECK(r.code == "bad_request");
  CHECK(r.error.find("not sent by a signed-in user") != std::string::npos);
  CHECK(s->show(id).data.at("status") == "pending");  // nothing changed
  const auto audit = s->audit(std::nullopt).data.at("entries").as_array();
  CHECK(audit.back().at("action") == "approve");
  CHECK(audit.back().at("outcome") == "refused");
  CHECK_FALSE(approve(*s, id, "group:").ok);
  CHECK_FALSE(approve(*s, id, "everyone").ok);
  REQUIRE(approve(*s, id, "group: Year 6").ok);
  CHECK(who_of(*s, id) == "group Year 6");
  CHECK(active(*s).group == "Year 6");

  // A request filed with hallpassctl for a role keeps the role; it has no device.
  store::request_form role_form;
  role_form.url = "https://www.facebook.com/";
  role_form.requester = "Mr Smith";
  role_form.reasons = "media lesson";
  role_form.roles = {"pupils"};
  temp_dir dir2;
  auto s2 = open_store(dir2);
  const auto filed = file(*s2, role_form, technician);
  CHECK_FALSE(approve(*s2, filed, "device").ok);
  REQUIRE(approve(*s2, filed).ok);
  CHECK(who_of(*s2, filed) == "role pupils");
  CHECK(active(*s2).roles == std::vector<std::string>{"pupils"});
}

TEST_CASE("a store made by schema 3 keeps its exceptions' scopes and gains the new columns") {
  temp_dir dir;
  {
    // Schema 3: schema 1, the review columns, the bans table; one approved role exception.
    std::string error;
    auto d = store::database::open(dir.db(), &error);
    REQUIRE(d.has_value());
    REQUIRE(d->exec(read_file(std::filesystem::path(HALLPASS_SOURCE_DIR) /
                              "tests/store/schema_1.sql")) == "");
    for (const char* sql : store_test::schema_2_additions) REQUIRE(d->exec(sql) == "");
    for (const char* sql : {
             "CREATE TABLE bans (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, subject "
             "TEXT NOT NULL, "
             "reason TEXT NOT NULL, how TEXT NOT NULL, created_by TEXT NOT NULL, created_role TEXT "
             "NOT NULL, "
             "created_at INTEGER NOT NULL, length INTEGER NOT NULL, valid_from INTEGER, "
             "valid_until INTEGER, "
             "confirmed_by TEXT, confirmed_at INTEGER, lifted_by TEXT, lifted_at INTEGER, "
             "lift_reason TEXT)",
             "PRAGMA user_version = 3",
             "INSERT INTO requests(created_at, url, requester, reasons, scope_roles, filed_by, "
             "source, "
             "client_address, decision, decided_by, decided_at, decision_reason) "
             "VALUES(1700000000, "
             "'https://www.facebook.com/', 'Ava', 'project', 'pupils', 'block page', 'block page', "
             "'10.10.4.20', "
             "'approved', 'mrs.head', 1700000000, 'lesson')",
             "INSERT INTO exceptions(request_id, kind, host, path, display, valid_from, "
             "valid_until) "
             "VALUES(1, 'domain', 'www.facebook.com', '/', 'www.facebook.com', 1700000000, "
             "4000000000)",
         }) {
      INFO(sql);
      REQUIRE(d->exec(sql) == "");
    }
  }
  REQUIRE(user_version(dir.db()) == 3);
  auto s = open_store(dir);
  CHECK(user_version(dir.db()) == 5);
  CHECK(who_of(*s, 1) == "role pupils");
  const auto e = active(*s);
  CHECK(e.roles == std::vector<std::string>{"pupils"});
  CHECK(e.user.empty());
  CHECK_FALSE(e.device);
  CHECK(s->show(1).data.at("asked_by").at("user").is_null());
}
