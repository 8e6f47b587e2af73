#!/usr/bin/env bash
# Builds the local base image localhost/vigil-base:bookworm without any container registry:
# debootstrap (Debian 12 "bookworm", variant minbase) from a Debian mirror, plus Debian's
# python3 (3.11) and python3-venv, then `podman import` of the root file system as a tarball.
#
#   sudo bash deploy/docker/build-base.sh                     # mirror: the one apt uses here
#   sudo bash deploy/docker/build-base.sh --mirror http://deb.debian.org/debian --tag localhost/vigil-base:bookworm
#
# Then build Vigil FROM it (the Dockerfiles' BASE argument; without it they use a registry image):
#   podman build --build-arg BASE=localhost/vigil-base:bookworm -f deploy/docker/Dockerfile.cpu -t vigil:cpu .
#
# Needs root (debootstrap), debootstrap and podman (Debian packages). Idempotent: an existing
# image with the tag is kept unless --force is given. Takes 3 to 6 minutes.
set -euo pipefail

TAG=localhost/vigil-base:bookworm
SUITE=bookworm
MIRROR=
FORCE=0
ENGINE=${ENGINE:-podman}
usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --mirror URL  --tag NAME  --suite SUITE  --force"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --mirror) MIRROR=$2; shift 2 ;;
        --tag) TAG=$2; shift 2 ;;
        --suite) SUITE=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build-base.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
say() { printf '[build-base] %s\n' "$*" >&2; }
die() { printf 'build-base.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "debootstrap needs root: run with sudo"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
command -v "$ENGINE" >/dev/null || die "$ENGINE is missing: apt-get install podman"

if [ "$FORCE" = 0 ] && "$ENGINE" image exists "$TAG" 2>/dev/null; then
    say "$TAG exists already (--force rebuilds it)"
    exit 0
fi

# the mirror apt uses on this machine (deb822 .sources or one-line sources.list)
if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | grep -m1 debian || true)
    [ -n "$MIRROR" ] || MIRROR=$(grep -hsE '^deb +(\[[^]]*\] +)?https?://' /etc/apt/sources.list 2>/dev/null \
        | grep -v security | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}' | grep -m1 debian || true)
    [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
SECURITY=${MIRROR%/debian}/debian-security
say "mirror $MIRROR, suite $SUITE, tag $TAG"

WORK=$(mktemp -d /var/tmp/vigil-base.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ROOTFS=$WORK/rootfs

say "debootstrap --variant=minbase (a few minutes)"
debootstrap --variant=minbase \
    --include=ca-certificates,python3,python3-venv,python3-pip,tzdata \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (log above)"
}

# apt inside the image: the same mirror, plus security updates; no recommends, no docs
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/90vigil-base" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
chroot "$ROOTFS" /bin/sh -c 'apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/*'
rm -f "$ROOTFS/etc/hostname" "$ROOTFS/etc/resolv.conf"
"$ROOTFS/usr/bin/python3" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || chroot "$ROOTFS" python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "the base's python3 is older than 3.11"

say "importing into $ENGINE as $TAG"
tar --numeric-owner -C "$ROOTFS" -c . | "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap $SUITE minbase from $MIRROR with python3 and python3-venv" \
    - "$TAG" >/dev/null
# podman's defaults may not start a container on this host (cgroups v1, low rlimits)
if [ "$ENGINE" = podman ]; then
    # shellcheck source=deploy/docker/podman-env.sh
    . "$(dirname "$0")/podman-env.sh"
fi
"$ENGINE" run --rm "$TAG" python3 -c 'import sys, venv; print("base ready: Python", sys.version.split()[0])'
