"""Throughput of the shared detector with and without batching across cameras, in one run.

``vigil bench batching`` (or ``python -m vigil.bench.detector_batching``): simulated camera
processes (``--cameras``, each with its own frames of the video, decoded before timing)
feed one :class:`vigil.detectors.shared.DetectorServer` as fast as it takes frames, keeping
``--slots`` frames in flight each. The same cameras and frames run through a server with
``max_batch=1`` (one frame per inference) and with each larger ``--batches`` value; the
rounds alternate (1, 4, 8, 1, 4, 8, ...) so that drifts in machine load hit every setting
alike, and each setting's median over ``--rounds`` is reported. ``direct_fps`` is the same
backend called in-process frame by frame, for the cost of the process hop.

Printed JSON: ``{"single_fps", "batched_fps" (the best larger max_batch), "ratio",
"best_max_batch", "by_max_batch": {...}, "direct_fps", "backend_detect_batch", "raw_onnx"}``.
``backend_detect_batch`` is ``false`` when the backend has no ``detect_batch`` and the server
falls back to one ``detect`` per frame (then the ratio measures only the batching overhead);
note that a backend's ``detect_batch`` may itself loop over frames. ``raw_onnx`` times
``session.run`` alone at each batch size (for onnxruntime backends): whether the model
takes a batch dimension > 1 and what one batched call gains on this machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from vigil.detectors.registry import build_detector
from vigil.detectors.shared import DetectorServer

__all__ = ["main", "run", "add_bench_command"]

_CANDIDATE_VIDEOS = [
    Path(__file__).resolve().parents[1] / "data" / "vtest.avi",
    Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
]


def _default_video() -> str | None:
    for p in _CANDIDATE_VIDEOS:
        if p.is_file():
            return str(p)
    return None


def read_frames(video: str, start: int, count: int) -> list[np.ndarray]:
    """``count`` BGR frames from ``start`` (wrapping around at the end of the video)."""

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {video}")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
        if total and start >= total:
            start %= total
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        while len(frames) < count:
            ok, f = cap.read()
            if not ok:
                if not frames and start == 0:
                    raise SystemExit(f"no frames in {video}")
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                start = 0
                continue
            frames.append(f)
        return frames
    finally:
        cap.release()


def _camera(index: int, video: str, start: int, count: int, commands, results, go) -> None:
    """A simulated camera: decode its frames once, then serve one timed run per command."""
    frames = read_frames(video, start, count)
    results.put(("ready", index, frames[0].shape))
    while True:
        cmd = commands.get()
        if cmd is None:
            return
        client = cmd
        try:
            client.connect()
            client.detect(frames[0])  # connection and first-frame costs stay outside the timing
            results.put(("armed", index, None))
            go.wait()
            t0 = time.monotonic()
            sent = done = 0
            while done < count:
                while sent < count and client.in_flight < client.slots:
                    if not client.submit(frames[sent]):
                        break
                    sent += 1
                if client.poll(timeout=1.0) is not None:
                    done += 1
            results.put(("done", index, (t0, time.monotonic(), client.drops)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            results.put(("error", index, f"{type(exc).__name__}: {exc}"))
        finally:
            client.close()


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


def _expect(results, kind: str, n: int, timeout: float) -> dict[int, object]:
    got: dict[int, object] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"timed out waiting for {n - len(got)} camera(s) to report {kind!r}")
        what, index, payload = results.get(timeout=left)
        if what == "error":
            raise SystemExit(f"camera {index}: {payload}")
        if what != kind:
            raise SystemExit(f"camera {index}: expected {kind!r}, got {what!r}")
        got[index] = payload
    return got


def raw_onnx_batching(det, sizes: list[int], reps: int = 2) -> dict | None:
    """Inference alone (``session.run`` on zeros of the model's input size) at each batch size,
    for backends that expose an onnxruntime ``session``; ``None`` otherwise. Tells whether
    the model accepts a batch dimension > 1 and what one batched call gains on this machine."""
    session = getattr(det, "session", None)
    if session is None or not hasattr(session, "get_inputs"):
        return None
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    dynamic = not isinstance(shape[0], int) or shape[0] <= 0
    size = getattr(getattr(det, "cfg", None), "input_size", None)
    hw = [d if isinstance(d, int) and d > 0 else None for d in shape[2:4]]
    if None in hw:
        if size is None:
            return None
        hw = list(size)
    out: dict = {"batch_dim": shape[0], "fps": {}}
    for n in sorted(set(sizes)) if dynamic else [1]:
        x = np.zeros((n, shape[1] if isinstance(shape[1], int) else 3, *hw), np.float32)
        session.run(None, {inp.name: x})
        t = time.perf_counter()
        for _ in range(reps):
            session.run(None, {inp.name: x})
        out["fps"][str(n)] = round(n * reps / (time.perf_counter() - t), 3)
    if not dynamic:
        out["note"] = f"the model's batch dimension is fixed at {shape[0]}: batches run frame by frame"
    return out


def run(
    video: str,
    cameras: int = 4,
    frames: int = 24,
    batches: tuple[int, ...] = (4, 8),
    rounds: int = 1,
    max_wait_ms: float = 5.0,
    slots: int = 2,
    detector_cfg=None,
    progress: bool = True,
    builder=None,
) -> dict:
    """Measure; see the module docstring. Returns the JSON-able result. ``builder`` replaces
    ``build_detector`` (picklable; for tests)."""

    build = builder or build_detector

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    settings = [1] + [b for b in batches if b != 1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    commands = [ctx.Queue() for _ in range(cameras)]
    go = ctx.Event()  # released when every camera is armed
    # cameras look at different parts of the video
    procs = [
        ctx.Process(target=_camera, args=(i, video, i * frames, frames, commands[i], results, go), daemon=True)
        for i in range(cameras)
    ]
    for p in procs:
        p.start()
    try:
        shapes = _expect(results, "ready", cameras, 120)

        # in-process baseline on camera 0's frames
        det = build(detector_cfg)
        batched_inference = hasattr(det, "detect_batch")
        base = read_frames(video, 0, frames)
        det.detect(base[0])
        t = time.perf_counter()
        for f in base:
            det.detect(f)
        direct_fps = len(base) / (time.perf_counter() - t)
        say(f"direct (in-process, one by one): {direct_fps:.2f} frames/s; backend detect_batch: {batched_inference}")
        raw = raw_onnx_batching(det, settings)
        if raw:
            say(f"raw onnxruntime, frames/s by batch size: {raw['fps']} (input batch dim: {raw['batch_dim']})")
        del det, base

        runs: dict[int, list[dict]] = {b: [] for b in settings}
        for r in range(rounds):
            for b in settings:
                with DetectorServer(
                    detector_cfg,
                    builder=builder,
                    max_batch=b,
                    max_wait_ms=max_wait_ms,
                    slots=slots,
                    client_timeout_s=120,
                    inference_timeout_s=30,
                ) as srv:
                    go.clear()
                    for i in range(cameras):
                        commands[i].put(srv.client(f"cam{i}", shapes[i], slots=slots))
                    _expect(results, "armed", cameras, 120)
                    before = srv.stats()
                    cpu0 = _cpu_s(srv.pid)
                    go.set()
                    done = _expect(results, "done", cameras, 600)
                    cpu1 = _cpu_s(srv.pid)
                    after = srv.stats()
                t0 = min(v[0] for v in done.values())  # type: ignore[index]
                t1 = max(v[1] for v in done.values())  # type: ignore[index]
                n_frames = cameras * frames
                n_batches = after["batches"] - before["batches"]
                infer_s = (
                    after["inference_ms_mean"] * after["batches"] - before["inference_ms_mean"] * before["batches"]
                )
                rec = {
                    "fps": n_frames / (t1 - t0),
                    "mean_batch": n_frames / n_batches if n_batches else 0.0,
                    "inference_ms_per_batch": infer_s / n_batches if n_batches else 0.0,
                    "inference_ms_per_frame": infer_s / n_frames,
                    "server_cpu_ms_per_frame": (cpu1 - cpu0) / n_frames * 1e3
                    if cpu0 is not None and cpu1 is not None
                    else None,
                    "drops": sum(v[2] for v in done.values()),  # type: ignore[index]
                }
                cpu = rec["server_cpu_ms_per_frame"]
                runs[b].append(rec)
                say(
                    f"round {r + 1}/{rounds} max_batch={b}: {rec['fps']:.2f} frames/s, mean batch "
                    f"{rec['mean_batch']:.2f}, "
                    f"{rec['inference_ms_per_batch']:.1f} ms/batch"
                    + (f", server CPU {cpu:.0f} ms/frame" if cpu is not None else "")
                )
    finally:
        for q in commands:
            q.put(None)
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()

    by = {}
    for b, recs in runs.items():
        by[str(b)] = {
            "fps": statistics.median(r["fps"] for r in recs),
            "fps_runs": [round(r["fps"], 3) for r in recs],
            "mean_batch": statistics.median(r["mean_batch"] for r in recs),
            "inference_ms_per_batch": statistics.median(r["inference_ms_per_batch"] for r in recs),
            "inference_ms_per_frame": statistics.median(r["inference_ms_per_frame"] for r in recs),
            "server_cpu_ms_per_frame": (
                statistics.median(r["server_cpu_ms_per_frame"] for r in recs)
                if all(r["server_cpu_ms_per_frame"] is not None for r in recs)
                else None
            ),
        }
    single = by["1"]["fps"]
    best = max((b for b in settings if b != 1), key=lambda b: by[str(b)]["fps"], default=1)
    batched = by[str(best)]["fps"]
    return {
        "single_fps": round(single, 3),
        "batched_fps": round(batched, 3),
        "ratio": round(batched / single, 3) if single else None,
        "best_max_batch": best,
        "by_max_batch": {
            k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()} for k, v in by.items()
        },
        "direct_fps": round(direct_fps, 3),
        "backend_detect_batch": batched_inference,
        "raw_onnx": raw,
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cameras": cameras,
        "frames_per_camera": frames,
        "rounds": rounds,
        "max_wait_ms": max_wait_ms,
        "slots": slots,
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "video": video,
    }


def _parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--video", default=None, help="video the simulated cameras play (default: data/vtest.avi)")
    p.add_argument("--cameras", type=int, default=4, help="simulated cameras (processes)")
    p.add_argument("--frames", type=int, default=24, help="timed frames per camera and setting")
    p.add_argument("--batches", default="4,8", help="max_batch values compared with 1, comma-separated")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds; each setting's median is reported")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long the server waits to fill a batch")
    p.add_argument("--slots", type=int, default=2, help="frames each camera keeps in flight")
    p.add_argument(
        "--config", default=None, help="detector config: JSON, or a JSON/YAML file (default: the default detector)"
    )
    p.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    return p


def _load_cfg(text: str | None):
    if not text:
        return None
    if text.lstrip().startswith("{"):
        return json.loads(text)

    with open(text, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return data.get("detector", data) if isinstance(data, dict) else data


def _execute(args: argparse.Namespace) -> int:
    video = args.video or _default_video()
    if video is None or not Path(video).is_file():
        print(f"video not found: {video or 'data/vtest.avi'} (run scripts/setup.sh or pass --video)", file=sys.stderr)
        return 2
    batches = tuple(int(x) for x in str(args.batches).split(",") if x.strip())
    if args.cameras < 1 or args.frames < 2 or any(b < 1 for b in batches):
        print("--cameras >= 1, --frames >= 2 and --batches >= 1 please", file=sys.stderr)
        return 2
    res = run(
        video,
        cameras=args.cameras,
        frames=args.frames,
        batches=batches,
        rounds=max(1, args.rounds),
        max_wait_ms=args.max_wait_ms,
        slots=args.slots,
        detector_cfg=_load_cfg(args.config),
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(res))
    else:
        print(json.dumps(res, indent=1))
        if not res["backend_detect_batch"]:
            print("note: the backend has no detect_batch; the server ran one detect per frame", file=sys.stderr)
    return 0


def add_bench_command(bench_sub) -> None:
    """``vigil bench batching`` (for bench/cli.py's BENCH_MODULES)."""
    p = bench_sub.add_parser("batching", help="shared detector throughput: batched across cameras vs one by one")
    _parser(p).set_defaults(func=_execute)


def main(argv: list[str] | None = None) -> int:
    ap = _parser(argparse.ArgumentParser(prog="vigil bench batching", description=__doc__.split("\n\n")[0]))
    return _execute(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
