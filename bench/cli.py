"""``vigil eval`` (scores against ground truth) and ``vigil bench`` (speed) commands."""

from __future__ import annotations


def add_commands(sub) -> None:
    from vigil.bench.mot_eval import add_eval_command

    p = sub.add_parser("eval", help="score outputs against ground truth")
    eval_sub = p.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    add_eval_command(eval_sub)
