"""Dynamic risk per zone and the risk/occupancy heat map on a ground grid.

The model (formula and parameters in ``docs/risk.md``): every pair of people closer than
``cutoff_m`` contributes a proximity weight ``w(d) = exp(-d^2 / (2 sigma^2))`` (1 at contact,
0.61 at ``sigma``); a zone's proximity ``P(t)`` is the sum over its pairs. The exposure
``E`` follows ``dE/dt = P(t) - E / tau``, integrated exactly between frames with ``P`` held
at its latest value::

    E(t + dt) = E(t) * exp(-dt / tau) + P(t + dt) * tau * (1 - exp(-dt / tau))

(``dt`` in the input term is capped at ``max_gap_s``), so exposure rises while people stay
close and decays with time constant ``tau`` once they part. The risk level is
``L = 1 - exp(-E / e_ref)`` in ``[0, 1)``.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vigil.geometry.metrics import pairs_within

__all__ = ["RiskParams", "RiskModel", "proximity", "HeatMap", "compact_grid", "decode_compact_grid"]


@dataclass(frozen=True)
class RiskParams:
    """Parameters of the dynamic risk model (see module docstring and docs/risk.md)."""

    sigma_m: float = 1.0  #: proximity kernel width (metres)
    cutoff_m: float = 3.0  #: pairs farther than this contribute nothing (metres)
    tau_s: float = 120.0  #: exposure memory: time constant of rise and decay (seconds)
    e_ref: float = 60.0  #: exposure (pair-seconds at contact) that gives level 1 - 1/e = 0.63
    max_gap_s: float = 2.0  #: longest frame interval credited with proximity (seconds)

    def __post_init__(self) -> None:
        for name in ("sigma_m", "cutoff_m", "tau_s", "e_ref", "max_gap_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"risk parameter {name}: must be a finite number > 0, got {v!r}")


def proximity(world_xy: np.ndarray, params: RiskParams) -> tuple[float, np.ndarray]:
    """``(P, per_person)``: the total proximity of the points and each point's share
    (sum of the weights of its pairs; NaN rows get 0)."""
    xy = np.asarray(world_xy, np.float64).reshape(-1, 2)
    per = np.zeros(len(xy))
    if len(xy) < 2:
        return 0.0, per
    i, j, d = pairs_within(xy, params.cutoff_m)
    w = np.exp(-(d * d) / (2.0 * params.sigma_m**2))
    np.add.at(per, i, w)
    np.add.at(per, j, w)
    return float(w.sum()), per


class RiskModel:
    """Exposure and risk level for one zone (or the whole scene)."""

    def __init__(self, params: RiskParams | None = None) -> None:
        self.params = params or RiskParams()
        self.exposure = 0.0
        self.proximity = 0.0
        self._t: float | None = None

    @property
    def level(self) -> float:
        return 1.0 - math.exp(-self.exposure / self.params.e_ref)

    def update(self, now: float, proximity_value: float) -> float:
        """Advance to ``now`` with the frame's proximity ``P``; returns the risk level."""
        p = self.params
        now = float(now)
        if self._t is not None:
            dt = now - self._t
            if dt < 0:
                raise ValueError(f"timestamp went backwards ({now} < {self._t})")
            decay = math.exp(-dt / p.tau_s)
            gain = p.tau_s * (1.0 - math.exp(-min(dt, p.max_gap_s) / p.tau_s))
            self.exposure = self.exposure * decay + float(proximity_value) * gain
        self._t = now
        self.proximity = float(proximity_value)
        return self.level


class HeatMap:
    """Occupancy (person-seconds) and risk (proximity-weighted person-seconds) per ground cell.

    The grid covers ``[x_min, x_max) x [y_min, y_max)`` with square cells of ``cell_m``;
    arrays are ``(rows, cols)`` with row ``r`` = ``y_min + r * cell_m`` (y grows with the row).
    With ``decay_tau_s`` both layers fade with that time constant (a live map); without it
    they accumulate over the whole run. Points outside the grid or non-finite are counted in
    ``outside``.
    """

    def __init__(
        self,
        bounds: tuple[float, float, float, float],
        cell_m: float = 0.5,
        decay_tau_s: float | None = None,
        params: RiskParams | None = None,
    ) -> None:
        x0, x1, y0, y1 = (float(b) for b in bounds)
        if not all(math.isfinite(b) for b in (x0, x1, y0, y1)) or not (x1 > x0 and y1 > y0):
            raise ValueError(f"heat map bounds: expected finite x_min < x_max, y_min < y_max, got {bounds!r}")
        if not (math.isfinite(cell_m) and cell_m > 0):
            raise ValueError(f"heat map cell_m: must be > 0, got {cell_m!r}")
        self.bounds = (x0, x1, y0, y1)
        self.cell_m = float(cell_m)
        self.cols = int(math.ceil((x1 - x0) / cell_m))
        self.rows = int(math.ceil((y1 - y0) / cell_m))
        if self.rows * self.cols > 16_000_000:
            raise ValueError(f"heat map: {self.rows} x {self.cols} cells is too many; use a larger cell_m")
        self.decay_tau_s = decay_tau_s
        self.params = params or RiskParams()
        self.occupancy = np.zeros((self.rows, self.cols), np.float64)
        self.risk = np.zeros((self.rows, self.cols), np.float64)
        self.outside = 0
        self._t: float | None = None

    def cells(self, world_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row, col, inside)`` of each point."""
        xy = np.asarray(world_xy, np.float64).reshape(-1, 2)
        x0, _, y0, _ = self.bounds
        with np.errstate(invalid="ignore"):
            c = np.floor((xy[:, 0] - x0) / self.cell_m)
            r = np.floor((xy[:, 1] - y0) / self.cell_m)
            inside = np.isfinite(c) & np.isfinite(r) & (c >= 0) & (c < self.cols) & (r >= 0) & (r < self.rows)
        return np.where(inside, r, 0).astype(np.int64), np.where(inside, c, 0).astype(np.int64), inside

    def update(self, now: float, world_xy: np.ndarray) -> None:
        now = float(now)
        dt = 0.0 if self._t is None else now - self._t
        if dt < 0:
            raise ValueError(f"timestamp went backwards ({now} < {self._t})")
        self._t = now
        if self.decay_tau_s and dt > 0:
            f = math.exp(-dt / self.decay_tau_s)
            self.occupancy *= f
            self.risk *= f
        dt = min(dt, self.params.max_gap_s)
        xy = np.asarray(world_xy, np.float64).reshape(-1, 2)
        r, c, inside = self.cells(xy)
        self.outside += int((~inside).sum())
        if dt <= 0 or not np.any(inside):
            return
        _, per = proximity(xy, self.params)
        np.add.at(self.occupancy, (r[inside], c[inside]), dt)
        np.add.at(self.risk, (r[inside], c[inside]), per[inside] * dt)

    UNITS = {"occupancy": "person-seconds", "risk": "proximity-weighted person-seconds"}

    def compact(self, max_cells: int = 2500) -> dict:
        """Both layers as compact grids (:func:`compact_grid`) for a JSON event payload:
        ``{"occupancy": grid, "risk": grid}``; about ``2 * 1.34 * max_cells`` bytes."""
        x0, _, y0, _ = self.bounds
        return {
            name: compact_grid(arr, (x0, y0), self.cell_m, unit=self.UNITS[name], max_cells=max_cells)
            for name, arr in (("occupancy", self.occupancy), ("risk", self.risk))
        }

    def save(self, prefix: str | Path) -> dict[str, str]:
        """Write ``PREFIX.occupancy.npy``, ``PREFIX.risk.npy`` (float32, rows = y), the same as
        colour PNGs (north = y up), and ``PREFIX.grid.json`` (bounds, cell size)."""
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, arr in (("occupancy", self.occupancy), ("risk", self.risk)):
            npy = prefix.with_name(f"{prefix.name}.{name}.npy")
            np.save(npy, arr.astype(np.float32))
            out[f"{name}_npy"] = str(npy)
            png = prefix.with_name(f"{prefix.name}.{name}.png")
            top = float(arr.max())
            img = np.zeros(arr.shape, np.uint8) if top <= 0 else np.clip(255.0 * arr / top, 0, 255).astype(np.uint8)
            colour = cv2.applyColorMap(img[::-1], cv2.COLORMAP_JET)
            colour[img[::-1] == 0] = 0
            scale = max(1, int(round(400 / max(self.rows, self.cols))))
            colour = cv2.resize(colour, (self.cols * scale, self.rows * scale), interpolation=cv2.INTER_NEAREST)
            if not cv2.imwrite(str(png), colour):
                raise OSError(f"cannot write {png}")
            out[f"{name}_png"] = str(png)
        meta = prefix.with_name(f"{prefix.name}.grid.json")
        meta.write_text(
            json.dumps(
                {
                    "bounds_m": list(self.bounds),
                    "cell_m": self.cell_m,
                    "rows": self.rows,
                    "cols": self.cols,
                    "units": {"occupancy": "person-seconds", "risk": "proximity-weighted person-seconds"},
                }
            )
        )
        out["grid_json"] = str(meta)
        return out


def compact_grid(
    values: np.ndarray, origin_m: tuple[float, float], cell_m: float, *, unit: str = "", max_cells: int = 2500
) -> dict:
    """A ``(rows, cols)`` grid (row ``r`` at ``y = origin_y + r * cell_m``) as a small JSON object.

    Downsampled by summing ``k x k`` blocks (``k`` the smallest integer that leaves at most
    ``max_cells`` cells; the last row/column block may be partial) and quantised to 0-255
    against ``scale`` (the largest block value, what 255 means, in ``unit``). Keys:
    ``origin_m`` ``[x, y]``, ``cell_m`` (after downsampling), ``shape`` ``[rows, cols]``,
    ``downsample`` ``k``, ``scale``, ``unit``, ``encoding`` (``u8-b64``), ``data`` (base64 of
    the row-major bytes). Non-finite values count as 0. :func:`decode_compact_grid` reverses it.
    """
    if max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells!r}")
    arr = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if arr.ndim != 2:
        raise ValueError(f"compact_grid: expected a 2-D grid, got shape {arr.shape}")
    rows, cols = arr.shape
    k = max(1, int(math.ceil(math.sqrt(rows * cols / max_cells))))
    while math.ceil(rows / k) * math.ceil(cols / k) > max_cells:
        k += 1
    if k > 1:
        r2, c2 = math.ceil(rows / k), math.ceil(cols / k)
        pad = np.zeros((r2 * k, c2 * k))
        pad[:rows, :cols] = arr
        arr = pad.reshape(r2, k, c2, k).sum(axis=(1, 3))
    top = float(arr.max()) if arr.size else 0.0
    if top > 0:
        q = np.clip(np.rint(255.0 * np.clip(arr, 0, None) / top), 0, 255).astype(np.uint8)
    else:
        top, q = 0.0, np.zeros(arr.shape, np.uint8)
    return {
        "origin_m": [round(float(origin_m[0]), 3), round(float(origin_m[1]), 3)],
        "cell_m": round(float(cell_m) * k, 4),
        "shape": [int(arr.shape[0]), int(arr.shape[1])],
        "downsample": k,
        "scale": float(f"{top:.6g}"),
        "unit": unit,
        "encoding": "u8-b64",
        "data": base64.b64encode(q.tobytes()).decode("ascii"),
    }


def decode_compact_grid(grid: dict) -> np.ndarray:
    """The ``(rows, cols)`` float values of a :func:`compact_grid` object (``q / 255 * scale``)."""
    if grid.get("encoding") != "u8-b64":
        raise ValueError(f"unknown grid encoding {grid.get('encoding')!r}")
    rows, cols = (int(v) for v in grid["shape"])
    raw = np.frombuffer(base64.b64decode(grid["data"]), np.uint8)
    if raw.size != rows * cols:
        raise ValueError(f"grid data holds {raw.size} cells, shape says {rows} x {cols}")
    return raw.reshape(rows, cols).astype(np.float64) * (float(grid["scale"]) / 255.0)
