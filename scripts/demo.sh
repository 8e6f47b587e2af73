#!/usr/bin/env bash
# README's first command: set everything up, then replay vtest.avi (PETS2009 S2.L1) through
# the edge worker with the embedded model, alarms going over ZeroMQ to the aggregator (which
# stores them in SQLite) and on to `vigil tail`, which shows them live.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VIGIL=.venv/bin/vigil
OUT=${VIGIL_OUT:-out}
INGEST=${VIGIL_INGEST:-tcp://127.0.0.1:5555}
STREAM=${VIGIL_STREAM:-tcp://127.0.0.1:5556}
mkdir -p "$OUT"
rm -f "$OUT/events.db" "$OUT/events.db-wal" "$OUT/events.db-shm"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$VIGIL" aggregator --insecure-dev --db "$OUT/events.db" --ingest "$INGEST" --stream "$STREAM" &
pids+=($!)
"$VIGIL" tail --connect "$STREAM" > >(tee "$OUT/tail.log") &
pids+=($!)
sleep 2

"$VIGIL" run --config deploy/examples/pets2009-s2l1.yaml \
    --mot-out "$OUT/pets2009-s2l1.mot.txt" --events-out "$OUT/events.jsonl"
sleep 1
cleanup
pids=()
echo
echo "== alarms shown by vigil tail: $(wc -l < "$OUT/tail.log") lines (also in $OUT/tail.log)"
echo "== stored by the aggregator: $("$VIGIL" events count --db "$OUT/events.db" --json)"
echo "== annotated video, bird's-eye PNG, MOT tracks and events: $OUT/"
