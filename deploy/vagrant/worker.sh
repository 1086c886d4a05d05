#!/usr/bin/env bash
# A worker: waits for the control plane's API server (the VMs may come up in parallel under
# libvirt), then joins with the bootstrap token the Vagrantfile fixed.
set -euo pipefail
[ -f /etc/kubernetes/kubelet.conf ] && exit 0
for _ in $(seq 1 180); do
  curl -ksf "https://${CONTROL_PLANE_IP}:6443/readyz" >/dev/null && break
  sleep 5
done
kubeadm join "${CONTROL_PLANE_IP}:6443" --token "${TOKEN}" --discovery-token-unsafe-skip-ca-verification
