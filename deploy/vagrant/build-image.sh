#!/usr/bin/env bash
# Builds socklb's image from the synced repository (deploy/Dockerfile) with podman and hands it to
# containerd's Kubernetes namespace, so the DaemonSet's `socklb:latest` (IfNotPresent) is found on
# this node without a registry. Each node builds its own: no registry, no files passed between VMs.
set -euo pipefail
cd /vagrant
podman build -q -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t localhost/socklb:latest . 2>/dev/null \
  || podman build -q -f deploy/Dockerfile -t localhost/socklb:latest .
podman save --format docker-archive localhost/socklb:latest -o /tmp/socklb.tar
ctr -n k8s.io images import /tmp/socklb.tar
# podman names it localhost/socklb; the manifests say socklb:latest (docker.io/library/socklb:latest).
ctr -n k8s.io images tag --force localhost/socklb:latest docker.io/library/socklb:latest
rm -f /tmp/socklb.tar
