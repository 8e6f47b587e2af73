"""``vigil eval plates`` (accuracy) and ``vigil bench plates`` (time per plate read).

Real sets (``--dir DIR``, repeatable): OpenALPR-style folders (``*.txt`` lines
``file x y w h PLATE``); ``ERRATA.md`` in the folder, when present, corrects labels
(``| file | label | plate |`` rows; ``A or B`` in the plate column accepts either).

Synthetic sets (``--synthetic N``): N rendered plates per family (:mod:`vigil.plates.synth`:
Italian kinds and foreign formats, several typefaces, perspective, low resolution, motion blur,
night IR, dirt, occlusion, two-line plates, tight crops), fixed seed.

Reported per set: exact match (with a 95 % Wilson interval), localisation recall (the chosen
plate's box at IoU ≥ 0.5 with the label's box, and whether any candidate reached it), the
character error rate (edit distance / label length), accuracy by country, by plate width and
by variation, the most frequent character confusions (label → read), the precision of the
readings the reader calls sure, how often a reading was put into an Italian format, and the
time to locate the plates of an image and to read one plate.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from vigil.detectors.ops import box_iou
from vigil.plates.formats import region_code
from vigil.plates.ocr import PlateLineRecognizer, TextRecognizer
from vigil.plates.reader import ImageError, PlateReader, load_image
from vigil.plates.synth import synthetic_set

WIDTH_BINS = (0, 60, 90, 130, 200, 100000)


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


def load_labels(folder: Path) -> list[tuple[Path, set[str], tuple[float, float, float, float]]]:
    """(image path, accepted texts, label box x1, y1, x2, y2) per labelled plate."""
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
            try:
                x, y, w, h = (float(v) for v in parts[1:5])
            except ValueError:
                raise ValueError(f"{txt}: bad box in line {line!r} (want file x y w h PLATE)") from None
            items.append((folder / name, errata.get(name, {plate}), (x, y, x + w, y + h)))
    return items


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)


def edit_ops(want: str, got: str) -> tuple[int, list[tuple[str, str]]]:
    """Levenshtein distance and the edits (want char, got char; '' for a deletion/insertion)."""
    n, m = len(want), len(got)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (want[i - 1] != got[j - 1]))
    ops, i, j = [], n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (want[i - 1] != got[j - 1]):
            if want[i - 1] != got[j - 1]:
                ops.append((want[i - 1], got[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            ops.append((want[i - 1], ""))
            i -= 1
        else:
            ops.append(("", got[j - 1]))
            j -= 1
    return int(d[n, m]), ops[::-1]


def _hits(boxes: list, box) -> bool:
    """Whether any of ``boxes`` (x1, y1, x2, y2) overlaps ``box`` at IoU ≥ 0.5."""
    return bool(boxes) and bool((box_iou(np.asarray(boxes, np.float64), np.asarray([box], np.float64)) >= 0.5).any())


def _width_bin(w: float) -> str:
    for lo, hi in zip(WIDTH_BINS, WIDTH_BINS[1:]):
        if lo <= w < hi:
            return f"{lo}-{hi}px" if hi < 100000 else f">={lo}px"
    return "?"


class Tally:
    """Accumulates one set's scores (see the module docstring)."""

    def __init__(self, name: str):
        self.name = name
        self.n = self.correct = self.loc = self.loc_any = self.loc_n = 0
        self.chars = self.edits = 0
        self.sure = self.sure_ok = 0
        self.italian = self.italian_wrong = 0
        self.groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        self.read_as: Counter = Counter()
        self.confusions: Counter = Counter()
        self.locate_s: list[float] = []
        self.read_s: list[float] = []
        self.misses: list[dict] = []

    def add(self, accepted: set[str], reading, groups: dict[str, str], box=None, any_hit=None, name="") -> bool:
        got = reading.text if reading is not None else ""
        ok = got in accepted
        want = min(accepted, key=lambda a: edit_ops(a, got)[0])
        dist, ops = edit_ops(want, got)
        self.n += 1
        self.correct += ok
        self.chars += len(want)
        self.edits += dist
        self.confusions.update(f"{a or '∅'}→{b or '∅'}" for a, b in ops)
        for key, value in groups.items():
            cell = self.groups[key][value]
            cell[0] += ok
            cell[1] += 1
        if reading is not None:
            self.read_as[reading.country or "unknown"] += 1
            if reading.sure:
                self.sure += 1
                self.sure_ok += ok
            if reading.country == "IT":
                self.italian += 1
                self.italian_wrong += not ok
        if box is not None:
            self.loc_n += 1
            self.loc += reading is not None and _hits([reading.box], box)
            self.loc_any += bool(any_hit)
        if not ok:
            self.misses.append({"file": name, "want": "/".join(sorted(accepted)), "got": got})
        return ok

    def result(self) -> dict:
        def ms(v):
            return round(1000 * float(np.mean(v)), 1) if v else None

        return {
            "dataset": self.name,
            "images": self.n,
            "correct": self.correct,
            "exact_match": round(self.correct / max(1, self.n), 4),
            "exact_match_ci95": wilson(self.correct, self.n),
            "localisation_recall": round(self.loc / self.loc_n, 4) if self.loc_n else None,
            "localisation_recall_ci95": wilson(self.loc, self.loc_n) if self.loc_n else None,
            "localisation_recall_any_candidate": round(self.loc_any / self.loc_n, 4) if self.loc_n else None,
            "cer": round(self.edits / max(1, self.chars), 4),
            "sure_readings": self.sure,
            "sure_precision": round(self.sure_ok / self.sure, 4) if self.sure else None,
            "read_as_country": dict(self.read_as.most_common()),
            "read_as_italian": self.italian,
            "read_as_italian_and_wrong": self.italian_wrong,
            "by": {
                key: {v: {"accuracy": round(c / t, 4), "n": t} for v, (c, t) in sorted(vals.items())}
                for key, vals in self.groups.items()
            },
            "confusions": dict(self.confusions.most_common(15)),
            "locate_ms_per_image": ms(self.locate_s),
            "read_ms_per_plate": ms(self.read_s),
            "misses": self.misses,
        }


def _timed_read(reader: PlateReader, img: np.ndarray, tally: Tally):
    t0 = time.perf_counter()
    cands = reader.candidates(img)
    t1 = time.perf_counter()
    readings = reader.read_candidates(img, cands)
    t2 = time.perf_counter()
    tally.locate_s.append(t1 - t0)
    if cands:
        tally.read_s.append((t2 - t1) / len(cands))
    return cands, readings


def evaluate_dir(folder: Path, reader: PlateReader, limit: int | None = None, verbose: bool = False) -> dict:
    items = load_labels(folder)[:limit]
    if not items:
        raise FileNotFoundError(f"{folder}: no labels (*.txt with file x y w h PLATE)")
    tally = Tally(str(folder))
    errors = []
    for path, accepted, box in items:
        try:
            img = load_image(path)
        except ImageError as exc:
            errors.append({"file": path.name, "error": str(exc)})
            continue
        cands, readings = _timed_read(reader, img, tally)
        reading = readings[0] if readings else None
        any_hit = _hits([c.xyxy for c in cands], box)
        groups = {"width": _width_bin(box[2] - box[0])}
        ok = tally.add(accepted, reading, groups, box, any_hit, path.name)
        if verbose and not ok:
            print(
                f"  miss {path.name}: read {reading.text if reading else '(no plate)'} want {accepted}", file=sys.stderr
            )
    out = tally.result()
    out["unreadable"] = errors
    return out


def evaluate_synthetic(n: int, reader: PlateReader, family: str = "it", seed: int = 0, verbose: bool = False) -> dict:
    tally = Tally(f"synthetic-{family}-{n}-seed{seed}")
    for s in synthetic_set(n, seed=seed, family=family):
        groups = {
            "variation": s.variation,
            "country": s.country,
            "kind": s.kind,
            "typeface": s.typeface,
            "width": _width_bin(s.plate_width_px),
        }
        if s.variation == "tight_crop":
            t0 = time.perf_counter()
            reading = reader.read_plate(s.image, lines=s.lines)
            tally.read_s.append(time.perf_counter() - t0)
            ok = tally.add({s.text}, reading, groups, name=f"{s.variation}/{s.country}/{s.kind}")
        else:
            cands, readings = _timed_read(reader, s.image, tally)
            reading = readings[0] if readings else None
            q = s.quad
            box = (float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))
            any_hit = _hits([c.xyxy for c in cands], box)
            ok = tally.add({s.text}, reading, groups, box, any_hit, f"{s.variation}/{s.country}/{s.kind}")
        if verbose and not ok:
            got = reading.text if reading else "(no plate)"
            print(f"  miss {s.variation}/{s.country}/{s.kind}: read {got} want {s.text}", file=sys.stderr)
    return tally.result()


def _print(r: dict) -> None:
    loc = r["localisation_recall"]
    print(
        f"{r['dataset']}: exact {r['exact_match']:.3f} ({r['correct']}/{r['images']}, 95% {r['exact_match_ci95']}), "
        f"CER {r['cer']:.3f}, localisation {'-' if loc is None else f'{loc:.3f}'}, "
        f"sure precision {r['sure_precision']}, read as {r['read_as_country']}, "
        f"locate {r['locate_ms_per_image']} ms/image, read {r['read_ms_per_plate']} ms/plate"
    )
    for key, vals in r["by"].items():
        print(f"  by {key}: " + ", ".join(f"{v} {c['accuracy']:.3f} (n={c['n']})" for v, c in vals.items()))
    if r["confusions"]:
        print("  confusions: " + ", ".join(f"{k} ×{v}" for k, v in r["confusions"].items()))


def _reader(args: argparse.Namespace, region: str) -> PlateReader:
    """The reader the command line asks for (``--recognizer``, ``--cross-check``)."""
    first, _, second = getattr(args, "recognizer", "ppocr+vigil").partition("+")
    make = {
        "ppocr": lambda: TextRecognizer(threads=args.threads),
        "vigil": lambda: PlateLineRecognizer(threads=args.threads),
    }
    return PlateReader(
        region=region,
        det_max_side=args.det_size,
        threads=args.threads,
        recognizer=make[first](),
        second_recognizer=make[second]() if second else None,
        cross_check=getattr(args, "cross_check", "unsure") if second else "off",
    )


def _reader_args(p) -> None:
    p.add_argument(
        "--recognizer",
        choices=["ppocr", "vigil", "ppocr+vigil", "vigil+ppocr"],
        default="ppocr+vigil",
        help="PP-OCRv4, Vigil's line recogniser, or one cross-checked by the other (first: the reader); "
        "default ppocr+vigil, what a node runs",
    )
    p.add_argument(
        "--cross-check", choices=["unsure", "always"], default="unsure", help="when the second recogniser reads"
    )


def cmd_eval_plates(args: argparse.Namespace) -> int:
    if not args.dir and not args.synthetic:
        print("vigil eval plates: give --dir DIR and/or --synthetic N", file=sys.stderr)
        return 2
    for d in args.dir or []:
        if not Path(d).is_dir():
            print(f"vigil eval plates: {d}: not a folder", file=sys.stderr)
            return 2
    results = []
    reader = _reader(args, args.region or "auto")
    reader.read(np.zeros((64, 64, 3), np.uint8))  # warm-up
    for d in args.dir or []:
        results.append(evaluate_dir(Path(d), reader, args.limit, args.verbose))
    if args.synthetic:
        it_reader = _reader(args, args.region or "IT")
        families = ["it", "foreign"] if args.family == "both" else [args.family]
        for fam in families:
            results.append(
                evaluate_synthetic(args.synthetic, it_reader if fam == "it" else reader, fam, args.seed, args.verbose)
            )
    for r in results:
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            _print(r)
    return 0


def cmd_bench_plates(args: argparse.Namespace) -> int:
    """Time to locate the plates of a gate image and to read one located plate (rectify,
    recognise, decide), on rendered Italian scenes; medians and 95th percentiles."""
    reader = _reader(args, "IT")
    samples = [s for s in synthetic_set(args.plates, seed=args.seed, family="it") if s.variation != "tight_crop"]
    reader.read(samples[0].image)
    locate, read = [], []
    for s in samples:
        t0 = time.perf_counter()
        cands = reader.candidates(s.image)
        t1 = time.perf_counter()
        if cands:
            reader.read_candidates(s.image, cands[:1])
            read.append(time.perf_counter() - t1)
        locate.append(t1 - t0)

    def stats(v):
        a = 1000 * np.asarray(v)
        return {"median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1)}

    out = {
        "plates": len(samples),
        "threads": args.threads,
        "locate_per_image": stats(locate),
        "read_per_plate": stats(read),
        "total_per_plate_median_ms": round(1000 * (float(np.median(locate)) + float(np.median(read))), 1),
    }
    print(json.dumps(out) if args.json else out)
    return 0


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser("plates", help="plate localisation and reading: accuracy by country, width, variation")
    p.add_argument("--dir", action="append", help="OpenALPR-style folder (file x y w h PLATE; ERRATA.md applied)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="also score N rendered plates per family")
    p.add_argument("--family", choices=["it", "foreign", "both"], default="both", help="synthetic families")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--region",
        type=region_code,
        help="the camera's country, e.g. IT or BR (default: auto for --dir and foreign plates, IT for Italian)",
    )
    p.add_argument("--det-size", type=int, default=640, help="text detector input size (longest side)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, help="first N images of each folder only")
    p.add_argument("--verbose", action="store_true", help="list misses on stderr")
    p.add_argument("--json", action="store_true")
    _reader_args(p)
    p.set_defaults(func=cmd_eval_plates)


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser("plates", help="time to locate and to read one plate (rendered gate scenes)")
    p.add_argument("--plates", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--det-size", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    _reader_args(p)
    p.set_defaults(func=cmd_bench_plates)
