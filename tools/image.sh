#!/usr/bin/env bash
# Builds socklb's image, localhost/socklb:dev, from deploy/Dockerfile with podman (rootful), and
# prints its size and the build time.
#
# The base (BASE_IMAGE of the Dockerfile) is made here from Debian's archive with mmdebstrap —
# Debian 12 with apt and the Dockerfile's RUNTIME_PACKAGES — and imported as
# localhost/socklb-base:bookworm, so no image registry is needed. It is made again only when its
# recipe (suite, mirror, packages) changes. SOCKLB_BASE_IMAGE=docker.io/library/debian:bookworm-slim
# (or any Debian 12 image with apt) uses a registry's base instead.
#
#   tools/image.sh [--no-cache]      --no-cache: a cold build (the base and every layer made again)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=localhost/socklb:dev
LOCAL_BASE=localhost/socklb-base:bookworm
BUILD_CACHE=localhost/socklb-build:cache
SUITE=bookworm
MIRROR=${SOCKLB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SOCKLB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

no_cache=()
case "${1:-}" in
  '') ;;
  --no-cache) no_cache=(--no-cache) ;;
  *) echo "usage: tools/image.sh [--no-cache]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "image: needs root (rootful podman, mmdebstrap)" >&2; exit 1; }

packages=(podman runc)
[ -z "${SOCKLB_BASE_IMAGE:-}" ] && packages+=(mmdebstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

started=$(date +%s)
# shellcheck source=tools/podman-flags.sh
. tools/podman-flags.sh

# The run stage's packages, as the Dockerfile names them: the base holds exactly these.
runtime_packages=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' deploy/Dockerfile)
[ -n "$runtime_packages" ] || { echo "image: no ARG RUNTIME_PACKAGES=\"...\" line in deploy/Dockerfile" >&2; exit 1; }

make_base() {
  local recipe=$1 tar
  tar=$(mktemp --suffix=.tar)
  trap 'rm -f "$tar"' RETURN
  echo "image: making $LOCAL_BASE from Debian $SUITE packages (mmdebstrap): apt $runtime_packages"
  # apt stays (the build stage installs its compilers with it); documentation, manuals and
  # translations go, as in Debian's -slim images; merged /usr without the usrmerge package (and
  # the Perl it would pull in).
  mmdebstrap --quiet --variant=apt --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="${runtime_packages// /,}" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$SUITE" "$tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" \
    >"$tar.log" 2>&1 || { cat "$tar.log" >&2; rm -f "$tar.log"; return 1; }
  rm -f "$tar.log"
  podman import --quiet --change "LABEL socklb.base-recipe=$recipe" --change 'CMD ["bash"]' "$tar" "$LOCAL_BASE" >/dev/null
}

base=${SOCKLB_BASE_IMAGE:-}
if [ -z "$base" ]; then
  base=$LOCAL_BASE
  recipe=$(printf '%s\n' "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$runtime_packages" | sha256sum | cut -c1-16)
  have=$(podman image inspect --format '{{index .Labels "socklb.base-recipe"}}' "$LOCAL_BASE" 2>/dev/null || true)
  if [ "$have" != "$recipe" ] || [ ${#no_cache[@]} -gt 0 ]; then make_base "$recipe"; fi
fi

# The build machine's CA bundle, for registries reached through a TLS-inspecting proxy (a secret:
# it is never stored in a layer).
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=host-ca,src=/etc/ssl/certs/ca-certificates.crt)

echo "image: building $IMAGE on $base"
# Host network: the build stage fetches Debian and npm packages, and needs no container network
# setup. podman_flags: see tools/podman-flags.sh.
build=(podman build --quiet "${podman_flags[@]}" --network=host --layers "${secret[@]}"
  --build-arg "BASE_IMAGE=$base" --file deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore)
"${build[@]}" "${no_cache[@]}" --tag "$IMAGE" . >/dev/null
# The build stage tagged (its layers all cached by now): its layers stay the next build's cache,
# and the prune removes only what earlier builds left untagged (their images, their stages).
"${build[@]}" --target build --tag "$BUILD_CACHE" . >/dev/null
podman image prune --force >/dev/null
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $IMAGE ${current:0:12}, $((size / 1024 / 1024)) MiB, built in $(($(date +%s) - started)) s"
