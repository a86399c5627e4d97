// Shared pieces of the certs/ unit tests: a temporary directory removed afterwards, and a
// school CA made in one.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "certs/authority.hpp"

namespace hallpass::certs::testing {

struct temp_dir {
  std::string path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hallpass-certs-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline std::shared_ptr<const authority> make_ca(const std::string& dir,
                                                clock::time_point now = clock::now()) {
  auto ca = create_ca(dir, "Test School", now);
  REQUIRE_MESSAGE(ca.ok(), ca.error());
  return *ca;
}

}  // namespace hallpass::certs::testing
