"""``vigil eval plates``: exact-match plate accuracy and time per image.

- ``--dir DIR``: an OpenALPR-style benchmark folder (``*.txt`` lines ``file x y w h PLATE``);
  ``ERRATA.md`` in the folder, when present, corrects labels (``| file | label | plate |`` rows;
  ``A or B`` in the plate column accepts either).
- ``--synthetic N``: N rendered Italian plates (:mod:`vigil.plates.synth`), read
  with the Italian grammar (``region IT``), fixed seed.

Scored: the best reading of each image equals the label (letters and digits, upper case).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from vigil.plates.reader import ImageError, PlateReader, load_image
from vigil.plates.synth import synthetic_set


def load_errata(folder: Path) -> dict[str, set[str]]:
    path = folder / "ERRATA.md"
    fixes: dict[str, set[str]] = {}
    if not path.is_file():
        return fixes
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.match(r"^[\w.-]+\.(jpg|jpeg|png)$", cells[0], re.I):
            accepted = set(re.findall(r"\b[A-Z0-9]{4,}\b", cells[2].split("(")[0]))
            if accepted:
                fixes[cells[0]] = accepted
    return fixes


def load_labels(folder: Path) -> list[tuple[Path, set[str]]]:
    errata = load_errata(folder)
    items = []
    for txt in sorted(folder.glob("*.txt")):
        for line in txt.read_text(encoding="utf-8").splitlines():
            parts = line.strip().split("\t")
            if len(parts) < 6:
                parts = line.split()
            if len(parts) < 6:
                continue
            name, plate = parts[0], re.sub(r"[^A-Z0-9]", "", parts[5].upper())
            items.append((folder / name, errata.get(name, {plate})))
    return items


def evaluate_dir(folder: Path, reader, limit: int | None = None, verbose: bool = False) -> dict:

    items = load_labels(folder)[:limit]
    if not items:
        raise FileNotFoundError(f"{folder}: no labels (*.txt with file x y w h PLATE)")
    correct, total_s, errors = 0, 0.0, []
    cpu0 = time.process_time()
    for path, accepted in items:
        try:
            img = load_image(path)
        except ImageError as exc:
            errors.append({"file": path.name, "error": str(exc)})
            continue
        t0 = time.perf_counter()
        readings = reader.read(img)
        total_s += time.perf_counter() - t0
        got = readings[0].text if readings else ""
        ok = got in accepted
        correct += ok
        if verbose and not ok:
            print(f"  miss {path.name}: read {got or '(no plate)'} want {'/'.join(sorted(accepted))}", file=sys.stderr)
    n = len(items)
    cpu_s = (
        time.process_time() - cpu0
    )  # includes decoding; CPU of all threads (a busy machine inflates wall time, not this)
    return {
        "dataset": str(folder),
        "images": n,
        "correct": correct,
        "accuracy": round(correct / n, 4),
        "ms_per_image": round(1000 * total_s / max(1, n - len(errors)), 1),
        "cpu_ms_per_image": round(1000 * cpu_s / max(1, n), 1),
        "unreadable": errors,
    }


def evaluate_synthetic(n: int, reader, seed: int = 0, verbose: bool = False) -> dict:

    correct, total_s, cpu_s = 0, 0.0, 0.0
    for img, label in synthetic_set(n, seed=seed):
        c0 = time.process_time()
        t0 = time.perf_counter()
        readings = reader.read(img)
        total_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        got = readings[0].text if readings else ""
        correct += got == label
        if verbose and got != label:
            print(
                f"  miss: read {got or '(no plate)'} want {label} (raw {readings[0].raw if readings else ''})",
                file=sys.stderr,
            )
    return {
        "dataset": f"synthetic-it-{n}-seed{seed}",
        "images": n,
        "correct": correct,
        "accuracy": round(correct / max(1, n), 4),
        "ms_per_image": round(1000 * total_s / max(1, n), 1),
        "cpu_ms_per_image": round(1000 * cpu_s / max(1, n), 1),
    }


def cmd_eval_plates(args: argparse.Namespace) -> int:

    if not args.dir and not args.synthetic:
        print("vigil eval plates: give --dir DIR and/or --synthetic N", file=sys.stderr)
        return 2
    results = []
    if args.dir:
        folder = Path(args.dir)
        if not folder.is_dir():
            print(f"vigil eval plates: {folder}: not a folder", file=sys.stderr)
            return 2
        reader = PlateReader(region=args.region or "auto", det_max_side=args.det_size, threads=args.threads)
        reader.read(__import__("numpy").zeros((64, 64, 3), "uint8"))  # warm-up
        results.append(evaluate_dir(folder, reader, args.limit, args.verbose))
    if args.synthetic:
        reader = PlateReader(region=args.region or "IT", det_max_side=args.det_size, threads=args.threads)
        results.append(evaluate_synthetic(args.synthetic, reader, args.seed, args.verbose))
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"{r['dataset']}: accuracy {r['accuracy']:.3f} ({r['correct']}/{r['images']}), "
                f"{r['ms_per_image']} ms/image wall, {r['cpu_ms_per_image']} ms/image CPU (all threads)"
            )
    return 0


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser("plates", help="plate reading: exact-match accuracy and ms per image")
    p.add_argument("--dir", help="OpenALPR-style folder (file x y w h PLATE labels; ERRATA.md applied)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="also score N rendered Italian plates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--region", choices=["auto", "IT"], help="grammar (default: auto for --dir, IT for --synthetic)")
    p.add_argument("--det-size", type=int, default=480, help="text detector input size (longest side)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--verbose", action="store_true", help="list misses on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_plates)
