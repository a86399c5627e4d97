// A fresh directory for one unit test, removed with everything in it at the end: shared by the
// store's and the feeds' tests (their fixtures name it `temp_dir`).
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace hallpass_test {

struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const char* prefix = "hallpass-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace hallpass_test
