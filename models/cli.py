"""``vigil models``: prepare the embedded default model and list what the cache holds."""

from __future__ import annotations

import argparse
import json
import sys
import time


def _cmd_prepare(args: argparse.Namespace) -> int:
    from vigil.models.cache import ModelNotFoundError, cache_dir, resolve_default_model

    t0 = time.perf_counter()
    try:
        path, names = resolve_default_model()
    except ModelNotFoundError as exc:
        print(f"vigil models prepare: {exc}", file=sys.stderr)
        return 2
    info = {"model": "yolov3-tiny-coco", "onnx": str(path), "classes": len(names), "cache": str(cache_dir()), "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps(info) if args.json else f"default model ready: {path} ({len(names)} classes, {info['seconds']} s)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from vigil.models.cache import cache_dir

    root = cache_dir() / "models"
    files = sorted(root.glob("*.onnx")) if root.is_dir() else []
    rows = [{"file": str(p), "bytes": p.stat().st_size} for p in files]
    if args.json:
        print(json.dumps({"cache": str(root), "models": rows}))
    else:
        print(f"model cache: {root}")
        for r in rows:
            print(f"  {r['file']}  {r['bytes'] / 1e6:.1f} MB")
        if not rows:
            print("  (empty: run `vigil models prepare`)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="model cache: prepare the embedded default model, list converted models")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = msub.add_parser("prepare", help="convert the embedded default model (Darknet YOLOv3-tiny COCO) to ONNX, once")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_prepare)
    q = msub.add_parser("list", help="list the converted models in the cache")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_list)
