// FUZZ_REQUIRE(condition): the fuzz targets' invariant check. When it fails it prints the
// condition and where it is, then aborts, so libFuzzer saves the input and the log says which
// invariant broke. Not assert(): it must hold in every build type.
#pragma once

#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void hallpass_fuzz_invariant_broken(const char* condition, const char* file,
                                                        int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, condition);
  std::abort();
}

#define FUZZ_REQUIRE(condition)       \
  ((condition) ? static_cast<void>(0) \
               : hallpass_fuzz_invariant_broken(#condition, __FILE__, __LINE__))
