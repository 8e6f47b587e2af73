"""The one type that crosses every stage boundary: :class:`Detections`.

N rows of parallel arrays:

- ``xyxy``: ``(N, 4) float32``, box corners ``x1, y1, x2, y2`` in **pixels** of the frame
  the detections belong to (not the model input);
- ``confidence``: ``(N,) float32`` in ``[0, 1]``;
- ``class_id``: ``(N,) int64``, indices into the model's class names;
- ``tracker_id``: ``(N,) int64`` or ``None`` before tracking;
- ``data``: per-row extras under named keys, each an array whose first axis is N
  (``world_xy``: ``(N, 2) float64`` metres on the ground plane; ``plate_text``; ...);
- ``metadata``: per-frame facts (``camera``, ``frame_index``, ``timestamp``, ...).

A stage never mutates a ``Detections``; it returns a new one (:meth:`with_data`,
:meth:`with_tracker_id`, boolean-mask or index selection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = ["Detections"]


def _check_rows(name: str, array: np.ndarray, n: int, tail: tuple[int, ...] = ()) -> None:
    expected = (n, *tail)
    if array.shape[: 1 + len(tail)] != expected or (tail and array.ndim != 1 + len(tail)):
        raise ValueError(f"Detections.{name}: expected shape {expected}, got {array.shape}")


@dataclass(frozen=True)
class Detections:
    """Parallel arrays describing N detected objects in one frame (see module docstring)."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.ndim == 1 and xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy: expected shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        confidence = (
            np.asarray(self.confidence, dtype=np.float32).reshape(-1)
            if np.size(self.confidence)
            else np.zeros(0, np.float32)
        )
        class_id = (
            np.asarray(self.class_id, dtype=np.int64).reshape(-1) if np.size(self.class_id) else np.zeros(0, np.int64)
        )
        _check_rows("confidence", confidence, n)
        _check_rows("class_id", class_id, n)
        tracker_id = None
        if self.tracker_id is not None:
            tracker_id = (
                np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
                if np.size(self.tracker_id)
                else np.zeros(0, np.int64)
            )
            _check_rows("tracker_id", tracker_id, n)
        data = {}
        for key, value in dict(self.data).items():
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(f"Detections.data[{key!r}]: expected first dimension {n}, got shape {arr.shape}")
            data[key] = arr
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("Detections.xyxy: non-finite coordinates")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "tracker_id", tracker_id)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, metadata: Mapping[str, Any] | None = None) -> "Detections":
        """Zero rows; ``len(Detections.empty()) == 0``."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            metadata=metadata or {},
        )

    @classmethod
    def merge(cls, items: list["Detections"], metadata: Mapping[str, Any] | None = None) -> "Detections":
        """Concatenate rows of several detections; data keys must agree."""
        items = [d for d in items if len(d)]
        if not items:
            return cls.empty(metadata)
        keys = set(items[0].data)
        for d in items[1:]:
            if set(d.data) != keys:
                raise ValueError(f"Detections.merge: data keys differ: {sorted(keys)} vs {sorted(d.data)}")
        has_track = [d.tracker_id is not None for d in items]
        if any(has_track) and not all(has_track):
            raise ValueError("Detections.merge: some inputs are tracked and some are not")
        return cls(
            xyxy=np.concatenate([d.xyxy for d in items]),
            confidence=np.concatenate([d.confidence for d in items]),
            class_id=np.concatenate([d.class_id for d in items]),
            tracker_id=np.concatenate([d.tracker_id for d in items]) if all(has_track) else None,
            data={k: np.concatenate([d.data[k] for d in items]) for k in keys},
            metadata=metadata if metadata is not None else items[0].metadata,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))

    def __getitem__(self, index) -> "Detections":
        """Row selection by boolean mask, integer array, slice or int (keeps 2-D shapes)."""
        if isinstance(index, str):
            return self.data[index]  # type: ignore[return-value]
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        index = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise ValueError(f"Detections: boolean mask of shape {index.shape} for {len(self)} rows")
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
            metadata=self.metadata,
        )

    # ------------------------------------------------------------------ derived
    @property
    def foot_points(self) -> np.ndarray:
        """``(N, 2) float64`` pixels: the bottom centre of each box (where a person stands)."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2.0, self.xyxy[:, 3]], axis=1).astype(np.float64)

    @property
    def area(self) -> np.ndarray:
        """``(N,) float32`` box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]).clip(0) * (self.xyxy[:, 3] - self.xyxy[:, 1]).clip(0)

    # ------------------------------------------------------------------ copies with changes
    def with_data(self, **arrays: np.ndarray) -> "Detections":
        """A new ``Detections`` with extra or replaced ``data`` keys."""
        return Detections(
            self.xyxy, self.confidence, self.class_id, self.tracker_id, {**self.data, **arrays}, self.metadata
        )

    def with_tracker_id(self, tracker_id: np.ndarray) -> "Detections":
        return Detections(self.xyxy, self.confidence, self.class_id, tracker_id, self.data, self.metadata)

    def with_metadata(self, **metadata: Any) -> "Detections":
        return Detections(
            self.xyxy, self.confidence, self.class_id, self.tracker_id, self.data, {**self.metadata, **metadata}
        )
