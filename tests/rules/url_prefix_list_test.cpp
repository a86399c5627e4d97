// The URL prefixes of one host (rules/url_prefix_list.hpp): its search finds exactly what
// comparing every entry with path_starts_with does, and the engine decides by it in policy order.
#include "rules/url_prefix_list.hpp"

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>
#include <utility>

#include "rules/host.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

std::set<std::pair<std::string, set_id>> searched(const url_prefix_list& l, std::string_view path) {
  std::set<std::pair<std::string, set_id>> out;
  l.for_each_match(path, [&](const url_prefix& u) { out.emplace(u.path, u.set); });
  return out;
}

std::set<std::pair<std::string, set_id>> compared(const url_prefix_list& l, std::string_view path) {
  std::set<std::pair<std::string, set_id>> out;
  for (const auto& u : l.entries()) {
    if (path_starts_with(path, u.path, true)) out.emplace(u.path, u.set);
  }
  return out;
}

// Paths from a small alphabet, so that entries share long prefixes, differ in case, and hold
// '?' in different places: the cases the search's narrowing must get right.
std::string random_path(std::mt19937& rng, std::size_t max_length) {
  static constexpr char alphabet[] = "/aAbB?c=";
  std::uniform_int_distribution<std::size_t> length(0, max_length), pick(0, sizeof alphabet - 2);
  std::string s = "/";
  for (std::size_t n = length(rng); n > 0; --n) s += alphabet[pick(rng)];
  return s;
}

}  // namespace

TEST_CASE("url prefix list: the search finds what comparing every entry finds, few entries or many") {
  std::mt19937 rng(20261205);
  for (const std::size_t count : {std::size_t{3}, std::size_t{16}, std::size_t{17}, std::size_t{300}, std::size_t{5000}}) {
    url_prefix_list l;
    std::uniform_int_distribution<int> set(0, 3);
    for (std::size_t i = 0; i < count; ++i) l.add(url_prefix{random_path(rng, 7), static_cast<set_id>(set(rng))});
    l.add(url_prefix{"/", 9});  // the root: every path
    l.finish();
    for (int k = 0; k < 2000; ++k) {
      const std::string path = random_path(rng, 10);
      INFO(count, " entries, path ", path);
      const auto found = searched(l, path);
      CHECK(found == compared(l, path));
      CHECK(found.count({"/", 9}) == 1);
    }
  }
}

TEST_CASE("url prefix list: case is folded before the entry's query only, and the sets are listed once") {
  url_prefix_list l;
  for (int i = 0; i < 40; ++i) l.add(url_prefix{"/filler/" + std::to_string(i), 1});
  l.add(url_prefix{"/Secret/", 2});
  l.add(url_prefix{"/watch?v=ABC", 3});
  l.add(url_prefix{"/secret/", 2});
  l.finish();
  CHECK(searched(l, "/SECRET/page") == std::set<std::pair<std::string, set_id>>{{"/Secret/", 2}, {"/secret/", 2}});
  CHECK(searched(l, "/WATCH?v=ABC&t=1") == std::set<std::pair<std::string, set_id>>{{"/watch?v=ABC", 3}});
  CHECK(searched(l, "/watch?v=abc").empty());  // the query as written
  CHECK(searched(l, "/secre").empty());
  CHECK(l.sets() == std::vector<set_id>{1, 2, 3});
}

TEST_CASE("engine: a host with thousands of URL prefixes decides by the one the path starts with") {
  std::string yaml = std::string(test::timetable_yaml) + R"(
  terms:
    - {name: Autumn 2026, from: 2026-09-02, to: 2026-12-18}
categories:
  docs: {urls: [)";
  for (int i = 0; i < 3000; ++i) yaml += "\"docs.example/document/d/" + std::to_string(i * 7919 % 100000) + "/\", ";
  yaml += R"("docs.example/forms/"]}
  iwf:  {locked: true, urls: ["docs.example/document/d/4242/"]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [docs]}
)";
  auto p = test::load_yaml(yaml);
  test::ask pupils{*p, "pupils"};
  const std::string day = "2026-11-23 11:00";
  CHECK_FALSE(pupils.allowed(day, "https://docs.example/document/d/7919/edit"));
  CHECK_FALSE(pupils.allowed(day, "https://docs.example/FORMS/x"));  // a block matches in any case
  CHECK(pupils.allowed(day, "https://docs.example/document/d/7918/edit"));
  CHECK(pupils.allowed(day, "https://docs.example/spreadsheets/"));
  // In two categories, one locked: the locked one decides, whatever the list's order.
  const auto v = pupils.at(day, "https://docs.example/document/d/4242/edit");
  CHECK(v.act == action::block);
  CHECK(v.by == decided_by::locked_category);
}
