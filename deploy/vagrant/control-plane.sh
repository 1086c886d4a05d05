#!/usr/bin/env bash
# The control plane: kubeadm init without the kube-proxy addon, socklb (deploy/) in its place, then
# flannel as the CNI. socklb comes first: it runs in the host network, so it needs no CNI, and
# flannel's pods reach the API server through the `kubernetes` Service only once socklb balances it.
set -euo pipefail
export KUBECONFIG=/etc/kubernetes/admin.conf

if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init \
    --skip-phases=addon/kube-proxy \
    --apiserver-advertise-address="${NODE_IP}" \
    --pod-network-cidr="${POD_CIDR}" \
    --service-cidr="${SERVICE_CIDR}" \
    --token="${TOKEN}" --token-ttl=24h
fi
install -d -m 0700 /home/vagrant/.kube /root/.kube
install -m 0600 -o vagrant -g vagrant /etc/kubernetes/admin.conf /home/vagrant/.kube/config
install -m 0600 /etc/kubernetes/admin.conf /root/.kube/config

# socklb: its RBAC, then the DaemonSet with the API server's real address (there is no kube-proxy
# to serve the `kubernetes` Service's ClusterIP to the agent that is to serve it).
kubectl apply -f /vagrant/deploy/rbac.yaml
sed "s/API_SERVER_HOST/${CONTROL_PLANE_IP}/" /vagrant/deploy/daemonset.yaml | kubectl apply -f -
kubectl -n kube-system rollout status daemonset/socklb --timeout=300s

# flannel, told which NIC carries the node network (Vagrant's NAT NIC has the same address everywhere).
curl -fsSL https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml \
  | sed "s|- --kube-subnet-mgr|- --kube-subnet-mgr\n        - --iface-can-reach=${CONTROL_PLANE_IP}|" \
  | kubectl apply -f -
echo "control plane ready; workers join with the bootstrap token"
