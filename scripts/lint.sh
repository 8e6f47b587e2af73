#!/usr/bin/env bash
# Structure checks: ruff (lint and format) and the import contracts in .importlinter.
# Called by scripts/test.sh (README's test command), so CI fails when the structure slips.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIGIL_VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check --quiet . || { echo "lint: run '$VENV/bin/ruff format .'" >&2; exit 1; }
# lint-imports reads the package tree at the repository root: vigil/edge, vigil/detectors, ...
# are links to the design card's top-level folders (tests/test_structure.py keeps them complete)
"$VENV/bin/lint-imports" --no-cache
