// The feeds' load history (feeds/feed_history.hpp): its lines, its bound, its writers.
#include "feeds/feed_history.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/feeds/feeds_fixture.hpp"

namespace fs = std::filesystem;
using namespace hallpass::feeds;

namespace {

using feeds_test::temp_dir;

history_entry entry(std::int64_t t, std::string feed = "ut1") {
  return {t,
          "updated",
          std::move(feed),
          "v" + std::to_string(t) + "-1",
          {{"gambling", 10, 2, 1}, {"drogue", 5, 0, 0}}};
}

std::size_t line_count(const fs::path& p) {
  std::ifstream in(p);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

}  // namespace

TEST_CASE("a history line reads back as written, escapes included") {
  auto e = entry(1764693000);
  e.feed = "odd\"name\\with\ncontrol";
  e.lists.push_back({"list", 3, std::nullopt, std::nullopt});
  const auto line = to_json(e);
  CHECK(line.find('\n') == std::string::npos);
  const auto back = parse_history_line(line);
  REQUIRE(back);
  CHECK(back->time == e.time);
  CHECK(back->event == "updated");
  CHECK(back->feed == e.feed);
  CHECK(back->version == e.version);
  REQUIRE(back->lists.size() == 3);
  CHECK(back->lists[0].list == "gambling");
  CHECK(back->lists[0].entries == 10);
  CHECK(back->lists[0].added == 2u);
  CHECK(back->lists[0].removed == 1u);
  CHECK_FALSE(back->lists[2].added);
  CHECK(to_json(*back) == line);
}

TEST_CASE("a history line's text outside ASCII reads back as the same text") {
  auto e = entry(1764693000);
  e.feed = "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80";  // two-, three- and four-byte characters
  const auto back = parse_history_line(to_json(e));
  REQUIRE(back);
  CHECK(back->feed == e.feed);
  // A lone surrogate is not text: the line is refused (and skipped by readers).
  e.feed = "x";
  std::string line = to_json(e);
  const auto at = line.find(R"("feed":"x")");
  REQUIRE(at != std::string::npos);
  CHECK(parse_history_line(line));
  line.replace(at, 10, R"("feed":"\ud83d")");
  CHECK_FALSE(parse_history_line(line));
}

TEST_CASE("lines that are not history entries are refused, unknown fields are skipped") {
  CHECK_FALSE(parse_history_line(""));
  CHECK_FALSE(parse_history_line("not json"));
  CHECK_FALSE(parse_history_line("{\"time\":1,\"event\":\"loaded\"}"));  // no feed
  CHECK_FALSE(
      parse_history_line("{\"time\":1,\"event\":\"loaded\",\"feed\":\"ut1\""));  // cut short
  CHECK_FALSE(parse_history_line("{\"time\":1,\"event\":\"loaded\",\"feed\":\"ut1\"} trailing"));
  const auto e = parse_history_line(
      "{\"time\":7,\"later\":{\"a\":[1,\"x\"]},\"event\":\"loaded\",\"feed\":\"ut1\",\"version\":"
      "\"v\",\"lists\":[]}");
  REQUIRE(e);
  CHECK(e->time == 7);
  CHECK(e->lists.empty());
}

TEST_CASE("the history keeps the newest 400 lines and skips what it cannot read") {
  temp_dir d;
  {
    std::ofstream f(d.path / "history");
    f << "garbage line\n";
  }
  for (std::int64_t t = 0; t < 450; t += 10) {
    std::vector<history_entry> batch;
    for (std::int64_t i = t; i < t + 10; ++i) batch.push_back(entry(i));
    REQUIRE(append_history(d.path.string(), batch).empty());
  }
  CHECK(line_count(d.path / "history") == history_lines);
  const auto h = read_history(d.path.string());
  CHECK(h.error.empty());
  CHECK(h.unreadable == 0);  // the garbage line was among the oldest, dropped
  REQUIRE(h.entries.size() == history_lines);
  CHECK(h.entries.front().time == 50);
  CHECK(h.entries.back().time == 449);
  CHECK_FALSE(fs::exists(d.path / "history.tmp"));
}

TEST_CASE("writers at the same time lose no line") {
  temp_dir d;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 25; ++i)
        append_history(d.path.string(), {entry(w * 1000 + i, "feed" + std::to_string(w))});
    });
  }
  for (auto& t : writers) t.join();
  const auto h = read_history(d.path.string());
  CHECK(h.unreadable == 0);
  CHECK(h.entries.size() == 100);
}

TEST_CASE("a load is recorded when the version in force changes, not on every reload") {
  hallpass::rules::policy before, after;
  hallpass::rules::feed f;
  f.name = "ut1";
  f.present = true;
  f.dir = "/var/lib/hallpass/feeds/ut1/v100-1";
  f.lists = {{"gambling", 12}};
  hallpass::rules::feed missing;
  missing.name = "iwf";
  before.feeds = {f, missing};
  after.feeds = {f, missing};
  const auto first = loads_between(nullptr, after, 500);
  REQUIRE(first.size() == 1);  // the missing feed has no version to record
  CHECK(first[0].event == "loaded");
  CHECK(first[0].version == "v100-1");
  CHECK(first[0].time == 500);
  REQUIRE(first[0].lists.size() == 1);
  CHECK(first[0].lists[0].entries == 12);
  CHECK_FALSE(first[0].lists[0].added);
  CHECK(loads_between(&before, after, 600).empty());
  after.feeds[0].dir = "/var/lib/hallpass/feeds/ut1/v200-1";
  CHECK(loads_between(&before, after, 700).size() == 1);
}
