#!/usr/bin/env bash
# Runs the test suite N times in a row while stress-ng keeps every core busy, and prints each
# run's failures and a summary: a test that passes only on an idle machine is a test that bounds
# time, and this is where it shows.
#
#   bash scripts/stress-suite.sh N [ctest args...]
#   bash scripts/stress-suite.sh 10                     # the whole suite, ten times
#   bash scripts/stress-suite.sh 3 -L unit              # GoogleTest only
#   bash scripts/stress-suite.sh 5 -L integration -LE slow
#
# Builds nothing (run scripts/build.sh first; BP_BUILD_DIR names another build folder).
# STRESS_CPUS sets the load (default: one CPU hog per core, `stress-ng --cpu $(nproc)`); each
# run's full ctest output is kept in build/stress-suite/run-<i>.log. Exit status 0 only when
# every run passed.
set -uo pipefail

usage() { echo "usage: bash scripts/stress-suite.sh N [ctest args...]" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
runs=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BP_BUILD_DIR:-$root/build}
[[ -f $build/CTestTestfile.cmake ]] || { echo "stress-suite: no build in $build (run scripts/build.sh)" >&2; exit 2; }

if ! command -v stress-ng >/dev/null; then
  echo "stress-suite: installing stress-ng" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q stress-ng >/dev/null || {
    echo "stress-suite: could not install stress-ng" >&2
    exit 2
  }
fi

cpus=${STRESS_CPUS:-$(nproc)}
logs=$build/stress-suite
mkdir -p "$logs"

stress-ng --cpu "$cpus" --quiet &
stress_pid=$!
stop_stress() {
  if kill -0 "$stress_pid" 2>/dev/null; then
    kill -TERM "$stress_pid" 2>/dev/null
    wait "$stress_pid" 2>/dev/null
  fi
}
trap stop_stress EXIT
trap 'exit 130' INT TERM
# The load is on before the first test starts: its workers are running.
for _ in $(seq 1 100); do
  [[ -n $(pgrep -P "$stress_pid" 2>/dev/null) ]] && break
  sleep 0.1
done
kill -0 "$stress_pid" 2>/dev/null || { echo "stress-suite: stress-ng did not start" >&2; exit 2; }
echo "stress-suite: $runs run(s) of ctest $* under stress-ng --cpu $cpus (pid $stress_pid), logs in $logs"

declare -A failed_count=()
green=0
for i in $(seq 1 "$runs"); do
  log=$logs/run-$i.log
  start=$(date +%s)
  (cd "$build" && ctest --output-on-failure "$@") >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
  # ctest lists the failures after "The following tests FAILED:", one per line: "  12 - name (Failed)".
  mapfile -t fails < <(sed -n '/^The following tests FAILED:/,$p' "$log" | sed -n 's/^[[:space:]]*[0-9]\+ - \(.*\)$/\1/p')
  if [[ $rc -eq 0 ]]; then
    green=$((green + 1))
    echo "run $i/$runs: PASS (${summary:-no tests?}) in ${took}s"
  else
    echo "run $i/$runs: FAIL (${summary:-ctest exit $rc}) in ${took}s, log $log"
    for f in "${fails[@]}"; do
      echo "    $f"
      name=${f%% (*}
      failed_count[$name]=$((${failed_count[$name]:-0} + 1))
    done
    [[ ${#fails[@]} -gt 0 ]] || echo "    (ctest exited $rc without a list of failures: see the log)"
  fi
done

echo "stress-suite summary: $green of $runs run(s) green under stress-ng --cpu $cpus"
if [[ ${#failed_count[@]} -gt 0 ]]; then
  echo "failures per test (of $runs runs):"
  for name in "${!failed_count[@]}"; do echo "  ${failed_count[$name]}  $name"; done | sort -rn
fi
[[ $green -eq $runs ]]
