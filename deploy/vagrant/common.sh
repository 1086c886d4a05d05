#!/usr/bin/env bash
# Every node: containerd, kubelet/kubeadm/kubectl ($K8S_VERSION), the kernel settings kubeadm checks,
# and the kubelet bound to the private network (the first NIC is Vagrant's NAT, the same on all VMs).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

swapoff -a
sed -i '/\sswap\s/ s/^/#/' /etc/fstab

cat > /etc/modules-load.d/k8s.conf <<'CONF'
overlay
br_netfilter
CONF
modprobe overlay
modprobe br_netfilter
cat > /etc/sysctl.d/k8s.conf <<'CONF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
sysctl --system >/dev/null

apt-get update -qq
apt-get install -y -qq apt-transport-https ca-certificates curl gpg containerd podman jq >/dev/null
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
# kubelet uses the systemd cgroup driver; containerd must match.
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd

install -d -m 0755 /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${K8S_VERSION}/deb/Release.key" \
  | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v${K8S_VERSION}/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
echo "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}" > /etc/default/kubelet
systemctl enable --now kubelet

# socklb's agent mounts bpffs itself (its init container), but a mount here survives agent upgrades.
grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
grep -qs '^bpf /sys/fs/bpf' /etc/fstab || echo 'bpf /sys/fs/bpf bpf defaults 0 0' >> /etc/fstab
