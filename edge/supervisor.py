"""Runs several cameras of one node, one worker process per camera.

A first version: each camera's :func:`vigil.edge.worker.run_camera` runs in its own process
(``spawn``, so no state is shared by accident); the supervisor waits for all of them and
collects their reports. A crashed worker is reported with its exit code. Restart limits,
a shared detector process and ``vigil status`` come with the operations work.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import signal

__all__ = ["run_cameras"]


def _worker(args: argparse.Namespace, camera: str, queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a stop as SIGTERM
    from vigil.edge.cli import _run_one
    from vigil.edge.config import load_config

    stopping = {"flag": False}

    def _on_term(signum, _frame):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _on_term)
    cfg = load_config(args.config)
    args.quiet = True
    try:
        queue.put(_run_one(cfg, cfg.camera(camera), args, lambda: stopping["flag"]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put({"camera": camera, "ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run_cameras(args: argparse.Namespace, cameras: list[str]) -> list[dict]:
    """One process per camera; returns one report dict per camera (``ok: False`` on failure)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = {name: ctx.Process(target=_worker, args=(args, name, queue), name=f"vigil-worker:{name}") for name in cameras}
    for p in procs.values():
        p.start()
    results: dict[str, dict] = {}
    try:
        while len(results) < len(procs):
            try:
                res = queue.get(timeout=1.0)
                results[res["camera"]] = res
            except Exception:  # queue.Empty
                for name, p in procs.items():
                    if name not in results and not p.is_alive() and p.exitcode not in (0, None):
                        results[name] = {"camera": name, "ok": False, "error": f"worker exited with code {p.exitcode}"}
    except KeyboardInterrupt:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
    for p in procs.values():
        p.join(timeout=30)
    return [results.get(n, {"camera": n, "ok": False, "error": "no report"}) for n in cameras]
