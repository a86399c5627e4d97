#include <doctest/doctest.h>

#include <set>

#include "rules/domain_table.hpp"

using hallpass::rules::domain_table;

namespace {
std::set<int> sets_of(const domain_table& t, std::string_view host, bool walk = true) {
  std::set<int> out;
  t.for_each_match(host, walk, [&](domain_table::set_id s) { out.insert(s); });
  return out;
}
}  // namespace

TEST_CASE("a domain matches itself and its subdomains on a label boundary") {
  domain_table t;
  REQUIRE(t.add("facebook.com", 1));
  CHECK(sets_of(t, "facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "m.facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "a.b.c.facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "notfacebook.com").empty());
  CHECK(sets_of(t, "facebook.com.example.org").empty());
  CHECK(sets_of(t, "com").empty());
}

TEST_CASE("a domain in several sets reports each; suffixes add up") {
  domain_table t;
  REQUIRE(t.add("example.com", 1));
  REQUIRE(t.add("example.com", 2));
  REQUIRE(t.add("example.com", 2));  // duplicate: no change
  REQUIRE(t.add("ads.example.com", 3));
  CHECK(t.size() == 2);
  CHECK(sets_of(t, "example.com") == std::set<int>{1, 2});
  CHECK(sets_of(t, "x.ads.example.com") == std::set<int>{1, 2, 3});
}

TEST_CASE("without the walk only the exact entry matches (IP literals)") {
  domain_table t;
  REQUIRE(t.add("1.1.1.1", 4));
  CHECK(sets_of(t, "1.1.1.1", false) == std::set<int>{4});
  CHECK(sets_of(t, "1.1.1", false).empty());
}

TEST_CASE("the table grows past many resizes and still finds everything") {
  domain_table t;
  for (int i = 0; i < 200000; ++i) REQUIRE(t.add("d" + std::to_string(i) + ".example", i % 7));
  CHECK(t.size() == 200000);
  for (int i = 0; i < 200000; i += 997) {
    CHECK(sets_of(t, "www.d" + std::to_string(i) + ".example") == std::set<int>{i % 7});
  }
  CHECK(sets_of(t, "d200001.example").empty());
}
