// Helpers shared by the store's unit tests: a temporary store directory, opening a store in
// it, reading a file (the schema fixtures) and a database's schema version.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "store/exception_store.hpp"
#include "tests/temp_dir.hpp"

namespace store_test {

// Who acts, as the admin socket names them (OS user, admin role).
inline const hallpass::store::actor technician{"ict.tech", "technician"};
inline const hallpass::store::actor headteacher{"mrs.head", "headteacher"};
inline const hallpass::store::actor dsl{"mr.dsl", "dsl"};
inline const hallpass::store::actor block_page{"block page", "requester"};

// A fresh directory, removed with everything in it at the end of the test.
struct temp_dir : hallpass_test::temp_dir {
  temp_dir() : hallpass_test::temp_dir("hallpass-store") {}
  std::string db() const { return (path / "hallpass.db").string(); }
};

inline std::unique_ptr<hallpass::store::exception_store> open_store(const temp_dir& dir) {
  std::string error;
  auto s = hallpass::store::exception_store::open(dir.path.string(), hallpass::rules::time_zone::utc(), &error);
  INFO(error);
  REQUIRE(s != nullptr);
  return s;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What schema 2 added to schema 1 (tests/store/schema_1.sql), as an older hallpass wrote it:
// the tests that make a store of schema 2 or 3 by hand run these after the schema 1 file.
inline constexpr const char* schema_2_additions[] = {
    "ALTER TABLE requests ADD COLUMN reviewer_site_content TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE requests ADD COLUMN review_note TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE requests ADD COLUMN reviewed_by TEXT",
    "ALTER TABLE requests ADD COLUMN reviewed_role TEXT",
    "ALTER TABLE requests ADD COLUMN reviewed_at INTEGER",
};

inline std::int64_t user_version(const std::string& db) {
  std::string error;
  auto d = hallpass::store::database::open_read_only(db, &error);
  REQUIRE(d.has_value());
  auto st = d->prepare("PRAGMA user_version", &error);
  REQUIRE(st.step(&error));
  return st.integer(0);
}

}  // namespace store_test
