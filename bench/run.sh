#!/usr/bin/env bash
# hallpass against peer proxies (squid, tinyproxy, privoxy, e2guardian, nginx direct) on this
# machine, in one run (issue 5). Results: bench/results/latest.md and latest.json.
#
#   bench/run.sh                        install what is missing, build Release, run (~20 min)
#   bench/run.sh --no-build --quick     smoke run with the existing build (~3 min)
#   bench/run.sh --no-build --only hallpass,squid --loads small50,connect --rounds 5
#
# Every option but --no-build goes to bench/peers.py (bench/peers.py --help lists them).
# Runs the peers as root (they drop to their own users); uses sudo when not root.
set -euo pipefail

# shellcheck source=bench/run_bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/run_bench.sh"
run_bench "hallpass bench_rules" peers.py "$@"
