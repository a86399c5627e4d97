// Shared pieces of the certs/ unit tests: a temporary directory removed afterwards, and a
// school CA made in one.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "certs/authority.hpp"
#include "tests/temp_dir.hpp"

namespace hallpass::certs::testing {

// tests/temp_dir.hpp's, with `dir / "name"` as a string (the certs/ functions take strings).
struct temp_dir : hallpass_test::temp_dir {
  temp_dir() : hallpass_test::temp_dir("hallpass-certs") {}
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::shared_ptr<const authority> make_ca(const std::string& dir,
                                                clock::time_point now = clock::now()) {
  auto ca = create_ca(dir, "Test School", now);
  REQUIRE_MESSAGE(ca.ok(), ca.error());
  return *ca;
}

}  // namespace hallpass::certs::testing
