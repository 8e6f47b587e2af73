"""The synthetic plate generator: formats, reproducibility, geometry, variations, fallbacks."""

import math
import re
from collections import Counter

import cv2
import numpy as np
import pytest

from vigil.plates import synth, synth_formats
from vigil.plates.formats import FORMATS
from vigil.plates.grammar import clean
from vigil.plates.synth import (
    FOREIGN_COUNTRIES,
    FORMAT_PATTERNS,
    VARIATIONS,
    PlateSpec,
    random_plate,
    render_plate,
    render_scene,
    synthetic_set,
)


@pytest.fixture(scope="module")
def it_set():
    return list(synthetic_set(40, seed=0))


@pytest.fixture(scope="module")
def foreign_set():
    return list(synthetic_set(36, seed=1, family="foreign"))


def _angle(v) -> float:
    return math.degrees(math.atan2(v[1], v[0]))


def _edge_skew(q: np.ndarray) -> float:
    """Largest angle (degrees) between opposite edges of a quad: 0 for a parallelogram."""
    q = q.astype(np.float64)
    return max(abs(_angle(q[1] - q[0]) - _angle(q[2] - q[3])), abs(_angle(q[3] - q[0]) - _angle(q[2] - q[1])))


@pytest.mark.parametrize("country", ["IT", *FOREIGN_COUNTRIES])
def test_labels_follow_each_country_format(country):
    rng = np.random.default_rng(5)
    for kind, pattern in FORMAT_PATTERNS[country].items():
        for _ in range(40):
            label, got_kind, lines = random_plate(rng, country, kind)
            assert got_kind == kind and re.match(pattern, label), (country, kind, label)
            assert clean("".join(lines)) == label and 1 <= len(lines) <= 2
    for _ in range(40):  # the default mix
        label, kind, _ = random_plate(rng, country)
        assert re.match(FORMAT_PATTERNS[country][kind], label)


def test_format_details():
    rng = np.random.default_rng(1)
    it = [random_plate(rng, "IT", "car")[0] for _ in range(300)]
    assert not any(set(t[:2] + t[5:]) & set("IOQU") for t in it)
    assert {t[0] for t in it} == set("ABCDEFGH")  # the series issued so far; X, Y, Z reserved
    mopeds = [random_plate(rng, "IT", "moped")[0] for _ in range(300)]
    assert all(m[0] == "X" for m in mopeds) and not set("".join(m[1:] for m in mopeds)) & set("01AEIOQU")
    fr = [random_plate(rng, "FR", "car")[0] for _ in range(300)]
    assert {t[0] for t in fr} <= set("ABCDEFGH") and "000" not in {t[2:5] for t in fr}
    assert random_plate(rng, "IT", "moped")[2][0].startswith("X")
    assert random_plate(rng, "IT", "police")[0].startswith("POLIZIA")
    assert all(re.fullmatch(r"[A-Z]{2} [1-9]\d{0,5}", random_plate(rng, "CH", "car")[2][0]) for _ in range(50))
    es = [random_plate(rng, "ES", "car")[0] for _ in range(100)]
    assert not any(set(t[4:]) & set("AEIOUQ") for t in es)
    with pytest.raises(ValueError):
        random_plate(rng, "XX")
    with pytest.raises(ValueError):
        random_plate(rng, "IT", "spaceship")


def _table_row(country: str, kind: str, label: str):
    """The non-fallback row of the reader's table matching ``label`` (its kind where the table has
    rows of that kind, else a car row: local police, square and foreign two-line plates)."""
    rows = [f for f in FORMATS if f.country == country and not f.fallback]
    want = kind if kind in {f.kind for f in rows} else "car"
    return next((f for f in rows if f.kind == want and f.match(label)), None)


@pytest.mark.parametrize("family", synth.FAMILIES)
def test_labels_match_the_reader_format_table(family):
    specs = [spec for _, spec in synth._specs(300, seed=13, family=family)]
    assert {s.variation for s in specs} == set(VARIATIONS)
    for s in specs:
        row = _table_row(s.country, s.kind, s.text)
        assert row is not None, (s.country, s.kind, s.text)  # a plate that exists
        assert any(f.country == s.country and f.match(s.text) for f in FORMATS)
        if row.lines == 2:  # the table's line split is the displayed one
            assert len(s.lines) == 2 and len(clean(s.lines[0])) == row.match(s.text).split, (s, row.name)


def test_generator_alphabets_agree_with_the_table():
    rows = {f.name: f for f in FORMATS}
    issued = set(synth_formats._IT_ISSUED)
    assert issued <= set(rows["IT-car"].variants[0].positions[0]) and not issued & set("JXYZ")
    moped = rows["IT-moped"].variants[0].positions
    assert all(set(p) == set(synth_formats._IT_MOPED) for p in moped[1:])
    assert set(synth_formats._FR_ISSUED) <= set(rows["FR-car"].variants[0].positions[0])


def test_motion_blur_is_bounded_by_the_character_height():
    rng = np.random.default_rng(14)
    for char_px in (8, 15, 25, 40, 60):
        for _ in range(50):
            length, angle = synth._motion_params(rng, char_px)
            assert max(3.0, 0.08 * char_px) <= length <= max(3.0, 0.22 * char_px) and abs(angle) <= 25
    k = synth._motion_kernel(5.0, 0.0)  # horizontal: one row, 5 px long
    assert abs(k.sum() - 1) < 1e-5 and np.count_nonzero(k.sum(1) > 1e-6) == 1
    assert np.count_nonzero(k.sum(0) > 1e-3) == 5
    k = synth._motion_kernel(7.3, 20.0)
    ys, xs = np.nonzero(k > 1e-3)
    assert 6 <= xs.max() - xs.min() + 1 <= 9 and ys.max() - ys.min() + 1 <= 5
    # end to end: the blurred characters stay the most contrasted thing on the plate
    for s in synthetic_set(6, seed=15, variations=["motion_blur"], countries=["IT", "DE", "NL"]):
        z = _flat_chars(s)
        assert np.percentile(z, 95) - np.percentile(z, 5) > 60, (s.country, s.text)


def _flat_chars(s) -> np.ndarray:
    """The middle of the sample's plate, warped flat (40 px high), lightly smoothed (float32 gray)."""
    q = s.quad.astype(np.float32)
    hq = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    hf, wf = 40, max(40, round(40 * s.plate_width_px / hq))
    m = cv2.getPerspectiveTransform(q, np.float32([[0, 0], [wf, 0], [wf, hf], [0, hf]]))
    flat = cv2.warpPerspective(cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), m, (wf, hf)).astype(np.float32)
    return cv2.blur(flat, (3, 3))[int(hf * 0.25) : int(hf * 0.75), int(wf * 0.2) : int(wf * 0.8)]


def test_very_dark_night_keeps_the_characters_legible():
    dark = 0
    for fam in synth.FAMILIES:
        for s in synthetic_set(36, seed=16, family=fam, variations=["night_ir"]):
            z = _flat_chars(s)
            if z.mean() < 60:
                dark += 1
                assert np.percentile(z, 95) - np.percentile(z, 5) >= 25, (s.country, s.kind, s.text)
    assert dark >= 10


def test_same_seed_same_images(it_set):
    again = list(synthetic_set(12, seed=0))
    for a, b in zip(it_set[:12], again):
        assert a.text == b.text and a.variation == b.variation and a.typeface == b.typeface
        assert np.array_equal(a.image, b.image) and np.array_equal(a.quad, b.quad)
    other = next(synthetic_set(1, seed=1))
    assert other.text != it_set[0].text or not np.array_equal(other.image, it_set[0].image)


def test_samples_are_well_formed(it_set, foreign_set):
    for s in it_set + foreign_set:
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert s.quad.shape == (4, 2) and s.quad.dtype == np.float32
        assert s.variation in VARIATIONS and s.typeface in synth.TYPEFACES
        assert re.match(FORMAT_PATTERNS[s.country][s.kind], s.text), (s.country, s.kind, s.text)
        if s.variation != "tight_crop":
            assert s.image.shape == (480, 640, 3)


def test_quad_inside_the_image_and_the_plate_shows_there(it_set, foreign_set):
    for s in it_set + foreign_set:
        if s.variation == "tight_crop":
            continue
        h, w = s.image.shape[:2]
        assert (s.quad >= 0).all() and (s.quad[:, 0] <= w).all() and (s.quad[:, 1] <= h).all(), s.quad
        gray = cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        inside = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(inside, np.round(s.quad).astype(np.int32), 255)
        core = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=2) > 0
        if s.variation == "night_ir" and gray[core].mean() < 60:
            continue  # the very dark night look: low contrast by design
        # the characters make the plate the most contrasted thing around
        assert gray[core].std() > 25, (s.variation, s.country, s.text, gray[core].std())
        assert np.percentile(gray[core], 90) - np.percentile(gray[core], 10) > 60


def test_variations_and_countries_cycle_evenly(it_set, foreign_set):
    assert Counter(s.variation for s in it_set) == {v: 4 for v in VARIATIONS}
    assert {s.country for s in it_set} == {"IT"}
    assert Counter(s.country for s in foreign_set) == {c: 3 for c in FOREIGN_COUNTRIES}
    assert Counter(s.variation for s in foreign_set[:30]) == {v: 3 for v in VARIATIONS}
    some = list(synthetic_set(9, seed=3, variations=["lowres", "dirt", "clean"], countries=["de", "fr", "it"]))
    assert Counter(s.variation for s in some) == {"lowres": 3, "dirt": 3, "clean": 3}
    assert Counter(s.country for s in some) == {"DE": 3, "FR": 3, "IT": 3}
    with pytest.raises(ValueError):
        next(synthetic_set(1, variations=["fog"]))
    with pytest.raises(ValueError):
        next(synthetic_set(1, family="martian"))


def test_two_line_samples():
    rng = np.random.default_rng(2)
    for country, kind in [("IT", "motorcycle"), ("IT", "moped"), ("IT", "square"), ("DE", "motorcycle")]:
        label, _, lines = random_plate(rng, country, kind)
        assert len(lines) == 2 and clean(lines[0]) + clean(lines[1]) == label
    samples = list(synthetic_set(12, seed=4, variations=["two_line"]))
    assert all(s.lines == 2 and s.kind in ("motorcycle", "moped", "square") for s in samples)
    assert {s.kind for s in samples} == {"motorcycle", "moped", "square"}
    foreign = list(synthetic_set(6, seed=4, variations=["two_line"], family="foreign"))
    assert all(s.lines == 2 and s.kind == "motorcycle" for s in foreign)


def test_tight_crop_is_the_character_area():
    for s in synthetic_set(12, seed=6, variations=["tight_crop"], countries=["IT", "DE", "NL", "BE"]):
        h, w = s.image.shape[:2]
        gray = cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        ink = gray < (np.percentile(gray, 5) + np.percentile(gray, 95)) / 2
        ys, xs = np.nonzero(ink)
        # the characters touch every side within the 0-3 px margin (plus blur and JPEG)
        assert xs.min() <= 5 and w - 1 - xs.max() <= 5 and ys.min() <= 5 and h - 1 - ys.max() <= 5, s.text
        # no band, no border: the whole plate (quad) is well larger than the crop
        assert s.plate_width_px > w + 8 and s.quad[0, 0] < -3
        if s.lines == 1:
            assert 2.0 < w / h < 9.0


def test_perspective_is_a_real_3d_rotation():
    persp = [_edge_skew(s.quad) for s in synthetic_set(20, seed=8, variations=["perspective"])]
    flat = [_edge_skew(s.quad) for s in synthetic_set(20, seed=8, variations=["clean"])]
    assert min(persp) > 0.5  # projected, not an affine jitter: opposite edges converge
    assert np.median(persp) > 3 * np.median(flat)


def test_lowres_plate_width(it_set):
    widths = [s.plate_width_px for s in synthetic_set(10, seed=9, variations=["lowres"])]
    assert all(55 <= w <= 95 for w in widths), widths


def test_occlusion_covers_at_most_15_percent_of_one_character():
    rng = np.random.default_rng(10)
    for _ in range(30):
        label, kind, lines = random_plate(rng, "IT", "car")
        look = synth.plate_look("IT", kind, label, rng)
        plate = synth.draw_plate(lines, "IT", kind, 120, rng, None, look)
        assert len(plate.boxes) == len(label)  # one box per label character
        before = plate.image.copy()
        i = synth._occlude(plate, rng)
        changed = np.abs(plate.image.astype(int) - before).max(2) > 0
        for j, (x0, y0, x1, y1) in enumerate(plate.boxes):
            box = changed[int(y0) : int(math.ceil(y1)), int(x0) : int(math.ceil(x1))]
            frac = box.mean()
            assert frac <= (0.17 if j == i else 0.05), (label, j, i, frac)


def test_missing_fonts_fall_back_to_hershey(monkeypatch):
    monkeypatch.setattr(synth_formats, "FONT_FILES", {name: ("/nonexistent/font.ttf",) for name in synth.FONT_FILES})
    samples = list(synthetic_set(4, seed=11, variations=["clean", "typeface"]))
    assert all(s.typeface.startswith("hershey") for s in samples)
    rng = np.random.default_rng(0)
    img = render_plate(["AB 123 CD"], "IT", "car", 60, rng, typeface="din")
    assert img.shape[0] == 60 and img.shape[1] > 200 and img.min() < 80


def test_render_scene_and_plate_api():
    rng = np.random.default_rng(12)
    s = render_scene(PlateSpec("AB123CD", ("AB 123 CD",)), rng)
    want = ("AB123CD", "IT", "car", 1, "clean", synth.resolve_typeface(None))
    assert (s.text, s.country, s.kind, s.lines, s.variation, s.typeface) == want
    assert 110 <= s.plate_width_px <= 250
    img = render_plate(["AB", "12345"], "IT", "motorcycle", 100, rng)
    assert img.shape[0] == 100 and 0.8 < img.shape[1] / 100 < 1.5
    with pytest.raises(ValueError):
        render_scene(PlateSpec("AB123CD", ("AB 123 CD",), variation="fog"), rng)


def test_the_test_setup_installs_every_typeface_package():
    """scripts/test.sh installs the evaluation's and the line recogniser's typefaces: without them
    the evaluation falls back to Hershey and the training-data tests skip."""
    from pathlib import Path

    from vigil.plates.synth import FONT_PACKAGES
    from vigil.plates.synth_formats import TRAIN_FONT_PACKAGES

    script = (Path(__file__).parents[2] / "scripts" / "test.sh").read_text()
    loop = script[script.index("for pkg in fonts-") : script.index("; do", script.index("for pkg in fonts-"))]
    installed = set(loop.replace("\\", " ").split()[3:])
    assert set(FONT_PACKAGES) | set(TRAIN_FONT_PACKAGES) <= installed
