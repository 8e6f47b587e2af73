"""``vigil eval`` (scores against ground truth) and ``vigil bench`` (speed) commands.

Each module listed below contributes subcommands through ``add_eval_command(eval_sub)``
and/or ``add_bench_command(bench_sub)``.
"""

from __future__ import annotations

from vigil.bench import (
    bus_bench,
    city,
    console_alarms,
    detect_cmd,
    detector_batching,
    geometry_bench,
    gpu_bench,
    ground_eval,
    hostile,
    int8_bench,
    mot_eval,
    node,
    plates_eval,
    soak,
)

__all__ = ["EVAL_MODULES", "BENCH_MODULES", "add_commands"]

#: modules providing ``add_eval_command(eval_subparsers)``, in ``vigil eval --help`` order
EVAL_MODULES = (mot_eval, detect_cmd, ground_eval, plates_eval, console_alarms)
#: modules providing ``add_bench_command(bench_subparsers)``, in ``vigil bench --help`` order
BENCH_MODULES = (
    detect_cmd,
    int8_bench,
    node,
    geometry_bench,
    bus_bench,
    hostile,
    city,
    soak,
    detector_batching,
    gpu_bench,
    plates_eval,
)


def add_commands(sub) -> None:
    p = sub.add_parser("eval", help="score outputs against ground truth")
    eval_sub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    for module in EVAL_MODULES:
        module.add_eval_command(eval_sub)
    p = sub.add_parser("bench", help="benchmarks: speed and throughput, ratios measured in one run")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    for module in BENCH_MODULES:
        module.add_bench_command(bench_sub)
