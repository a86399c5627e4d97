#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite twice: a normal build with
# warnings as errors, and an address/undefined-sanitizer build. Exit 0 only if all pass.
#
#   tests/run.sh              everything
#   tests/run.sh --quick      the normal build only (no sanitizer pass)
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DHALLPASS_WERROR=ON "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600
}

echo "== build and test (RelWithDebInfo, -Werror)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [[ "${1:-}" != "--quick" ]]; then
  echo "== build and test (address + undefined-behaviour sanitizers)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DHALLPASS_SANITIZE=ON
fi
echo "== all tests passed"
if [[ $(id -u) -ne 0 ]]; then
  # CTest reports a Python suite whose cases were skipped as passed; say so here.
  echo "== NOTE: not run as root, so these were SKIPPED: integration.exceptions and integration.browser (OS users" \
       "for the admin roles), dropping privileges (integration.proxy_lifecycle) and hallpassctl" \
       "as another user (ctl.hallpassctl). Run tests/run.sh as root for the whole suite."
fi
