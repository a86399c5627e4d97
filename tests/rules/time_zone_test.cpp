#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

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
