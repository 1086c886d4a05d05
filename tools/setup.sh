#!/usr/bin/env bash
# Installs what socklb needs when it is missing (Debian packages, npm packages, the build), so the
# README's commands work on a fresh Debian machine. Cheap when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(clang clang-format llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ python3 iproute2 iptables nftables ethtool wrk iperf3 nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node-gyp builds against the headers npm points it to (nodedir); Debian's libnode-dev has them.
nodedir=$(npm config get nodedir 2>/dev/null || true)
if [ -z "$nodedir" ] || [ "$nodedir" = undefined ] || [ ! -f "$nodedir/include/node/node_api.h" ]; then
  [ -f /usr/include/node/node_api.h ] || missing+=(libnode-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A linked node_modules (a worktree sharing another checkout's) is that checkout's to install: npm ci
# here would empty it through the link.
if [ ! -L node_modules ] && { [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

make -s -C bpf
addon=build/Release/socklb_bpf.node
if [ ! -f "$addon" ] || [ -n "$(find binding.gyp src/native -newer "$addon" 2>/dev/null | head -1)" ]; then
  echo "setup: building the libbpf addon"
  nodedir_flag=()
  [ -f /usr/include/node/node_api.h ] && nodedir_flag=(--nodedir=/usr)
  PATH="$PWD/node_modules/.bin:$PATH" npx --no-install node-gyp rebuild --silent "${nodedir_flag[@]}"
fi

grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
