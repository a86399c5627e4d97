// Each class of policy error is reported with its file, line and column, in plain words,
// all at once, and no policy is produced.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"
#include "rules/yaml_reader.hpp"

using namespace hallpass::rules;

namespace {

load_result load(const std::string& yaml) { return load_policy_text(yaml, "policy.yaml"); }

// The one error whose message contains `needle`; fails the test when there is none.
diagnostic find_error(const load_result& r, std::string_view needle) {
  for (const auto& e : r.errors) {
    if (e.message.find(needle) != std::string::npos) return e;
  }
  std::string all;
  for (const auto& e : r.errors) all += "\n  " + e.to_string();
  FAIL("no error mentions '" << needle << "'; errors were:" << all);
  return {};
}

const std::string head = R"(school:
  name: S
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "09:00", to: "10:00"}
)";  // 5 lines

}  // namespace

TEST_CASE("YAML syntax errors give the line and column") {
  auto r = load("school:\n  name: [unclosed\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.errors.size() == 1);
  CHECK(r.errors[0].file == "policy.yaml");
  CHECK(r.errors[0].line >= 2);
  CHECK(r.errors[0].message.find("not valid YAML") != std::string::npos);
}

TEST_CASE("an undefined category, with a suggestion") {
  auto r = load(head + R"(categories:
  social_media: {domains: [facebook.com]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [social_media]}
      - {action: block, categories: [social_media]}
      - {action: block, categories: [socal_media]}
)");
  REQUIRE_FALSE(r.ok());
  auto e = find_error(r, "socal_media");
  CHECK(e.message ==
        "rule 3 of role pupils names category 'socal_media', which is not defined; did you mean 'social_media'?");
  CHECK(e.line == 14);
  CHECK(e.column == 38);
  CHECK(e.to_string() == "policy.yaml:14:38: " + e.message);
}

TEST_CASE("unknown keys are errors, never ignored, at every level") {
  auto r = load(head + R"(categories:
  social: {domain: [facebook.com]}
roles:
  pupils:
    defualt: allow
    rules:
      - {action: block, categories: [social], durin: [lessons]}
colour: blue
)");
  REQUIRE_FALSE(r.ok());
  auto a = find_error(r, "unknown key 'domain'");
  CHECK(a.line == 7);
  CHECK(a.column == 12);
  CHECK(a.message.find("did you mean 'domains'?") != std::string::npos);
  auto b = find_error(r, "unknown key 'defualt'");
  CHECK(b.line == 10);
  CHECK(b.message.find("did you mean 'default'?") != std::string::npos);
  auto c = find_error(r, "unknown key 'durin'");
  CHECK(c.line == 12);
  CHECK(find_error(r, "unknown key 'colour'").line == 13);
}

TEST_CASE("duplicate keys are errors") {
  auto r = load(head + R"(roles:
  pupils: {default: allow, default: block}
)");
  CHECK(find_error(r, "appears twice").line == 7);
}

TEST_CASE("wrong types and values") {
  auto r = load(R"(school:
  name: S
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "9am", to: "10:00"}
      - {name: Lesson 2, kind: lessen, from: "10:00", to: "11:00"}
      - {name: Lesson 3, kind: lesson, from: "12:00", to: "11:30"}
  terms:
    - {name: Autumn, from: 2026-13-01, to: 2026-12-18}
roles:
  pupils:
    default: maybe
    networks: [10.0.0.1/8, 300.1.1.1/8, 10.1.0.0/33]
    rules:
      - {action: permit}
      - {categories: [x]}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "must be a time like").line == 5);
  CHECK(find_error(r, "kind must be lesson, break, lunch or other, not 'lessen'; did you mean 'lesson'?").line == 6);
  CHECK(find_error(r, "ends at or before it starts").line == 7);
  // It says how to write a period across midnight (outside-in audit of time, 2026-12-07, F10).
  CHECK(find_error(r, "a period across midnight is two: one to \"24:00\", and one from \"00:00\" on the next "
                      "day").line == 7);
  CHECK(find_error(r, "must be a date like").line == 9);
  CHECK(find_error(r, "must be 'allow' or 'block', not 'maybe'").line == 12);
  auto host_bits = find_error(r, "bits set after the prefix");
  CHECK(host_bits.line == 13);
  CHECK(host_bits.message.find("did you mean '10.0.0.0/8'?") != std::string::npos);
  CHECK(find_error(r, "'300.1.1.1/8' is not an IPv4 or IPv6 network").line == 13);
  CHECK(find_error(r, "prefix length").line == 13);
  CHECK(find_error(r, "not 'permit'").line == 15);
  CHECK(find_error(r, "has no action").line == 16);
  CHECK(r.errors.size() >= 10);  // every error at once
}

TEST_CASE("overlapping periods") {
  auto r = load(R"(school:
  name: S
  timetable:
    monday:
      - {name: A, kind: lesson, from: "09:00", to: "10:00"}
      - {name: B, kind: break, from: "09:30", to: "10:30"}
roles: {pupils: {default: allow}}
)");
  CHECK(find_error(r, "overlaps").line == 6);
}

TEST_CASE("a rule may not allow a locked category") {
  auto r = load(head + R"(categories:
  iwf: {locked: true, domains: [bad.example]}
roles:
  staff:
    default: allow
    rules:
      - {action: allow, categories: [iwf]}
)");
  auto e = find_error(r, "locked");
  CHECK(e.line == 12);
  CHECK(e.message.find("cannot be allowed by any rule or exception") != std::string::npos);
}

TEST_CASE("bad domains, patterns, periods, files, zones and fallbacks") {
  auto r = load(R"(school:
  name: S
  timezone: Europe/Atlantis
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "09:00", to: "10:00"}
categories:
  c: {domains: ["bad domain.com"], patterns: ["(unclosed"], domain_files: [no/such/file.txt]}
  u: {ut1: [social_networks]}
fallback_role: gusts
roles:
  guests:
    default: allow
    rules:
      - {action: block, categories: [c], during: [lesons]}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "not a known time zone").line == 3);
  CHECK(find_error(r, "'bad domain.com'").line == 8);
  CHECK(find_error(r, "not a valid RE2 regular expression").line == 8);
  CHECK(find_error(r, "no/such/file.txt").line == 8);
  CHECK(find_error(r, "sets no ut1_dir").line == 9);
  CHECK(find_error(r, "did you mean 'guests'?").line == 10);
  CHECK(find_error(r, "names 'lesons'").message.find("did you mean 'lessons'?") != std::string::npos);
  // The keywords are listed once each, plural spellings only, from rules::during_keywords.
  CHECK(find_error(r, "names 'lesons'").message.find(
            "nor one of lessons, breaks, lunch, other, school_hours, outside_school_hours, any_time") !=
        std::string::npos);
}

TEST_CASE("a school role named like the built-in fallback is refused unless fallback_role names it") {
  // Taken for the built-in, its default: allow made every unknown device unfiltered.
  const std::string roles = R"(school:
  name: S
  timezone: Europe/London
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "09:00", to: "10:00"}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: block
  unassigned:
    networks: [10.30.0.0/16]
    default: allow
)";
  auto r = load(roles);
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "role 'unassigned' has the name of the built-in").line == 11);
  auto chosen = load(roles + "fallback_role: unassigned\n");
  REQUIRE(chosen.ok());
  CHECK(chosen.compiled->roles[chosen.compiled->fallback_role].name == "unassigned");
}

TEST_CASE("a missing file and an empty file are clear errors") {
  auto missing = load_policy("/no/such/policy.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.errors[0].to_string() == "/no/such/policy.yaml: does not exist");
  auto empty = load("");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.errors[0].message == "the policy file is empty");
  // Text that yaml-cpp reads as nothing is not called empty (found by fuzzing, docs/fuzzing.md F4).
  auto stray = load(",a: 1\n");
  REQUIRE_FALSE(stray.ok());
  CHECK(stray.errors[0].message.find("holds no settings") != std::string::npos);
}

TEST_CASE("sections owned by another component are accepted only when declared") {
  const std::string yaml = head + "roles: {pupils: {default: allow}}\nupstream: {allow_loopback: true}\n";
  CHECK_FALSE(load(yaml).ok());
  load_options o;
  o.other_sections = {"upstream"};
  CHECK(load_policy_text(yaml, "p.yaml", o).ok());
}

namespace {

// A scratch folder under the system's temporary directory, removed at the end of the test.
struct scratch_dir {
  std::filesystem::path path;
  scratch_dir() {
    path = std::filesystem::temp_directory_path() /
           ("hallpass-loader-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

}  // namespace

TEST_CASE("a policy path naming a directory is a clear error, not an exception") {
  scratch_dir d;
  load_result r;
  REQUIRE_NOTHROW(r = load_policy(d.path.string()));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == d.path.string() + ": is a directory");
}

TEST_CASE("an unreadable policy file is a clear error") {
  // /proc/self/mem exists and is a regular file, but reading it at offset 0 fails (EIO), even
  // for root: the read error path, without depending on who runs the test.
  load_result r;
  REQUIRE_NOTHROW(r = load_policy("/proc/self/mem"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.errors[0].to_string().starts_with("/proc/self/mem: cannot be read"));
}

TEST_CASE("a list file that is a directory is an error at the key that names it") {
  scratch_dir d;
  std::filesystem::create_directories(d.path / "lists");
  auto r = load_policy_text(head + "categories:\n  games:\n    domain_files: [lists]\n    url_files: [lists]\n"
                                   "roles: {pupils: {default: allow}}\n",
                            (d.path / "policy.yaml").string());
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].line == 8);
  CHECK(r.errors[0].column == 20);
  CHECK(r.errors[0].message == (d.path / "lists").string() + " is a directory");
  CHECK(r.errors[1].line == 9);
}

TEST_CASE("an empty list file is a warning, and an error for a locked category") {
  scratch_dir d;
  d.file("empty.txt", "");
  d.file("comments.txt", "# only a comment\n\n");
  d.file("one.txt", "games.example\n");
  const std::string policy_file = (d.path / "policy.yaml").string();
  auto open = load_policy_text(head + "categories:\n  games:\n    domain_files: [empty.txt, one.txt]\n"
                                      "    url_files: [comments.txt]\nroles: {pupils: {default: allow}}\n",
                               policy_file);
  REQUIRE(open.ok());
  REQUIRE(open.warnings.size() == 2);
  CHECK(open.warnings[0].to_string() ==
        policy_file + ":8:20: category 'games': " + (d.path / "empty.txt").string() + " has no entries (empty list file)");
  CHECK(open.warnings[1].line == 9);
  CHECK(open.warnings[1].message.find("comments.txt has no entries") != std::string::npos);

  auto locked = load_policy_text(head + "categories:\n  iwf:\n    locked: true\n    domain_files: [empty.txt]\n"
                                        "roles: {pupils: {default: allow}}\n",
                                 policy_file);
  REQUIRE_FALSE(locked.ok());
  REQUIRE(locked.errors.size() == 1);
  CHECK(locked.errors[0].line == 9);
  CHECK(locked.errors[0].message.find("category 'iwf' is locked (illegal content) but its list") != std::string::npos);
  CHECK(locked.errors[0].message.find("has no entries") != std::string::npos);
}

TEST_CASE("exceptions.max_duration is read and checked") {
  auto ok = load(head + "roles: {pupils: {default: allow}}\nexceptions: {max_duration: 30d}\n");
  REQUIRE(ok.ok());
  CHECK(ok.compiled->max_exception_duration == std::chrono::seconds(30 * 86400));
  CHECK_FALSE(load(head + "roles: {pupils: {default: allow}}\n").compiled->max_exception_duration);
  CHECK(find_error(load(head + "roles: {pupils: {default: allow}}\nexceptions: {max_duration: 0m}\n"),
                   "exceptions.max_duration must be from 1m to 366d")
            .line == 7);
  CHECK(find_error(load(head + "roles: {pupils: {default: allow}}\nexceptions: {max_duration: soon}\n"),
                   "exceptions.max_duration must be a duration")
            .line == 7);
  find_error(load(head + "roles: {pupils: {default: allow}}\nexceptions: {max_duraton: 30d}\n"),
             "did you mean 'max_duration'?");
}

TEST_CASE("inspection and safesearch: typos and bad values are errors with their place") {
  auto r = load(head + R"(categories:
  news: {domains: [news.example]}
inspection:
  nevr: {domains: [bank.example]}
  inspect:
    - {roles: [pupil], domains: [a.example]}
    - {roles: [pupils], categories: [nws]}
    - {roles: [pupils], domain: [a.example]}
    - {roles: [pupils]}
    - {everything: maybe}
    - {roles: [], domains: [b.example]}
    - {roles: ~, safesearch: true}
    - {roles: [pupils], domains: [], categories: []}
roles:
  pupils:
    default: allow
    safesearch: {search: moderate, youtube: strikt, yotube: off}
  staff:
    default: allow
    safesearh: {search: strict}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "unknown key 'nevr' in inspection").message.find("did you mean 'never'") != std::string::npos);
  CHECK(find_error(r, "names role 'pupil'").message.find("did you mean 'pupils'") != std::string::npos);
  CHECK(find_error(r, "names category 'nws'").message.find("did you mean 'news'") != std::string::npos);
  CHECK(find_error(r, "unknown key 'domain'").message.find("did you mean 'domains'") != std::string::npos);
  auto empty = find_error(r, "inspection.inspect entry 4 names nothing to inspect");
  CHECK(empty.line == 14);
  find_error(r, "inspection.inspect entry 5 everything");
  // An empty roles list is not "every role" (an entry for pupils decrypted staff HTTPS), and
  // empty lists name nothing (policy audit, 2026-12-05).
  CHECK(find_error(r, "inspection.inspect entry 6 roles is empty").line == 16);
  CHECK(find_error(r, "inspection.inspect entry 7 roles is empty").line == 17);
  CHECK(find_error(r, "inspection.inspect entry 8 names nothing to inspect").line == 18);
  CHECK(find_error(r, "search must be strict or off, not 'moderate'").message.find("no locked moderate") !=
        std::string::npos);
  CHECK(find_error(r, "youtube must be strict, moderate or off, not 'strikt'").message.find("did you mean 'strict'") !=
        std::string::npos);
  find_error(r, "unknown key 'yotube'");
  CHECK(find_error(r, "unknown key 'safesearh'").message.find("did you mean 'safesearch'") != std::string::npos);
}

TEST_CASE("inspection.never: a missing list file is an error, an empty one a warning") {
  const auto dir = std::filesystem::temp_directory_path() / ("hallpass-never-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "empty.txt") << "# nothing yet\n";
  std::ofstream(dir / "banks.txt") << "bank.example\n*.health.example\nnot a domain\n";
  const std::string base = head + "roles: {pupils: {default: allow}}\ninspection:\n  never:\n    domain_files: ";
  auto missing = load_policy_text(base + "[missing.txt]\n", (dir / "p.yaml").string());
  REQUIRE_FALSE(missing.ok());
  find_error(missing, "missing.txt does not exist");
  auto empty = load_policy_text(base + "[empty.txt]\n", (dir / "p.yaml").string());
  REQUIRE(empty.ok());
  REQUIRE(empty.warnings.size() == 1);
  CHECK(empty.warnings[0].message.find("has no entries") != std::string::npos);
  auto banks = load_policy_text(base + "[banks.txt]\n", (dir / "p.yaml").string());
  REQUIRE(banks.ok());
  CHECK(banks.compiled->inspection.never_count == 2);
  REQUIRE(banks.warnings.size() == 1);
  CHECK(banks.warnings[0].line == 3);
  std::filesystem::remove_all(dir);
}

TEST_CASE("durations: every unit, a unit always (but for 0), and nothing past 100 years (no conversion overflows)") {
  using namespace std::chrono;
  CHECK(parse_duration("500ms") == milliseconds(500));
  CHECK(parse_duration("0") == seconds(0));
  CHECK(parse_duration("5m") == minutes(5));
  CHECK(parse_duration("2h") == hours(2));
  CHECK(parse_duration("365d") == hours(24 * 365));
  CHECK(parse_duration("36500d") == hours(24 * 36500));
  for (const char* too_long : {"36501d", "876001h", "3153600000001ms", "9223372036854775807d",
                               "9223372036854775807ms", "99999999999999999999s"}) {
    INFO(too_long);
    CHECK_FALSE(parse_duration(too_long).has_value());
  }
  for (const char* bad : {"", "d", "-1s", "1y", "1 d", "1.5h", "10", "365", "1440"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("a duration without its unit is an error that asks for one (365 meant as days was 365 seconds)") {
  auto r = load(head + "roles: {pupils: {default: allow}}\nexceptions: {max_duration: 1440}\n");
  const auto e = find_error(r, "exceptions.max_duration must be a duration");
  CHECK(e.line == 7);
  CHECK(e.message.find("a number needs its unit (1440s, 1440m, 1440h or 1440d?)") != std::string::npos);
  CHECK(duration_hint("365") == ": a number needs its unit (365s, 365m, 365h or 365d?)");
  CHECK(duration_hint("365d").empty());
  // Only what the setting takes: retention.records (1s to 36500d) was told "0s?" for 0, and
  // refused 0s next (admin audit, 2026-12-05, F10).
  using namespace std::chrono;
  CHECK(duration_hint("0", seconds(1), days(36500)).empty());
  CHECK(duration_hint("40000", seconds(1), days(36500)) == ": a number needs its unit (40000s, 40000m or 40000h?)");
  CHECK(duration_hint("30", minutes(1)) == ": a number needs its unit (30m, 30h or 30d?)");
  CHECK(duration_hint("99999999999999999999").empty());
}

TEST_CASE("school.terms: all ended is a warning (every day is outside term time), and so are overlaps") {
  using namespace std::chrono;
  const std::string policy = head + R"(  terms:
    - {name: Autumn 2025, from: 2025-09-01, to: 2025-12-19}
    - {name: Summer 2026, from: 2026-04-13, to: 2026-07-20}
roles: {pupils: {default: allow}}
)";
  load_options o;
  o.now = sys_days{year{2026} / 7 / 20} + hours(14);  // the last day of the last term: no warning
  auto in_term = load_policy_text(policy, "p.yaml", o);
  REQUIRE(in_term.ok());
  CHECK(in_term.warnings.empty());
  o.now = sys_days{year{2026} / 9 / 7} + hours(9);
  auto lapsed = load_policy_text(policy, "p.yaml", o);
  REQUIRE(lapsed.ok());  // a warning: the policy still loads
  REQUIRE(lapsed.warnings.size() == 1);
  CHECK(lapsed.warnings[0].line == 7);
  CHECK(lapsed.warnings[0].message.find("the last term listed ('Summer 2026') ended on 2026-07-20") !=
        std::string::npos);
  CHECK(lapsed.warnings[0].message.find("every day since is outside term time") != std::string::npos);

  const std::string overlapping = head + R"(  terms:
    - {name: Autumn, from: 2026-09-01, to: 2027-12-18}
    - {name: Spring, from: 2027-01-05, to: 2027-03-26}
roles: {pupils: {default: allow}}
)";
  o.now = sys_days{year{2026} / 10 / 1};
  auto both = load_policy_text(overlapping, "p.yaml", o);
  REQUIRE(both.ok());
  REQUIRE(both.warnings.size() == 2);  // the overlap, and an Autumn of more than a year
  CHECK(both.warnings[0].message.find("'Autumn' and 'Spring' overlap") != std::string::npos);
  CHECK(both.warnings[1].message.find("'Autumn' runs from 2026-09-01 to 2027-12-18, more than a year") !=
        std::string::npos);
}

TEST_CASE("a term of more than a year, 'localtime' and a zone of UTC by another name") {
  // outside-in audit of time, 2026-12-07, F5 and F2: a term to 2126 lifted the end-of-term cap
  // on exceptions without a word; 'localtime' followed the gateway's own setting; and
  // 'posix/Etc/UTC' escaped the warning a list of names gave.
  using namespace std::chrono;
  load_options o;
  o.now = sys_days{year{2026} / 10 / 1};
  auto century = load_policy_text(head + R"(  terms:
    - {name: Autumn 2026, from: 2026-09-02, to: 2126-12-18}
roles: {pupils: {default: allow}}
)",
                                  "p.yaml", o);
  REQUIRE(century.ok());
  REQUIRE(century.warnings.size() == 1);
  CHECK(century.warnings[0].message.find("more than a year (a year mistyped?)") != std::string::npos);
  auto local = load(R"(school:
  name: S
  timezone: localtime
roles: {pupils: {default: allow}}
)");
  REQUIRE_FALSE(local.ok());
  CHECK(find_error(local, "is whatever zone the gateway is set to").line == 3);
  for (const char* zone : {"posix/Etc/UTC", "Etc/GMT", "Zulu"}) {
    INFO(zone);
    auto r = load(std::string("school:\n  name: S\n  timezone: ") + zone + "\nroles: {pupils: {default: allow}}\n");
    REQUIRE(r.ok());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].message.find("has no summer time") != std::string::npos);
  }
  auto london = load("school:\n  name: S\n  timezone: Europe/London\nroles: {pupils: {default: allow}}\n");
  REQUIRE(london.ok());
  CHECK(london.warnings.empty());
}

TEST_CASE("school.timezone: leap-second and internal zones are refused") {
  for (const char* zone : {"right/Europe/London", "posixrules", "Factory"}) {
    INFO(zone);
    auto r = load(std::string("school:\n  name: S\n  timezone: ") + zone +
                  "\n  timetable:\n    weekdays:\n      - {name: Lesson 1, kind: lesson, from: \"09:00\", to: "
                  "\"10:00\"}\nroles: {pupils: {default: allow}}\n");
    CHECK(find_error(r, "is not a zone for a school's clock").line == 3);
  }
  CHECK(find_error(load("school:\n  name: S\n  timezone: right/Europe/London\nroles: {pupils: {default: allow}}\n"),
                   "('Europe/London')")
            .line == 3);
}

TEST_CASE("parse_local_time: digits only, from 1970 (a sign moved the time to another day)") {
  CHECK(parse_local_time("2026-11-23 11:00").has_value());
  CHECK(parse_local_time("2026-11-23T11:00").has_value());
  for (const char* bad : {"2026-11-23 -1:00", "2026-11-23 11:-5", "2026-11-23 -0:30", "-001-01-01 11:00",
                          "0000-01-01 11:00", "1969-12-31 23:59", "2026-+1-23 11:00", "2026-11-23 +1:00",
                          "2026-11-23 24:00", ""}) {
    INFO(bad);
    CHECK_FALSE(parse_local_time(bad).has_value());
  }
}

TEST_CASE("one mistake in the weekdays list is one error, and no knock-on error about its period") {
  auto r = load(R"(school:
  name: S
  timetable:
    weekdays:
      - {name: L1, kind: lesson, from: "12:60", to: "13:30"}
categories:
  c: {domains: [x.example]}
roles:
  staff:
    default: allow
    rules:
      - {action: block, categories: [c], during: [L1]}
)");
  REQUIRE_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) all += "\n  " + e.to_string();
  INFO(all);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 5);
  CHECK(r.errors[0].message.find("school.timetable.weekdays period 1 from must be a time") != std::string::npos);
}

TEST_CASE("a rule key given with nothing in it is an error, not a rule that matches nothing") {
  // A block rule whose category items were commented out blocked nothing (outside-in audit H,
  // 2026-12-05): `categories:` then reads as null, and the same rule without the key blocks all.
  auto r = load(R"(school:
  name: S
categories:
  social: {domains: [facebook.example]}
roles:
  pupils:
    default: allow
    rules:
      - action: block
        categories:
        #  - social
      - {action: block, domains: ~}
      - {action: block, urls: []}
      - {action: block, categories: [social], during: []}
      - {action: block, domains: [x.example], methods: ~}
      - {action: block, categories: [social]}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "rule 1 of role pupils has an empty 'categories' (items commented out?)").line == 9);
  CHECK(find_error(r, "rule 2 of role pupils has an empty 'domains'").line == 12);
  CHECK(find_error(r, "rule 3 of role pupils has an empty 'urls'").line == 13);
  CHECK(find_error(r, "rule 4 of role pupils has an empty 'during'").line == 14);
  CHECK(find_error(r, "rule 5 of role pupils has an empty 'methods'").line == 15);
  CHECK(r.errors.size() == 5);
}

TEST_CASE("text people read from the policy is plain, and a method no client sends is said") {
  // Outside-in audit H, 2026-12-05: a school name with ESC was printed raw by check, and
  // `methods: yes` or `PSOT` made a rule that never matched without a word.
  auto bad = load("school:\n  name: \"Oak\\e[2JPrimary\"\nroles:\n  pupils:\n    default: allow\n"
                  "    rules:\n      - {action: block, domains: [x.example], reason: \"a\\u202Eb\"}\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(find_error(bad, "school.name holds a control or invisible character (\\x1b)").line == 2);
  CHECK(find_error(bad, "rule 1 of role pupils reason holds a control or invisible character (\\u202e)").line == 7);
  auto odd = load("school:\n  name: Oak\nroles:\n  pupils:\n    default: allow\n    rules:\n"
                  "      - {action: block, domains: [x.example], methods: [PSOT, post]}\n"
                  "      - {action: block, domains: [y.example], methods: yes}\n");
  REQUIRE(odd.ok());
  REQUIRE(odd.warnings.size() == 2);
  CHECK(odd.warnings[0].message.find("method 'PSOT' is not a method browsers or apps send") != std::string::npos);
  CHECK(odd.warnings[1].message.find("method 'yes' is not a method") != std::string::npos);
}

TEST_CASE("a reason written as a block scalar is read as one line of text") {
  // Re-audit, 2026-12-05: `reason: >` ends in a newline, which the plain-text check refused.
  auto r = load("school:\n  name: Oak\nroles:\n  pupils:\n    default: allow\n    rules:\n"
                "      - action: block\n        domains: [x.example]\n        reason: >\n          Games are not\n"
                "          allowed.\n        clause: |\n          000 6.9\n          003 s6\n");
  INFO((r.errors.empty() ? std::string() : r.errors.front().to_string()));
  REQUIRE(r.ok());
  const auto& rule = r.compiled->roles.at(0).rules.at(0);
  CHECK(rule.reason == "Games are not allowed.");
  CHECK(rule.clause == "000 6.9 003 s6");
}

TEST_CASE("a second YAML document in the policy is an error at its marker, not ignored") {
  auto r = load(R"(school:
  name: S
  timezone: Europe/London
roles:
  pupils: {default: block}
---
everyone:
  rules:
    - {action: block, domains: [games.example]}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "a second YAML document begins here").line == 6);
}

TEST_CASE("an empty URL pattern is an error: it would match every URL") {
  auto r = load(R"(school:
  name: S
  timezone: Europe/London
roles:
  pupils:
    default: block
    rules:
      - {action: allow, patterns: ['']}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "an empty pattern matches every URL").line == 8);
}

TEST_CASE("a period named like a during keyword is warned about once: the keyword wins") {
  auto r = load(R"(school:
  name: S
  timezone: Europe/London
  timetable:
    weekdays:
      - {name: lunch, kind: lunch, from: "12:00", to: "13:00"}
roles:
  pupils: {default: block}
)");
  REQUIRE(r.ok());
  int warned = 0;
  for (const auto& w : r.warnings) {
    if (w.message.find("is named 'lunch', a word `during` reads") != std::string::npos) {
      ++warned;
      CHECK(w.line == 6);
    }
  }
  CHECK(warned == 1);
}

TEST_CASE("a role's audience is children or adults, children by default") {
  auto r = load(head + R"(roles:
  pupils: {default: allow, networks: [10.10.0.0/16]}
  staff: {default: allow, networks: [10.20.0.0/16], audience: adults}
  guests: {default: allow, networks: [10.99.0.0/16], audience: children}
)");
  REQUIRE(r.ok());
  CHECK_FALSE(r.compiled->roles[0].adults);
  CHECK(r.compiled->roles[1].adults);
  CHECK_FALSE(r.compiled->roles[2].adults);
  auto bad = load(head + R"(roles:
  staff: {default: allow, audience: grown-ups}
)");
  REQUIRE_FALSE(bad.ok());
  const auto e = find_error(bad, "audience must be 'children' or 'adults'");
  CHECK(e.line == 7);
}

TEST_CASE("a URL pattern that matches the empty text matches every URL: an error, unless it is '.*'") {
  // A stray '|' at the end of an allow opened every site for a role while check said OK
  // (explain audit, 2026-12-06, H2).
  for (const char* bad : {R"(^https?://(www\.)?ourschool\.sch\.uk/|)", "()", "x*", "(|x)", "(?i)(games)?"}) {
    CAPTURE(bad);
    auto r = load(head + R"(roles:
  pupils:
    default: allow
    rules:
      - {action: allow, patterns: [')" + std::string(bad) + R"(']}
)");
    REQUIRE_FALSE(r.ok());
    CHECK(find_error(r, "matches every URL (it matches an empty text").line == 10);
  }
  for (const char* good : {".*", R"(^https?://(www\.)?ourschool\.sch\.uk/)", "(?i)flash-?game", "^$"}) {
    CAPTURE(good);
    auto r = load(head + R"(roles:
  pupils:
    default: allow
    rules:
      - {action: allow, patterns: [')" + std::string(good) + R"(']}
)");
    CHECK_MESSAGE(r.ok(), (r.errors.empty() ? std::string() : r.errors[0].to_string()));
  }
}

TEST_CASE("a role called 'everyone' is an error, and a zone without summer time a warning") {
  // explain audit, 2026-12-06, L5: both passed check without a word.
  auto r = load(head + R"(roles:
  everyone: {default: allow}
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "a role may not be called 'everyone'").line == 7);
  auto gmt = load(R"(school:
  name: S
  timezone: GMT
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "09:00", to: "10:00"}
roles:
  pupils: {default: allow}
)");
  REQUIRE(gmt.ok());
  REQUIRE_FALSE(gmt.warnings.empty());
  CHECK(gmt.warnings[0].message.find("has no summer time") != std::string::npos);
  CHECK(gmt.warnings[0].line == 3);
}

TEST_CASE("a role network in IPv4-compatible form is an error naming the IPv4 network") {
  auto r = load(head + R"(roles:
  pupils:
    default: allow
    networks: ["::10.0.0.0/104"]
)");
  REQUIRE_FALSE(r.ok());
  CHECK(find_error(r, "write the IPv4 network '10.0.0.0/8'").line == 9);
}

TEST_CASE("a role network wider than any school network is a warning naming fallback_role") {
  // 2026-12-06 audit: a network of 0.0.0.0/0 made every unknown device staff without a word.
  auto r = load(head + R"(roles:
  staff:
    default: allow
    networks: [10.20.0.0/16, 0.0.0.0/0, "::/0"]
  pupils:
    default: allow
    networks: [10.0.0.0/8, "fc00::/7"]
)");
  REQUIRE_MESSAGE(r.ok(), (r.errors.empty() ? std::string() : r.errors[0].to_string()));
  std::vector<std::string> wide;
  for (const auto& w : r.warnings) {
    if (w.message.find("takes in addresses outside any school network") != std::string::npos) wide.push_back(w.message);
  }
  REQUIRE(wide.size() == 2);  // 0.0.0.0/0 and ::/0; not the /8 or the /7
  CHECK(wide[0].find("'0.0.0.0/0'") != std::string::npos);
  CHECK(wide[0].find("fallback_role: staff") != std::string::npos);
  CHECK(wide[1].find("'::/0'") != std::string::npos);
}
