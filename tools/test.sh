#!/usr/bin/env bash
# Runs every test: type check, lint (tools/lint.sh), unit tests, then the kernel tests (real BPF
# programs in network namespaces; they need root and fail, never skip, when the kernel or
# capabilities are missing), the image test (tools/image.sh, test/image) and the QEMU 6.1 lab.
# Prints one closing line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || exit 1
export PATH="$PWD/node_modules/.bin:$PATH"

passed=0
failed=0
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_suite() {
  local title=$1
  shift
  echo "== $title"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f t
  p=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^  Passed:/ {s+=$2} END {print s+0}')
  t=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/^  Total:/ {s+=$2} END {print s+0}')
  f=$((t - p))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$rc" -eq 0 ] || status=1
}

echo "== typecheck"
if tsc -p tsconfig.json; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
echo "== lint"
if bash tools/lint.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
run_suite "unit tests" uvu test/unit '\.test\.ts$'
# Bounded: a kernel test that hangs must fail the run, not eat CI's time.
run_suite "kernel tests" timeout --kill-after=30 2400 uvu test/kernel '\.test\.ts$'
# The DaemonSet's container for real: the image built (npm run image; cached layers make a rebuild
# after a change to src/ take seconds) and run by podman with deploy/daemonset.yaml's settings.
run_suite "image: build, then run with the DaemonSet's settings (podman)" \
  timeout --kill-after=30 2400 bash -c 'bash tools/image.sh && uvu test/image "\.test\.ts$"'
# The 6.1 column of the QEMU kernel matrix (docs/lab.md): the datapath on Debian 12's kernel.
run_suite "kernel tests on Linux 6.1 (QEMU)" timeout --kill-after=30 2400 bash tools/lab/run.sh --kernels 6.1 --ci --timeout 2300

echo "$passed passed, $failed failed"
exit $status
