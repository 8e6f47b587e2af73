"""Ground-plane state per track: a constant-velocity Kalman filter in the world frame (metres).

State per track ``s = (x, y, vx, vy)`` (m, m/s), covariance ``P`` (4x4). Between two times ``dt``
seconds apart the state follows ``x += vx dt`` (``F``), disturbed by white-noise acceleration of
spectral density ``q`` = ``accel_noise_m2_s3`` (m^2/s^3) per axis, so that per axis
``Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]`` (the continuous model discretised exactly). The
measurement is the ground position ``z = (x, y)`` with covariance ``R`` (m^2), from
:func:`~vigil.geometry.uncertainty.ground_covariance`: the foot pixel's uncertainty propagated
through the camera's image -> ground Jacobian, so a far person (many metres per pixel) weighs less.

:class:`GroundFilter` is vectorised over tracks: one :meth:`GroundFilter.update` per frame predicts
every known track to the frame time, updates the measured ones, starts tracks for new ids (births:
position from the measurement, velocity 0 with ``init_speed_sigma_m_s``), predicts only for ids
without a measurement (missed frames: the covariance grows), re-starts a track whose measurement
fails the chi-square gate (an identity switch), and forgets tracks not measured for ``forget_after_s``.

:class:`GroundEstimator` is the per-camera stage: occlusion-aware feet (:mod:`vigil.geometry.feet`),
the pixel sigma ``max(sigma_px, sigma_box_fraction * box height)`` (larger boxes are nearer and
their bottom edge less precise in pixels; a corrected foot gets ``corrected_sigma_factor`` times
it), ``R``, and the filter.
"""

from __future__ import annotations

import numpy as np

from .camera import CameraModel
from .feet import TrackHeights, estimate_feet
from .uncertainty import ground_covariance

__all__ = ["GroundEstimator", "GroundFilter"]

_I4 = np.eye(4)


class GroundFilter:
    """Constant-velocity Kalman filters for many tracks (see the module docstring); units m, s."""

    def __init__(
        self,
        accel_noise_m2_s3: float = 1.0,
        init_speed_sigma_m_s: float = 1.5,
        forget_after_s: float = 2.0,
        gate_chi2: float = 28.0,
    ) -> None:
        if not accel_noise_m2_s3 >= 0 or not init_speed_sigma_m_s > 0 or not forget_after_s > 0:
            raise ValueError("accel_noise_m2_s3 >= 0, init_speed_sigma_m_s > 0 and forget_after_s > 0 are required")
        self.q = float(accel_noise_m2_s3)
        self.v0 = float(init_speed_sigma_m_s)
        self.forget_after_s = float(forget_after_s)
        self.gate_chi2 = float(gate_chi2)
        self.ids = np.zeros(0, np.int64)  # (K,) track ids, sorted
        self.x = np.zeros((0, 4))  # (K, 4) state at self.t
        self.P = np.zeros((0, 4, 4))  # (K, 4, 4)
        self.t_seen = np.zeros(0)  # (K,) time of the last measurement, s
        self.t: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def _predict(self, dt: float) -> None:
        if dt <= 0 or not len(self.ids):
            return
        F = _I4.copy()
        F[0, 2] = F[1, 3] = dt
        q = self.q
        Q = np.zeros((4, 4))
        Q[0, 0] = Q[1, 1] = q * dt**3 / 3.0
        Q[0, 2] = Q[2, 0] = Q[1, 3] = Q[3, 1] = q * dt**2 / 2.0
        Q[2, 2] = Q[3, 3] = q * dt
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + Q

    def _births(self, ids: np.ndarray, z: np.ndarray, R: np.ndarray, t_s: float) -> None:
        P = np.zeros((len(ids), 4, 4))
        P[:, :2, :2] = R
        P[:, 2, 2] = P[:, 3, 3] = self.v0**2
        order = np.argsort(np.r_[self.ids, ids], kind="stable")
        self.ids = np.r_[self.ids, ids][order]
        self.x = np.r_[self.x, np.c_[z, np.zeros((len(ids), 2))]][order]
        self.P = np.r_[self.P, P][order]
        self.t_seen = np.r_[self.t_seen, np.full(len(ids), t_s)][order]

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
        meas = np.ones(n, bool) if measured is None else np.asarray(measured, bool).reshape(n).copy()
        meas &= np.all(np.isfinite(z), axis=1) & np.all(np.isfinite(R), axis=(1, 2))
        if len(np.unique(ids)) != n:
            raise ValueError("GroundFilter.update: track_ids must be distinct")
        if self.t is not None:
            if t_s < self.t:
                raise ValueError(f"GroundFilter.update: time went backwards ({t_s} < {self.t})")
            self._predict(t_s - self.t)
        self.t = t_s
        pos = np.searchsorted(self.ids, ids)
        known = np.zeros(n, bool)
        if len(self.ids):
            known = (pos < len(self.ids)) & (self.ids[np.minimum(pos, len(self.ids) - 1)] == ids)
        upd = known & meas
        if np.any(upd):
            k = pos[upd]
            x, P, zu, Ru = self.x[k], self.P[k], z[upd], R[upd]
            y = zu - x[:, :2]
            S = P[:, :2, :2] + Ru
            Sinv = np.linalg.inv(S)
            d2 = np.einsum("ni,nij,nj->n", y, Sinv, y)
            K = P[:, :, :2] @ Sinv  # (M, 4, 2)
            x = x + np.einsum("nij,nj->ni", K, y)
            IKH = _I4[None].repeat(len(k), 0)
            IKH[:, :, :2] -= K
            P = IKH @ P @ np.swapaxes(IKH, 1, 2) + K @ Ru @ np.swapaxes(K, 1, 2)  # Joseph form
            self.x[k], self.P[k] = x, P
            self.t_seen[k] = t_s
            jump = d2 > self.gate_chi2  # an identity switch: start again from the measurement
            if np.any(jump):
                kj = k[jump]
                self.x[kj] = np.c_[zu[jump], np.zeros((len(kj), 2))]
                self.P[kj] = 0.0
                self.P[kj, :2, :2] = Ru[jump]
                self.P[kj, 2, 2] = self.P[kj, 3, 3] = self.v0**2
        born = ~known & meas
        if np.any(born):
            self._births(ids[born], z[born], R[born], t_s)
        alive = (t_s - self.t_seen) <= self.forget_after_s
        if not np.all(alive):
            self.ids, self.x, self.P, self.t_seen = self.ids[alive], self.x[alive], self.P[alive], self.t_seen[alive]
        out_xy = np.full((n, 2), np.nan)
        out_cov = np.full((n, 2, 2), np.nan)
        out_v = np.full((n, 2), np.nan)
        if len(self.ids):
            pos = np.searchsorted(self.ids, ids)
            have = (pos < len(self.ids)) & (self.ids[np.minimum(pos, len(self.ids) - 1)] == ids)
            k = pos[have]
            out_xy[have], out_cov[have], out_v[have] = self.x[k, :2], self.P[k, :2, :2], self.x[k, 2:]
        return out_xy, out_cov, out_v

    def reset(self) -> None:
        self.__init__(self.q, self.v0, self.forget_after_s, self.gate_chi2)


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
        use_track_height: bool = True,
        sigma_px: float = 2.0,
        sigma_box_fraction: float = 0.02,
        corrected_sigma_factor: float = 2.0,
        accel_noise_m2_s3: float = 1.0,
        forget_after_s: float = 2.0,
    ) -> None:
        self.camera = camera
        self.person = np.asarray(list(person_class_ids), np.int64)
        self.use_filter = filter
        self.occlusion_feet = occlusion_feet
        self.height_prior_m = height_prior_m
        self.min_person_height_m = min_person_height_m
        self.use_track_height = use_track_height
        self.sigma_px = sigma_px
        self.sigma_box_fraction = sigma_box_fraction
        self.corrected_sigma_factor = corrected_sigma_factor
        self.filter = GroundFilter(accel_noise_m2_s3, forget_after_s=forget_after_s)
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
            use_track_height=cfg.use_track_height,
            sigma_px=cfg.sigma_px,
            sigma_box_fraction=cfg.sigma_box_fraction,
            corrected_sigma_factor=cfg.corrected_sigma_factor,
            accel_noise_m2_s3=cfg.accel_noise_m2_s3,
            forget_after_s=cfg.forget_after_s,
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
        ``world_cov (N, 2, 2)`` m^2, ``foot_corrected (N,) bool``, ``foot_reason (N,) uint8``."""
        b = np.asarray(xyxy, np.float64).reshape(-1, 4)
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        n = len(b)
        if n == 0 and not self.use_filter:
            return _empty()
        size = image_size if image_size is not None else self.camera.image_size
        foot = np.c_[(b[:, 0] + b[:, 2]) / 2.0, b[:, 3]]
        reason = np.zeros(n, np.uint8)
        corrected = np.zeros(n, bool)
        people = np.isin(np.asarray(class_id).reshape(-1), self.person)
        if self.occlusion_feet and np.any(people):
            track_h = self.heights.get(ids[people])
            est = estimate_feet(
                b[people],
                size,
                self.camera,
                track_h,
                height_m=self.height_prior_m,
                min_height_m=self.min_person_height_m,
                use_track_height=self.use_track_height,
            )
            foot[people], reason[people], corrected[people] = est.foot_px, est.reason, est.corrected
            meas_p = np.ones(int(people.sum()), bool) if measured is None else np.asarray(measured, bool)[people]
            self.heights.update(t_s, ids[people], b[people, 3] - b[people, 1], (est.reason == 0) & meas_p)
        sigma = np.maximum(self.sigma_px, self.sigma_box_fraction * (b[:, 3] - b[:, 1]))
        sigma = np.where(corrected, sigma * self.corrected_sigma_factor, sigma)
        z = self.camera.image_to_ground(foot) if n else np.zeros((0, 2))
        R = ground_covariance(self.camera, foot, sigma) if n else np.zeros((0, 2, 2))
        if self.use_filter:
            xy, cov, _ = self.filter.update(t_s, ids, z, R, measured)
        else:
            xy, cov = z, R
        return {"world_xy": xy, "world_cov": cov, "foot_corrected": corrected, "foot_reason": reason}


def _empty() -> dict[str, np.ndarray]:
    return {
        "world_xy": np.zeros((0, 2)),
        "world_cov": np.zeros((0, 2, 2)),
        "foot_corrected": np.zeros(0, bool),
        "foot_reason": np.zeros(0, np.uint8),
    }
