"""`vigil bench gpu`: the variants it compares, the shared-memory cap on streams, the command's
registration, and its CPU fallback end to end on a few frames (what runs where no GPU is)."""

from __future__ import annotations

import argparse
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from vigil.bench import gpu_bench
from vigil.bench.cli import add_commands
from vigil.detectors.ort_session import read_trt_calibration_table
from vigil.models.cache import ModelNotFoundError, resolve_default_model


def test_variants_on_gpu_and_cpu(tmp_path):
    table = tmp_path / "t.flatbuffers"
    assert gpu_bench.variants(True, table) == {"cpu": {"providers": ["cpu"], "runtime": "onnxruntime"}}
    assert gpu_bench.variants(False, table) == {
        "tensorrt-fp16": {"providers": ["tensorrt", "cuda", "cpu"]},
        "tensorrt-int8": {"providers": ["tensorrt", "cuda", "cpu"], "tensorrt_int8_table": str(table)},
        "cuda": {"providers": ["cuda", "cpu"]},
        "cuda-graph": {"providers": ["cuda", "cpu"], "cuda_graph": True},
    }
    assert list(gpu_bench.variants(False, None)) == ["tensorrt-fp16", "cuda", "cuda-graph"]


def test_shm_caps_the_streams(monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 64 * 2**20))
    frame = 576 * 768 * 3
    assert gpu_bench.shm_stream_cap(frame, 2) == 20  # 0.8 * 64 MiB // (2 slots x 1.33 MB)

    def gone(path):
        raise OSError("no /dev/shm")

    monkeypatch.setattr(shutil, "disk_usage", gone)
    assert gpu_bench.shm_stream_cap(frame, 2) is None


def test_command_is_registered():
    ap = argparse.ArgumentParser()
    add_commands(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["bench", "gpu", "--cpu-fallback", "--batches", "1,2", "--streams", "3"])
    assert (args.cpu_fallback, args.batches, args.streams) == (True, "1,2", 3)
    assert args.func is gpu_bench._execute


def test_cpu_fallback_end_to_end(tmp_path, vtest):
    try:
        resolve_default_model()
    except ModelNotFoundError:
        pytest.skip("the default model is not prepared (vigil models prepare)")
    res = gpu_bench.run_gpu_bench(
        video=str(vtest),
        fallback=True,
        batches=[1, 2],
        streams=2,
        frames=2,
        workers=1,
        pace_s=1.0,
        calib_frames=1,
        input_size=[64, 96],
        cache=tmp_path,
        progress=False,
    )
    assert res["mode"].startswith("cpu-fallback")
    assert res["sizes"] == {"batches": [1, 2], "streams": 2, "frames": 2, "workers": 1, "pace_s": 1.0}
    cal = res["calibration"]
    assert Path(cal["table"]).parent == tmp_path
    assert len(read_trt_calibration_table(cal["table"])) == cal["tensors"] > 100
    det = res["detector"]["cpu"]
    assert (det["providers"], det["path"], det["input_hw"]) == (["CPUExecutionProvider"], "session.run", [64, 96])
    assert sorted(det["by_batch"]) == ["1", "2"] and all(v["detect_fps"] > 0 for v in det["by_batch"].values())
    assert res["pipeline_variant"] == "cpu"
    pipe = res["pipeline"]
    assert (pipe["streams"], pipe["workers"], pipe["frames"], pipe["drops"]) == (2, 1, 4, 0)
    assert pipe["fps"] > 0
    tries = res["streams_7fps"]["tries"]
    assert tries and tries[0]["streams"] == res["streams_7fps"]["estimate"] >= 1
    assert isinstance(tries[0]["sustained"], bool)
