"""Ground-plane state per track: a constant-velocity Kalman filter in the world frame (metres).

State per track ``s = (x, y, vx, vy)`` (m, m/s), covariance ``P`` (4x4). Between two times ``dt``
seconds apart the state follows ``x += vx dt`` (``F``), disturbed by white-noise acceleration of
spectral density ``q`` = ``accel_noise_m2_s3`` (m^2/s^3) per axis, so that per axis
``Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]`` (the continuous model discretised exactly). The
measurement is the ground position ``z = (x, y)`` with covariance ``R`` (m^2), from
:func:`~vigil.geometry.uncertainty.ground_and_covariance`: the foot pixel's uncertainty propagated
through the camera's image -> ground Jacobian, so a far person (many metres per pixel) weighs less.

:class:`GroundFilter` is vectorised over tracks: one :meth:`GroundFilter.update` per frame predicts
every known track to the frame time, updates the measured ones, starts tracks for new ids (births:
position from the measurement, velocity 0 with ``init_speed_sigma_m_s``), predicts only for ids
without a measurement (missed frames: the covariance grows), re-starts a track whose measurement
fails the chi-square gate ``gate_chi2`` (an outlier: kept out, the track predicted, for up to ``max_outliers``
frames in a row; one more and it is an identity switch: the track starts again from the measurement),
and forgets tracks not measured for ``forget_after_s``.

:class:`GroundEstimator` is the per-camera stage: occlusion-aware feet (:mod:`vigil.geometry.feet`),
the pixel sigma ``max(sigma_px, sigma_box_fraction * box height)`` (larger boxes are nearer and
their bottom edge less precise in pixels; a corrected foot gets ``corrected_sigma_factor`` times
it), ``R``, and the filter.
"""

from __future__ import annotations

import numpy as np

from .camera import CameraModel
from .feet import TrackHeights, estimate_feet
from .uncertainty import ground_and_covariance

__all__ = ["GroundEstimator", "GroundFilter"]


class GroundFilter:
    """Constant-velocity Kalman filters for many tracks (see the module docstring); units m, s.

    The tracks are kept tracks-last in one ``(20, K)`` array (rows 0-3 the states, rows 4-19 the
    covariances, row-major) so that every step is a handful of array operations on contiguous ``(K,)``
    rows (a frame that measures every track updates them in place, others gather and scatter the
    measured ones once); :attr:`x` and :attr:`P` show them per track.
    """

    def __init__(
        self,
        accel_noise_m2_s3: float = 1.0,
        init_speed_sigma_m_s: float = 1.5,
        forget_after_s: float = 2.0,
        gate_chi2: float = 28.0,
        max_outliers: int = 1,
    ) -> None:
        if not accel_noise_m2_s3 >= 0 or not init_speed_sigma_m_s > 0 or not forget_after_s > 0:
            raise ValueError("accel_noise_m2_s3 >= 0, init_speed_sigma_m_s > 0 and forget_after_s > 0 are required")
        if max_outliers < 0:
            raise ValueError(f"max_outliers: expected >= 0, got {max_outliers}")
        self.q = float(accel_noise_m2_s3)
        self.v0 = float(init_speed_sigma_m_s)
        self.forget_after_s = float(forget_after_s)
        self.gate_chi2 = float(gate_chi2)
        self.max_outliers = int(max_outliers)
        self.ids = np.zeros(0, np.int64)  # (K,) track ids, sorted
        self.outliers = np.zeros(0, np.int64)  # (K,) consecutive measurements that failed the gate
        self._s = np.zeros((20, 0))  # (20, K) states at self.t (rows 0-3) and their covariances (rows 4-19)
        self.t_seen = np.zeros(0)  # (K,) time of the last measurement, s
        self.t: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def x(self) -> np.ndarray:
        """``(K, 4)`` states ``(x, y, vx, vy)`` (m, m/s) of the tracks in :attr:`ids` order at :attr:`t` (a view)."""
        return self._s[:4].T

    @property
    def P(self) -> np.ndarray:
        """``(K, 4, 4)`` covariances of :attr:`x` (a view)."""
        return _cov(self._s).transpose(2, 0, 1)

    def _predict(self, dt: float) -> None:
        """``x = F x``, ``P = F P F^T + Q`` over all tracks, ``F`` and ``Q`` written out."""
        if dt <= 0 or not len(self.ids):
            return
        x, P, q = self._s[:4], _cov(self._s), self.q
        x[:2] += dt * x[2:]
        P[:2] += dt * P[2:]  # F P: position rows += dt * velocity rows
        P[:, :2] += dt * P[:, 2:]  # (F P) F^T: position columns += dt * velocity columns
        q3, q2, q1 = q * dt**3 / 3.0, q * dt**2 / 2.0, q * dt
        for i in (0, 1):
            P[i, i] += q3
            P[i, i + 2] += q2
            P[i + 2, i] += q2
            P[i + 2, i + 2] += q1

    def _start(self, z: np.ndarray, R: np.ndarray) -> np.ndarray:
        """``(20, M)`` tracks at ``z (2, M)`` m, covariance ``R (2, 2, M)`` m^2, speed 0 (sigma ``v0``)."""
        s = np.zeros((20, z.shape[1]))
        s[:2] = z
        P = _cov(s)
        P[:2, :2] = R
        P[2, 2] = P[3, 3] = self.v0**2
        return s

    def _births(self, ids: np.ndarray, z: np.ndarray, R: np.ndarray, t_s: float) -> None:
        all_ids = np.concatenate([self.ids, ids])
        order = np.argsort(all_ids, kind="stable")
        self.ids = all_ids[order]
        self._s = np.concatenate([self._s, self._start(z, R)], axis=1).take(order, axis=1)
        self.t_seen = np.concatenate([self.t_seen, np.full(len(ids), t_s)])[order]
        self.outliers = np.concatenate([self.outliers, np.zeros(len(ids), np.int64)])[order]

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in :attr:`ids` of ``ids (N,)`` and whether each is a known track ``(N,) bool``."""
        pos = np.searchsorted(self.ids, ids)
        if not len(self.ids):
            return pos, np.zeros(len(ids), bool)
        return pos, self.ids[np.minimum(pos, len(self.ids) - 1)] == ids

    def update(
        self, t_s: float, track_ids: np.ndarray, z: np.ndarray, R: np.ndarray, measured: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame at time ``t_s`` seconds: ``track_ids (N,)`` distinct, ``z (N, 2)`` metres, ``R (N, 2, 2)``
        m^2, ``measured (N,) bool`` (False: report the prediction only, e.g. a coasting track; a row with a
        non-finite ``z`` counts as unmeasured). Returns the filtered positions ``(N, 2)`` m, their
        covariances ``(N, 2, 2)`` m^2 and velocities ``(N, 2)`` m/s (NaN for an unmeasured unknown id)."""
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        n = len(ids)
        z = np.asarray(z, np.float64).reshape(n, 2)
        R = np.asarray(R, np.float64).reshape(n, 2, 2)
        zT, RT = np.ascontiguousarray(z.T), np.ascontiguousarray(R.reshape(n, 4).T)  # (2, N), (4, N)
        meas = np.isfinite(zT[0]) & np.isfinite(zT[1])
        for row in RT:
            meas &= np.isfinite(row)
        if measured is not None:
            meas &= np.asarray(measured, bool).reshape(n)
        if len(np.unique(ids)) != n:
            raise ValueError("GroundFilter.update: track_ids must be distinct")
        if self.t is not None:
            if t_s < self.t:
                raise ValueError(f"GroundFilter.update: time went backwards ({t_s} < {self.t})")
            self._predict(t_s - self.t)
        self.t = t_s
        pos, known = self._find(ids)
        upd = known & meas
        if np.all(upd) and n == len(self.ids):  # every track measured: update in place, measurements in track order
            k, s = slice(None), self._s
            zu, Ru = np.empty_like(zT), np.empty_like(RT)
            zu[:, pos], Ru[:, pos] = zT, RT
        elif np.any(upd):
            sel = np.flatnonzero(upd)
            k = pos[sel]
            s, zu, Ru = self._s.take(k, axis=1), zT.take(sel, axis=1), RT.take(sel, axis=1)
        else:
            k = None
        if k is not None:
            prior = s.copy() if self.max_outliers else None
            d2 = _kalman_update(s, zu, Ru.reshape(2, 2, -1))
            jump = d2 > self.gate_chi2
            count = np.where(jump, self.outliers[k] + 1, 0)
            if np.any(jump):
                # a measurement far outside the prediction: an outlier (a box merged with a neighbour for a
                # frame), kept out while at most max_outliers in a row; then an identity switch: start again
                skip = jump & (count <= self.max_outliers)
                restart = jump & ~skip
                if np.any(skip):
                    s[:, skip] = prior[:, skip]
                if np.any(restart):
                    s[:, restart] = self._start(zu[:, restart], Ru[:, restart].reshape(2, 2, -1))
                    count[restart] = 0
            if s is not self._s:
                self._s[:, k] = s
            self.outliers[k] = count
            self.t_seen[k] = t_s
        born = ~known & meas
        moved = bool(np.any(born))
        if moved:
            self._births(ids[born], zT[:, born], RT[:, born].reshape(2, 2, -1), t_s)
        alive = (t_s - self.t_seen) <= self.forget_after_s
        if not np.all(alive):
            moved = True
            keep = np.flatnonzero(alive)
            self.ids, self.t_seen, self._s = self.ids[keep], self.t_seen[keep], self._s.take(keep, axis=1)
            self.outliers = self.outliers[keep]
        if moved:
            pos, known = self._find(ids)
        every = bool(np.all(known))
        k = pos if every else pos[known]
        x, c = self._s[:4].take(k, axis=1), self._s[4:10].take(k, axis=1)  # c: rows P00 P01 P02 P03 P10 P11
        out_xy, out_v, out_cov = np.empty((n, 2)), np.empty((n, 2)), np.empty((n, 2, 2))
        if not every:
            out_xy[:], out_v[:], out_cov[:] = np.nan, np.nan, np.nan
        rows = slice(None) if every else known
        out_xy[rows], out_v[rows] = x[:2].T, x[2:].T
        for i, j, r in ((0, 0, 0), (0, 1, 1), (1, 0, 4), (1, 1, 5)):
            out_cov[rows, i, j] = c[r]
        return out_xy, out_cov, out_v

    def reset(self) -> None:
        self.__init__(self.q, self.v0, self.forget_after_s, self.gate_chi2, self.max_outliers)


def _cov(s: np.ndarray) -> np.ndarray:
    """``(4, 4, M)`` view of the covariance rows of a ``(20, M)`` track array."""
    return s[4:].reshape(4, 4, -1)


def _kalman_update(s: np.ndarray, z: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Measurement update, in place, of ``M`` tracks ``s (20, M)`` (states and covariances, tracks last) with
    ``H = [I 0]``, positions ``z (2, M)`` m with covariances ``R (2, 2, M)`` m^2; the covariance in Joseph form
    ``(I - K H) P (I - K H)^T + K R K^T``. Returns the squared Mahalanobis distances ``d2 (M,)`` of the
    innovations. ``S^-1`` is the closed-form 2x2 inverse; each matrix product is two broadcast products, and
    the temporaries are kept few (large short-lived arrays cost page faults on every frame).
    """
    x, P = s[:4], _cov(s)
    y = z - x[:2]  # (2, M)
    S = P[:2, :2] + R
    det = S[0, 0] * S[1, 1] - S[0, 1] * S[1, 0]
    Si = np.empty_like(S)
    Si[0, 0], Si[0, 1], Si[1, 0], Si[1, 1] = S[1, 1] / det, -S[0, 1] / det, -S[1, 0] / det, S[0, 0] / det
    Sy = Si[:, 0] * y[0] + Si[:, 1] * y[1]  # (2, M) S^-1 y
    d2 = y[0] * Sy[0] + y[1] * Sy[1]
    K = _mul_x2(P[:, :2], Si)  # (4, 2, M) P H^T S^-1
    x += K[:, 0] * y[0] + K[:, 1] * y[1]
    A = _mul_x2(K, P[:2])
    np.subtract(P, A, out=A)  # (I - K H) P
    D = _mul_x2(K, R)
    D -= A[:, :2]  # K R - (I - K H) P H^T
    np.multiply(D[:, 0:1], K[:, 0][None], out=P)
    P += D[:, 1:2] * K[:, 1][None]
    P += A  # A (I - K H)^T + K R K^T = A + (K R - A H^T) K^T
    return d2


def _mul_x2(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Per-track ``A @ B`` for ``A (r, 2, M)`` and ``B (2, c, M)`` (tracks last) -> ``(r, c, M)``."""
    return A[:, 0:1] * B[0][None] + A[:, 1:2] * B[1][None]


class GroundEstimator:
    """Per-camera ground stage: feet -> pixel sigma -> ground covariance -> filter (module docstring).

    ``person_class_ids``: the classes the occlusion rule and the height prior apply to (people);
    other classes keep their box bottom centre. Each option mirrors the ``tracker.ground`` config.
    """

    def __init__(
        self,
        camera: CameraModel,
        person_class_ids,
        *,
        filter: bool = True,
        occlusion_feet: bool = True,
        height_prior_m: float = 1.75,
        min_person_height_m: float = 1.5,
        max_person_height_m: float | None = 2.0,
        use_track_height: bool = True,
        sigma_px: float = 2.0,
        sigma_box_fraction: float = 0.02,
        corrected_sigma_factor: float = 2.0,
        accel_noise_m2_s3: float = 1.0,
        forget_after_s: float = 2.0,
        max_outliers: int = 1,
    ) -> None:
        self.camera = camera
        self.person = np.asarray(list(person_class_ids), np.int64)
        self.use_filter = filter
        self.occlusion_feet = occlusion_feet
        self.height_prior_m = height_prior_m
        self.min_person_height_m = min_person_height_m
        self.max_person_height_m = max_person_height_m
        self.use_track_height = use_track_height
        self.sigma_px = sigma_px
        self.sigma_box_fraction = sigma_box_fraction
        self.corrected_sigma_factor = corrected_sigma_factor
        self.filter = GroundFilter(accel_noise_m2_s3, forget_after_s=forget_after_s, max_outliers=max_outliers)
        self.heights = TrackHeights(forget_after_s=forget_after_s)

    @classmethod
    def from_config(cls, camera: CameraModel, person_class_ids, cfg) -> "GroundEstimator":
        """From an object with the ``tracker.ground`` config's attributes."""
        return cls(
            camera,
            person_class_ids,
            filter=cfg.filter,
            occlusion_feet=cfg.occlusion_feet,
            height_prior_m=cfg.height_prior_m,
            min_person_height_m=cfg.min_person_height_m,
            max_person_height_m=cfg.max_person_height_m,
            use_track_height=cfg.use_track_height,
            sigma_px=cfg.sigma_px,
            sigma_box_fraction=cfg.sigma_box_fraction,
            corrected_sigma_factor=cfg.corrected_sigma_factor,
            accel_noise_m2_s3=cfg.accel_noise_m2_s3,
            forget_after_s=cfg.forget_after_s,
            max_outliers=cfg.outlier_frames,
        )

    def update(
        self,
        t_s: float,
        track_ids: np.ndarray,
        xyxy: np.ndarray,
        class_id: np.ndarray,
        image_size: tuple[int, int] | None = None,
        measured: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """One frame at ``t_s`` seconds: ``track_ids (N,)``, boxes ``xyxy (N, 4)`` pixels, ``class_id (N,)``,
        ``image_size`` ``(width, height)`` pixels (default: the calibration's), ``measured (N,) bool``
        (False for coasting rows). Returns ``Detections.data`` extras: ``world_xy (N, 2)`` metres,
        ``world_cov (N, 2, 2)`` m^2, ``foot_corrected (N,) bool``, ``foot_reason (N,) uint8`` and
        ``foot_px (N, 2)`` pixels (the foot point used: the box bottom centre, or the estimate where
        ``foot_corrected``)."""
        b = np.asarray(xyxy, np.float64).reshape(-1, 4)
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        n = len(b)
        if n == 0 and not self.use_filter:
            return _empty()
        size = image_size if image_size is not None else self.camera.image_size
        box_h = b[:, 3] - b[:, 1]  # (N,) pixels
        foot = np.empty((n, 2))
        foot[:, 0], foot[:, 1] = (b[:, 0] + b[:, 2]) / 2.0, b[:, 3]
        reason = np.zeros(n, np.uint8)
        corrected = np.zeros(n, bool)
        cls = np.asarray(class_id).reshape(-1)
        people = cls == self.person[0] if len(self.person) == 1 else np.isin(cls, self.person)
        if self.occlusion_feet and np.any(people):
            every = bool(np.all(people))  # the common case: no masks to apply
            sel = slice(None) if every else people
            ids_p = ids if every else ids[people]
            est = estimate_feet(
                b if every else b[people],
                size,
                self.camera,
                self.heights.get(ids_p),
                height_m=self.height_prior_m,
                min_height_m=self.min_person_height_m,
                max_height_m=self.max_person_height_m,
                use_track_height=self.use_track_height,
            )
            foot[sel], reason[sel], corrected[sel] = est.foot_px, est.reason, est.corrected
            ok = est.reason == 0
            if measured is not None:
                ok &= np.asarray(measured, bool).reshape(-1)[sel]
            self.heights.update(t_s, ids_p, box_h[sel], ok)
        sigma = np.maximum(self.sigma_px, self.sigma_box_fraction * box_h)
        sigma = np.where(corrected, sigma * self.corrected_sigma_factor, sigma)
        z, R = ground_and_covariance(self.camera, foot, sigma) if n else (np.zeros((0, 2)), np.zeros((0, 2, 2)))
        if self.use_filter:
            xy, cov, _ = self.filter.update(t_s, ids, z, R, measured)
        else:
            xy, cov = z, R
        return {"world_xy": xy, "world_cov": cov, "foot_corrected": corrected, "foot_reason": reason, "foot_px": foot}


def _empty() -> dict[str, np.ndarray]:
    return {
        "world_xy": np.zeros((0, 2)),
        "world_cov": np.zeros((0, 2, 2)),
        "foot_corrected": np.zeros(0, bool),
        "foot_reason": np.zeros(0, np.uint8),
        "foot_px": np.zeros((0, 2)),
    }
