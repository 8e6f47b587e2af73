#!/usr/bin/env bash
# The compose stack end to end, with podman-compose: PostgreSQL, two aggregators on it, the
# console, and one edge replaying the first frames of data/vtest.avi; then checks that the
# events are in PostgreSQL (read through each aggregator's container), which aggregator stored
# them, that both aggregators' health checks pass and that the console answers /healthz.
#
#   sudo bash deploy/docker/stack-smoke.sh [--frames N] [--fresh] [--down] [--build]
#     --frames N   frames of vtest.avi the edge replays (default 200)
#     --fresh      remove the stack's volumes first (a new database)
#     --down       stop and remove the stack at the end (volumes kept unless --fresh next time)
#     --build      (re)build the images first (deploy/docker/build-images.sh)
#
# Creates what is missing in the git-ignored folders beside compose.yaml: secrets/ (a random
# PostgreSQL password, the DSN file) and keys/ (CURVE pairs for the aggregators, the edge and
# the console, each client authorised in its role). The vigil files belong to uid 10001 (the
# image's `vigil`), mode 0600. Needs: podman, podman-compose, data/vtest.avi (scripts/setup.sh).
# Health checks: podman runs them from systemd timers; without systemd (containers, this CI VM)
# nothing runs them by itself, so this script runs `podman healthcheck run` itself.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
FRAMES=200
FRESH=0
DOWN=0
BUILD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --frames) FRAMES=${2:?}; shift 2 ;;
        --fresh) FRESH=1; shift ;;
        --down) DOWN=1; shift ;;
        --build) BUILD=1; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stack-smoke.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
say() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf 'stack-smoke.sh: error: %s\n' "$*" >&2; exit 1; }
for tool in podman podman-compose; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $tool)"
done
[ -s "$ROOT/data/vtest.avi" ] || die "no $ROOT/data/vtest.avi: run bash scripts/setup.sh first"
PROJECT=vigil
VUID=10001
IMAGE=${VIGIL_IMAGE:-localhost/vigil:cpu}
export VIGIL_EDGE_MAX_FRAMES=$FRAMES
compose() { podman-compose -p "$PROJECT" -f "$HERE/compose.yaml" "$@"; }
cname() { echo "${PROJECT}_$1_1"; }

if [ "$BUILD" = 1 ]; then bash "$HERE/build-images.sh"; fi
# shellcheck source=deploy/docker/podman-env.sh
. "$HERE/podman-env.sh"
for img in "$IMAGE" "${VIGIL_POSTGRES_IMAGE:-localhost/vigil-postgres:15}"; do
    podman image exists "$img" || die "image $img missing: bash deploy/docker/build-images.sh (or --build)"
done

# --- secrets ---------------------------------------------------------------------------------
install -d -m 0700 secrets keys
if [ ! -s secrets/postgres_password ] || [ ! -s secrets/pg.dsn ]; then
    say "new PostgreSQL password in secrets/postgres_password and secrets/pg.dsn"
    PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s\n' "$PW" >secrets/postgres_password \
        && printf 'postgresql://vigil:%s@postgres:5432/vigil\n' "$PW" >secrets/pg.dsn)
    unset PW
    FRESH=1  # the database volume was initialised with another password
fi
chmod 0600 secrets/postgres_password secrets/pg.dsn
chown "$VUID:$VUID" secrets/pg.dsn  # read by the aggregators and the console (uid 10001)
if [ ! -s secrets/plate-hmac.key ]; then
    say "new plate pseudonymisation key in secrets/plate-hmac.key (shared by both aggregators)"
    podman run --rm --user 0 -v "$HERE/secrets:/s" --entrypoint vigil "$IMAGE" \
        transits keygen --key-file /s/plate-hmac.key >/dev/null
fi
chmod 0600 secrets/plate-hmac.key
chown "$VUID:$VUID" secrets/plate-hmac.key

# --- CURVE keys: made with the image's own vigil ------------------------------------------------
if [ ! -s keys/aggregator/aggregator.key_secret ]; then
    say "new CURVE keys in keys/ (aggregator, edge pets-demo, console)"
    podman run --rm --user 0 -v "$HERE/keys:/k" --entrypoint /bin/sh "$IMAGE" -c '
        set -e
        vigil keys new aggregator --dir /k/aggregator >/dev/null
        vigil keys new pets-demo --dir /k/edge >/dev/null
        vigil keys new console --dir /k/console >/dev/null
        vigil keys authorize /k/edge/pets-demo.key --dir /k/aggregator --role edge >/dev/null
        vigil keys authorize /k/console/console.key --dir /k/aggregator --role operator >/dev/null
        cp /k/aggregator/aggregator.key /k/edge/ && cp /k/aggregator/aggregator.key /k/console/'
fi
chown -R "$VUID:$VUID" keys
find keys -name '*.key_secret' -exec chmod 0600 {} +

# --- the stack --------------------------------------------------------------------------------
# the services find each other by name: with podman's CNI backend that needs the dnsname plugin
if [ "$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" = cni ] \
    && [ ! -e /usr/lib/cni/dnsname ] && [ ! -e /usr/libexec/cni/dnsname ]; then
    echo "stack-smoke.sh: podman uses CNI networks here and the dnsname plugin is missing, so the services" \
        "cannot resolve each other's names: apt-get install golang-github-containernetworking-plugin-dnsname" >&2
    exit 1
fi
# podman-compose does not recreate a container whose definition changed: start from none
if [ "$FRESH" = 1 ]; then
    say "removing the stack, its volumes (fresh database) and its network"
    compose down -v >/dev/null 2>&1 || true
    # a network made before the DNS plugin was installed never resolves names: make it again
    podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
else
    compose down >/dev/null 2>&1 || true
fi
health() { # CONTAINER TRIES: run its health check until it passes
    local c=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        if podman healthcheck run "$c" >/dev/null 2>&1; then return 0; fi
        sleep 2
    done
    podman logs --tail 20 "$c" >&2 || true
    die "$c is not healthy after $((2 * n)) s (its log above)"
}
say "starting postgres"
compose up -d postgres >/dev/null
health "$(cname postgres)" 60
say "postgres healthy; starting aggregator-a, aggregator-b and the console"
compose up -d aggregator-a aggregator-b console >/dev/null
for s in aggregator-a aggregator-b console; do health "$(cname "$s")" 45; done
say "aggregators and console healthy"
for s in aggregator-a aggregator-b; do
    podman exec "$(cname "$s")" vigil status --aggregator /run/vigil/aggregator.status >&2
done

events_in_pg() { # through aggregator $1's container; retried (the stack's DNS can lag a moment)
    local i out
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if out=$(podman exec "$(cname "$1")" vigil events count --dsn-file /run/secrets/pg_dsn --json 2>/dev/null); then
            python3 -c 'import json, sys; print(json.loads(sys.argv[1])["events"])' "$out"
            return 0
        fi
        sleep 1
    done
    return 1
}
BEFORE=$(events_in_pg aggregator-a) || die "cannot count the events in PostgreSQL through aggregator-a"
say "edge: replaying $FRAMES frames of vtest.avi (events in PostgreSQL before: $BEFORE)"
compose up -d edge >/dev/null
EDGE=$(cname edge)
# its health check while it replays: healthy once the camera reports "running"
EDGE_HEALTH="not seen (the replay ended first)"
for _ in $(seq 60); do
    [ "$(podman inspect -f '{{.State.Running}}' "$EDGE" 2>/dev/null)" = true ] || break
    if podman healthcheck run "$EDGE" >/dev/null 2>&1; then
        EDGE_HEALTH="healthy: $(podman exec "$EDGE" python3 /opt/vigil/deploy/docker/healthcheck.py 2>&1 || true)"
        break
    fi
    sleep 2
done
say "edge health check: $EDGE_HEALTH"
timeout 900 podman wait "$EDGE" >/dev/null || die "the edge did not finish within 15 minutes"
RC=$(podman inspect -f '{{.State.ExitCode}}' "$EDGE")
podman logs "$EDGE" 2>&1 | tail -n 8 >&2
[ "$RC" = 0 ] || die "the edge exited with $RC (its log above)"

# --- checks -----------------------------------------------------------------------------------
count_via() { podman exec "$(cname "$1")" vigil events count --dsn-file /run/secrets/pg_dsn || true; }
for s in aggregator-a aggregator-b; do
    say "events in PostgreSQL, read in $s: $(count_via "$s" | tr '\n' ' ')"
done
AFTER=$(events_in_pg aggregator-b) || die "cannot count the events in PostgreSQL through aggregator-b"
for s in aggregator-a aggregator-b; do
    stored=$(podman exec "$(cname "$s")" python3 -c \
        'import json; d = json.load(open("/run/vigil/aggregator.status")); print(d["counters"].get("stored", 0))')
    say "$s stored $stored event(s) itself"
done
# no password on any container's command line (nor in its environment)
PW=$(cat secrets/postgres_password)
for s in postgres aggregator-a aggregator-b console edge; do
    if podman inspect "$(cname "$s")" --format '{{.Config.Cmd}} {{.Config.Entrypoint}} {{.Config.Env}}' | grep -qF "$PW"; then
        die "$s: the PostgreSQL password is on its command line or in its environment"
    fi
done
unset PW
say "no container has the password on its command line or in its environment"
HEALTHZ=$(curl -fsS --max-time 5 http://127.0.0.1:8080/healthz) || die "the console's /healthz did not answer 200"
say "console GET /healthz: $HEALTHZ"
[ "$AFTER" -gt "$BEFORE" ] || die "no new events in PostgreSQL ($BEFORE before, $AFTER after)"
say "OK: $((AFTER - BEFORE)) new event(s) in PostgreSQL through the aggregators ($AFTER in all)"
if [ "$DOWN" = 1 ]; then
    compose down >/dev/null 2>&1 || true
    say "stack stopped"
else
    say "stack left running: podman-compose -p $PROJECT -f deploy/docker/compose.yaml down"
fi
