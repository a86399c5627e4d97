#!/usr/bin/env bash
# Logins and the transparent gateway (issue 12): hallpass without logins, with Basic over LDAP
# and with Negotiate, against squid with basic_ldap_auth and negotiate_kerberos_auth on the
# same slapd and KDC; hallpass's transparent listener against its explicit one in network
# namespaces. Results: bench/results/issue12-logins.{md,json}.
#
#   bench/run-logins.sh                       install what is missing, build Release, run (~7 min)
#   bench/run-logins.sh --no-build --quick    smoke run with the existing build (~1 min)
#   bench/run-logins.sh --no-build --only hallpass-open,hallpass-basic,squid-basic --rounds 5
#
# Every option but --no-build goes to bench/logins_bench.py (--help lists them). Runs as root
# (squid drops to `proxy`; the namespaces and nftables need root); uses sudo when not root.
set -euo pipefail

# shellcheck source=bench/run_bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/run_bench.sh"
run_bench "hallpass negotiate_load" logins_bench.py "$@"
