"""Zones: named polygons on the ground plane (metres, the calibration's world frame).

:func:`make_zone` validates the vertices (finite, at least three, a simple polygon of positive
area) and raises :class:`ZoneError` naming the zone and the problem.
:func:`check_zone_visible` checks that a zone lies inside the area the camera sees (every
point of its boundary maps to a pixel inside the image, in front of the camera).

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

__all__ = ["Zone", "ZoneError", "make_zone", "check_zone_visible"]

#: polygons with at most this many edges (and no holes) are tested in numpy, larger ones by shapely
_NUMPY_MAX_EDGES = 64
#: a point this close to an edge (metres) counts as on the boundary, i.e. inside
_ON_EDGE_M = 1e-9


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


def check_zone_visible(
    zone: Zone, camera: "CameraModel", image_size: tuple[int, int] | None = None, step_m: float = 0.25
) -> None:
    """Raise :class:`ZoneError` unless every point of the zone's boundary (sampled every
    ``step_m``) projects to a finite pixel inside the image (``image_size`` or the camera's)."""
    from shapely.geometry import LineString  # noqa: PLC0415 - only cameras with zones load shapely

    size = image_size or getattr(camera, "image_size", None)
    ring = LineString(zone.polygon.exterior.coords)
    n = max(int(math.ceil(ring.length / step_m)), len(zone.vertices))
    pts = np.array([ring.interpolate(i / n, normalized=True).coords[0] for i in range(n)], np.float64)
    px = camera.ground_to_image(pts)
    bad = ~np.all(np.isfinite(px), axis=1)
    if size is not None:
        w, h = size
        with np.errstate(invalid="ignore"):
            bad |= (px[:, 0] < 0) | (px[:, 0] > w) | (px[:, 1] < 0) | (px[:, 1] > h)
    if np.any(bad):
        p = pts[np.flatnonzero(bad)[0]]
        raise ZoneError(
            f"zone {zone.name!r}: lies outside the calibrated area: ground point [{p[0]:.2f}, {p[1]:.2f}] m "
            f"({int(bad.sum())} of {len(pts)} boundary samples) is not visible in the image"
        )
