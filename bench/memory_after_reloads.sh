#!/bin/bash
# The daemon's resident memory at start and 3 s after each of three SIGHUP reloads, with the
# feeds bench's policy (the shipped policy, UT1 and the synthetic adult list) in force.
#
#   bench/memory_after_reloads.sh HALLPASS_BINARY [WORKDIR]
#
# WORKDIR: a directory `bench/feeds_bench.py --workdir` has filled (policy.yaml, state/);
# default /tmp/hallpass-feeds-bench. Uses 127.0.0.1 only; every wait is bounded. Nothing here
# is run by CTest (bench/README.md, "Memory after reloads").
set -u
BIN=$1
WORK=${2:-/tmp/hallpass-feeds-bench}
[ -f "$WORK/policy.yaml" ] && [ -d "$WORK/state" ] || { echo "run bench/feeds_bench.py --workdir $WORK first" >&2; exit 2; }
RUN=$(mktemp -d /tmp/hallpass-memory-XXXXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$RUN"' EXIT
cp -a "$WORK/state" "$RUN/state"
P=$((20000 + RANDOM % 20000))
"$BIN" run --config "$WORK/policy.yaml" --state-dir "$RUN/state" --listen 127.0.0.1:$P \
    --metrics-listen 127.0.0.1:$((P + 1)) > "$RUN/stderr" 2>&1 &
PID=$!
for _ in $(seq 1 240); do grep -q serving "$RUN/stderr" && break; sleep 0.5; done
rss() { awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' /proc/$PID/status; }
echo "start: $(rss)"
for r in 1 2 3; do
  n=$(grep -c reloaded "$RUN/stderr")
  kill -HUP $PID
  for _ in $(seq 1 240); do [ "$(grep -c reloaded "$RUN/stderr")" -gt "$n" ] && break; sleep 0.5; done
  # Requests on new connections, so that each worker sees the new generation and drops the old.
  for i in $(seq 1 40); do curl -s -o /dev/null --max-time 2 -x 127.0.0.1:$P "http://x$i.example/"; done
  sleep 3
  echo "after reload $r: $(rss)"
done
