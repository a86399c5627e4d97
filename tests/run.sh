#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite twice: a normal build with
# warnings as errors, and an address/undefined-sanitizer build; then runs every libFuzzer
# target for a bounded time (docs/fuzzing.md). Exit 0 only if all pass.
#
#   tests/run.sh              everything
#   tests/run.sh --quick      the normal build only (no sanitizer pass, no fuzzing)
#   tests/run.sh --fuzz-only  only the fuzz stage
#
# HALLPASS_FUZZ_SECONDS (default 12): how long each fuzz target runs.
# HALLPASS_TEST_JOBS (default twice the cores): how many CTest tests run at once.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  "" | --quick | --fuzz-only) ;;
  *) echo "usage: tests/run.sh [--quick | --fuzz-only]" >&2; exit 2 ;;
esac

deploy/install-deps.sh --test

jobs=$(nproc)
# Tests run two per core: most of the suite's time is the integration tests waiting on sockets,
# processes and timeouts, not computing (CI of 2026-12-04: 490 s of tests in 247 s on two cores
# at -j2; -j4 took 136 s with the cores busy about half the time).
test_jobs=${HALLPASS_TEST_JOBS:-$((jobs * 2))}
# The test builds carry line tables only (-g1): file and line in every backtrace and sanitizer
# report, at two thirds of the compile time of full debug information (measured on four of the
# heaviest files). The setting stays in build/'s CMake cache: deploy/quickstart.sh, which builds
# there too, then keeps it; a fresh build directory gets RelWithDebInfo's full -g.
# proxy/ and its unit tests compile in batches (HALLPASS_UNITY, on by default; proxy/CMakeLists.txt).
# CI of 2026-12-05 on this 2-core machine: the RelWithDebInfo build 465 s -> 300 s, the
# sanitizer build 575 s -> 365 s; the whole run about 28.5 -> 21.5 minutes.
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DHALLPASS_WERROR=ON -DHALLPASS_UNITY=ON "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$test_jobs" --timeout 600
}

# Builds the fuzz targets with clang (ASan, UBSan, libFuzzer) and runs each on a copy of its
# seed corpus for HALLPASS_FUZZ_SECONDS, as many at once as there are cores. Fails on any crash,
# leak, timeout, out-of-memory or sanitizer report, and prints the input that caused it.
run_fuzz() {
  echo "== fuzz (libFuzzer, ASan/UBSan)"
  local start=$SECONDS seconds=${HALLPASS_FUZZ_SECONDS:-12}
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DHALLPASS_FUZZ=ON -DHALLPASS_BENCH=OFF -DBUILD_TESTING=OFF >/dev/null
  ninja -C build-fuzz -j "$jobs" fuzz
  echo "fuzz: built in $((SECONDS - start)) s; running each target for ${seconds} s"
  local work=build-fuzz/fuzz-run
  rm -rf "$work"
  local -a targets
  mapfile -t targets < build-fuzz/fuzz_targets.txt
  local t running=0
  for t in "${targets[@]}"; do
    [[ -n "$t" ]] || continue
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    if [[ -d "tests/fuzz/corpus/$t" ]]; then cp -r "tests/fuzz/corpus/$t/." "$work/$t/corpus/"; fi
    local -a extra=()
    if [[ -f "tests/fuzz/$t.options" ]]; then read -r -a extra < "tests/fuzz/$t.options" || true; fi
    (
      rc=0
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
        "build-fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" "${extra[@]}" \
        "$work/$t/corpus" >"$work/$t/log" 2>&1 || rc=$?
      echo "$rc" >"$work/$t/rc"
    ) &
    running=$((running + 1))
    if ((running >= jobs)); then
      wait -n || true
      running=$((running - 1))
    fi
  done
  wait || true
  local failed=0 f
  for t in "${targets[@]}"; do
    [[ -n "$t" ]] || continue
    local rc log="$work/$t/log"
    rc=$(cat "$work/$t/rc" 2>/dev/null || echo missing)
    local done_line
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    if [[ "$rc" != 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:' "$log" ||
      [[ -n "$(ls -A "$work/$t/artifacts")" ]]; then
      failed=1
      echo "fuzz: $t FAILED (exit $rc); the end of $log:"
      tail -n 60 "$log"
      for f in "$work/$t/artifacts"/*; do
        [[ -e "$f" ]] || continue
        echo "fuzz: $t input that failed: $f (base64 below; replay: build-fuzz/fuzz_$t $f)"
        base64 -w 76 "$f"
      done
    else
      echo "fuzz: $t ok: ${done_line:-no final stats}"
    fi
  done
  echo "fuzz: stage took $((SECONDS - start)) s (build included)"
  return "$failed"
}

if [[ "$mode" == "--fuzz-only" ]]; then
  run_fuzz
  echo "== fuzz stage passed"
  exit 0
fi

echo "== build and test (RelWithDebInfo, -Werror)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"

if [[ "$mode" != "--quick" ]]; then
  echo "== build and test (address + undefined-behaviour sanitizers)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" -DHALLPASS_SANITIZE=ON \
      -DHALLPASS_BENCH=OFF
  run_fuzz
fi
echo "== all tests passed"
if [[ $(id -u) -ne 0 ]]; then
  # CTest reports a Python suite whose cases were skipped as passed; say so here.
  echo "== NOTE: not run as root, so these were SKIPPED: integration.exceptions and integration.browser (OS users" \
       "for the admin roles), dropping privileges (integration.proxy_lifecycle) and hallpassctl" \
       "as another user (ctl.hallpassctl). Run tests/run.sh as root for the whole suite."
fi
