// Unpacking a UT1 tarball (feeds/feed_update.hpp, unpack_ut1): the limits on what an archive
// may unpack to, exercised with small limits on real (uncompressed) tar files written here.
// The defaults are exercised against a real download in tests/integration/feeds_update_test.py.
#include "feeds/feed_update.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/feeds/feeds_fixture.hpp"

namespace fs = std::filesystem;
using namespace hallpass::feeds;

namespace {

using feeds_test::temp_dir;

// A ustar archive of regular files, written by hand: a 512-byte header per member (name, size
// in octal, checksum), the data padded to 512 bytes, two zero blocks at the end.
std::string tar_of(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out;
  for (const auto& [name, data] : members) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", name.c_str());
    std::snprintf(h + 100, 8, "%07o", 0644);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011o", static_cast<unsigned>(data.size()));
    std::snprintf(h + 136, 12, "%011o", 1764676800u);
    h[156] = '0';
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, sizeof h);
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

std::string write_tar(const fs::path& dir,
                      const std::vector<std::pair<std::string, std::string>>& members) {
  const fs::path p = dir / "ut1.tar";
  std::ofstream(p, std::ios::binary) << tar_of(members);
  return p.string();
}

const unpack_limits small{.list_file_bytes = 150, .total_bytes = 250, .list_files = 3};

}  // namespace

TEST_CASE("an archive within the unpack limits is unpacked, files other than lists skipped") {
  temp_dir t;
  const auto tar = write_tar(t.path, {{"blacklists/gambling/domains", std::string(100, 'a') + "\n"},
                                      {"blacklists/gambling/usage", std::string(4000, 'u')},
                                      {"blacklists/drogue/domains", std::string(100, 'b') + "\n"}});
  fs::create_directory(t.path / "out");
  CHECK(unpack_ut1(tar, (t.path / "out").string(), small) == "");
  CHECK(fs::file_size(t.path / "out/blacklists/gambling/domains") == 101);
  CHECK(fs::file_size(t.path / "out/blacklists/drogue/domains") == 101);
  CHECK_FALSE(fs::exists(t.path / "out/blacklists/gambling/usage"));
}

TEST_CASE("a list file larger than the limit for one list file is refused, naming it") {
  temp_dir t;
  const auto tar = write_tar(t.path, {{"blacklists/gambling/domains", std::string(151, '\n')}});
  fs::create_directory(t.path / "out");
  CHECK(unpack_ut1(tar, (t.path / "out").string(), small) ==
        "blacklists/gambling/domains is larger than 150 bytes, the limit for one list file "
        "(a compression bomb, or not the UT1 archive?)");
}

TEST_CASE("list files together larger than the total limit are refused") {
  temp_dir t;
  const auto tar = write_tar(t.path, {{"blacklists/a/domains", std::string(100, '\n')},
                                      {"blacklists/b/domains", std::string(100, '\n')},
                                      {"blacklists/c/domains", std::string(100, '\n')}});
  fs::create_directory(t.path / "out");
  CHECK(unpack_ut1(tar, (t.path / "out").string(), small) ==
        "the archive's list files together are larger than 250 bytes, the limit "
        "(a compression bomb, or not the UT1 archive?)");
}

TEST_CASE("more list files than the limit are refused, a repeated member counted each time") {
  temp_dir t;
  const auto tar = write_tar(t.path, {{"blacklists/a/domains", "a.test\n"},
                                      {"blacklists/a/urls", "a.test/x\n"},
                                      {"blacklists/a/domains", "a.test\n"},
                                      {"blacklists/b/domains", "b.test\n"}});
  fs::create_directory(t.path / "out");
  CHECK(unpack_ut1(tar, (t.path / "out").string(), small) ==
        "the archive holds more than 3 list files (blacklists/<list>/domains or urls), the limit "
        "(a compression bomb, or not the UT1 archive?)");
}

TEST_CASE("the default limits sit well above the real UT1 and below what the policy loader reads") {
  const unpack_limits d;
  CHECK(d.list_file_bytes >= 10 * (std::uint64_t{100} << 20));  // adult/domains: about 100 MB
  CHECK(d.list_file_bytes < hallpass::rules::max_read_bytes);
  CHECK(d.total_bytes >= d.list_file_bytes);
  CHECK(d.list_files >= 5 * 200);  // about 100 categories, two files each
}

TEST_CASE("what the archive unpacks to in all is bounded, members skipped included") {
  // 8 GiB of zeros in a skipped `usage` member cost 18 s of CPU before anything was refused
  // (outside-in audit of the feeds, 2026-12-06, L1).
  temp_dir t;
  const auto tar = write_tar(t.path, {{"blacklists/usage", std::string(4096, 'u')},
                                      {"blacklists/gambling/domains", "bet.example\n"}});
  unpack_limits limits;
  limits.archive_bytes = 2048;
  fs::create_directories(t.path / "out");
  const auto e = unpack_ut1(tar, (t.path / "out").string(), limits);
  CHECK(e.find("the archive unpacks to more than 2048 bytes, the limit") != std::string::npos);
  limits.archive_bytes = 1 << 20;
  fs::remove_all(t.path / "out2");
  fs::create_directories(t.path / "out2");
  CHECK(unpack_ut1(tar, (t.path / "out2").string(), limits).empty());
}
