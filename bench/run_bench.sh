# shellcheck shell=bash
# The shared body of bench/run.sh, run-tls.sh and run-logins.sh (sourced, not run): install
# the bench's packages, build the Release tree unless --no-build, then run the bench's Python
# script as root (the peers drop to their own users; namespaces and nftables need root), with
# sudo when not root. Every argument but --no-build goes to the script.
#
#   run_bench "NINJA TARGETS" SCRIPT.py "$@"

run_bench() {
  local targets=$1 script=$2
  shift 2
  local root build=1 a
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local args=()
  for a in "$@"; do
    if [[ "$a" == "--no-build" ]]; then build=0; else args+=("$a"); fi
  done

  "$root/deploy/install-deps.sh" --bench

  if ((build)); then
    cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release
    # shellcheck disable=SC2086  # the targets are words
    ninja -C "$root/build-release" $targets
  fi

  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  exec "${sudo[@]}" python3 "$root/bench/$script" "${args[@]}"
}
