#!/usr/bin/env bash
# HTTPS inspection: hallpass against squid ssl_bump, e2guardian MITM and nginx as a
# TLS-terminating reverse proxy, in one run (issue 10). Results: bench/results/issue10-https.{md,json}.
#
#   bench/run-tls.sh                      install what is missing, build Release, run (~15 min)
#   bench/run-tls.sh --no-build --quick   smoke run with the existing build (< 3 min)
#   bench/run-tls.sh --no-build --only hallpass,squid --loads keepalive,newconn --rounds 5
#
# Every option but --no-build goes to bench/tls_peers.py (bench/tls_peers.py --help lists them).
# Runs the peers as root (they drop to their own users; e2guardian needs a mount namespace for
# its hosts file); uses sudo when not root.
set -euo pipefail

# shellcheck source=bench/run_bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/run_bench.sh"
run_bench "hallpass tls_load" tls_peers.py "$@"
