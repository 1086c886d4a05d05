#!/usr/bin/env bash
# Counts Node processes killed by a signal in a lab guest, to judge the emulator rather than our
# code (docs/lab.md, "Node under TCG"): tools/lab/run.sh --kernels 6.1 --tests '^$' --diag 'bash tools/lab/node-stress.sh'
set -u
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$PATH"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "cpu flags V8 and glibc pick code paths by: $(grep -m1 -o -w 'pku\|ospke\|avx\|avx2\|fma\|bmi2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
killed=0
runs=0
for _ in $(seq 1 25); do
  node src/cli.ts cleanup --bpffs /sys/fs/bpf/socklb-stress > /dev/null 2>&1
  rc=$?
  runs=$((runs + 1))
  if [ "$rc" -ge 128 ]; then killed=$((killed + 1)); echo "socklb cleanup: killed, rc=$rc"; fi
done
for _ in 1 2 3; do
  uvu test/unit > "$log" 2>&1
  rc=$?
  runs=$((runs + 1))
  if [ "$rc" -ge 128 ] || grep -qE 'signal SIG|Check failed|Fatal error' "$log"; then
    killed=$((killed + 1))
    echo "unit tests: a Node process was killed, rc=$rc"
  fi
done
echo "node-stress: $killed of $runs runs killed by a signal"
