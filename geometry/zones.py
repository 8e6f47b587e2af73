"""Zones: named polygons on the ground plane (metres, the calibration's world frame).

:func:`make_zone` validates the vertices (finite, at least three, a simple polygon of positive
area) and raises :class:`ZoneError` naming the zone and the problem.
:func:`zone_coverage` measures how much of a zone lies on the ground the camera sees (the
calibrated image rectangle projected onto the ground plane, in front of the camera, within
:data:`DEFAULT_MAX_RANGE_M` of it: :func:`visible_on_ground`); :func:`check_zone_visible`
refuses a zone with less than :data:`MIN_VISIBLE_FRACTION` of its area there. A zone partly
outside is allowed (``vigil check-config`` warns); :func:`line_coverage` does the same for a
queue line's length.

shapely is imported where a zone is made or used, not with this module: the rules import this
module in every camera worker, and a camera without zones then does not load shapely (about
3 MiB of resident memory per worker; bench/README.md, "Memory per camera").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from shapely.geometry import Polygon

    from vigil.geometry.camera import CameraModel

__all__ = [
    "Zone",
    "ZoneError",
    "make_zone",
    "check_zone_visible",
    "zone_coverage",
    "line_coverage",
    "visible_on_ground",
    "DEFAULT_MAX_RANGE_M",
    "MIN_VISIBLE_FRACTION",
]

#: polygons with at most this many edges (and no holes) are tested in numpy, larger ones by shapely
_NUMPY_MAX_EDGES = 64
#: a point this close to an edge (metres) counts as on the boundary, i.e. inside
_ON_EDGE_M = 1e-9
#: ground farther than this from the camera (metres) counts as not seen: near the horizon a pixel
#: spans metres of ground, and no rule measures people there
DEFAULT_MAX_RANGE_M = 100.0
#: a zone needs at least this fraction of its area on the ground the camera sees
MIN_VISIBLE_FRACTION = 0.5


class ZoneError(ValueError):
    """A zone is malformed, degenerate, or outside the calibrated area."""


@dataclass(frozen=True, eq=False)
class Zone:
    """A named ground polygon. ``contains(xy)`` is vectorised; NaN rows are outside."""

    name: str
    polygon: Polygon
    area_m2: float = field(init=False)

    def __post_init__(self) -> None:
        import shapely  # noqa: PLC0415 - only cameras with zones load shapely (module docstring)

        object.__setattr__(self, "area_m2", float(self.polygon.area))
        shapely.prepare(self.polygon)
        v = np.asarray(self.polygon.exterior.coords, np.float64)
        edges = None
        if len(self.polygon.interiors) == 0 and len(v) - 1 <= _NUMPY_MAX_EDGES:
            edges = (v[:-1], v[1:])  # (E, 2) start and end of each edge, metres
        object.__setattr__(self, "_edges", edges)
        object.__setattr__(self, "_bounds", np.asarray(self.polygon.bounds, np.float64))

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """``(N,) bool``: which ``(N, 2)`` ground points lie inside or on the boundary.

        A polygon without holes of at most :data:`_NUMPY_MAX_EDGES` edges is tested in numpy (the
        points inside its bounding box; even-odd crossings of a ray in +x, plus the points on an
        edge within 1e-9 m), which is several times cheaper than building a shapely point per row;
        other polygons go through shapely's prepared ``intersects_xy``. Both agree (tests).
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        out = np.zeros(len(xy), bool)
        if len(xy) == 0:
            return out
        x, y = xy[:, 0], xy[:, 1]
        x0, y0, x1, y1 = self._bounds
        with np.errstate(invalid="ignore"):
            box = (x >= x0 - _ON_EDGE_M) & (x <= x1 + _ON_EDGE_M) & (y >= y0 - _ON_EDGE_M) & (y <= y1 + _ON_EDGE_M)
        rows = np.flatnonzero(box)  # NaN rows fail every comparison: outside
        if not len(rows):
            return out
        px, py = x[rows], y[rows]
        if self._edges is None:
            import shapely  # noqa: PLC0415 - only cameras with zones load shapely

            out[rows] = shapely.intersects_xy(self.polygon, px, py)
            return out
        a, b = self._edges
        inside = np.zeros(len(rows), bool)
        on_edge = np.zeros(len(rows), bool)
        for (ax, ay), (bx, by) in zip(a.tolist(), b.tolist()):
            dx, dy = bx - ax, by - ay
            crosses = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                xc = ax + (py - ay) * dx / dy
            inside ^= crosses & (px < xc)
            length = math.hypot(dx, dy)
            cross = (px - ax) * dy - (py - ay) * dx  # length times the distance to the edge's line
            t = (px - ax) * dx + (py - ay) * dy
            on_edge |= (
                (np.abs(cross) <= _ON_EDGE_M * length)
                & (t >= -_ON_EDGE_M * length)
                & (t <= length * length + _ON_EDGE_M * length)
            )
        out[rows] = inside | on_edge
        return out

    @property
    def vertices(self) -> np.ndarray:
        return np.asarray(self.polygon.exterior.coords, np.float64)[:-1]


def make_zone(name: str, vertices: Sequence[Sequence[float]]) -> Zone:
    """Validate ``vertices`` ``[[x, y], ...]`` (metres) into a :class:`Zone`."""
    from shapely.geometry import Polygon  # noqa: PLC0415 - only cameras with zones load shapely
    from shapely.validation import explain_validity  # noqa: PLC0415

    try:
        v = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError):
        raise ZoneError(f"zone {name!r}: vertices are not numeric") from None
    if v.ndim != 2 or v.shape[1] != 2:
        raise ZoneError(f"zone {name!r}: expected vertices of shape (N, 2), got {v.shape}")
    if len(v) < 3:
        raise ZoneError(f"zone {name!r}: needs at least 3 vertices, got {len(v)}")
    if not np.all(np.isfinite(v)):
        raise ZoneError(f"zone {name!r}: vertices must be finite numbers")
    poly = Polygon(v)
    if not poly.is_valid:
        raise ZoneError(
            f"zone {name!r}: polygon is self-intersecting or not simple ({explain_validity(poly)}); "
            "vertices must go around the zone once without crossing"
        )
    if not poly.area > 0:
        raise ZoneError(f"zone {name!r}: polygon has zero area")
    return Zone(name, poly)


def _camera_foot(camera: "CameraModel", size: tuple[int, int] | None) -> np.ndarray | None:
    """The ground point (metres) ranges are measured from: below the camera centre when the model
    knows it (Tsai, pinhole), else the ground seen at the bottom centre of the image (homography)."""
    centre = getattr(camera, "centre_m", None)
    if centre is None:
        centre = getattr(camera, "centre", None)
    if centre is not None:
        c = np.asarray(centre, np.float64).reshape(-1)
        if c.size >= 2 and np.all(np.isfinite(c[:2])):
            return c[:2]
    if size is None:
        return None
    g = camera.image_to_ground(np.array([[size[0] / 2.0, size[1] - 1.0]]))[0]
    return g if np.all(np.isfinite(g)) else None


def visible_on_ground(
    points_m: np.ndarray,
    camera: "CameraModel",
    image_size: tuple[int, int] | None = None,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
) -> np.ndarray:
    """``(N,) bool``: which ``(N, 2)`` ground points (metres) the camera sees: they project in front
    of the camera to a pixel inside the image (``image_size`` ``(width, height)`` pixels, or the
    camera's; none known: any finite pixel) and lie within ``max_range_m`` of the camera's foot
    point (:func:`_camera_foot`; the horizon clip)."""
    pts = np.asarray(points_m, np.float64).reshape(-1, 2)
    size = image_size or getattr(camera, "image_size", None)
    px = camera.ground_to_image(pts)
    ok = np.isfinite(px[:, 0]) & np.isfinite(px[:, 1])
    if size is not None:
        w, h = size
        with np.errstate(invalid="ignore"):
            ok &= (px[:, 0] >= 0) & (px[:, 0] <= w) & (px[:, 1] >= 0) & (px[:, 1] <= h)
    foot = _camera_foot(camera, size)
    if foot is not None:
        ok &= np.hypot(pts[:, 0] - foot[0], pts[:, 1] - foot[1]) <= max_range_m
    return ok


def zone_coverage(
    zone: Zone,
    camera: "CameraModel",
    image_size: tuple[int, int] | None = None,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    grid: int = 80,
) -> float:
    """Fraction (0-1) of the zone's area on the ground the camera sees (:func:`visible_on_ground`),
    estimated on a ``grid`` x ``grid`` lattice over the zone's bounding box (its points inside the
    zone; a zone too thin for the lattice is measured on its boundary)."""
    x0, y0, x1, y1 = zone.polygon.bounds
    xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
    ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
    gx, gy = np.meshgrid(xs, ys)
    pts = np.c_[gx.ravel(), gy.ravel()]
    pts = pts[zone.contains(pts)]
    if len(pts) < 10:
        pts = _ring_samples(zone, 0.05)
    return float(np.count_nonzero(visible_on_ground(pts, camera, image_size, max_range_m))) / len(pts)


def line_coverage(
    line_m: Sequence[Sequence[float]],
    camera: "CameraModel",
    image_size: tuple[int, int] | None = None,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    samples: int = 200,
) -> float:
    """Fraction (0-1) of a ground segment ``[[x, y], [x, y]]`` (metres) the camera sees."""
    a, b = (np.asarray(p, np.float64) for p in line_m)
    t = (np.arange(samples) + 0.5)[:, None] / samples
    pts = a + t * (b - a)
    return float(np.count_nonzero(visible_on_ground(pts, camera, image_size, max_range_m))) / samples


def _ring_samples(zone: Zone, step_m: float) -> np.ndarray:
    from shapely.geometry import LineString  # noqa: PLC0415 - only cameras with zones load shapely

    ring = LineString(zone.polygon.exterior.coords)
    n = min(max(int(math.ceil(ring.length / step_m)), len(zone.vertices)), 4000)
    return np.array([ring.interpolate(i / n, normalized=True).coords[0] for i in range(n)], np.float64)


def check_zone_visible(
    zone: Zone,
    camera: "CameraModel",
    image_size: tuple[int, int] | None = None,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
) -> float:
    """The zone's :func:`zone_coverage`; raises :class:`ZoneError` when it is below
    :data:`MIN_VISIBLE_FRACTION` (the zone lies mostly where the camera sees no ground)."""
    frac = zone_coverage(zone, camera, image_size, max_range_m)
    if frac < MIN_VISIBLE_FRACTION:
        raise ZoneError(
            f"zone {zone.name!r}: lies outside the calibrated area: only {100 * frac:.0f} % of its "
            f"{zone.area_m2:.1f} m^2 is on the ground the camera sees (at least {100 * MIN_VISIBLE_FRACTION:.0f} % "
            f"must be; the image projected to the ground, within {max_range_m:g} m)"
        )
    return frac
