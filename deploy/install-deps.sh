#!/usr/bin/env bash
# Installs the Debian 12 packages hallpass needs to build and run, and on request those its tests
# and benchmarks need. Idempotent: packages already present are left alone; safe to run on every build.
#
#   deploy/install-deps.sh            build and run (what a school gateway needs; the quick start)
#   deploy/install-deps.sh --test     also what the test suite runs against (tests/run.sh)
#   deploy/install-deps.sh --bench    also the tests' packages and the peer proxies the bench compares against
#
# The test packages are kept off a gateway: they include nginx (Debian's default site takes port
# 80, where a school may serve the PAC file), an OpenLDAP server and a KDC (docs audit, 2026-12-05).
set -euo pipefail

mode=${1:-}
case "$mode" in
  "" | --test | --bench) ;;
  *) echo "usage: deploy/install-deps.sh [--test | --bench]" >&2; exit 2 ;;
esac

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  curl                      # the quick start's examples, and a technician's first check through the proxy
  libboost1.81-dev          # Asio, Beast (proxy/ only)
  libssl-dev                # OpenSSL 3 (certs/, TLS)
  libre2-dev                # URL patterns (rules/)
  libyaml-cpp-dev           # policy files (rules/)
  libidn2-dev               # IDNA host names to punycode (rules/)
  prometheus-cpp-dev        # metrics endpoint (proxy/)
  libc-ares-dev             # DNS lookups on the event loop, each with its own deadline (proxy/)
  libsqlite3-dev sqlite3    # durable state
  libcurl4-openssl-dev      # `hallpass feeds update`: HTTPS downloads, verified, with timeouts (feeds/)
  libarchive-dev            # `hallpass feeds update`: the UT1 tarball (gzip + tar, integrity errors) (feeds/)
  zlib1g-dev                # ... and gzip's CRC-32, which libarchive does not check (feeds/feed_update.cpp)
  libldap-dev               # logins: Basic checked by a simple bind to the school directory (proxy/ldap_directory.cpp)
  libkrb5-dev               # logins: Negotiate accepted with MIT Kerberos's GSS-API (proxy/negotiate_acceptor.cpp)
  libpsl-dev publicsuffix   # the Public Suffix List: no exception opens all of "com" or "co.uk" (proxy/public_suffix.cpp)
  doctest-dev               # unit tests
  tzdata                    # school time zones (rules/ reads TZif files)
)
test_pkgs=(
  python3 curl nginx-light openssl procps iproute2
  chromium                  # a real browser through the proxy (tests/integration/browser_test.py)
  libnss3-tools             # certutil: Chromium's NSS database trusts the school CA (tests/integration/browser_https_test.py)
  nodejs                    # evaluates deploy/proxy.pac (tests/integration/deploy_pac_test.py)
  slapd ldap-utils          # a test directory (slapadd, slaptest, slapd) for tests/integration/logins_test.py
  krb5-kdc krb5-admin-server krb5-user  # a test KDC (krb5kdc, kdb5_util, kadmin.local) and kinit for
                            # tests/integration/negotiate_test.py, which starts its own krb5kdc: the
                            # system services are left disabled and stopped (below)
  python3-gssapi            # MIT's GSS-API from Python: the Kerberos tokens of the multi-leg SPNEGO
                            # client in tests/integration/negotiate_legs_test.py (curl does one leg)
  nftables                  # checks and loads deploy/nftables-hallpass.nft (tests/integration/deploy_nftables_test.py)
  strace                    # counts the upstream pool's peeks per request (tests/integration/inspection_test.py)
  msmtp                     # a real mail client as alerts.command: tests/integration/alerts_test.py mails alerts
                            # to an SMTP server of its own
  logrotate                 # runs deploy/hallpass.logrotate (tests/integration/deploy_logrotate_test.py)
  acl                       # setfacl: a list shared with the service user by an ACL (tests/integration/admin_socket_user_test.py)
  clang-14 libclang-rt-14-dev  # the libFuzzer targets in tests/fuzz/ (libFuzzer, ASan, UBSan runtimes)
)
bench_pkgs=(
  wrk tinyproxy privoxy e2guardian nginx-light linux-perf valgrind
  squid-openssl             # squid built with OpenSSL, for ssl_bump (bench/tls_peers.py); it conflicts with
                            # (and replaces) Debian's GnuTLS `squid`, which the plain-HTTP bench ran before
  krb5-kdc krb5-user        # the logins bench's KDC and kinit (bench/logins_bench.py, Negotiate)
  libkrb5-dev               # GSS-API for its SPNEGO load client (bench/negotiate_load.cpp)
)

want=("${build_pkgs[@]}")
if [[ "$mode" == "--test" || "$mode" == "--bench" ]]; then want+=("${test_pkgs[@]}"); fi
if [[ "$mode" == "--bench" ]]; then want+=("${bench_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Peer proxies must not start as system services on the build machine: the bench
# starts its own instances on loopback ports. policy-rc.d stops invoke-rc.d from starting them.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The KDC packages enable their services; the tests start their own krb5kdc on a loopback port.
for svc in krb5-kdc krb5-admin-server; do
  if [[ " ${missing[*]} " == *" $svc "* ]]; then
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
      $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  fi
done
