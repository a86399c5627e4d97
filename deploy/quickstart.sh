#!/usr/bin/env bash
# Fresh Debian 12 machine to a running hallpass with the shipped school policy:
# installs the packages, builds, checks the policy, and shows a few decisions.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build hallpass

policy=rules/school.yaml
echo
echo "== hallpass check --config $policy"
build/hallpass check --config "$policy"

explain() {
  echo
  echo "== hallpass explain --config $policy $*"
  build/hallpass explain --config "$policy" "$@"
}
explain --role pupils --at "2026-11-23 11:00" https://www.facebook.com/
explain --role staff --at "2026-11-23 11:00" https://www.instagram.com/
explain --role staff --at "2026-11-23 12:30" https://www.instagram.com/
explain --client 10.10.4.20 https://www.bbc.co.uk/bitesize
