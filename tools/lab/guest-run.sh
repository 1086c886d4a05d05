#!/usr/bin/env bash
# Runs in a lab guest (or on the host, for the "host" column): the agent's feature probe, then each
# kernel test file on its own, every part framed by "@@LAB" markers on $LAB_OUT, which the host
# parses into the kernel x test matrix (tools/lab/lab.ts).
set -u
cd "$(dirname "$0")/../.."
out=${LAB_OUT:-/dev/stdout}
pattern=${LAB_TESTS:-}
exclude=${LAB_EXCLUDE:-}
file_timeout=${LAB_FILE_TIMEOUT:-900}
# TCG guests run 10-50x slower: the kernel tests scale their waits by this (test/support/time-scale.ts).
export SOCKLB_TEST_TIME_SCALE=${LAB_TIME_SCALE:-1}
export PATH="$PWD/node_modules/.bin:${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}"
export NO_COLOR=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT

emit() { printf '%s\n' "$*" >> "$out"; }
now_ms() { date +%s%3N; }

emit "@@LAB kernel $(uname -r)"
t0=$(now_ms)
emit "@@LAB begin features"
node src/agent/features.ts --json > "$log" 2>&1
rc=$?
cat "$log" >> "$out"
emit "@@LAB end features rc=$rc ms=$(($(now_ms) - t0))"

# --diag: one extra command (a verifier log, a bpftool dump) run in the guest, output kept as is.
if [ -n "${LAB_DIAG:-}" ]; then
  emit "@@LAB begin diag"
  bash -c "$LAB_DIAG" >> "$out" 2>&1
  emit "@@LAB end diag rc=$? ms=0"
fi

for file in test/kernel/*.test.ts; do
  name=${file#test/kernel/}
  # Never silently: a file left out is listed, and the matrix says why.
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" <<< "$name"; then emit "@@LAB skip $name not matched by --tests"; continue; fi
  if [ -n "$exclude" ] && grep -qE -- "$exclude" <<< "$name"; then emit "@@LAB skip $name excluded"; continue; fi
  t0=$(now_ms)
  emit "@@LAB begin test $name"
  # One uvu process per file: a hang or crash costs that file only, and each file gets a time.
  timeout --kill-after=10 "$file_timeout" uvu test/kernel "^${name//./\\.}\$" --color=false > "$log" 2>&1
  rc=$?
  # Node has been seen to die of SIGSEGV now and then under TCG emulation (never on real CPUs):
  # such a crash gets one more run, and the matrix output says so.
  if [ "$rc" -eq 139 ]; then
    echo "lab: node died of SIGSEGV in $name; running it once more" >> "$out"
    timeout --kill-after=10 "$file_timeout" uvu test/kernel "^${name//./\\.}\$" --color=false > "$log" 2>&1
    rc=$?
  fi
  sed 's/\x1b\[[0-9;]*m//g' "$log" >> "$out"
  emit "@@LAB end test $name rc=$rc ms=$(($(now_ms) - t0))"
done
emit "@@LAB done"
