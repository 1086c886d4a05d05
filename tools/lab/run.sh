#!/usr/bin/env bash
# The QEMU kernel matrix (npm run lab): builds socklb on the host, then boots each Debian kernel
# under TCG and runs the feature probe and the kernel tests inside. See docs/lab.md.
#   tools/lab/run.sh [--kernels 5.10,6.1,6.12,host] [--tests REGEX] [--timeout S] [--file-timeout S] [--refresh]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "lab: needs root (apt, mkfs, and the tests load BPF programs)" >&2
  exit 2
fi
bash tools/setup.sh
exec node_modules/.bin/node tools/lab/main.ts "$@"
