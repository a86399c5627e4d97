#include "proxy/keytab_file.hpp"

#include <doctest/doctest.h>

#include <string>

#include "keytab_bytes.hpp"

using namespace hallpass;

using test::keytab_entry_bytes;

TEST_CASE("a keytab's entries: principal, realm and key version, and no keys") {
  const std::string file = std::string("\x05\x02", 2) + keytab_entry_bytes("SCHOOL.TEST", {"HTTP", "proxy.school.test"}, 3) +
                           test::big_endian(static_cast<std::uint32_t>(-12), 4) + std::string(12, '\0') +  // a hole
                           keytab_entry_bytes("SCHOOL.TEST", {"HTTP", "proxy.school.test"}, 300);
  std::string error;
  const auto entries = read_keytab(file, &error);
  REQUIRE(entries);
  REQUIRE(entries->size() == 2);
  CHECK((*entries)[0].principal == "HTTP/proxy.school.test@SCHOOL.TEST");
  CHECK((*entries)[0].realm == "SCHOOL.TEST");
  CHECK((*entries)[0].kvno == 3);
  CHECK((*entries)[1].kvno == 300);  // the 32-bit version past 255
  CHECK(keytab_realms(*entries) == std::vector<std::string>{"SCHOOL.TEST"});
  const auto two = read_keytab(file + keytab_entry_bytes("OTHER.TEST", {"HTTP", "proxy.school.test"}, 1), &error);
  REQUIRE(two);
  CHECK(keytab_realms(*two) == std::vector<std::string>{"SCHOOL.TEST", "OTHER.TEST"});
}

TEST_CASE("bytes that are not a version 2 keytab are refused, saying why") {
  const std::string good = std::string("\x05\x02", 2) + keytab_entry_bytes("R", {"HTTP", "h"}, 1);
  std::string error;
  CHECK_FALSE(read_keytab("", &error));
  CHECK_FALSE(read_keytab("garbage", &error));
  CHECK(error == "it does not begin as a keytab does");
  CHECK_FALSE(read_keytab(std::string("\x05\x02garbage", 9), &error));  // a size far past the end
  CHECK(error.find("runs past the end") != std::string::npos);
  CHECK_FALSE(read_keytab(good.substr(0, good.size() - 3), &error));  // truncated in the entry
  CHECK_FALSE(read_keytab(good + std::string(2, '\0'), &error));         // truncated in a size
  CHECK_FALSE(read_keytab(std::string("\x05\x02", 2), &error));         // no keys
  CHECK(error == "it holds no keys");
  CHECK_FALSE(read_keytab(std::string("\x05\x01", 2) + keytab_entry_bytes("R", {"HTTP", "h"}, 1), &error));
  CHECK(error.find("version 1") != std::string::npos);
  // An entry whose inner lengths do not fit its size.
  std::string bad = good;
  bad[2 + 4 + 2 + 1] = '\x7f';  // the realm's length
  CHECK_FALSE(read_keytab(bad, &error));
  CHECK(read_keytab(good + std::string(4, '\0') + "anything after the end", &error));  // size 0: the end
}
