"""CVML ground truth (PETS2009 and similar): ``<frame number><objectlist><object id><box h w xc yc>``.

Boxes are given by centre and size in pixels; we return corners.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

__all__ = ["GroundTruthFrame", "read_cvml"]


@dataclass(frozen=True)
class GroundTruthFrame:
    """One annotated frame: ``xyxy (N, 4) float32`` pixels and ``ids (N,) int64``."""

    xyxy: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def read_cvml(path: str | os.PathLike) -> dict[int, GroundTruthFrame]:
    """Parse a CVML file into ``{frame_number: GroundTruthFrame}`` (frames without objects included)."""
    root = ET.parse(path).getroot()
    frames: dict[int, GroundTruthFrame] = {}
    for fr in root.iter("frame"):
        n = int(fr.get("number"))
        boxes, ids = [], []
        for obj in fr.iter("object"):
            box = obj.find("box")
            if box is None:
                raise ValueError(f"{path}: frame {n}: object {obj.get('id')} has no <box>")
            xc, yc, w, h = (float(box.get(k)) for k in ("xc", "yc", "w", "h"))
            boxes.append((xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2))
            ids.append(int(obj.get("id")))
        frames[n] = GroundTruthFrame(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64))
    return frames
