# Sourced by build-base.sh, build-images.sh and stack-smoke.sh: use deploy/docker/containers.conf
# (runc, lower rlimits) when asked (VIGIL_PODMAN_SANDBOX=1) or when podman's defaults cannot start
# a container on this host: cgroups v1/hybrid (crun refuses them), a hard open-files limit below
# the 1048576 podman asks for (setrlimit is refused), or a test container that fails to start.
# The checks that need no image come first: on a fresh host the base image does not exist yet.
_vigil_conf=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf
if [ -z "${CONTAINERS_CONF:-}" ]; then
    _vigil_why=
    if [ "${VIGIL_PODMAN_SANDBOX:-}" = 1 ]; then
        _vigil_why="VIGIL_PODMAN_SANDBOX=1"
    elif [ "${VIGIL_PODMAN_SANDBOX:-}" != 0 ]; then
        _vigil_nofile=$(ulimit -Hn)
        if [ "$_vigil_nofile" != unlimited ] && [ "$_vigil_nofile" -lt 1048576 ]; then
            _vigil_why="the hard open-files limit ($_vigil_nofile) is below podman's default 1048576"
        elif [ "$(podman info --format '{{.Host.CgroupsVersion}}' 2>/dev/null)" = v1 ]; then
            _vigil_why="cgroups v1"
        elif podman image exists localhost/vigil-base:bookworm \
            && ! podman run --rm localhost/vigil-base:bookworm true >/dev/null 2>&1; then
            _vigil_why="a test container does not start with podman's defaults"
        fi
        unset _vigil_nofile
    fi
    if [ -n "$_vigil_why" ]; then
        echo "[podman] $_vigil_why; using $_vigil_conf" >&2
        export CONTAINERS_CONF=$_vigil_conf
    fi
    unset _vigil_why
fi
unset _vigil_conf
