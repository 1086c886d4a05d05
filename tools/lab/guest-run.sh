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
# rc 132-139 less the timeout's 137: uvu itself killed by SIGILL..SIGSEGV; or a child reported so.
died_of_signal() {
  case $1 in 0 | 124 | 137) return 1 ;; 13[2-9]) return 0 ;; esac
  grep -qE 'signal SIG(SEGV|TRAP|ILL|BUS|ABRT)|Check failed|Fatal error' "$2"
}

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
  # A Node process that dies of a signal (SIGSEGV, or SIGTRAP from a failed V8 check) in a guest,
  # the test process or one it spawns, is taken for the emulator's fault, not ours: such a file
  # gets up to two more runs, and the output says so. Any other failure fails at once.
  if [ "${SOCKLB_TEST_TIME_SCALE}" != 1 ]; then
    for try in 2 3; do
      if ! died_of_signal "$rc" "$log"; then break; fi
      echo "lab: $name: a Node process died of a signal (rc=$rc) under emulation; run $try of 3. The failed run said:" >> "$out"
      sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E 'FAIL|signal|Fatal|Check failed' | head -5 | sed 's/^/lab:   /' >> "$out"
      timeout --kill-after=10 "$file_timeout" uvu test/kernel "^${name//./\\.}\$" --color=false > "$log" 2>&1
      rc=$?
    done
  fi
  sed 's/\x1b\[[0-9;]*m//g' "$log" >> "$out"
  emit "@@LAB end test $name rc=$rc ms=$(($(now_ms) - t0))"
done
emit "@@LAB done"
