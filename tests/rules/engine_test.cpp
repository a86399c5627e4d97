#include <doctest/doctest.h>

#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;
using test::ask;

namespace {

const std::string staff_policy = std::string(test::timetable_yaml) + R"(
  terms:
    - {name: Autumn 2026, from: 2026-09-02, to: 2026-12-18}
    - {name: Spring 2027, from: 2027-01-05, to: 2027-03-26}
  holidays:
    - {name: Half term, from: 2026-10-26, to: 2026-10-30}
categories:
  social: {domains: [facebook.com, instagram.com]}
  games:  {domains: [games.example], urls: ["news.example/games"]}
  wiki:   {patterns: ['^https?://[^/]*wikipedia\.org/.*[?&]action=edit']}
  iwf:    {locked: true, domains: [bad.example], urls: ["host.example/illegal/"]}
roles:
  staff:
    networks: [10.20.0.0/16, "fd00:20::/64"]
    default: allow
    rules:
      - {action: block, categories: [social], during: [lessons]}
  pupils:
    networks: [10.10.0.0/16, 10.10.5.0/24]
    default: allow
    rules:
      - {action: allow, domains: [games.example], during: [lunch]}
      - {action: block, categories: [games]}
      - {action: block, categories: [social]}
      - {action: block, categories: [wiki]}
      - {action: block, domains: [wikipedia.org], methods: [post]}
  office:
    networks: [10.10.5.7/32]
    default: block
    rules:
      - {name: work sites, action: allow, domains: [gov.uk, bad.example]}
)";

}  // namespace

TEST_CASE("every timetable boundary minute") {
  auto p = test::load_yaml(staff_policy);
  ask staff{*p, "staff"};
  const std::string fb = "https://www.facebook.com/";
  CHECK_FALSE(staff.allowed("2026-11-23 08:50", fb));  // first minute of Lesson 1
  CHECK(staff.allowed("2026-11-23 08:49", fb));        // before school
  CHECK_FALSE(staff.allowed("2026-11-23 10:29", fb));  // last minute of Lesson 1
  CHECK(staff.allowed("2026-11-23 10:30", fb));        // break starts
  CHECK(staff.allowed("2026-11-23 10:44", fb));
  CHECK_FALSE(staff.allowed("2026-11-23 10:45", fb));  // Lesson 2 starts
  CHECK(staff.allowed("2026-11-23 12:30", fb));        // lunch
  CHECK_FALSE(staff.allowed("2026-11-23 15:14", fb));
  CHECK(staff.allowed("2026-11-23 15:15", fb));  // the school day is over
  auto v = staff.at("2026-11-23 10:30", fb);
  REQUIRE(v.when.current);
  CHECK(v.when.current->name == "Break");
  CHECK(staff.at("2026-11-23 10:29", fb).when.current->name == "Lesson 1");
}

TEST_CASE("weekends, holidays and days outside term are outside school hours") {
  auto p = test::load_yaml(staff_policy);
  ask staff{*p, "staff"};
  const std::string fb = "https://www.facebook.com/";
  CHECK(staff.allowed("2026-11-21 11:00", fb));  // Saturday
  CHECK(staff.allowed("2026-11-22 11:00", fb));  // Sunday
  CHECK(staff.at("2026-11-21 11:00", fb).when.outside_why == "weekend");
  CHECK(staff.allowed("2026-10-27 11:00", fb));  // half term (a Tuesday)
  CHECK(staff.at("2026-10-27 11:00", fb).when.outside_why == "Half term");
  CHECK(staff.allowed("2026-12-23 11:00", fb));  // Christmas: between terms
  CHECK(staff.at("2026-12-23 11:00", fb).when.outside_why == "outside term time");
  CHECK_FALSE(staff.allowed("2027-01-05 11:00", fb));  // first day of spring term
}

TEST_CASE("a named day replaces the weekdays' timetable on that day only") {
  // yaml-cpp's `=` between nodes writes through: Friday's early finish once became every
  // weekday's, so staff social media was allowed at 14:00 on a Monday (docs audit, 2026-12-05).
  for (const bool friday_first : {false, true}) {
    CAPTURE(friday_first);
    const std::string weekdays = R"(
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "08:50", to: "12:00"}
      - {name: Lesson 2, kind: lesson, from: "13:00", to: "15:15"})";
    const std::string friday = R"(
    friday:
      - {name: Morning, kind: lesson, from: "08:50", to: "12:00"}
    monday:
      - {name: Lesson 1, kind: lesson, from: "08:50", to: "12:00"}
      - {name: Lesson 2, kind: lesson, from: "13:00", to: "16:00"})";
    auto p = test::load_yaml(R"(
school:
  name: Test School
  timezone: Europe/London
  timetable:)" + (friday_first ? friday + weekdays : weekdays + friday) + R"(
categories:
  social: {domains: [facebook.com]}
roles:
  staff:
    networks: [10.20.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [social], during: [lessons]}
)");
    ask staff{*p, "staff"};
    const std::string fb = "https://www.facebook.com/";
    CHECK_FALSE(staff.allowed("2026-11-23 15:30", fb));  // Monday: its own day, to 16:00
    CHECK_FALSE(staff.allowed("2026-11-24 14:00", fb));  // Tuesday: the weekdays' Lesson 2
    CHECK(staff.allowed("2026-11-24 15:30", fb));        // ... which ends at 15:15
    CHECK_FALSE(staff.allowed("2026-11-26 14:00", fb));  // Thursday, likewise
    CHECK(staff.allowed("2026-11-27 14:00", fb));        // Friday: the early finish
    CHECK_FALSE(staff.allowed("2026-11-27 11:00", fb));
    CHECK(staff.at("2026-11-27 11:00", fb).when.current->name == "Morning");
    CHECK(staff.at("2026-11-24 11:00", fb).when.current->name == "Lesson 1");
  }
}

TEST_CASE("a period name with another kind on another day: the kind words follow the day's kind") {
  // Period 2 is a lesson Monday to Thursday and a break on Friday. One bit per name made
  // `during: [breaks]` match it every day (policy audit, 2026-12-05: games allowed in a lesson).
  auto p = test::load_yaml(R"(
school:
  name: Test School
  timezone: Europe/London
  timetable:
    weekdays:
      - {name: Period 1, kind: lesson, from: "09:00", to: "10:00"}
      - {name: Period 2, kind: lesson, from: "10:00", to: "11:00"}
    friday:
      - {name: Period 1, kind: lesson, from: "09:00", to: "10:00"}
      - {name: Period 2, kind: break, from: "10:00", to: "11:00"}
categories:
  games: {domains: [games.example]}
  video: {domains: [video.example]}
  chat: {domains: [chat.example]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: block
    rules:
      - {action: allow, categories: [games], during: [breaks]}
      - {action: allow, categories: [video], during: [Period 2]}
      - {action: allow, categories: [chat], during: [break]}
  staff:
    networks: [10.20.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [games], during: [lessons]}
)");
  ask pupils{*p, "pupils"}, staff{*p, "staff"};
  const std::string games = "http://games.example/", video = "http://video.example/";
  CHECK_FALSE(pupils.allowed("2026-12-07 10:30", games));  // Monday: Period 2 is a lesson
  CHECK(pupils.allowed("2026-12-11 10:30", games));        // Friday: Period 2 is a break
  CHECK(staff.allowed("2026-12-11 10:30", games));         // ... so not a lesson for staff
  CHECK_FALSE(staff.allowed("2026-12-07 10:30", games));
  CHECK_FALSE(staff.allowed("2026-12-11 09:30", games));   // Friday's Period 1 is a lesson
  // By name: Period 2 whatever its kind that day.
  CHECK(pupils.allowed("2026-12-07 10:30", video));
  CHECK(pupils.allowed("2026-12-11 10:30", video));
  CHECK_FALSE(pupils.allowed("2026-12-07 09:30", video));
  // The singular spelling is the same keyword.
  CHECK_FALSE(pupils.allowed("2026-12-07 10:30", "http://chat.example/"));
  CHECK(pupils.allowed("2026-12-11 10:30", "http://chat.example/"));
}

TEST_CASE("IPv4-mapped IPv6 spellings in networks and block entries are their IPv4 addresses") {
  // The proxy takes a dual-stack client ::ffff:10.30.0.5 as 10.30.0.5, and decides a request to
  // [::ffff:1.2.3.4] as one to 1.2.3.4: written mapped, networks and entries matched nothing
  // (policy audit, 2026-12-05: a pupil fell to the staff role).
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  doh: {domains: ["::ffff:1.2.3.4", "64:ff9b::5.6.7.8"]}
roles:
  staff:
    networks: ["::ffff:10.20.0.0/112", 10.40.0.0/16]
    default: allow
  pupils:
    networks: ["::ffff:10.30.0.0/112"]
    default: allow
    rules:
      - {action: block, categories: [doh]}
)");
  ask pupil{*p, "", "10.30.0.5"}, staff{*p, "", "10.20.0.5"};
  CHECK(pupil.at("2026-11-23 11:00", "http://example.org/").chosen_role->name == "pupils");  // /112 is /16
  CHECK(staff.at("2026-11-23 11:00", "http://example.org/").chosen_role->name == "staff");
  CHECK_FALSE(pupil.allowed("2026-11-23 11:00", "https://1.2.3.4/"));
  CHECK_FALSE(pupil.allowed("2026-11-23 11:00", "https://5.6.7.8/"));
  CHECK(pupil.allowed("2026-11-23 11:00", "https://1.2.3.5/"));
  // Written both ways for two roles, it is one network given twice: an error, not a shadow.
  auto twice = hallpass::rules::load_policy_text(std::string(test::timetable_yaml) + R"(
roles:
  staff: {networks: [10.30.0.0/16], default: allow}
  pupils: {networks: ["::ffff:10.30.0.0/112"], default: block}
)", "test.yaml");
  CHECK_FALSE(twice.ok());
}

TEST_CASE("both UK clock changes: a 09:00 lesson is a lesson the day after") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  social: {domains: [facebook.com]}
roles:
  staff: {default: allow, rules: [{action: block, categories: [social], during: [lessons]}]}
)");
  using namespace std::chrono;
  const auto decide_utc = [&](sys_seconds t) {
    request_facts f;
    f.role = "staff";
    f.method = "GET";
    f.scheme = "https";
    f.host = "www.facebook.com";
    f.time = t;
    return decide(*p, f);
  };
  using namespace std::chrono;
  // Monday 30 March 2026 (BST since Sunday): 09:00 local is 08:00 UTC, a lesson.
  auto spring = decide_utc(sys_days{2026y / 3 / 30} + 8h);
  CHECK(spring.act == action::block);
  REQUIRE(spring.when.current);
  CHECK(spring.when.current->name == "Lesson 1");
  // 08:30 UTC the same morning is 09:30 BST; 07:55 UTC is 08:55 BST, also a lesson.
  CHECK(decide_utc(sys_days{2026y / 3 / 30} + 7h + 55min).act == action::block);
  // ...and 07:45 UTC is 08:45 BST: before school.
  CHECK(decide_utc(sys_days{2026y / 3 / 30} + 7h + 45min).act == action::allow);
  // Monday 26 October 2026 (GMT again): 09:00 local is 09:00 UTC.
  auto autumn = decide_utc(sys_days{2026y / 10 / 26} + 9h);
  CHECK(autumn.act == action::block);
  CHECK(decide_utc(sys_days{2026y / 10 / 26} + 8h + 45min).act == action::allow);  // 08:45 GMT
  // The Friday before the spring change: 08:00 UTC is 08:00 GMT, before school.
  CHECK(decide_utc(sys_days{2026y / 3 / 27} + 8h).act == action::allow);
}

TEST_CASE("rules are ordered: the first match wins") {
  auto p = test::load_yaml(staff_policy);
  ask pupils{*p, "pupils"};
  // games.example: allowed at lunch by rule 1, blocked otherwise by rule 2.
  auto lunch = pupils.at("2026-11-23 12:15", "http://games.example/");
  CHECK(lunch.act == action::allow);
  CHECK(lunch.rule_id == "pupils rule 1");
  auto lesson = pupils.at("2026-11-23 11:15", "http://games.example/");
  CHECK(lesson.act == action::block);
  CHECK(lesson.rule_id == "pupils rule 2");
  CHECK(lesson.category_name() == "games");
}

TEST_CASE("URL prefixes, patterns and methods") {
  auto p = test::load_yaml(staff_policy);
  ask pupils{*p, "pupils"};
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://news.example/games/chess"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://www.news.example/games"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://news.example/politics"));
  // The same paths written differently are the same paths.
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://news.example/%67ames/chess"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://news.example//games"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://news.example/politics/../games"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=X&%61ction=edit"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=X&action=edit"));
  CHECK(pupils.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl"));
  ask posting{*p, "pupils", "", "POST"};
  auto v = posting.at("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl");
  CHECK(v.act == action::block);
  CHECK(v.rule_id == "pupils rule 5");
  // Inside a tunnel the path is unknown: prefix rules cannot match.
  request_facts f;
  f.role = "pupils";
  f.method = "CONNECT";
  f.scheme = "https";
  f.host = "news.example";
  f.port = 443;
  f.time = p->zone.to_sys(*parse_local_time("2026-11-23 11:00"));
  CHECK(decide(*p, f).act == action::allow);
}

TEST_CASE("locked categories block before any rule, even an allow rule for the domain") {
  auto p = test::load_yaml(staff_policy);
  ask office{*p, "office"};
  CHECK(office.allowed("2026-11-23 11:00", "https://www.gov.uk/"));
  auto v = office.at("2026-11-23 11:00", "https://www.bad.example/");
  CHECK(v.act == action::block);
  CHECK(v.by == decided_by::locked_category);
  CHECK(v.category_name() == "iwf");
  CHECK_FALSE(office.allowed("2026-11-23 11:00", "http://host.example/illegal/x"));
  CHECK(explain(*p, request_facts{.role = "office", .method = "GET", .scheme = "https", .host = "bad.example"})
            .would_allow.front()
            .starts_with("Nothing"));
}

TEST_CASE("the role comes from the client address, longest prefix first, IPv4 and IPv6") {
  auto p = test::load_yaml(staff_policy);
  CHECK(ask{*p, "", "10.20.1.2"}.at("2026-11-23 11:00", "http://a.example/").chosen_role->name == "staff");
  CHECK(ask{*p, "", "fd00:20::9"}.at("2026-11-23 11:00", "http://a.example/").chosen_role->name == "staff");
  CHECK(ask{*p, "", "10.10.9.9"}.at("2026-11-23 11:00", "http://a.example/").chosen_role->name == "pupils");
  auto office = ask{*p, "", "10.10.5.7"}.at("2026-11-23 11:00", "http://a.example/");
  CHECK(office.chosen_role->name == "office");
  CHECK(office.role_from == role_source::network);
  CHECK(office.role_detail == "10.10.5.7/32");
  // Unknown address and no fallback_role: the built-in role that blocks everything.
  auto stranger = ask{*p, "", "192.0.2.1"}.at("2026-11-23 11:00", "http://a.example/");
  CHECK(stranger.chosen_role->name == "unassigned");
  CHECK(stranger.role_from == role_source::fallback);
  CHECK(stranger.act == action::block);
}

TEST_CASE("a configured fallback role is used for unknown addresses") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
fallback_role: guests
roles:
  guests: {default: allow, networks: [10.99.0.0/16]}
  staff: {default: allow, networks: [10.20.0.0/16]}
)");
  auto v = ask{*p, "", "203.0.113.5"}.at("2026-11-23 11:00", "http://a.example/");
  CHECK(v.chosen_role->name == "guests");
  CHECK(v.role_from == role_source::fallback);
}

TEST_CASE("hosts are matched in canonical form") {
  auto p = test::load_yaml(staff_policy);
  ask pupils{*p, "pupils"};
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://WWW.FACEBOOK.COM./"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://%66acebook.com/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "https://notfacebook.com/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "https://facebook.com.example.org/"));
  auto bad = pupils.at("2026-11-23 11:00", "https://bad..host/");
  CHECK(bad.act == action::block);
  CHECK(bad.by == decided_by::unchecked);
}

TEST_CASE("IP literal entries match exactly, in any spelling") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  doh: {domains: [1.1.1.1, "2606:4700:4700::1111"]}
roles:
  pupils: {default: allow, rules: [{action: block, categories: [doh]}]}
)");
  ask pupils{*p, "pupils"};
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://1.1.1.1/dns-query"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://16843009/dns-query"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://[2606:4700:4700:0::1111]/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "https://1.1.1.2/"));
}

TEST_CASE("a rule reports the first category it lists that the host is in") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  alpha: {domains: [both.example, alpha.example]}
  beta:  {domains: [both.example]}
roles:
  listed_up:   {default: allow, rules: [{action: block, categories: [alpha, beta]}]}
  listed_down: {default: allow, rules: [{action: block, categories: [beta, alpha]}]}
)");
  CHECK(ask{*p, "listed_up"}.at("2026-11-23 11:00", "https://both.example/").category_name() == "alpha");
  CHECK(ask{*p, "listed_down"}.at("2026-11-23 11:00", "https://both.example/").category_name() == "beta");
  CHECK(ask{*p, "listed_down"}.at("2026-11-23 11:00", "https://x.alpha.example/").category_name() == "alpha");
  CHECK(ask{*p, "listed_down"}.allowed("2026-11-23 11:00", "https://gamma.example/"));
}

TEST_CASE("policies with more than 512 categories match sets beyond the inline bitset") {
  std::string yaml = std::string(test::timetable_yaml) + "categories:\n";
  for (int i = 0; i < 600; ++i) {
    yaml += "  c" + std::to_string(i) + ": {domains: [d" + std::to_string(i) + ".example, shared" +
            std::to_string(i % 3) + ".example]}\n";
  }
  yaml += R"(roles:
  pupils:
    default: allow
    rules:
      - {name: high, action: block, categories: [c599, c5, c550]}
      - {name: low, action: block, categories: [c7]}
      - {name: far, action: block, domains: [far.example]}
)";
  auto p = test::load_yaml(yaml);
  ask pupils{*p, "pupils"};
  auto v = pupils.at("2026-11-23 11:00", "https://www.d550.example/");
  CHECK(v.rule_id == "pupils rule 1 (high)");
  CHECK(v.category_name() == "c550");
  CHECK(pupils.at("2026-11-23 11:00", "https://d599.example/").category_name() == "c599");
  CHECK(pupils.at("2026-11-23 11:00", "https://d5.example/").category_name() == "c5");
  // shared2.example is in c2, c5, ..., c599: the first listed of rule 1 wins.
  CHECK(pupils.at("2026-11-23 11:00", "https://shared2.example/").category_name() == "c599");
  CHECK(pupils.at("2026-11-23 11:00", "https://d7.example/").rule_id == "pupils rule 2 (low)");
  CHECK(pupils.at("2026-11-23 11:00", "https://far.example/").rule_id == "pupils rule 3 (far)");
  CHECK(pupils.allowed("2026-11-23 11:00", "https://d598.example/"));
}

TEST_CASE("URL prefixes on several levels of a host, on IP literals and beside domain entries") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  games: {urls: ["news.example/games", "sport.news.example/live", "10.1.2.3/play"]}
  video: {domains: [sport.news.example], urls: ["news.example/tv"]}
  iwf:   {locked: true, urls: ["news.example/illegal"]}
  lock2: {locked: true, domains: [news.example]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [games]}
      - {action: allow, categories: [video]}
  staff: {default: allow}
)");
  ask pupils{*p, "pupils"};
  const std::string t = "2026-11-23 11:00";
  CHECK(p->domains.size() == 2);  // hosts with only URL prefixes are not counted as domains
  auto v = pupils.at(t, "http://a.sport.news.example/live/1");
  CHECK(v.act == action::block);  // the locked lock2 (news.example) comes first
  CHECK(v.category_name() == "lock2");
  CHECK(pupils.at(t, "http://sport.news.example/illegal").category_name() == "lock2");
  auto q = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  games: {urls: ["news.example/games", "sport.news.example/live", "10.1.2.3/play"]}
  video: {domains: [sport.news.example], urls: ["news.example/tv"]}
  iwf:   {locked: true, urls: ["news.example/illegal"]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [games]}
      - {action: allow, categories: [video]}
)");
  ask kids{*q, "pupils"};
  CHECK(kids.at(t, "http://a.sport.news.example/live/1").category_name() == "games");
  CHECK(kids.at(t, "http://sport.news.example/games").category_name() == "games");
  CHECK(kids.at(t, "http://sport.news.example/news").category_name() == "video");
  CHECK(kids.at(t, "http://www.news.example/tv/a").category_name() == "video");
  CHECK(kids.at(t, "http://www.news.example/illegal/a").by == decided_by::locked_category);
  CHECK(kids.allowed(t, "http://www.news.example/other"));
  CHECK(kids.allowed(t, "http://othernews.example/games"));
  CHECK_FALSE(kids.allowed(t, "http://10.1.2.3/play/x"));
  CHECK_FALSE(kids.allowed(t, "http://167838211/play"));  // 10.1.2.3 spelled as one number
  CHECK(kids.allowed(t, "http://10.1.2.3/work"));
}

TEST_CASE("a block's URL prefix matches the path in any ASCII case, an allow's only as written") {
  // IIS and other Windows servers read "/SECRET" as "/secret": a block written for one must
  // catch the other (fail closed). An allow opens exactly what it names.
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  games: {urls: ["news.example/games", "video.example/watch?v=abc"]}
  iwf:   {locked: true, urls: ["host.example/illegal"]}
  open:  {urls: ["school.example/Public"]}
  both:  {urls: ["both.example/Page"]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [games]}
  kiosk:
    default: block
    rules:
      - {action: allow, categories: [open, both]}
      - {action: block, categories: [both]}
)");
  const std::string t = "2026-11-23 11:00";
  ask pupils{*p, "pupils"};
  for (const char* url : {"http://news.example/GAMES/chess", "http://news.example/Games", "http://news.example/%47ames",
                          "http://www.news.example/gAmEs/x?y=1"}) {
    CAPTURE(url);
    auto v = pupils.at(t, url);
    CHECK(v.act == action::block);
    CHECK(v.category_name() == "games");
    CHECK(v.url_without_case == "/games");
  }
  // As written: no note.
  CHECK(pupils.at(t, "http://news.example/games/chess").url_without_case.empty());
  // The query compares exactly: another video.
  CHECK_FALSE(pupils.allowed(t, "http://video.example/WATCH?v=abc"));
  CHECK(pupils.allowed(t, "http://video.example/watch?v=ABC"));
  CHECK(pupils.allowed(t, "http://news.example/politics"));
  // A locked category's URL too.
  auto locked = pupils.at(t, "http://host.example/ILLEGAL/x");
  CHECK(locked.by == decided_by::locked_category);
  CHECK(locked.url_without_case == "/illegal");
  // An allow rule opens only the case it names; the role's default decides the rest.
  ask kiosk{*p, "kiosk"};
  CHECK(kiosk.allowed(t, "http://school.example/Public/x"));
  auto other_case = kiosk.at(t, "http://school.example/public/x");
  CHECK(other_case.act == action::block);
  CHECK(other_case.by == decided_by::role_default);
  CHECK(other_case.url_without_case.empty());
  // First match wins: the allow as written comes first; in another case the allow does not
  // match and the block (without case) does.
  CHECK(kiosk.allowed(t, "http://both.example/Page"));
  auto both = kiosk.at(t, "http://both.example/PAGE");
  CHECK(both.act == action::block);
  CHECK(both.rule_id == "kiosk rule 2");
  // explain says why.
  auto e = explain(*p, request_facts{.role = "pupils", .method = "GET", .scheme = "http", .host = "news.example",
                                     .path = "/GAMES/x", .time = p->zone.to_sys(*parse_local_time(t))});
  CHECK(e.v.act == action::block);
  REQUIRE(e.notes.size() == 1);
  CHECK(e.notes.front().find("'/games' only without regard to case") != std::string::npos);
}

TEST_CASE("a URL entry written with escapes, dot segments or raw UTF-8 matches the requests it names") {
  // Entries are stored in the canonical form requests are compared in (they matched nothing:
  // outside-in audit, 2026-12-05).
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  games: {urls: ["origin.example/%7Euser", "origin.example/a/./b", "origin.example/x//y", "origin.example/caf\u00e9"]}
  open:  {urls: ["open.example/%50ublic"]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [games]}
  kiosk:
    default: block
    rules:
      - {action: allow, categories: [open]}
)");
  const std::string t = "2026-11-23 11:00";
  ask pupils{*p, "pupils"};
  for (const char* url : {"http://origin.example/~user", "http://origin.example/%7Euser/x", "http://origin.example/a/b",
                          "http://origin.example/x/y", "http://origin.example/caf%C3%A9"}) {
    CAPTURE(url);
    CHECK_FALSE(pupils.allowed(t, url));
  }
  CHECK(pupils.allowed(t, "http://origin.example/other"));
  ask kiosk{*p, "kiosk"};
  CHECK(kiosk.allowed(t, "http://open.example/Public/x"));
  CHECK_FALSE(kiosk.allowed(t, "http://open.example/other"));
}

TEST_CASE("URL patterns in several sets: each match reaches its own set, locked ones first") {
  // The engine asks RE2 which patterns matched only after a cheap "does any match" pass, and
  // only when the patterns belong to more than one set; this covers that second pass.
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  videos: {patterns: ['^https?://video\.example/watch']}
  games:  {patterns: ['^https?://[^/]*\.example/.*[?&]game=', 'play\.example/']}
  iwf:    {locked: true, patterns: ['^https?://video\.example/watch\?v=bad']}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [games]}
      - {action: block, categories: [videos]}
  staff:
    networks: [10.20.0.0/16]
    default: block
    rules:
      - {action: allow, categories: [videos]}
      - {name: own list, action: allow, patterns: ['^https://intranet\.example/']}
)");
  REQUIRE(!p->patterns_one_set);
  ask pupils{*p, "pupils"};
  ask staff{*p, "staff"};
  const std::string t = "2026-11-23 11:00";
  CHECK(pupils.allowed(t, "https://www.example/"));
  auto both = pupils.at(t, "https://video.example/watch?v=1&game=2");  // videos and games match
  CHECK(both.act == action::block);
  CHECK(both.rule_id == "pupils rule 1");
  CHECK(both.category_name() == "games");
  CHECK(pupils.at(t, "https://video.example/watch?v=1").category_name() == "videos");
  CHECK(pupils.at(t, "http://www.play.example/x").category_name() == "games");  // second pattern
  CHECK(staff.allowed(t, "https://video.example/watch?v=1"));
  CHECK(staff.allowed(t, "https://intranet.example/timetable"));
  CHECK_FALSE(staff.allowed(t, "https://other.example/"));
  auto locked = staff.at(t, "https://video.example/watch?v=bad");
  CHECK(locked.by == decided_by::locked_category);
  CHECK(locked.category_name() == "iwf");
  // A URL longer than the engine keeps a buffer for is matched all the same, and so is the next.
  CHECK(pupils.at(t, "https://a.example/" + std::string(40000, 'x') + "?game=1").category_name() == "games");
  CHECK(pupils.at(t, "https://video.example/watch").category_name() == "videos");
}

TEST_CASE("URL patterns that all belong to one set skip the second pass") {
  auto p = test::load_yaml(staff_policy);
  REQUIRE(p->patterns_one_set);
  CHECK(p->set_names[*p->patterns_one_set] == "wiki");
}
