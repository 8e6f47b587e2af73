#!/usr/bin/env bash
# The GPU path in one run (issue 19): what it needs, then `vigil bench gpu`, JSON out.
#
#   bash bench/gpu.sh                  # on a GPU node: TensorRT FP16/INT8, CUDA EP, whole pipeline
#   VIGIL_GPU_BENCH_ARGS="--streams 100" bash bench/gpu.sh
#
# 1. finds the environment: $VIGIL_VENV (default .venv) with Vigil installed, else python3 with
#    `vigil` importable; prints onnxruntime's providers and nvidia-smi's GPU;
# 2. checks the default model is prepared (`vigil models prepare` when the cache lacks it and
#    the registry can be reached; on a machine without network carry $VIGIL_CACHE_DIR);
# 3. runs `vigil bench gpu` under a wall-clock limit ($VIGIL_GPU_BENCH_LIMIT_S, default 590 s;
#    its stages stop starting after --budget-s 500): it writes the INT8 calibration table,
#    builds and caches the TensorRT engines (keyed by GPU model, model sha, input shape, batch
#    profile, precision), measures detector frames/s by batch size 1..32, the whole pipeline
#    with 200 simultaneous vtest replays, and the 7 fps streams one GPU sustains.
# Without a CUDA/TensorRT provider it runs the CPU fallback (batches 1-2, 2 streams, a few
# frames; well under 2 minutes), and the JSON's "mode" says so.
# Output: $OUT/gpu-bench.json (OUT defaults to out/gpu-bench) and the same JSON on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-bench}
mkdir -p "$OUT"
VENV=${VIGIL_VENV:-.venv}
if [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
else
    PY=python3
fi
if ! "$PY" -c 'import vigil.bench.gpu_bench' 2>/dev/null; then
    echo "gpu.sh: Vigil is not importable with $PY (run scripts/setup.sh, or set VIGIL_VENV)" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1
"$PY" - <<'EOF' >&2
import onnxruntime as ort
print("gpu.sh: onnxruntime", ort.__version__, "providers:", ", ".join(ort.get_available_providers()))
EOF
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader >&2 || true
fi
gpu=$("$PY" -c 'import onnxruntime as o; p=o.get_available_providers(); print(int("CUDAExecutionProvider" in p or "TensorrtExecutionProvider" in p))')
args=(--json --budget-s "${VIGIL_GPU_BENCH_BUDGET_S:-500}")
if [ "$gpu" != 1 ]; then
    echo "gpu.sh: no CUDA/TensorRT provider in this onnxruntime: running the CPU fallback" >&2
    args+=(--cpu-fallback)
fi
if ! "$PY" -m vigil models list 2>/dev/null | grep -q "yolov8s-coco:"; then
    echo "gpu.sh: preparing the default model" >&2
    "$PY" -m vigil models prepare >&2
fi
# shellcheck disable=SC2206
extra=(${VIGIL_GPU_BENCH_ARGS:-})
timeout "${VIGIL_GPU_BENCH_LIMIT_S:-590}" "$PY" -m vigil bench gpu "${args[@]}" "${extra[@]}" >"$OUT/gpu-bench.json"
cat "$OUT/gpu-bench.json"
