#!/usr/bin/env bash
# Builds what socklb runs: the BPF objects (bpf/out/) and the libbpf addon (build/Release/).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C bpf
nodedir_flag=()
[ -f /usr/include/node/node_api.h ] && nodedir_flag=(--nodedir=/usr)
npx --no-install node-gyp rebuild --silent "${nodedir_flag[@]}"
