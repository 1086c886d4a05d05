#!/usr/bin/env bash
# Smoke test of the Vagrant cluster (run on the machine that ran `vagrant up`, from the repo root):
# a Deployment of three echo pods, a ClusterIP and a NodePort Service; requests to the ClusterIP by
# name and by address from a pod (TCP and UDP), and to the NodePort of every node from this machine.
# Passes when every request is answered and the answers come from more than one pod.
set -euo pipefail
cd "$(dirname "$0")/../.."
NET=${SOCKLB_NET:-192.168.56}
NODES=("$NET.10" "$NET.11" "$NET.12")
N=${SMOKE_REQUESTS:-30}
kc() { vagrant ssh cp -c "kubectl $*" -- -q 2>/dev/null; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

echo "smoke: nodes"
kc get nodes -o wide
kc get pods -n kube-system -l app.kubernetes.io/name=socklb -o wide
vagrant ssh cp -c 'kubectl get daemonset -n kube-system kube-proxy' -- -q >/dev/null 2>&1 && fail "kube-proxy is installed"

echo "smoke: deploying the workload"
vagrant ssh cp -c 'kubectl apply -f /vagrant/deploy/vagrant/smoke.yaml' -- -q
kc rollout status deployment/socklb-smoke --timeout=300s >/dev/null || fail "the Deployment did not become ready"
kc wait --for=condition=Ready pod/socklb-smoke-client --timeout=300s >/dev/null || fail "the client pod did not start"
vip=$(kc get service socklb-smoke -o jsonpath='{.spec.clusterIP}' | tr -d '\r')

echo "smoke: $N requests from a pod to the ClusterIP $vip (by address and by DNS name)"
from_pod=$(kc exec socklb-smoke-client -- sh -c "'for i in \$(seq $N); do wget -q -T 2 -O- http://$vip/hostname; echo; wget -q -T 2 -O- http://socklb-smoke.default.svc.cluster.local/hostname; echo; done'" | tr -d '\r')
ok=$(grep -c . <<< "$from_pod" || true)
pods=$(sort -u <<< "$from_pod" | grep -c . || true)
echo "  $ok of $((2 * N)) answered, by $pods pods"
[ "$ok" -eq $((2 * N)) ] || fail "requests from a pod to the ClusterIP went unanswered"
[ "$pods" -ge 2 ] || fail "every request from the pod went to one backend"

echo "smoke: UDP from a pod to the ClusterIP"
udp=$(kc exec socklb-smoke-client -- sh -c "'echo hostname | nc -u -w 2 $vip 81'" | tr -d '\r')
[ -n "$udp" ] || fail "no UDP answer from $vip:81"
echo "  answered by $udp"

echo "smoke: $N requests from this machine to NodePort 30080 of each node"
for node in "${NODES[@]}"; do
  answers=$(for _ in $(seq "$N"); do curl -s -m 2 "http://$node:30080/hostname"; echo; done)
  ok=$(grep -c . <<< "$answers" || true)
  pods=$(sort -u <<< "$answers" | grep -c . || true)
  echo "  $node: $ok of $N answered, by $pods pods"
  [ "$ok" -eq "$N" ] || fail "NodePort on $node went unanswered"
done
echo "smoke: ok"
