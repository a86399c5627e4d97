// Groups are roles (issue 12): a signed-in user's directory groups choose the role before the
// client address does; the first role in policy order that lists one of them wins.
#include <doctest/doctest.h>

#include <vector>

#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string groups_policy = std::string(test::timetable_yaml) + R"(
categories:
  social: {domains: [facebook.com]}
roles:
  staff:
    groups: [Staff, Office]
    networks: [10.20.0.0/16]
    default: allow
  year6:
    groups: ["Year 6"]
    default: allow
    rules:
      - {action: block, categories: [social]}
  pupils:
    groups: [Pupils]
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, domains: [games.example]}
  guests:
    networks: [10.99.0.0/16]
    default: block
fallback_role: pupils
)";

verdict decide_as(const policy& p, const std::string& client, const std::vector<std::string>& groups,
                  const std::string& host = "example.org") {
  request_facts f;
  f.client = ip_address::parse(client);
  f.user = groups.empty() ? "" : "someone";
  f.groups = groups;
  f.method = "GET";
  f.scheme = "http";
  f.host = host;
  f.path = "/";
  f.time = p.zone.to_sys(*parse_local_time("2026-11-23 11:00"));
  return decide(p, f);
}

}  // namespace

TEST_CASE("a user's group chooses the role before the address") {
  const auto p = test::load_yaml(groups_policy);
  // A Year 6 pupil signed in on a staff laptop is a Year 6 pupil.
  const auto v = decide_as(*p, "10.20.1.1", {"Year 6", "Pupils"});
  REQUIRE(v.chosen_role);
  CHECK(v.chosen_role->name == "year6");
  CHECK(v.role_from == role_source::group);
  CHECK(v.role_detail == "Year 6");
  CHECK(decide_as(*p, "10.20.1.1", {"Year 6"}, "facebook.com").act == action::block);
}

TEST_CASE("the first role in policy order wins, not the first group of the user") {
  const auto p = test::load_yaml(groups_policy);
  // Listed Pupils first, Staff second: staff comes first in the policy, so staff.
  const auto v = decide_as(*p, "10.10.1.1", {"Pupils", "Staff"});
  CHECK(v.chosen_role->name == "staff");
  CHECK(v.role_detail == "Staff");
}

TEST_CASE("two of the user's groups in one role: the role's first listed group is the reason") {
  const auto p = test::load_yaml(groups_policy);
  const auto v = decide_as(*p, "10.10.1.1", {"Governors", "office", "Year 6", "STAFF"});
  CHECK(v.chosen_role->name == "staff");
  CHECK(v.role_detail == "Staff");  // as the policy spells it, not the directory
}

TEST_CASE("group names compare without case, as directories do") {
  const auto p = test::load_yaml(groups_policy);
  CHECK(decide_as(*p, "10.10.1.1", {"year 6"}).chosen_role->name == "year6");
  CHECK(decide_as(*p, "10.10.1.1", {"OFFICE"}).chosen_role->name == "staff");
}

TEST_CASE("signed in with no group a role lists: the fallback role, not the address's (ungrouped_users)") {
  // A machine account, a user of another realm, a new teacher not yet in Staff: signing in on
  // the staff network must not make them staff (audit, 2026-12-05).
  const auto p = test::load_yaml(groups_policy);
  for (const std::vector<std::string>& groups : {std::vector<std::string>{"Governors"}, std::vector<std::string>{}}) {
    request_facts f;
    f.client = ip_address::parse("10.20.0.5");
    f.user = "machine$";
    f.groups = groups;
    f.method = "GET";
    f.scheme = "http";
    f.host = "example.org";
    f.path = "/";
    f.time = p->zone.to_sys(*parse_local_time("2026-11-23 11:00"));
    const auto v = decide(*p, f);
    CHECK(v.chosen_role->name == "pupils");
    CHECK(v.role_from == role_source::fallback);
    CHECK(std::string(v.role_detail).find("ungrouped_users") != std::string::npos);
  }
  // Not signed in: the address's role, then the fallback.
  CHECK(decide_as(*p, "10.99.0.5", {}).chosen_role->name == "guests");
  CHECK(decide_as(*p, "10.20.0.5", {}).chosen_role->name == "staff");
  auto v = decide_as(*p, "192.0.2.1", {"Governors"});
  CHECK(v.chosen_role->name == "pupils");
  CHECK(v.role_from == role_source::fallback);
  CHECK(std::string(v.role_detail).find("groups") != std::string::npos);
  // `ungrouped_users: address`, the school's explicit choice: the address's role, as before.
  const auto q = test::load_yaml(groups_policy + "ungrouped_users: address\n");
  v = decide_as(*q, "10.99.0.5", {"Governors"});
  CHECK(v.chosen_role->name == "guests");
  CHECK(v.role_from == role_source::network);
  // A policy whose roles list no groups: logins only name the user; the address decides.
  const auto plain = test::load_yaml(std::string(test::timetable_yaml) + R"(
roles:
  staff: {networks: [10.20.0.0/16], default: allow}
fallback_role: staff
)");
  CHECK(decide_as(*plain, "10.20.0.5", {"Governors"}).role_from == role_source::network);
}

TEST_CASE("ungrouped_users takes fallback or address only") {
  auto r = load_policy_text(groups_policy + "ungrouped_users: staff\n", "t.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.errors.front().message.find("ungrouped_users must be fallback") != std::string::npos);
}

TEST_CASE("a role named by the caller still comes first (explain --role)") {
  const auto p = test::load_yaml(groups_policy);
  request_facts f;
  const std::vector<std::string> groups{"Staff"};
  f.groups = groups;
  f.role = "guests";
  f.host = "example.org";
  f.scheme = "http";
  f.method = "GET";
  f.path = "/";
  CHECK(decide(*p, f).chosen_role->name == "guests");
}

TEST_CASE("roles.<name>.groups errors and warnings carry file, line and column") {
  auto r = load_policy_text(std::string(test::timetable_yaml) + R"(
roles:
  staff:
    groups: [Staff, "", staff]
    default: allow
  office:
    groups: [STAFF]
    default: allow
  pupils:
    grups: [Pupils]
    default: allow
)",
                            "p.yaml");
  CHECK_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  CHECK(all.find("p.yaml:15:21: role 'staff' groups: a group name cannot be empty") != std::string::npos);
  CHECK(all.find("p.yaml:15:25: role 'staff' lists group 'staff' twice") != std::string::npos);
  CHECK(all.find("p.yaml:21:5:") != std::string::npos);  // grups: an unknown key, with a hint
  CHECK(all.find("groups") != std::string::npos);
  std::string warned;
  for (const auto& w : r.warnings) warned += w.to_string() + "\n";
  CHECK(warned.find("p.yaml:18:14: role 'office' group 'STAFF' is already listed by role 'staff'") != std::string::npos);
}
