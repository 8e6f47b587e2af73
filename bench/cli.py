"""``vigil eval`` (scores against ground truth) and ``vigil bench`` (speed) commands.

Each module listed below contributes subcommands through ``add_eval_command(eval_sub)``
and/or ``add_bench_command(bench_sub)``; modules are imported only when the CLI is built.
"""

from __future__ import annotations

import importlib

#: modules providing ``add_eval_command(eval_subparsers)``
EVAL_MODULES = ["vigil.bench.mot_eval", "vigil.bench.detect_cmd", "vigil.bench.ground_eval", "vigil.bench.plates_eval"]
#: modules providing ``add_bench_command(bench_subparsers)``
BENCH_MODULES = [
    "vigil.bench.detect_cmd",
    "vigil.bench.geometry_bench",
    "vigil.bench.bus_bench",
    "vigil.bench.soak",
    "vigil.bench.detector_batching",
]


def add_commands(sub) -> None:
    p = sub.add_parser("eval", help="score outputs against ground truth")
    eval_sub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    for name in EVAL_MODULES:
        importlib.import_module(name).add_eval_command(eval_sub)
    p = sub.add_parser("bench", help="benchmarks: speed and throughput, ratios measured in one run")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    for name in BENCH_MODULES:
        importlib.import_module(name).add_bench_command(bench_sub)
