#include <doctest/doctest.h>

#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

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
  REQUIRE(t.add("facebook.com", 1) == domain_table::add_result::added);
  CHECK(sets_of(t, "facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "m.facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "a.b.c.facebook.com") == std::set<int>{1});
  CHECK(sets_of(t, "notfacebook.com").empty());
  CHECK(sets_of(t, "facebook.com.example.org").empty());
  CHECK(sets_of(t, "com").empty());
}

TEST_CASE("a domain in several sets reports each, and suffixes add up") {
  domain_table t;
  REQUIRE(t.add("example.com", 1) == domain_table::add_result::added);
  REQUIRE(t.add("example.com", 2) == domain_table::add_result::added);
  REQUIRE(t.add("example.com", 2) == domain_table::add_result::already);  // duplicate: no change
  REQUIRE(t.add("ads.example.com", 3) == domain_table::add_result::added);
  CHECK(t.size() == 2);
  CHECK(sets_of(t, "example.com") == std::set<int>{1, 2});
  CHECK(sets_of(t, "x.ads.example.com") == std::set<int>{1, 2, 3});
}

TEST_CASE("without the walk only the exact entry matches (IP literals)") {
  domain_table t;
  REQUIRE(t.add("1.1.1.1", 4) == domain_table::add_result::added);
  CHECK(sets_of(t, "1.1.1.1", false) == std::set<int>{4});
  CHECK(sets_of(t, "1.1.1", false).empty());
}

TEST_CASE("the table grows past many resizes and still finds everything") {
  domain_table t;
  for (int i = 0; i < 200000; ++i) {
    REQUIRE(t.add("d" + std::to_string(i) + ".example", i % 7) == domain_table::add_result::added);
  }
  CHECK(t.size() == 200000);
  for (int i = 0; i < 200000; i += 997) {
    CHECK(sets_of(t, "www.d" + std::to_string(i) + ".example") == std::set<int>{i % 7});
  }
  CHECK(sets_of(t, "d200001.example").empty());
}

TEST_CASE("the URL-prefix mark is reported by the walk, never as a set, and is not counted") {
  domain_table t;
  REQUIRE(t.add("news.example", domain_table::url_prefix_marker) == domain_table::add_result::added);
  CHECK(t.size() == 0);
  CHECK(sets_of(t, "news.example").empty());
  CHECK(sets_of(t, "www.news.example").empty());
  auto levels = [&](std::string_view host) {
    std::vector<std::tuple<std::string, std::set<int>, bool>> out;
    t.for_each_level(host, true, [&](std::string_view suffix, std::span<const domain_table::set_id> sets,
                                     bool has_urls) {
      out.emplace_back(std::string(suffix), std::set<int>(sets.begin(), sets.end()), has_urls);
    });
    return out;
  };
  using level = std::tuple<std::string, std::set<int>, bool>;
  CHECK(levels("www.news.example") == std::vector<level>{{"news.example", {}, true}});

  REQUIRE(t.add("news.example", 3) == domain_table::add_result::added);  // now a listed domain too
  REQUIRE(t.add("example", 5) == domain_table::add_result::added);
  REQUIRE(t.add("sport.news.example", 4) == domain_table::add_result::added);
  REQUIRE(t.add("sport.news.example", domain_table::url_prefix_marker) == domain_table::add_result::added);
  REQUIRE(t.add("other.example", domain_table::url_prefix_marker) == domain_table::add_result::added);
  REQUIRE(t.add("other.example", domain_table::url_prefix_marker) == domain_table::add_result::already);
  CHECK(t.size() == 3);
  CHECK(sets_of(t, "news.example") == std::set<int>{3, 5});
  CHECK(levels("a.sport.news.example") == std::vector<level>{{"sport.news.example", {4}, true},
                                                             {"news.example", {3}, true},
                                                             {"example", {5}, false}});
  CHECK(levels("other.example") == std::vector<level>{{"other.example", {}, true}, {"example", {5}, false}});
}

TEST_CASE("hosts with more labels than one prefetch batch are walked in order to the end") {
  // 22 labels: about 250 bytes; 40 labels: over 256 bytes, where suffixes are hashed one by one.
  for (const int labels : {22, 40}) {
    domain_table t;
    std::string host = "example";
    std::vector<std::string> suffixes = {host};
    for (int i = 0; i < labels; ++i) {
      // Labels of 1 to 19 characters, so dots fall at every place in an 8-byte word.
      host = std::string(1 + (i * 7) % 19, static_cast<char>('a' + i % 26)) + "." + host;
      suffixes.push_back(host);
    }
    // Every third suffix that is short enough to be an entry, each in its own set (its index).
    auto listed = [&](std::size_t i) { return i % 3 == 0 && suffixes[i].size() <= 255; };
    for (std::size_t i = 0; i < suffixes.size(); ++i) {
      if (listed(i)) REQUIRE(t.add(suffixes[i], static_cast<domain_table::set_id>(i)) == domain_table::add_result::added);
    }
    std::vector<int> seen;
    t.for_each_match(host, true, [&](domain_table::set_id s) { seen.push_back(s); });
    std::vector<int> expected;
    for (std::size_t i = suffixes.size(); i-- > 0;) {
      if (listed(i)) expected.push_back(static_cast<int>(i));
    }
    CHECK(seen == expected);  // the host first, then its parents
    CHECK(sets_of(t, host + ".").empty());  // as before: "example." is not "example"
    CHECK(sets_of(t, "x.." + host).size() == expected.size());
    for (std::size_t i = 0; i < suffixes.size(); ++i) {
      CHECK(sets_of(t, suffixes[i], false) == (listed(i) ? std::set<int>{static_cast<int>(i)} : std::set<int>{}));
    }
  }
}

TEST_CASE("reserving room first gives the same table as growing it") {
  domain_table grown, reserved;
  reserved.reserve(50000, 50000 * 16);
  for (int i = 0; i < 50000; ++i) {
    const std::string d = "d" + std::to_string(i) + (i % 2 ? ".example" : ".test");
    REQUIRE(grown.add(d, i % 5) == domain_table::add_result::added);
    REQUIRE(reserved.add(d, i % 5) == domain_table::add_result::added);
  }
  reserved.reserve(10, 100);  // room enough already: nothing changes
  grown.finish();
  reserved.finish();
  CHECK(grown.size() == reserved.size());
  for (int i = 0; i < 60000; i += 7) {
    const std::string h = "www.d" + std::to_string(i) + (i % 2 ? ".example" : ".test");
    CHECK(sets_of(grown, h) == sets_of(reserved, h));
  }
}
