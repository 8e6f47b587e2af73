"""Draw the schematic plan of the PETS 2009 S2.L1 ground frame for ``sites-pets.yaml``.

    python deploy/examples/make_pets_plan.py [OUT.png]     (default: pets-plan.png beside this file)

It is an honest drawing, not a survey: a 1 m grid (every 5 m darker and labelled in metres)
over the calibrated ground frame of PETS 2009 View_001 (``pets2009-view001.calib.yaml``:
world metres, ``Z`` up), ``x`` from -35 to 15 m, ``y`` from -25 to 15 m, at 0.05 m per plan
pixel (1000 x 800 px; ``x`` grows to the right, ``y`` upwards, as seen from above). No
buildings are invented: the console draws the camera and its field of view over it. The
mapping is the one ``sites-pets.yaml`` places the camera with: ``u = 20 (x + 35)``,
``v = 20 (15 - y)`` (plan pixels from ground metres).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

X0, X1, Y0, Y1 = -35, 15, -25, 15  # ground metres covered
PX_PER_M = 20  # 0.05 m per plan pixel


def to_plan(x: float, y: float) -> tuple[int, int]:
    """Ground metres -> plan pixel (integer, for drawing)."""
    return int(round(PX_PER_M * (x - X0))), int(round(PX_PER_M * (Y1 - y)))


def draw() -> np.ndarray:
    """The plan as an ``(800, 1000) uint8`` grey image."""
    w, h = PX_PER_M * (X1 - X0), PX_PER_M * (Y1 - Y0)
    img = np.full((h, w), 250, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for x in range(X0, X1 + 1):
        u = to_plan(x, 0)[0]
        cv2.line(img, (u, 0), (u, h - 1), 150 if x % 5 == 0 else 222, 1)
    for y in range(Y0, Y1 + 1):
        v = to_plan(0, y)[1]
        cv2.line(img, (0, v), (w - 1, v), 150 if y % 5 == 0 else 222, 1)
    # the axes through the frame's origin, labels every 5 m
    cv2.line(img, (to_plan(0, 0)[0], 0), (to_plan(0, 0)[0], h - 1), 60, 2)
    cv2.line(img, (0, to_plan(0, 0)[1]), (w - 1, to_plan(0, 0)[1]), 60, 2)
    for x in range(X0 + 5, X1, 5):
        u, v = to_plan(x, 0)
        cv2.putText(img, f"{x}", (u + 3, v + 16), font, 0.45, 40, 1, cv2.LINE_AA)
    for y in range(Y0 + 5, Y1, 5):
        if y:
            u, v = to_plan(0, y)
            cv2.putText(img, f"{y}", (u + 4, v - 4), font, 0.45, 40, 1, cv2.LINE_AA)
    u, v = to_plan(X1, 0)
    cv2.putText(img, "x (m)", (u - 52, v - 8), font, 0.5, 0, 1, cv2.LINE_AA)
    u, v = to_plan(0, Y1)
    cv2.putText(img, "y (m)", (u + 6, v + 18), font, 0.5, 0, 1, cv2.LINE_AA)
    cv2.putText(img, "PETS 2009 S2.L1 ground frame - schematic, 1 m grid", (10, 22), font, 0.55, 0, 1, cv2.LINE_AA)
    return img


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).with_name("pets-plan.png")
    img = draw()
    if not cv2.imwrite(str(out), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"cannot write {out}", file=sys.stderr)
        return 1
    print(f"{out}: {img.shape[1]} x {img.shape[0]} px, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
