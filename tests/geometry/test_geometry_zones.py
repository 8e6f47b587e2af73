"""Zones: the numpy point-in-polygon test agrees with shapely, boundary included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from vigil.geometry.zones import make_zone

SHAPES = {
    "square": [(0, 0), (4, 0), (4, 4), (0, 4)],
    "concave": [(0, 0), (6, 0), (6, 5), (3, 2), (0, 5)],
    "clockwise": [(0, 0), (0, 3), (2, 5), (5, 1)],
    "many": [(10 * math.cos(a), 10 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 101)[:-1]],  # shapely path
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_contains_agrees_with_shapely_inside_outside_and_on_the_boundary(name):
    zone = make_zone(name, SHAPES[name])
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = zone.polygon.bounds
    pts = [rng.uniform([x0 - 2, y0 - 2], [x1 + 2, y1 + 2], (3000, 2))]
    v = np.asarray(SHAPES[name], np.float64)
    w = np.roll(v, -1, axis=0)
    pts += [v, (v + w) / 2, v + 0.3 * (w - v)]  # vertices and points on the edges: inside
    pts += [np.array([[x0 - 1, y0], [x1 + 1e-6, y1], [np.nan, 1.0], [1.0, np.inf]])]
    xy = np.concatenate(pts)
    got = zone.contains(xy)
    # off the boundary: exactly shapely's answer (random points are never within 1e-9 m of an edge)
    off = np.r_[np.arange(3000), np.arange(len(xy) - 4, len(xy))]
    want = np.zeros(len(off), bool)
    q = xy[off]
    ok = np.all(np.isfinite(q), axis=1)
    want[ok] = shapely.intersects_xy(zone.polygon, q[ok, 0], q[ok, 1])
    np.testing.assert_array_equal(got[off], want)
    # on the boundary (vertices, points along the edges): inside, also where the point computed in floating
    # point lands 1e-17 m outside the edge and shapely's exact predicate says no (the shapely path)
    on = got[3000 : 3000 + 3 * len(v)]
    assert on.all() or (len(v) > 64 and on.mean() > 0.5)
    assert zone.contains(np.zeros((0, 2))).shape == (0,)
