"""``vigil bench geometry``: time of the whole per-frame geometry for N people, on one core.

Each frame runs what a node runs after the tracker: the per-camera ground stage
(:class:`~vigil.geometry.ground_filter.GroundEstimator`: occlusion-aware feet, pixel -> ground
covariance, the constant-velocity Kalman filter per track) on the people's boxes, then the whole
:class:`~vigil.geometry.rules.RulesEngine` update (distance rule through the neighbour grid, pair lifecycle,
plus occupancy/density of one zone covering the square) on the filtered ground positions.

The scene. People ``1.5``-``1.9`` m tall walk (``0.5``-``1.5`` m/s, a little random acceleration,
reflected at the edges) on a square whose side grows with N so that the density stays at
``--density`` people/m^2 (0.25: one person per 4 m^2, a busy square). The camera is the PETS 2009
View_001 calibration shipped in ``deploy/examples/pets2009-view001.calib.yaml`` (a Tsai model with
radial distortion, 768 x 576 pixels): the square lies in its view, centred under the pixel
``(384, 0.8 * 576)`` with one side along the camera's heading; the reference square, 7 m wide, fills
the lower half of the frame. For larger N the camera is moved away from the square's centre along
its line of sight, by the factor ``side / 7 m`` (same rotation, same lens), so that every N fills
the frame alike (people look ``side / 7`` times smaller: about 12 px tall at 1,000 people). About 5 %
of the people have their feet below the bottom edge (boxes cut by the frame; the few wholly below
it are out of view: not detected, not passed on), neighbours overlap (boxes covered by nearer ones),
and each frame 10 % of the people are boxed without their legs (``50``-``80`` % of their height, as
when a detector sees only the upper body) -- so every branch of the occlusion rule and the foot
estimate has work. Box corners get 0.5 px of noise. Drawing the boxes is not timed.

Timed per frame (medians; wall clock): ``ground_ms`` (the ground stage), ``rules_ms`` (the rules
engine) and their sum ``ms_per_frame``, with ``p95_ms``; ``cpu_ms_per_frame`` is the same sum in the
thread's CPU time, which a machine shared with other work inflates less. ``--no-ground`` times the
rules engine alone on the true positions (what this bench timed before the ground stage). The process
is pinned to one CPU core where the OS allows it, and allocates one video frame first, as a node does
(:func:`_decode_like_a_node`).

Prints ``{"ms_per_frame": ..., "ground_ms": ..., "rules_ms": ..., "people": N, ...}`` with ``--json``;
``--growth`` (default on) adds the total for N = 100, 1,000 and 10,000 and the growth factor
between them, and whether the total at 1,000 people is within :data:`BOUND_MS_AT_1000` ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from vigil.geometry.calibration_io import load_camera
from vigil.geometry.camera import TsaiCamera
from vigil.geometry.ground_filter import GroundEstimator
from vigil.geometry.rules import RulesEngine
from vigil.geometry.rules.config import RulesConfig, ZoneConfig

__all__ = ["BOUND_MS_AT_1000", "PETS_CALIBRATION", "Crowd", "add_bench_command", "bench_camera", "bench_geometry"]

BOUND_MS_AT_1000 = 5.0
#: The camera of the scene: the PETS 2009 View_001 calibration in the repository (Tsai, 768 x 576).
PETS_CALIBRATION = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "pets2009-view001.calib.yaml"
_REF_SIDE_M = 7.0  # side of the square that fills the lower half of the frame as calibrated, m
_CENTRE_ROW = 0.8  # the square's centre is seen at this fraction of the image height
_DT_S = 0.1  # frame interval, s
_PERSON_WIDTH = 0.26  # box width / box height of a person
_LEGS_HIDDEN = 0.1  # fraction of the people boxed without their legs in each frame
_BOX_NOISE_PX = 0.5


def _pin_one_core() -> int | None:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def bench_camera(side_m: float, calibration: Path = PETS_CALIBRATION) -> tuple[TsaiCamera, np.ndarray, np.ndarray]:
    """The camera that sees a square of ``side_m`` metres as the calibrated one sees the 7 m reference square.

    Returns ``(camera, centre, axes)``: the square's centre ``(2,)`` in world metres and its unit axes
    ``(2, 2)`` (rows: across the view, pointing to the image's right; along the heading, away from the
    camera). The camera is the calibrated one moved away from ``centre`` along the line of sight by
    ``side_m / 7 m`` (the image of the scaled scene is unchanged, people look ``side_m / 7`` times shorter).
    """
    if not calibration.is_file():
        raise FileNotFoundError(
            f"vigil bench geometry: the scene's camera calibration {calibration} is missing (it ships in the "
            "repository's deploy/examples; run the bench from a source checkout)"
        )
    cam = load_camera(calibration)
    if not isinstance(cam, TsaiCamera):
        raise TypeError(f"{calibration}: expected a Tsai calibration, got {type(cam).__name__}")
    w, h = cam.image_size
    centre = cam.image_to_ground([[w / 2.0, _CENTRE_ROW * h]])[0]
    along = cam.R[2, :2] / np.linalg.norm(cam.R[2, :2])  # the optical axis on the ground
    across = np.array([along[1], -along[0]])
    if across @ cam.R[0, :2] < 0:  # the camera's x axis (image right) on the ground
        across = -across
    k = side_m / _REF_SIDE_M
    c_new_mm = 1000.0 * np.r_[centre, 0.0] + k * (cam.centre_mm - 1000.0 * np.r_[centre, 0.0])
    tx, ty, tz = (-cam.R @ c_new_mm).tolist()
    return TsaiCamera(dataclasses.replace(cam.params, tx=tx, ty=ty, tz=tz)), centre, np.array([across, along])


class Crowd:
    """``people`` walkers on a square of ``side_m`` metres (local coordinates ``[0, side_m]^2``), seen by
    ``camera``; the square's centre ``centre (2,)`` and axes ``axes (2, 2)`` place it in the world (metres)."""

    def __init__(self, people: int, side_m: float, camera: TsaiCamera, centre, axes, rng: np.random.Generator):
        self.n, self.side, self.camera, self.rng = people, side_m, camera, rng
        self.centre, self.axes = np.asarray(centre, np.float64), np.asarray(axes, np.float64)
        self.local = rng.uniform(0, side_m, (people, 2))  # (N, 2) m
        speed, heading = rng.uniform(0.5, 1.5, people), rng.uniform(0, 2 * math.pi, people)
        self.vel = np.c_[speed * np.cos(heading), speed * np.sin(heading)]  # (N, 2) m/s
        self.height = rng.uniform(1.5, 1.9, people)  # (N,) m

    def world(self) -> np.ndarray:
        """``(N, 2)`` world metres of the people."""
        return self.centre + (self.local - self.side / 2.0) @ self.axes

    def step(self, dt_s: float) -> None:
        """Walk ``dt_s`` seconds: constant velocity plus a random acceleration (0.3 m/s^2 rms), reflected at
        the edges."""
        self.vel += self.rng.normal(0, 0.3 * dt_s, self.vel.shape)
        self.local += self.vel * dt_s
        for lo_hi in (self.local < 0, self.local > self.side):
            self.vel[lo_hi] *= -1.0
        self.local = np.where(self.local < 0, -self.local, self.local)
        self.local = np.where(self.local > self.side, 2 * self.side - self.local, self.local)

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` pixels ``x1 y1 x2 y2``: head to foot (a tenth without legs), noisy, cut by the frame; and
        ``(N,) bool``: the box shows at least one pixel row of the person (False: wholly below the frame)."""
        g = self.world()
        n = self.n
        px = self.camera.project_points(np.r_[np.c_[g, np.zeros(n)], np.c_[g, self.height]])
        foot, head = px[:n], px[n:]
        hpx = foot[:, 1] - head[:, 1]
        half = _PERSON_WIDTH * hpx / 2.0
        b = np.c_[np.minimum(foot[:, 0], head[:, 0]) - half, head[:, 1], np.maximum(foot[:, 0], head[:, 0]) + half]
        b = np.c_[b, foot[:, 1]]
        legs = self.rng.random(n) < _LEGS_HIDDEN
        b[legs, 3] = b[legs, 1] + self.rng.uniform(0.5, 0.8, int(legs.sum())) * hpx[legs]
        b += self.rng.normal(0, _BOX_NOISE_PX, b.shape)
        w, h = self.camera.image_size
        return np.clip(b, 0.0, [w, h, w, h]), b[:, 1] < h - 1.0


def _decode_like_a_node(image_size: tuple[int, int]) -> None:
    """Allocate and free one video frame of ``image_size`` ``(width, height)`` pixels, as a node does every frame.

    After glibc's allocator has handed out and taken back a block that large (1.3 MB at 768 x 576), it
    keeps freed memory of up to twice that size mapped instead of returning it to the OS. A node is always
    in that state; a bare benchmark process is not, and then the geometry's short-lived arrays (a few
    hundred kB per stage at 1,000 people) are unmapped after each stage and faulted back in by the next:
    ~190 page faults per frame at 1,000 people, about 1 ms on a virtual machine, that a node never pays.
    """
    w, h = image_size
    frame = np.empty((h, w, 3), np.uint8)
    del frame


def bench_geometry(people: int, frames: int = 50, density: float = 0.25, seed: int = 0, ground: bool = True) -> dict:
    """Median and p95 milliseconds of one frame's geometry (ground stage + rules engine) with ``people``
    people; ``ground=False`` times the rules engine alone on the true positions."""

    if people < 0 or frames < 1 or not density > 0:
        raise ValueError("people >= 0, frames >= 1 and density > 0 are required")
    side = max(math.sqrt(max(people, 1) / density), 2.0)
    camera, centre, axes = bench_camera(side)
    rng = np.random.default_rng(seed)
    crowd = Crowd(people, side, camera, centre, axes, rng)
    corners = centre + (np.array([[0, 0], [side, 0], [side, side], [0, side]]) - side / 2.0) @ axes
    rules = RulesConfig.model_validate({"distance": {"min_duration_s": 0.0}, "zones": {"min_duration_s": 0.0}})
    zone = ZoneConfig(name="square", polygon=[tuple(p) for p in corners.tolist()], m2_per_person=1.0 / density)
    engine = RulesEngine(rules, [zone])
    estimator = GroundEstimator(camera, [0])
    _decode_like_a_node(camera.image_size)
    ids = np.arange(1, people + 1)
    cls = np.full(people, "person", dtype=object)
    class_id = np.zeros(people, np.int64)
    ground_ms, rules_ms, cpu_ms, changes, corrected, flagged, in_view = [], [], [], 0, 0, 0, 0
    for k in range(frames + 3):
        crowd.step(_DT_S)
        t_s = k * _DT_S
        if ground:  # the tracker's output: the people in view
            boxes, seen = crowd.boxes()
            ids_k, cls_k, class_id_k = ids[seen], cls[seen], class_id[seen]
        c0, t0 = time.thread_time(), time.perf_counter()
        if ground:
            out = estimator.update(t_s, ids_k, boxes[seen], class_id_k)
            xy, cov = out["world_xy"], out["world_cov"]  # as a node passes them (each pair's sigma and P)
        else:
            ids_k, cls_k, xy, cov = ids, cls, crowd.world(), None
        t1 = time.perf_counter()
        changes += len(engine.update(t_s, ids_k, cls_k, xy, world_cov=cov))
        t2, c2 = time.perf_counter(), time.thread_time()
        if k >= 3:  # warm-up frames
            ground_ms.append((t1 - t0) * 1000.0)
            rules_ms.append((t2 - t1) * 1000.0)
            cpu_ms.append((c2 - c0) * 1000.0)
            in_view += len(ids_k)
            if ground:
                corrected += int(out["foot_corrected"].sum())
                flagged += int((out["foot_reason"] != 0).sum())
    g, r = np.asarray(ground_ms), np.asarray(rules_ms)
    total = g + r
    res = {
        "people": people,
        "frames": frames,
        "density_per_m2": density,
        "ms_per_frame": round(float(np.median(total)), 3),
        "p95_ms": round(float(np.percentile(total, 95)), 3),
        "cpu_ms_per_frame": round(float(np.median(cpu_ms)), 3),
        "ground_ms": round(float(np.median(g)), 3) if ground else None,
        "rules_ms": round(float(np.median(r)), 3),
        "ground_p95_ms": round(float(np.percentile(g, 95)), 3) if ground else None,
        "rules_p95_ms": round(float(np.percentile(r, 95)), 3),
        "changes": changes,
        "ground_stage": ground,
        "camera": f"{PETS_CALIBRATION.name} moved back x{side / _REF_SIDE_M:.2f}",
    }
    res["in_view_per_frame"] = round(in_view / frames, 1)
    if ground:
        res["foot_flagged_per_frame"] = round(flagged / frames, 1)
        res["foot_corrected_per_frame"] = round(corrected / frames, 1)
    return res


def _cmd(args: argparse.Namespace) -> int:
    cpu = _pin_one_core()
    res = bench_geometry(args.people, frames=args.frames, density=args.density, ground=args.ground)
    res["cpu"] = cpu
    if args.growth:
        frames = {n: args.frames if n <= 1000 else max(5, args.frames // 5) for n in (100, 1000, 10000)}
        table = {n: bench_geometry(n, frames=f, density=args.density, ground=args.ground) for n, f in frames.items()}
        ms = {n: r["ms_per_frame"] for n, r in table.items()}
        res["growth"] = {
            "ms_per_frame": {str(n): v for n, v in ms.items()},
            "ground_ms": {str(n): r["ground_ms"] for n, r in table.items()},
            "rules_ms": {str(n): r["rules_ms"] for n, r in table.items()},
            "ratio_1000_over_100": round(ms[1000] / ms[100], 2) if ms[100] else None,
            "ratio_10000_over_1000": round(ms[10000] / ms[1000], 2) if ms[1000] else None,
            "ratio_10000_over_100": round(ms[10000] / ms[100], 2) if ms[100] else None,
        }
        res["within_bound_at_1000"] = ms[1000] <= BOUND_MS_AT_1000
    if args.json:
        print(json.dumps(res))
    else:
        stages = f"ground {res['ground_ms']} ms + rules {res['rules_ms']} ms" if args.ground else "rules only"
        print(
            f"{res['people']} people: {res['ms_per_frame']} ms per frame ({stages}; p95 {res['p95_ms']} ms) on one core"
        )
        if args.growth:
            for n, v in res["growth"]["ms_per_frame"].items():
                print(f"  N={n:>6}: {v:8.3f} ms")
            print(
                f"  growth x{res['growth']['ratio_10000_over_100']} from 100 to 10,000 people (x100 people); bound at "
                f"1,000: {BOUND_MS_AT_1000} ms"
            )
    return 0


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser(
        "geometry", help="time of the per-frame geometry (ground stage + rules) for N people (one core)"
    )
    p.add_argument("--people", type=int, default=1000, help="people in the frame (default 1000)")
    p.add_argument("--frames", type=int, default=50, help="timed frames (default 50)")
    p.add_argument("--density", type=float, default=0.25, help="people per square metre (default 0.25)")
    p.add_argument(
        "--no-ground",
        dest="ground",
        action="store_false",
        help="time the rules engine alone, on the true positions (no boxes, no ground stage)",
    )
    p.add_argument("--no-growth", dest="growth", action="store_false", help="skip the N = 100 / 1,000 / 10,000 table")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd)
