// Importing real UT1 category folders from ../shared/ut1 (never committed to this repo).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/rules/policy_fixture.hpp"
#include "tests/temp_dir.hpp"

using namespace hallpass::rules;

namespace {
std::size_t count_lines(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  std::string line;
  while (std::getline(in, line)) n += !line.empty() && line[0] != '#';
  return n;
}
}  // namespace

TEST_CASE("UT1 categories import by name, domains and urls") {
  const std::string dir = HALLPASS_UT1_DIR;
  REQUIRE_MESSAGE(std::filesystem::is_directory(dir), "UT1 lists expected at " << dir);
  auto p = test::load_yaml(std::string(test::timetable_yaml) + "ut1_dir: " + dir + R"(
categories:
  social: {ut1: [social_networks]}
  bypass: {ut1: [vpn, doh, redirector]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [social, bypass]}
)");
  const category* social = p->find_category("social");
  REQUIRE(social);
  CHECK(social->domain_count == count_lines(dir + "/social_networks/domains"));
  CHECK(social->url_count == count_lines(dir + "/social_networks/urls"));
  const category* bypass = p->find_category("bypass");
  CHECK(bypass->domain_count > 100000);
  CHECK(bypass->url_count > 0);

  test::ask pupils{*p, "pupils"};
  auto fb = pupils.at("2026-11-23 11:00", "https://www.facebook.com/");
  CHECK(fb.act == action::block);
  CHECK(fb.category_name() == "social");
  CHECK(pupils.at("2026-11-23 11:00", "https://nordvpn.com/").category_name() == "bypass");
  CHECK(pupils.at("2026-11-23 11:00", "https://dns.google/dns-query").category_name() == "bypass");
  // A UT1 urls entry: host + path prefix ("1337games.net/proxy/" in redirector/urls).
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://1337games.net/proxy/x"));
  CHECK(pupils.allowed("2026-11-23 11:00", "https://www.bbc.co.uk/bitesize"));
}

TEST_CASE("a missing UT1 category is an error naming the folder") {
  auto r = load_policy_text(std::string(test::timetable_yaml) + "ut1_dir: " + HALLPASS_UT1_DIR + R"(
categories:
  x: {ut1: [no_such_category]}
roles: {pupils: {default: allow}}
)",
                            "p.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.errors[0].message.find("UT1 category 'no_such_category' not found") != std::string::npos);
}

TEST_CASE("unreadable lines in a list file are warnings with their line, and the policy loads") {
  const hallpass_test::temp_dir tmp("hallpass-list-test");
  const auto& dir = tmp.path;
  {
    std::ofstream out(dir / "list.txt");
    out << "# comment\n\nGood.Example\nbad domain\n*.wild.example\nxn--bcher-kva.example\n";
  }
  auto r = load_policy_text(std::string(test::timetable_yaml) + R"(
categories:
  c: {domain_files: [list.txt]}
roles: {pupils: {default: allow, rules: [{action: block, categories: [c]}]}}
)",
                            (dir / "p.yaml").string());
  REQUIRE(r.ok());
  CHECK(r.compiled->find_category("c")->domain_count == 3);
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].line == 4);
  test::ask pupils{*r.compiled, "pupils"};
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://good.example/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://a.wild.example/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://bücher.example/"));
}

TEST_CASE("a top-level domain in a list an allow rule uses opens nothing, with a warning at its line") {
  // `com` in an allowed list opened every .com site (outside-in audit of the feeds as hostile
  // input, 2026-12-05, second session). A block rule that uses the same category still blocks
  // with it: blocking a whole top-level domain is a school's choice.
  const hallpass_test::temp_dir tmp("hallpass-allow-suffix-test");
  const auto& dir = tmp.path;
  std::ofstream(dir / "allowed.txt") << "# sites pupils may use\nexample.com\ncom\nCOM.\nsub.example.org\n192.0.2.1\n";
  std::ofstream(dir / "urls.txt") << "https://org/\nnet/some/path\nexample.net/ok\n";
  auto r = load_policy_text(std::string(test::timetable_yaml) + R"(
categories:
  opened:
    domains: [example.net, edu]
    domain_files: [allowed.txt]
    url_files: [urls.txt]
  other: {domain_files: [allowed.txt]}
roles:
  pupils:
    default: block
    rules:
      - {action: allow, categories: [opened]}
      - {action: allow, domains: [example.info, info]}
  staff:
    default: allow
    rules:
      - {action: block, categories: [opened]}
      - {action: block, domains: [edu]}
  office:
    default: block
    rules:
      - {action: allow, categories: [other]}
      - {action: block, categories: [other]}
)",
                            (dir / "p.yaml").string());
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  REQUIRE_MESSAGE(r.ok(), all);
  const std::string list = (dir / "allowed.txt").string(), urls = (dir / "urls.txt").string();
  // Each entry left out: a warning at its file and line (or its place in the YAML), naming it
  // and the rule; the other lines load. Both categories that use the file say so.
  std::vector<std::string> shown;
  for (const auto& w : r.warnings) shown.push_back(w.to_string());
  auto has = [&](const std::string& where, const std::string& words) {
    for (const auto& s : shown) {
      if (s.starts_with(where) && s.find(words) != std::string::npos) return true;
    }
    return false;
  };
  INFO(doctest::toString(shown));
  CHECK(has(list + ":3:1: ", "'com' is a top-level domain or a public suffix"));
  CHECK(has(list + ":3:", "pupils rule 1 allows category 'opened'"));
  CHECK(has(list + ":4:", "'com'"));
  CHECK(has(urls + ":1:", "'org'"));
  CHECK(has(urls + ":2:", "'net'"));
  CHECK(has(list + ":3:", "office rule 1 allows category 'other'"));
  CHECK(has((dir / "p.yaml").string() + ":", "'edu'"));
  CHECK(has((dir / "p.yaml").string() + ":", "'info'"));
  CHECK(shown.size() == 8);

  test::ask pupils{*r.compiled, "pupils"};
  CHECK(pupils.allowed("2026-11-23 11:00", "http://example.com/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://www.example.com/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://sub.example.org/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://example.net/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://example.info/"));
  CHECK(pupils.allowed("2026-11-23 11:00", "http://192.0.2.1/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://other.com/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://com/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://other.org/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://other.net/some/path"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://school.edu/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "http://other.info/"));
  // The rules that block the same lists still block with the whole top-level domain.
  test::ask staff{*r.compiled, "staff"};
  const auto other = staff.at("2026-11-23 11:00", "http://other.com/");
  CHECK(other.act == action::block);
  CHECK(other.category_name() == "opened");
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://other.org/"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "http://other.net/some/path"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "http://school.edu/"));
  CHECK(staff.allowed("2026-11-23 11:00", "http://other.net/"));
  test::ask office{*r.compiled, "office"};
  CHECK(office.allowed("2026-11-23 11:00", "http://example.com/"));
  CHECK_FALSE(office.allowed("2026-11-23 11:00", "http://other.com/"));
}

TEST_CASE("the public suffixes of load_options are left out of allows, and only lists that allow are checked") {
  // The proxy passes its Public Suffix List check (proxy/public_suffix.hpp); here a stand-in.
  const hallpass_test::temp_dir tmp("hallpass-allow-psl-test");
  const auto& dir = tmp.path;
  std::ofstream(dir / "allowed.txt") << "co.uk\nexample.co.uk\ngithub.io\n";
  std::ofstream(dir / "blocked.txt") << "co.uk\nblocked.example\nzip\n";
  std::vector<std::string> asked;
  load_options o;
  o.is_public_suffix = [&](std::string_view host) {
    asked.emplace_back(host);
    return host == "co.uk" || host == "github.io" || host.find('.') == std::string_view::npos;
  };
  auto r = load_policy_text(std::string(test::timetable_yaml) + R"(
categories:
  opened: {domain_files: [allowed.txt]}
  closed: {domain_files: [blocked.txt]}
roles:
  pupils:
    default: block
    rules:
      - {name: learning, action: allow, categories: [opened]}
  staff:
    default: allow
    rules:
      - {action: block, categories: [closed]}
)",
                            (dir / "p.yaml").string(), o);
  REQUIRE(r.ok());
  // Asked about the entries of the list that allows, never about those of the list that blocks.
  CHECK(asked == std::vector<std::string>{"co.uk", "example.co.uk", "github.io"});
  REQUIRE(r.warnings.size() == 2);
  CHECK(r.warnings[0].line == 1);
  CHECK(r.warnings[0].message.starts_with("'co.uk' is a top-level domain or a public suffix"));
  CHECK(r.warnings[0].message.find("pupils rule 1 (learning) allows category 'opened'") != std::string::npos);
  CHECK(r.warnings[1].line == 3);
  test::ask pupils{*r.compiled, "pupils"};
  CHECK(pupils.allowed("2026-11-23 11:00", "https://example.co.uk/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://other.co.uk/"));
  CHECK_FALSE(pupils.allowed("2026-11-23 11:00", "https://someone.github.io/"));
  test::ask staff{*r.compiled, "staff"};
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://other.co.uk/"));  // a block keeps it
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://file.zip/"));

  // Written in the policy itself, a domain that is a suffix of more than one label is the
  // school's choice (all of gov.uk for the office, or for banned users); a single label is
  // still left out, and so is a URL prefix on any suffix (co.uk/news is /news on every site).
  asked.clear();
  auto own = load_policy_text(std::string(test::timetable_yaml) + R"(
roles:
  office:
    networks: [10.10.5.0/24]
    default: block
    rules:
      - {name: government, action: allow, domains: [co.uk, com]}
  library:
    networks: [10.10.6.0/24]
    default: block
    rules:
      - {name: news, action: allow, urls: ["co.uk/news", "www.example.co.uk/ok"]}
bans:
  policy: {domains: [co.uk, org]}
)",
                              (dir / "p.yaml").string(), o);
  REQUIRE(own.ok());
  REQUIRE(own.warnings.size() == 3);
  CHECK(own.warnings[0].message.starts_with("'com' is a top-level domain or a public suffix"));
  CHECK(own.warnings[1].message.starts_with("'co.uk' is a top-level domain or a public suffix"));
  CHECK(own.warnings[2].message.starts_with("'org' is a top-level domain or a public suffix"));
  test::ask office{*own.compiled, "office"};
  CHECK(office.allowed("2026-11-23 11:00", "https://www.example.co.uk/"));
  CHECK_FALSE(office.allowed("2026-11-23 11:00", "https://example.com/"));
  test::ask library{*own.compiled, "library"};
  CHECK(library.allowed("2026-11-23 11:00", "https://www.example.co.uk/ok/page"));
  CHECK_FALSE(library.allowed("2026-11-23 11:00", "https://evil.co.uk/news/x"));
  CHECK(own.compiled->bans.domains == std::vector<std::string>{"co.uk"});
}
