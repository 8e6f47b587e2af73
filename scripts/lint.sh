#!/usr/bin/env bash
# Structure checks: ruff (lint and format) and the import contracts in .importlinter.
# Called by scripts/test.sh (README's test command), so CI fails when the structure slips.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIGIL_VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check --quiet . || { echo "lint: run '$VENV/bin/ruff format .'" >&2; exit 1; }
# lint-imports reads a package tree; installed, edge/ detectors/ ... are subpackages of vigil
# (see pyproject's package-dir), so lay that tree out as hard links and check it there.
venv_abs=$(cd "$VENV" && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/vigil"
cp -l vigil/*.py "$tree/vigil/"
for pkg in edge detectors geometry plates alerts calibration models bench; do
    [ -d "$pkg" ] && cp -rl "$pkg" "$tree/vigil/$pkg"
done
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
(cd "$tree" && PYTHONPATH="$tree" "$venv_abs/bin/lint-imports" --config "$OLDPWD/.importlinter" --no-cache)
