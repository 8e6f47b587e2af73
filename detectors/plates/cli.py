"""``vigil plates read IMAGE... [--json]``: read licence plates in still images.

One line per image; with ``--json`` one JSON object per line:
``{"file": ..., "plates": [{"text": ..., "confidence": ..., "box": [x1, y1, x2, y2]}]}``
(an unreadable image gets ``"error"`` and an empty ``plates``; the exit code is then 1).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_commands", "main"]


def cmd_read(args: argparse.Namespace) -> int:
    from .ocr import OcrUnavailable
    from .reader import ImageError, PlateReader, load_image

    try:
        reader = PlateReader(
            region=args.region,
            det_max_side=args.det_size,
            threads=args.threads,
            max_plates=args.max_plates,
            use_haar=args.haar,
        )
    except OcrUnavailable as exc:
        print(f"vigil plates read: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name in args.images:
        record: dict = {"file": name, "plates": []}
        try:
            img = load_image(name)
            readings = reader.read(img)
            record["plates"] = [r.to_dict() for r in readings]
            if args.details:
                for d, r in zip(record["plates"], readings):
                    d.update({"kind": r.kind, "country": r.country, "raw": r.raw})
        except ImageError as exc:
            record["error"] = str(exc)
            status = 1
        if args.json:
            print(json.dumps(record), flush=True)
        elif "error" in record:
            print(f"{name}: error: {record['error']}", flush=True)
        elif not record["plates"]:
            print(f"{name}: no plate", flush=True)
        else:
            print(f"{name}: " + ", ".join(f"{p['text']} ({p['confidence']:.2f})" for p in record["plates"]), flush=True)
    return status


def add_commands(sub) -> None:
    p = sub.add_parser("plates", help="licence plates: read plates in images")
    psub = p.add_subparsers(dest="plates_command", required=True, metavar="WHAT")
    r = psub.add_parser("read", help="read plates in image files")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--json", action="store_true", help="one JSON object per line per image")
    r.add_argument(
        "--region",
        choices=["auto", "IT"],
        default="auto",
        help="plate grammar: IT (Italian formats win) or auto (default)",
    )
    r.add_argument("--max-plates", type=int, default=1, help="plates reported per image (default 1)")
    r.add_argument("--det-size", type=int, default=480, help="text detector input size, longest side (default 480)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--haar", action="store_true", help="add Haar-cascade candidates (Debian opencv-data, if installed)")
    r.add_argument("--details", action="store_true", help="with --json: add kind, country and raw OCR text")
    r.set_defaults(func=cmd_read)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
