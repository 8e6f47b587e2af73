#!/usr/bin/env bash
# Builds the compose stack's images with podman, from a debootstrap base when no registry is
# reachable (the default here), or from registry bases with --registry-bases:
#   localhost/vigil-base:bookworm  deploy/docker/build-base.sh (Debian bookworm minbase + python3)
#   localhost/vigil:cpu            deploy/docker/Dockerfile.cpu (edge, aggregator, console)
#   localhost/vigil-postgres:15    deploy/docker/Dockerfile.postgres (Debian's postgresql-15)
#
#   sudo bash deploy/docker/build-images.sh [--registry-bases] [--no-cache]
# Slow (pip installs the packages and `vigil models prepare` converts the model): minutes, so
# it is not part of the unit tests (VIGIL_TEST_CONTAINERS=1 runs it from tests/deploy/).
# VIGIL_PODMAN_SANDBOX=1 (or a failing test container) uses deploy/docker/containers.conf.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=deploy/docker
REGISTRY=0
CACHE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --registry-bases) REGISTRY=1; shift ;;
        --no-cache) CACHE=(--no-cache); shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
say() { printf '[build-images] %s\n' "$*" >&2; }
command -v podman >/dev/null || { echo "build-images.sh: podman is missing (apt-get install podman)" >&2; exit 1; }
# shellcheck source=deploy/docker/podman-env.sh
. "$HERE/podman-env.sh"

# a TLS-intercepting proxy's CA (this host trusts it): the image's pip must trust it too
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 && [ "${VIGIL_EXTRA_CA:-host}" = host ]; then
    mkdir -p "$HERE/extra-ca"
    cp /usr/local/share/ca-certificates/*.crt "$HERE/extra-ca/"
    say "trusting this host's local CAs in the build: $(cd "$HERE/extra-ca" && echo *.crt) (VIGIL_EXTRA_CA=none: not)"
fi

if [ "$REGISTRY" = 1 ]; then
    BASE_CPU=python:3.11-slim-bookworm
    BASE_PG=debian:bookworm-slim
else
    bash "$HERE/build-base.sh"
    BASE_CPU=localhost/vigil-base:bookworm
    BASE_PG=localhost/vigil-base:bookworm
fi
say "vigil:cpu FROM $BASE_CPU"
podman build --format docker "${CACHE[@]}" --build-arg "BASE=$BASE_CPU" \
    -f "$HERE/Dockerfile.cpu" -t localhost/vigil:cpu .
say "vigil-postgres:15 FROM $BASE_PG"
podman build --format docker "${CACHE[@]}" --build-arg "BASE=$BASE_PG" -f "$HERE/Dockerfile.postgres" -t localhost/vigil-postgres:15 "$HERE"
podman run --rm localhost/vigil:cpu --help >/dev/null
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'vigil(-base|-postgres)?:' >&2
say "done"
