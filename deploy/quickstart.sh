#!/usr/bin/env bash
# Fresh Debian 12 machine to a running hallpass with the shipped school policy: installs the
# packages, builds, checks the policy, shows two decisions, then serves on 127.0.0.1:3128
# (metrics on 127.0.0.1:9131, access log on standard output) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build hallpass hallpassctl

policy=rules/school.yaml
state=build/state
mkdir -p "$state"
# The category feeds (the UT1 lists, about 20 MB). Without internet the proxy still serves the
# rest of the policy, and says which feeds are missing.
echo
echo "== hallpass feeds update --config $policy --state-dir $state"
if ! build/hallpass feeds update --config "$policy" --state-dir "$state"; then
  echo "The category feeds could not be fetched (no internet?): pornography, gambling and the other"
  echo "feed categories block nothing until they are. Fetch them later with:"
  echo "  build/hallpass feeds update --config $policy --state-dir $state"
fi
echo
echo "== hallpass check --config $policy --state-dir $state"
build/hallpass check --config "$policy" --state-dir "$state"
explain() {
  echo
  echo "== hallpass explain --config $policy $*"
  build/hallpass explain --config "$policy" --state-dir "$state" "$@"
}
explain --role pupils --at "2026-11-23 11:00" https://www.facebook.com/
explain --role staff --at "2026-11-23 12:30" https://www.instagram.com/

cat <<'TXT'

== hallpass run --config rules/school.yaml
Serving on 127.0.0.1:3128. In another terminal:
  curl -x http://127.0.0.1:3128 http://example.org/          # allowed (pupils, the fallback role)
  curl -x http://127.0.0.1:3128 http://www.facebook.com/     # the block page (403)
  curl -x http://127.0.0.1:3128 https://www.facebook.com/    # CONNECT refused (403)
  curl http://127.0.0.1:9131/metrics                         # Prometheus metrics
A browser: set its HTTP and HTTPS proxy to 127.0.0.1 port 3128, or
  chromium --proxy-server=127.0.0.1:3128
SIGHUP reloads the policy (kill -HUP <pid>); Ctrl-C drains and stops.
TXT
exec build/hallpass run --config "$policy" --state-dir "$state"
