#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "rules/explain.hpp"
#include "rules/time_zone.hpp"

using namespace hallpass::rules;
using namespace std::chrono;

namespace {
time_zone london() {
  std::ifstream in("/usr/share/zoneinfo/Europe/London", std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string err;
  auto z = time_zone::from_tzif("Europe/London", ss.str(), &err);
  REQUIRE_MESSAGE(z, err);
  return *z;
}
sys_seconds utc(int y, unsigned m, unsigned d, int h, int mi) {
  return sys_days{year{y} / m / d} + hours{h} + minutes{mi};
}
local_seconds local(int y, unsigned m, unsigned d, int h, int mi) {
  return local_days{year{y} / m / d} + hours{h} + minutes{mi};
}
}  // namespace

TEST_CASE("London: GMT in winter, BST in summer, from the TZif file") {
  const auto z = london();
  CHECK(z.offset_at(utc(2026, 1, 15, 12, 0)) == 0s);
  CHECK(z.offset_at(utc(2026, 7, 15, 12, 0)) == 3600s);
  // Spring 2026: clocks go forward at 01:00 UTC on Sunday 29 March.
  CHECK(z.offset_at(utc(2026, 3, 29, 0, 59)) == 0s);
  CHECK(z.offset_at(utc(2026, 3, 29, 1, 0)) == 3600s);
  // Autumn 2026: back at 01:00 UTC on Sunday 25 October.
  CHECK(z.offset_at(utc(2026, 10, 25, 0, 59)) == 3600s);
  CHECK(z.offset_at(utc(2026, 10, 25, 1, 0)) == 0s);
}

TEST_CASE("London: far-future years follow the POSIX footer rule") {
  const auto z = london();
  // 2061: last Sunday of March is the 27th; of October, the 30th.
  CHECK(z.offset_at(utc(2061, 3, 27, 0, 59)) == 0s);
  CHECK(z.offset_at(utc(2061, 3, 27, 1, 0)) == 3600s);
  CHECK(z.offset_at(utc(2061, 10, 30, 0, 59)) == 3600s);
  CHECK(z.offset_at(utc(2061, 10, 30, 1, 0)) == 0s);
}

TEST_CASE("POSIX rule alone gives the same answers") {
  std::string err;
  auto z = time_zone::from_posix("London", "GMT0BST,M3.5.0/1,M10.5.0", &err);
  REQUIRE_MESSAGE(z, err);
  CHECK(z->offset_at(utc(2026, 3, 29, 1, 0)) == 3600s);
  CHECK(z->offset_at(utc(2026, 3, 29, 0, 59)) == 0s);
  CHECK(z->offset_at(utc(2026, 10, 25, 1, 0)) == 0s);
  // Southern hemisphere: DST spans the new year.
  auto syd = time_zone::from_posix("Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3", &err);
  REQUIRE_MESSAGE(syd, err);
  CHECK(syd->offset_at(utc(2026, 1, 10, 0, 0)) == 11h);
  CHECK(syd->offset_at(utc(2026, 7, 10, 0, 0)) == 10h);
  CHECK_FALSE(time_zone::from_posix("bad", "GMT0BST,X", &err));
}

TEST_CASE("local to UTC and back across both clock changes") {
  const auto z = london();
  // The Monday after the spring change: 09:00 local is 08:00 UTC.
  CHECK(z.to_sys(local(2026, 3, 30, 9, 0)) == utc(2026, 3, 30, 8, 0));
  CHECK(z.to_local(utc(2026, 3, 30, 8, 0)) == local(2026, 3, 30, 9, 0));
  // The Monday after the autumn change: 09:00 local is 09:00 UTC.
  CHECK(z.to_sys(local(2026, 10, 26, 9, 0)) == utc(2026, 10, 26, 9, 0));
  // The repeated hour maps to its first occurrence (BST).
  CHECK(z.to_sys(local(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 0, 30));
  // The missing hour: 01:30 becomes 02:30 BST = 01:30 UTC.
  CHECK(z.to_sys(local(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 30));
}

TEST_CASE("malformed TZif data is an error, never a crash") {
  std::string err;
  CHECK_FALSE(time_zone::from_tzif("x", "", &err));
  CHECK_FALSE(time_zone::from_tzif("x", "TZif2", &err));
  std::string junk = "TZif2" + std::string(39, '\0');
  junk[35] = 100;  // 100 transitions promised, none present
  junk[39] = 1;
  CHECK_FALSE(time_zone::from_tzif("x", junk, &err));
}

TEST_CASE("local times are shown with the zone's name: GMT or BST in London, the file's letters, else the offset") {
  const auto z = london();
  CHECK(local_minutes(z, utc(2026, 12, 2, 3, 12)) == "2026-12-02 03:12 GMT");
  CHECK(local_minutes(z, utc(2026, 7, 1, 23, 30)) == "2026-07-02 00:30 BST");
  // The autumn's repeated hour: the same local minutes, told apart by the zone.
  CHECK(local_minutes(z, utc(2026, 10, 25, 0, 30)) == "2026-10-25 01:30 BST");
  CHECK(local_minutes(z, utc(2026, 10, 25, 1, 30)) == "2026-10-25 01:30 GMT");
  std::string err;
  const auto paris = time_zone::from_posix("Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3", &err);
  REQUIRE_MESSAGE(paris, err);
  CHECK(zone_label(*paris, utc(2026, 1, 15, 12, 0)) == "CET");
  CHECK(local_minutes(*paris, utc(2026, 7, 15, 12, 0)) == "2026-07-15 14:00 CEST");
  CHECK(zone_label(time_zone::utc(), utc(2026, 1, 15, 12, 0)) == "UTC");
  // tzdata's "<+04>" (no letters for the zone): the offset.
  const auto dubai = time_zone::from_posix("Asia/Dubai", "<+04>-4", &err);
  REQUIRE_MESSAGE(dubai, err);
  CHECK(dubai->abbreviation_at(utc(2026, 1, 15, 12, 0)) == "+04");
  CHECK(zone_label(*dubai, utc(2026, 1, 15, 12, 0)) == "UTC+04:00");
  // A Crown Dependency's zone file: GMT and BST as London's, from the file itself, both before
  // its last transition (the table) and after it (the POSIX rule in its footer).
  std::ifstream in("/usr/share/zoneinfo/Europe/Jersey", std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  const auto jersey = time_zone::from_tzif("Europe/Jersey", ss.str(), &err);
  REQUIRE_MESSAGE(jersey, err);
  CHECK(local_minutes(*jersey, utc(2026, 12, 2, 3, 12)) == "2026-12-02 03:12 GMT");
  CHECK(local_minutes(*jersey, utc(2026, 7, 1, 23, 30)) == "2026-07-02 00:30 BST");
  CHECK(zone_label(*jersey, utc(1990, 7, 1, 12, 0)) == "BST");
  CHECK(zone_label(*jersey, utc(2090, 1, 1, 12, 0)) == "GMT");
}

TEST_CASE("a local time the clocks skip or repeat gets a note naming the instant used") {
  const auto z = london();
  const auto autumn = local(2026, 10, 25, 1, 30);
  CHECK(clock_change_note(z, "2026-10-25 01:30", autumn, z.to_sys(autumn)) ==
        "2026-10-25 01:30 happens twice in Europe/London (the clocks go back); the first was used, "
        "2026-10-25T01:30:00+01:00 (for the second, write it with its offset: \"2026-10-25 01:30+00:00\")");
  const auto spring = local(2026, 3, 29, 1, 30);
  CHECK(clock_change_note(z, "2026-03-29 01:30", spring, z.to_sys(spring)) ==
        "2026-03-29 01:30 does not exist in Europe/London (the clocks go forward); read as 2026-03-29T02:30:00+01:00");
  for (const auto plain : {local(2026, 10, 25, 0, 59), local(2026, 10, 25, 2, 0), local(2026, 3, 29, 2, 0),
                           local(2026, 12, 4, 15, 15)}) {
    CHECK(clock_change_note(z, "t", plain, z.to_sys(plain)).empty());
  }
}

TEST_CASE("A time as a child would say it, from now, in school time") {
  const auto z = london();
  // Sunday 6 December 2026, 15:00 GMT.
  const auto now = utc(2026, 12, 6, 15, 0);
  CHECK(spoken_time(z, utc(2026, 12, 6, 18, 47), now) == "6:47 this evening");
  CHECK(spoken_time(z, utc(2026, 12, 6, 15, 30), now) == "3:30 this afternoon");
  CHECK(spoken_time(z, utc(2026, 12, 7, 0, 0), now) == "midnight tonight");
  CHECK(spoken_time(z, utc(2026, 12, 7, 9, 5), now) == "9:05 tomorrow morning");
  CHECK(spoken_time(z, utc(2026, 12, 7, 12, 0), now) == "12 noon tomorrow");
  CHECK(spoken_time(z, utc(2026, 12, 7, 12, 30), now) == "12:30 tomorrow afternoon");
  CHECK(spoken_time(z, utc(2026, 12, 8, 0, 0), now) == "midnight tomorrow night");
  CHECK(spoken_time(z, utc(2026, 12, 9, 8, 0), now) == "8:00 on Wednesday morning");
  CHECK(spoken_time(z, utc(2026, 12, 10, 0, 0), now) == "midnight on Wednesday night");
  CHECK(spoken_time(z, utc(2026, 12, 15, 9, 0), now) == "9:00 am on Tuesday 15 December");
  CHECK(spoken_time(z, utc(2026, 12, 15, 21, 10), now) == "9:10 pm on Tuesday 15 December");
  // School time, not UTC: 23:30 UTC on a summer Saturday is 00:30 on Sunday in London.
  const auto summer = utc(2026, 7, 4, 12, 0);
  CHECK(spoken_time(z, utc(2026, 7, 4, 23, 30), summer) == "12:30 tomorrow morning");
  CHECK(spoken_time(z, utc(2026, 7, 4, 17, 0), summer) == "6:00 this evening");
}

TEST_CASE("a midnight more than a week ahead says whose night it ends") {
  const auto z = london();
  CHECK(spoken_time(z, utc(2026, 12, 16, 0, 0), utc(2026, 12, 6, 15, 0)) == "midnight at the end of Tuesday 15 December");
}

TEST_CASE("a school time with its UTC offset names the instant, the second of two 01:30s too") {
  // outside-in audit of time, 2026-12-07, F8: only the first could be given.
  const auto z = london();
  const auto first = parse_school_time(z, "2026-10-25 01:30");
  const auto second = parse_school_time(z, "2026-10-25 01:30+00:00");
  REQUIRE(first);
  REQUIRE(second);
  CHECK(second->at - first->at == std::chrono::hours(1));
  CHECK(second->note.empty());
  CHECK(first->note.find("happens twice") != std::string::npos);
  CHECK(parse_school_time(z, "2026-10-25 00:30Z")->at == first->at);
  const auto odd = parse_school_time(z, "2026-12-04 10:00+05:00");
  REQUIRE(odd);
  CHECK(odd->note.find("Europe/London is at UTC+00:00 then, not UTC+05:00") != std::string::npos);
  for (const char* bad : {"2026-10-25 01:30+0000", "2026-10-25 01:30+15:00", "2026-10-25 01:30 +00:00", "2026-10-25 1:30"}) {
    INFO(bad);
    CHECK_FALSE(parse_school_time(z, bad));
  }
}
