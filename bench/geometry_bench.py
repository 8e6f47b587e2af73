"""``vigil bench geometry``: time of the ground-plane rules per frame for N people, on one core.

People stand at random on a square whose side grows with N so that the density stays at
``--density`` people/m^2 (0.25: one person per 4 m^2, a busy square), and walk a little
between frames. Each frame runs the whole :class:`~vigil.geometry.rules.RulesEngine` update
(distance rule through the k-d tree, lifecycle, plus occupancy/density of one zone covering
the square). The process is pinned to one CPU core where the OS allows it.

Prints ``{"ms_per_frame": ..., "people": N, ...}`` with ``--json``; ``--growth`` (default
on) adds the timing for N = 100, 1,000 and 10,000 and the growth factor between them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from vigil.geometry.rules import RulesEngine
from vigil.geometry.rules.config import RulesConfig, ZoneConfig

__all__ = ["bench_geometry", "add_bench_command"]

BOUND_MS_AT_1000 = 5.0


def _pin_one_core() -> int | None:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def bench_geometry(people: int, frames: int = 50, density: float = 0.25, seed: int = 0) -> dict:
    """Median and p95 milliseconds of one engine update with ``people`` people."""

    if people < 0 or frames < 1 or not density > 0:
        raise ValueError("people >= 0, frames >= 1 and density > 0 are required")
    side = max(math.sqrt(max(people, 1) / density), 2.0)
    rules = RulesConfig.model_validate({"distance": {"min_duration_s": 0.0}, "zones": {"min_duration_s": 0.0}})
    zone = ZoneConfig(name="square", polygon=[(0, 0), (side, 0), (side, side), (0, side)], m2_per_person=1.0 / density)
    engine = RulesEngine(rules, [zone])
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, side, (people, 2))
    ids = np.arange(1, people + 1)
    cls = np.full(people, "person", dtype=object)
    times, changes = [], 0
    for k in range(frames + 3):
        xy = np.clip(xy + rng.normal(0, 0.1, xy.shape), 0, side)
        t0 = time.perf_counter()
        changes += len(engine.update(k / 10.0, ids, cls, xy))
        dt = time.perf_counter() - t0
        if k >= 3:  # warm-up frames
            times.append(dt * 1000.0)
    t = np.asarray(times)
    return {
        "people": people,
        "frames": frames,
        "density_per_m2": density,
        "ms_per_frame": round(float(np.median(t)), 3),
        "p95_ms": round(float(np.percentile(t, 95)), 3),
        "changes": changes,
    }


def _cmd(args: argparse.Namespace) -> int:
    cpu = _pin_one_core()
    res = bench_geometry(args.people, frames=args.frames, density=args.density)
    res["cpu"] = cpu
    if args.growth:
        table = {
            n: bench_geometry(n, frames=args.frames if n <= 1000 else max(5, args.frames // 5), density=args.density)[
                "ms_per_frame"
            ]
            for n in (100, 1000, 10000)
        }
        res["growth"] = {
            "ms_per_frame": {str(n): v for n, v in table.items()},
            "ratio_1000_over_100": round(table[1000] / table[100], 2) if table[100] else None,
            "ratio_10000_over_1000": round(table[10000] / table[1000], 2) if table[1000] else None,
            "ratio_10000_over_100": round(table[10000] / table[100], 2) if table[100] else None,
        }
        res["within_bound_at_1000"] = table[1000] <= BOUND_MS_AT_1000
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['people']} people: {res['ms_per_frame']} ms per frame (p95 {res['p95_ms']} ms) on one core")
        if args.growth:
            for n, v in res["growth"]["ms_per_frame"].items():
                print(f"  N={n:>6}: {v:8.3f} ms")
            print(
                f"  growth x{res['growth']['ratio_10000_over_100']} from 100 to 10,000 people (x100 people); bound at "
                f"1,000: {BOUND_MS_AT_1000} ms"
            )
    return 0


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser("geometry", help="time of the ground-plane rules per frame for N people (one core)")
    p.add_argument("--people", type=int, default=1000, help="people in the frame (default 1000)")
    p.add_argument("--frames", type=int, default=50, help="timed frames (default 50)")
    p.add_argument("--density", type=float, default=0.25, help="people per square metre (default 0.25)")
    p.add_argument("--no-growth", dest="growth", action="store_false", help="skip the N = 100 / 1,000 / 10,000 table")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd)
