// Importing real UT1 category folders from ../shared/ut1 (never committed to this repo).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "tests/rules/policy_fixture.hpp"

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
  const auto dir = std::filesystem::temp_directory_path() / "hallpass-list-test";
  std::filesystem::create_directories(dir);
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
  std::filesystem::remove_all(dir);
}
