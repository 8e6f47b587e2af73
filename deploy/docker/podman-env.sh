# Sourced by build-images.sh and stack-smoke.sh: use deploy/docker/containers.conf (runc, lower
# rlimits) when asked (VIGIL_PODMAN_SANDBOX=1) or when podman's defaults cannot start a
# container on this host (cgroups v1/hybrid with crun, hard rlimits below podman's defaults).
_vigil_conf=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf
if [ -z "${CONTAINERS_CONF:-}" ]; then
    if [ "${VIGIL_PODMAN_SANDBOX:-}" = 1 ]; then
        export CONTAINERS_CONF=$_vigil_conf
    elif [ "${VIGIL_PODMAN_SANDBOX:-}" != 0 ] && podman image exists localhost/vigil-base:bookworm \
        && ! podman run --rm localhost/vigil-base:bookworm true >/dev/null 2>&1; then
        echo "[podman] default settings cannot start a container here; using $_vigil_conf" >&2
        export CONTAINERS_CONF=$_vigil_conf
    fi
fi
unset _vigil_conf
