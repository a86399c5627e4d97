// Helpers shared by the feeds' unit tests.
#pragma once

#include "tests/temp_dir.hpp"

namespace feeds_test {

// A fresh directory, removed with everything in it at the end of the test.
struct temp_dir : hallpass_test::temp_dir {
  temp_dir() : hallpass_test::temp_dir("hallpass-feeds") {}
};

}  // namespace feeds_test
