"""The GPU path measured in one run (issue 19): ``vigil bench gpu`` (``bench/gpu.sh`` on a lent device).

1. **What runs where**: onnxruntime's providers, the GPU (``nvidia-smi``), and whether this is
   the CPU fallback (no CUDA/TensorRT provider: small sizes, says so in ``"mode"``).
2. **INT8 calibration**: letterboxed frames of the video go through onnxruntime.quantization's
   calibrator on the CPU; the TensorRT table is written into the bench's cache folder.
3. **Detector variants** (GPU: TensorRT FP16, TensorRT INT8 with that table, CUDA EP, CUDA EP
   with CUDA graphs; fallback: CPU): the build time (a TensorRT engine is built once, then
   loaded from its cache folder keyed by GPU model, model sha, input shape, batch profile and
   precision), then frames/s by batch size: ``detect_fps`` (letterbox, inference, decode:
   what the shared detector runs per batch) and ``infer_fps`` (the letterboxed uint8 batch
   through ``_infer`` alone), and the inference path used (``io_binding+topk1024``...).
4. **Whole pipeline**: ``streams`` simultaneous replays of the video (each stream its own
   decoder, tracker, ground projection, rules and events: :class:`vigil.edge.worker.CameraPipeline`)
   in ``workers`` processes, all sharing one :class:`vigil.detectors.shared.DetectorServer`
   (batches across cameras up to ``max_batch``) with the fastest variant; unpaced, so the
   aggregate ``fps`` is what the node can do.
5. **7 fps streams sustained**: ``floor(0.9 * fps / 7)`` streams paced at 7 fps for
   ``pace_s`` seconds; sustained when each stream keeps at least 6.8 frames/s and the
   detector drops nothing (else 80 % of that count is tried once).

Each stage is skipped (and says so) once ``budget_s`` has passed; a stage that fails records
its error and the others go on. A worker process multiplexes its streams (submit a frame for
each, then track each): the same frames and batches as one process per camera, with fewer
processes than streams.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vigil.bench.detector_batching import _cpu_s, _default_video, read_frames
from vigil.detectors.detections import Detections
from vigil.detectors.ops import letterbox
from vigil.detectors.ort_session import TRT_TABLE_NAME, calibrate_int8, probe_gpu
from vigil.detectors.registry import build_detector
from vigil.detectors.shared import DetectorServer
from vigil.edge.config import load_config
from vigil.edge.sources import FileSource
from vigil.edge.worker import CameraPipeline
from vigil.models.cache import resolve_default_model
from vigil.models.quantize import letterboxed

__all__ = ["run_gpu_bench", "add_bench_command", "main", "DEFAULT_CONFIG", "STREAM_FPS"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "pets2009-s2l1.yaml"
STREAM_FPS = 7.0
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def variants(fallback: bool, table: Path | None) -> dict[str, dict[str, Any]]:
    """The detector settings compared, by name (changes to the node config's detector)."""
    if fallback:  # onnxruntime on the CPU: the code path of the GPU variants, without the GPU
        return {"cpu": {"providers": ["cpu"], "runtime": "onnxruntime"}}
    out: dict[str, dict[str, Any]] = {"tensorrt-fp16": {"providers": ["tensorrt", "cuda", "cpu"]}}
    if table is not None:
        out["tensorrt-int8"] = {"providers": ["tensorrt", "cuda", "cpu"], "tensorrt_int8_table": str(table)}
    out["cuda"] = {"providers": ["cuda", "cpu"]}
    out["cuda-graph"] = {"providers": ["cuda", "cpu"], "cuda_graph": True}
    return out


# ------------------------------------------------------------------------------ stages
def _letterboxed(frames: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    batch = np.full((len(frames), *hw, 3), 114, np.uint8)
    for i, f in enumerate(frames):
        letterbox(f, hw, fill=114, out=batch[i])
    return batch


def calibrate(model: Path, frames: list[np.ndarray], hw: tuple[int, int], out_dir: Path) -> dict[str, Any]:
    """The INT8 table from ``frames`` (letterboxed to ``hw``), on the CPU; ``{"table", "tensors", "s"}``."""
    t0 = time.perf_counter()
    batches = [letterboxed(f, hw) for f in frames]  # exactly the detector's pre-processing
    table = out_dir / f"{model.stem}-{hw[0]}x{hw[1]}-{TRT_TABLE_NAME}"
    ranges = calibrate_int8(model, batches, table)
    return {"table": str(table), "tensors": len(ranges), "frames": len(frames), "s": round(time.perf_counter() - t0, 2)}


def detector_by_batch(cfg: dict, frames: list[np.ndarray], batches: list[int], min_s: float) -> dict[str, Any]:
    """Build the detector (timed; a second build times the cached engine) and measure each batch size."""
    t0 = time.perf_counter()
    det = build_detector(cfg)
    build_s = time.perf_counter() - t0
    rec: dict[str, Any] = {"providers": list(getattr(det, "providers", [])), "build_s": round(build_s, 2)}
    if "tensorrt" in cfg["providers"]:
        t0 = time.perf_counter()
        build_detector(cfg)
        rec["load_cached_s"] = round(time.perf_counter() - t0, 2)
    hw = tuple(det.input_size)
    by: dict[str, dict[str, float]] = {}
    for b in batches:
        part = [frames[i % len(frames)] for i in range(b)]
        det.detect_batch(part)  # first run of this shape: buffers, graphs, engine profile
        lb = _letterboxed(part, hw)
        by[str(b)] = {
            "detect_fps": round(_rate(lambda part=part: det.detect_batch(part), b, min_s), 2),
            "infer_fps": round(_rate(lambda lb=lb: det._infer(lb), b, min_s), 2),
        }
    runner = getattr(det, "_runner", None)
    rec.update(
        {
            "input_hw": list(hw),
            "path": getattr(runner, "path", None),
            "topk_saturated": getattr(runner, "topk_saturated", None),
            "by_batch": by,
        }
    )
    return rec


def _rate(fn, per_call: int, min_s: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s and n >= 2:
            return n * per_call / dt


class _Prefetched:
    """A camera pipeline's detector whose result was submitted earlier through a shared-detector client."""

    def __init__(self, client) -> None:
        self.client = client
        self.class_names = client.class_names

    def detect(self, image: np.ndarray) -> Detections:
        d = self.client.poll(timeout=self.client.timeout_s)
        if d is None:
            raise TimeoutError(f"camera {self.client.camera!r}: no detector result within {self.client.timeout_s} s")
        meta = {k: v for k, v in d.metadata.items() if k != "frame_seq"}
        return Detections(d.xyxy, d.confidence, d.class_id, d.tracker_id, d.data, meta)


def _worker(config: str, camera: str, video: str, clients: list, offsets: list[int], job: dict, go, results) -> None:
    """Replay one stream per client: decode, submit every stream's frame, then track each."""
    try:
        node = load_config(config)
        cam = node.camera(camera)
        sources, pipes, iters = [], [], []
        for c, off in zip(clients, offsets):
            src = FileSource(video, fps=cam.fps, loop=True)
            it = iter(src)
            for _ in range(off):  # streams look at different moments of the video
                next(it)
            sources.append(src)
            iters.append(it)
            pipes.append(CameraPipeline(node, cam, fps=src.fps, detector=_Prefetched(c)))
            c.connect()
        results.put(("armed", None))
        go.wait()
        period = 1.0 / job["fps"] if job.get("fps") else 0.0
        t0 = time.monotonic()
        done = decode_s = 0.0
        tick = 0
        while (job.get("seconds") and time.monotonic() - t0 < job["seconds"]) or (
            not job.get("seconds") and tick < job["frames"]
        ):
            if period:
                wait = t0 + tick * period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            batch = []
            for c, it in zip(clients, iters):
                td = time.perf_counter()
                frame = next(it)
                decode_s += time.perf_counter() - td
                batch.append(frame if c.submit(frame.image) else None)
            for p, frame in zip(pipes, batch):
                if frame is not None:
                    p.process(frame)
                    done += 1
            tick += 1
        wall = time.monotonic() - t0
        stages = {k: sum(p.stage_s[k] for p in pipes) for k in ("track", "geometry", "rules", "events")}
        drops = sum(c.drops for c in clients)
        for c, s in zip(clients, sources):
            c.close()
            s.close()
        results.put(
            ("done", {"frames": done, "wall_s": wall, "ticks": tick, "drops": drops, "decode": decode_s, **stages})
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def run_streams(
    config: str, video: str, det_cfg: dict, streams: int, workers: int, max_batch: int, job: dict, slots: int = 2
) -> dict[str, Any]:
    """``streams`` replays in ``workers`` processes through one shared detector; ``job``:
    ``{"frames": N}`` (unpaced) or ``{"fps": 7, "seconds": S}`` (paced)."""
    node = load_config(config)
    cam = node.camera(None)
    workers = max(1, min(workers, streams))
    ctx = mp.get_context("spawn")
    results, go = ctx.Queue(), ctx.Event()
    with DetectorServer(
        det_cfg, max_batch=max_batch, max_wait_ms=2.0, slots=slots, inference_timeout_s=60, client_timeout_s=120
    ) as srv:
        src = FileSource(video)
        shape = (src.height, src.width)
        src.close()
        procs = []
        for w in range(workers):
            mine = list(range(w, streams, workers))
            clients = [srv.client(f"s{i}", shape) for i in mine]
            offsets = [(i * 37) % 700 for i in mine]
            p = ctx.Process(target=_worker, args=(config, cam.name, video, clients, offsets, job, go, results))
            p.start()
            procs.append(p)
        try:
            _collect(results, "armed", workers, 300)
            before, cpu0 = srv.stats(), _cpu_s(srv.pid)
            t0 = time.monotonic()
            go.set()
            done = _collect(results, "done", workers, 600)
            wall = time.monotonic() - t0
            after, cpu1 = srv.stats(), _cpu_s(srv.pid)
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.terminate()
    frames = sum(d["frames"] for d in done)
    batches = after.get("batches", 0) - before.get("batches", 0)
    rec = {
        "streams": streams,
        "workers": workers,
        "frames": int(frames),
        "wall_s": round(wall, 2),
        "fps": round(frames / wall, 2) if wall else 0.0,
        "fps_per_stream": round(frames / wall / streams, 2) if wall else 0.0,
        "drops": int(sum(d["drops"] for d in done)),
        "mean_batch": round(frames / batches, 2) if batches else None,
        "detector_cpu_ms_per_frame": round((cpu1 - cpu0) / frames * 1e3, 3) if frames and cpu0 is not None else None,
        "worker_ms_per_frame": {
            k: round(sum(d[k] for d in done) / frames * 1e3, 3)
            for k in ("decode", "track", "geometry", "rules", "events")
            if frames
        },
    }
    return rec


def _collect(results, kind: str, n: int, timeout: float) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n:
        what, payload = results.get(timeout=max(0.1, deadline - time.monotonic()))
        if what == "error":
            raise RuntimeError(f"stream worker failed: {payload}")
        if what == kind:
            got.append(payload)
    return got


def shm_stream_cap(frame_bytes: int, slots: int, path: str = "/dev/shm") -> int | None:
    """Streams whose frame slots fit in the free shared memory (80 % of it); ``None`` if unknown."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return None
    return max(1, int(0.8 * free // (frame_bytes * slots)))


# ------------------------------------------------------------------------------ the run
def run_gpu_bench(
    config: str | Path = DEFAULT_CONFIG,
    video: str | None = None,
    *,
    fallback: bool | None = None,
    batches: list[int] | None = None,
    streams: int | None = None,
    frames: int | None = None,
    workers: int | None = None,
    pace_s: float | None = None,
    calib_frames: int | None = None,
    budget_s: float = 540.0,
    cache: str | Path | None = None,
    input_size: list[int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """See the module docstring. Sizes left ``None`` take the GPU defaults (batches 1-32, 200
    streams, 60 frames each, 30 s paced) or the CPU fallback's (batches 1-2, 2 streams, 6 frames,
    3 s paced, input 320x416)."""
    start = time.monotonic()

    def say(msg: str) -> None:
        if progress:
            print(f"[gpu-bench {time.monotonic() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    def left() -> float:
        return budget_s - (time.monotonic() - start)

    available = ort.get_available_providers()
    if fallback is None:
        fallback = not any(p in available for p in _GPU_PROVIDERS)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    batches = batches or ([1, 2] if fallback else [1, 2, 4, 8, 16, 32])
    streams = streams or (2 if fallback else 200)
    frames = frames or (6 if fallback else 60)
    workers = workers or (1 if fallback else max(1, cpus - 2))
    pace_s = pace_s or (3.0 if fallback else 30.0)
    calib_frames = calib_frames or (2 if fallback else 32)
    video = video or _default_video()
    if video is None or not Path(video).is_file():
        raise FileNotFoundError(f"video not found: {video or 'data/vtest.avi'} (run scripts/setup.sh or pass --video)")
    cache = (
        Path(cache)
        if cache
        else Path(os.environ.get("VIGIL_CACHE_DIR", Path.home() / ".cache" / "vigil")) / "gpu-bench"
    )
    cache.mkdir(parents=True, exist_ok=True)
    gpu = probe_gpu(0)
    out: dict[str, Any] = {
        "mode": "cpu-fallback (no CUDA/TensorRT provider: small sizes, not a GPU measurement)" if fallback else "gpu",
        "onnxruntime": ort.__version__,
        "providers_available": available,
        "gpu": gpu.as_dict() if gpu else None,
        "cpu_count": cpus,
        "python": platform.python_version(),
        "sizes": {"batches": batches, "streams": streams, "frames": frames, "workers": workers, "pace_s": pace_s},
    }
    node = load_config(config)
    base = node.detector.model_dump(mode="json", exclude_none=True)
    if input_size or fallback:
        base["input_size"] = list(input_size or [320, 416])
    base["max_batch"] = max(batches)
    model_path, _ = resolve_default_model() if base.get("model") is None else (Path(base["model"]), None)
    hw = tuple(base.get("input_size") or (640, 640))
    sample = read_frames(video, 0, max(batches))

    # INT8 calibration table (CPU)
    table = None
    try:
        say(f"INT8 calibration on {calib_frames} frames at {hw[0]}x{hw[1]} (CPU)")
        cal = calibrate(model_path, read_frames(video, 100, calib_frames), hw, cache)
        table = Path(cal["table"])
        out["calibration"] = cal
    except Exception as exc:  # noqa: BLE001 - recorded; the FP16/CPU variants still run
        out["calibration"] = {"error": f"{type(exc).__name__}: {exc}"}

    # detector variants
    out["detector"] = {}
    for name, change in variants(fallback, table).items():
        if left() < 60:
            out["detector"][name] = {"skipped": "time budget"}
            continue
        say(f"detector {name}: build, then batches {batches}")
        try:
            rec = detector_by_batch({**base, **change}, sample, batches, 0.5 if fallback else 1.0)
        except Exception as exc:  # noqa: BLE001 - one variant failing (e.g. no CUDA graph) leaves the others
            rec = {"error": f"{type(exc).__name__}: {exc}"}
        out["detector"][name] = rec
        say(f"detector {name}: {json.dumps(rec.get('by_batch', rec))}")
    ok = {k: v for k, v in out["detector"].items() if "by_batch" in v}
    if not ok:
        out["error"] = "no detector variant ran"
        return out
    best = max(ok, key=lambda k: ok[k]["by_batch"][str(max(batches))]["detect_fps"])
    det_cfg = {**base, **variants(fallback, table)[best]}
    out["pipeline_variant"] = best

    # the whole pipeline, unpaced
    shm_cap = shm_stream_cap(sample[0].nbytes, 2)
    if shm_cap is not None and shm_cap < streams:
        say(f"/dev/shm holds frame slots for {shm_cap} streams only; running {shm_cap}")
        streams = shm_cap
    out["shm_stream_cap"] = shm_cap
    say(f"pipeline: {streams} replays x {frames} frames in {workers} workers, shared detector ({best})")
    try:
        out["pipeline"] = run_streams(str(config), video, det_cfg, streams, workers, max(batches), {"frames": frames})
    except Exception as exc:  # noqa: BLE001 - recorded
        out["pipeline"] = {"error": f"{type(exc).__name__}: {exc}"}
        return _finish(out, start)
    say(f"pipeline: {json.dumps(out['pipeline'])}")

    # 7 fps streams sustained
    n = max(1, math.floor(0.9 * out["pipeline"]["fps"] / STREAM_FPS))
    if shm_cap is not None:
        n = min(n, shm_cap)
    out["streams_7fps"] = {"estimate": n, "tries": []}
    out["streams_7fps"]["sustained"] = 0
    for attempt in dict.fromkeys((n, max(1, int(n * 0.8)))):
        if left() < pace_s + 60:
            out["streams_7fps"]["tries"].append({"streams": attempt, "skipped": "time budget"})
            break
        say(f"paced: {attempt} streams at {STREAM_FPS:g} fps for {pace_s:g} s")
        try:
            rec = run_streams(
                str(config),
                video,
                det_cfg,
                attempt,
                workers,
                max(batches),
                {"fps": STREAM_FPS, "seconds": pace_s},
            )
        except Exception as exc:  # noqa: BLE001 - recorded
            out["streams_7fps"]["tries"].append({"streams": attempt, "error": f"{type(exc).__name__}: {exc}"})
            break
        rec["sustained"] = rec["fps_per_stream"] >= 6.8 and rec["drops"] == 0
        out["streams_7fps"]["tries"].append(rec)
        say(f"paced {attempt}: {rec['fps_per_stream']} fps per stream, drops {rec['drops']}")
        if rec["sustained"]:
            out["streams_7fps"]["sustained"] = attempt
            break
    return _finish(out, start)


def _finish(out: dict, start: float) -> dict:
    out["wall_s"] = round(time.monotonic() - start, 1)
    return out


# ------------------------------------------------------------------------------ CLI
def _ints(text: str | None) -> list[int] | None:
    return [int(x) for x in text.split(",") if x.strip()] if text else None


def _parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="node config (camera, calibration, detector)")
    p.add_argument("--video", help="video every stream replays (default: data/vtest.avi)")
    p.add_argument("--cpu-fallback", action="store_true", help="force the CPU fallback (small sizes)")
    p.add_argument("--batches", help="detector batch sizes, comma-separated (GPU: 1,2,4,8,16,32)")
    p.add_argument("--streams", type=int, help="simultaneous replays through the whole pipeline (GPU: 200)")
    p.add_argument("--frames", type=int, help="frames per replay, unpaced (GPU: 60)")
    p.add_argument("--workers", type=int, help="stream worker processes (GPU: CPU cores - 2)")
    p.add_argument("--pace-s", type=float, help="seconds of the paced 7 fps run (GPU: 30)")
    p.add_argument("--calib-frames", type=int, help="INT8 calibration frames (GPU: 32)")
    p.add_argument("--input-size", help="detector input H,W (default: the config's; CPU fallback 320,416)")
    p.add_argument("--budget-s", type=float, default=540.0, help="skip stages that would start after this")
    p.add_argument("--cache", help="folder for the INT8 table (default: <model cache>/gpu-bench)")
    p.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    return p


def _execute(args: argparse.Namespace) -> int:
    res = run_gpu_bench(
        args.config,
        args.video,
        fallback=True if args.cpu_fallback else None,
        batches=_ints(args.batches),
        streams=args.streams,
        frames=args.frames,
        workers=args.workers,
        pace_s=args.pace_s,
        calib_frames=args.calib_frames,
        budget_s=args.budget_s,
        cache=args.cache,
        input_size=_ints(args.input_size),
        progress=not args.json,
    )
    print(json.dumps(res) if args.json else json.dumps(res, indent=1))
    return 1 if "error" in res else 0


def add_bench_command(bench_sub) -> None:
    """``vigil bench gpu`` (for bench/cli.py's BENCH_MODULES)."""
    p = bench_sub.add_parser(
        "gpu", help="GPU path: detector frames/s by batch, whole-pipeline frames/s, 7 fps streams per GPU"
    )
    _parser(p).set_defaults(func=_execute)


def main(argv: list[str] | None = None) -> int:
    ap = _parser(argparse.ArgumentParser(prog="vigil bench gpu", description=__doc__.split("\n\n")[0]))
    return _execute(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
