// The entries of a list file as `hallpass feeds update` counts them against a feed's
// min_entries (feeds/feed_update.hpp, read_entries): each as the policy loader keeps it, so
// that repeats and other spellings of one entry count once.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "feeds/feed_update.hpp"
#include "tests/feeds/feeds_fixture.hpp"

using namespace hallpass;

namespace {

std::vector<std::string> distinct(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

TEST_CASE("a list's entries are read as the loader keeps them, so one entry spelt many ways counts once") {
  feeds_test::temp_dir dir;
  const std::string path = (dir.path / "list").string();
  {
    std::ofstream out(path);
    out << "# one site, written every way the loader reads as it\n"
           "example.com\nExample.COM\nexample.com.\n*.example.com\n.example.com\n  example.com  # again\n"
           "http://example.com/\nhttps://EXAMPLE.com/\nexample.com/\nexample.com:8080/\n"
           "# one page, twice\n"
           "example.org/Games\nhttp://example.org/Games\n"
           "# another site, many times\n";
    for (int i = 0; i < 1000; ++i) out << "other.example\n";
    out << "not a domain\n";
  }
  feeds::skipped_lines skipped;
  const auto entries = feeds::read_entries(path, rules::list_file_kind::mixed, &skipped);
  CHECK(entries.size() == 10 + 2 + 1000);  // every line that is an entry, repeats included
  CHECK(distinct(entries) == std::vector<std::string>{"example.com", "example.org/Games", "other.example"});
  CHECK(skipped.count == 1);

  // A UT1 domains file and a urls file: the same.
  const auto domains = feeds::read_entries(path, rules::list_file_kind::domains);
  CHECK(distinct(domains).front() == "example.com");
}
