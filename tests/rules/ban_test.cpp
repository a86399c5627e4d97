// Bans in the one decision function (rules/ban.hpp; 000 7.2, 002): a banned device or user
// gets the supervised-use list of bans.policy and nothing else, over exceptions; a site on the
// list is decided as usual; locked categories stay locked; and the `bans:` section's errors.
#include <doctest/doctest.h>

#include "rules/ban.hpp"
#include "rules/decision.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string ban_policy = std::string(test::timetable_yaml) + R"(
categories:
  learning: {domains: [oak.example]}
  illegal: {locked: true, domains: [bad.example]}
  circumvention: {domains: [vpn.example]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, domains: [shut.example, platform.example]}
      - {action: block, categories: [illegal, circumvention]}
bans:
  policy:
    domains: [platform.example, shut.example]
    categories: [learning]
  message: "Only some sites for now."
  threshold: {attempts: 3, within: 10m, duration: 1d}
)";

const std::string day = "2026-11-23 ";

ban_entry device_ban(const policy& p, std::int64_t id, const std::string& address) {
  ban_entry b;
  b.id = id;
  b.device = true;
  b.subject = address;
  b.from = p.zone.to_sys(*parse_local_time(day + "08:00"));
  b.until = p.zone.to_sys(*parse_local_time(day + "15:00"));
  b.reason = "VPN in ICT";
  b.how = "command";
  return b;
}

verdict decide_at(const policy& p, const exception_index* idx, const std::string& client,
                  const std::string& url, const std::string& time = "09:00",
                  std::string_view user = {}) {
  auto parts = split_url(url, nullptr);
  REQUIRE(parts);
  request_facts f;
  f.client = ip_address::parse(client);
  f.user = user;
  f.method = "GET";
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.path = parts->path;
  f.time = p.zone.to_sys(*parse_local_time(day + time));
  return decide_request(p, idx, f);
}

}  // namespace

TEST_CASE("a banned device gets only the supervised-use list, each site still decided as usual") {
  auto p = test::load_yaml(ban_policy);
  auto idx = exception_index::build({}, {}, {device_ban(*p, 4, "10.10.4.20")});
  const auto v = decide_at(*p, idx.get(), "10.10.4.20", "http://open.example/");
  CHECK(v.act == action::block);
  CHECK(v.rule_id == "ban 4");
  CHECK(v.reason == "Only some sites for now.");  // the school's words, not the adult's reason
  CHECK(v.clause == "000 7.2; 002");
  REQUIRE(v.ban != nullptr);
  CHECK(v.ban->reason == "VPN in ICT");
  CHECK(decide_at(*p, idx.get(), "10.10.4.20", "http://www.oak.example/").act ==
        action::allow);  // by category
  // On the list and blocked by the role's rule: still blocked, by that rule (narrows, never
  // widens).
  const auto shut = decide_at(*p, idx.get(), "10.10.4.20", "http://shut.example/");
  CHECK(shut.act == action::block);
  CHECK(shut.ban == nullptr);
  // Another device, and the same device after the ban's end, are decided as before.
  CHECK(decide_at(*p, idx.get(), "10.10.4.21", "http://open.example/").act == action::allow);
  CHECK(decide_at(*p, idx.get(), "10.10.4.20", "http://open.example/", "15:00").act ==
        action::allow);
  CHECK(decide_at(*p, idx.get(), "10.10.4.20", "http://open.example/", "07:59").act ==
        action::allow);
}

TEST_CASE("a ban wins over an exception, and a locked category stays locked with its own reason") {
  auto p = test::load_yaml(ban_policy);
  exception_entry e;
  e.id = 7;
  e.client = ip_network::parse("10.10.4.20");
  std::string err;
  e.target = *make_target("http://shut.example/", target_kind::domain, &err);
  e.from = p->zone.to_sys(*parse_local_time(day + "08:00"));
  e.until = p->zone.to_sys(*parse_local_time(day + "15:00"));
  exception_entry other = e;
  other.id = 8;
  other.target = *make_target("http://open2.example/", target_kind::domain, &err);
  auto idx = exception_index::build({e, other}, {}, {device_ban(*p, 4, "10.10.4.20")});
  // On the supervised list: the exception applies as for anyone.
  CHECK(decide_at(*p, idx.get(), "10.10.4.20", "http://shut.example/").rule_id == "exception 7");
  // Off the list: the exception does not open it during the ban.
  const auto v = decide_at(*p, idx.get(), "10.10.4.20", "http://open2.example/");
  CHECK(v.act == action::block);
  CHECK(v.rule_id == "ban 4");
  CHECK(v.exception_id.empty());
  const auto locked = decide_at(*p, idx.get(), "10.10.4.20", "http://bad.example/");
  CHECK(locked.by == decided_by::locked_category);
  CHECK(locked.ban == nullptr);
}

TEST_CASE("a banned device's attempt to get round the filter is still one, by its category") {
  // proxy/exchange.cpp counts a block by a circumvention category as an attempt (the access
  // log's `circumvention`, hallpass_circumvention_attempts_total): a ban must not hide it.
  auto p = test::load_yaml(ban_policy);
  auto idx = exception_index::build({}, {}, {device_ban(*p, 4, "10.10.4.20")});
  const auto vpn = decide_at(*p, idx.get(), "10.10.4.20", "http://vpn.example/");
  CHECK(vpn.act == action::block);
  CHECK(vpn.rule_id == "ban 4");
  REQUIRE(vpn.matched_category != nullptr);
  CHECK(vpn.matched_category->circumvention);
}

TEST_CASE("a user ban matches that user only, and the one that ends last decides") {
  auto p = test::load_yaml(ban_policy);
  ban_entry user = device_ban(*p, 5, "ava.b");
  user.device = false;
  ban_entry later = user;
  later.id = 6;
  later.until += std::chrono::hours(1);
  auto idx = exception_index::build({}, {}, {user, later});
  CHECK(decide_at(*p, idx.get(), "10.10.4.30", "http://open.example/", "09:00", "ava.b").rule_id ==
        "ban 6");
  CHECK(decide_at(*p, idx.get(), "10.10.4.30", "http://open.example/", "09:00", "ben.c").act ==
        action::allow);
  // A user name compares as the directory compares it: "Ava.B" is ava.b (ASCII case ignored).
  CHECK(decide_at(*p, idx.get(), "10.10.4.30", "http://open.example/", "09:00", "Ava.B").rule_id == "ban 6");
  CHECK(decide_at(*p, idx.get(), "10.10.4.30", "http://open.example/").act == action::allow);
  CHECK(idx->active_bans(p->zone.to_sys(*parse_local_time(day + "09:00"))) == 2);
}

TEST_CASE("the bans section is loaded: list, message, threshold") {
  auto p = test::load_yaml(ban_policy);
  CHECK(p->bans.domains == std::vector<std::string>{"platform.example", "shut.example"});
  CHECK(p->bans.categories.size() == 1);
  CHECK(p->bans.attempts == 3);
  CHECK(p->bans.within == std::chrono::minutes(10));
  CHECK(p->bans.duration == std::chrono::hours(24));
  auto none =
      test::load_yaml(std::string(test::timetable_yaml) + "roles: {pupils: {default: allow}}\n");
  CHECK(none->bans.attempts == 0);  // no section: no automatic bans
}

TEST_CASE("errors in the bans section name the key") {
  const std::string base = std::string(test::timetable_yaml) +
                           "categories:\n  illegal: {locked: true, domains: [bad.example]}\n"
                           "roles: {pupils: {default: allow}}\n";
  auto errors = [&](const std::string& bans) {
    auto r = load_policy_text(base + bans, "t.yaml");
    std::string all;
    for (const auto& e : r.errors) all += e.to_string() + "\n";
    return all;
  };
  CHECK(
      errors("bans: {policy: {categories: [illegal]}}\n").find("cannot list category 'illegal'") !=
      std::string::npos);
  CHECK(errors("bans: {policy: {categories: [learnin]}}\n").find("not defined") !=
        std::string::npos);
  CHECK(errors("bans: {threshold: {attempts: 3, within: 10m}}\n")
            .find("bans.threshold.duration is missing") != std::string::npos);
  CHECK(errors("bans: {threshold: {attempts: 0, within: 10m, duration: 1d}}\n")
            .find("bans.threshold.attempts") != std::string::npos);
  CHECK(errors("bans: {threshold: {attempts: 3, within: 10m, duration: 500d}}\n")
            .find("1m to 366d") != std::string::npos);
  CHECK(errors("bans: {message: \" \"}\n").find("bans.message must not be empty") !=
        std::string::npos);
  CHECK(errors("bans: {polcy: {}}\n").find("polcy") != std::string::npos);
}
