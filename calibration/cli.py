"""``vigil calibrate``: intrinsics, ground, check, pick, zones, import.

- ``intrinsics``: chessboard images -> OpenCV intrinsics YAML (RMS, per-image errors).
- ``ground``: image <-> ground points -> Vigil calibration (homography with RANSAC, or
  solvePnP -> pinhole when ``--intrinsics`` are given); per-point residuals, outliers.
- ``check``: metric grid on a real frame + bird's-eye warp, side by side, as a PNG.
- ``pick``: a local web page to click points on a frame and save the calibration.
- ``zones``: a local web page to draw a camera's zones and queue lines on its frame (converted
  to ground metres through its calibration), validated as ``run`` would and saved into the node
  config (:mod:`.zones`).
- ``import``: PETS 2009 Tsai XML -> Vigil calibration (tsai or pinhole model), optionally
  the lens as OpenCV intrinsics YAML.

Bad input raises :class:`~vigil.geometry.camera.CalibrationError` (exit code 2, one line
naming the culprit); nothing is written then: every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from vigil.edge.config import ConfigError, load_config
from vigil.edge.sources import SourceError
from vigil.fileio import atomic_write_bytes, atomic_write_text
from vigil.geometry.calibration_io import calibration_dict, load_camera, parse_calibration
from vigil.geometry.camera import CalibrationError

from .check import render_check
from .frames import read_frame
from .ground import fit_ground, load_points, write_ground_calibration
from .intrinsics import calibrate_chessboard, expand_images, load_intrinsics, parse_board, save_intrinsics
from .pick import serve
from .tsai import import_tsai, tsai_to_intrinsics, tsai_to_pinhole
from .zones import serve as serve_zones

EXIT_OK = 0
EXIT_ERROR = 2


# ------------------------------------------------------------------------------------ intrinsics
def _cmd_intrinsics(args: argparse.Namespace) -> int:

    board = parse_board(args.board)
    images = expand_images(args.images)
    res = calibrate_chessboard(images, board, args.square, min_images=args.min_images)
    save_intrinsics(
        args.output,
        res.intrinsics,
        {
            "board_width": board[0],
            "board_height": board[1],
            "square_size": float(args.square),
            "images_used": len(res.per_image),
        },
    )
    if args.json:
        out = res.as_dict()
        out["output"] = str(args.output)
        print(json.dumps(out))
        return EXIT_OK
    k = res.intrinsics
    print(
        f"intrinsics from {len(res.per_image)} of {len(images)} images ({k.image_size[0]}x{k.image_size[1]}), board "
        f"{board[0]}x{board[1]}, square {args.square:g} m"
    )
    print(f"  RMS reprojection error: {res.rms:.3f} px")
    med = float(np.median([r["rms_px"] for r in res.per_image]))
    for r in res.per_image:
        flag = (
            "  <- much worse than the others: check this image (blur, board flex)"
            if r["rms_px"] > 3 * med and r["rms_px"] > 0.5
            else ""
        )
        print(f"  {r['image']}: {r['rms_px']:.3f} px{flag}")
    for r in res.rejected:
        print(f"  {r['image']}: NOT USED: {r['reason']}")
    print(
        f"  fx {k.K[0, 0]:.2f}  fy {k.K[1, 1]:.2f}  cx {k.K[0, 2]:.2f}  cy {k.K[1, 2]:.2f}  dist "
        f"{np.round(k.dist, 5).tolist()}"
    )
    print(f"  written: {args.output}")
    return EXIT_OK


# ------------------------------------------------------------------------------------ ground
def _print_fit(fit, out: Path | None) -> None:
    d = fit.as_dict()
    print(
        f"ground calibration ({d['model']}) from {d['inliers']} of {len(d['points'])} points; "
        f"residual RMS {d['rms_m']:.3f} m, max {d['max_m']:.3f} m (inliers)"
    )
    for p in d["points"]:
        rm = "n/a" if p["residual_m"] is None else f"{p['residual_m']:.3f} m"
        rp = "n/a" if p["residual_px"] is None else f"{p['residual_px']:.2f} px"
        print(
            f"  {p['name']:<8} image {p['image'][0]:8.1f} {p['image'][1]:8.1f}  ground {p['ground'][0]:8.3f} "
            f"{p['ground'][1]:8.3f}"
            f"  residual {rm:>9} {rp:>9}{'  OUTLIER (not used)' if p['outlier'] else ''}"
        )
    if out is not None:
        print(f"  written: {out}")


def _cmd_ground(args: argparse.Namespace) -> int:

    frame = read_frame(args.image, args.frame)
    h, w = frame.shape[:2]
    names, img, gnd = load_points(args.points)
    intr = load_intrinsics(args.intrinsics) if args.intrinsics else None
    fit = fit_ground(
        img,
        gnd,
        names=names,
        image_size=(w, h),
        intrinsics=intr,
        threshold_m=args.threshold_m,
        threshold_px=args.threshold_px,
    )
    name = args.name or Path(args.output).name.split(".")[0]
    write_ground_calibration(fit, args.output, name, source=f"vigil calibrate ground: {args.points} on {args.image}")
    if args.json:
        d = fit.as_dict()
        d["output"] = str(args.output)
        print(json.dumps(d))
    else:
        _print_fit(fit, Path(args.output))
    return EXIT_OK


# ------------------------------------------------------------------------------------ check
def _cmd_check(args: argparse.Namespace) -> int:

    cfg = load_config(args.config)
    cam_cfg = cfg.camera(args.camera)
    camera = load_camera(cam_cfg.calibration)
    frame = read_frame(cam_cfg.source, args.frame)
    img = render_check(frame, camera, step=args.step, title=f"{cam_cfg.name} frame {args.frame}")
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise OSError("PNG encoding failed")
    atomic_write_bytes(args.output, buf.tobytes())
    print(f"check image for camera {cam_cfg.name} ({img.shape[1]}x{img.shape[0]}): {args.output}")
    return EXIT_OK


# ------------------------------------------------------------------------------------ import
def _cmd_import(args: argparse.Namespace) -> int:

    cam = import_tsai(args.tsai)
    name = args.name or Path(args.tsai).stem
    source = f"imported from {Path(args.tsai).name} (Tsai model)"
    if args.model == "pinhole":
        model = tsai_to_pinhole(cam)
        source += " as OpenCV pinhole with k1, k2, k3 fitted to Tsai's kappa1"
    else:
        model = cam
    data = calibration_dict(model, name, source)
    text = f"# Vigil calibration imported by `vigil calibrate import` from {args.tsai}\n" + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None
    )
    parse_calibration(text, "<generated>").build()
    written = []
    if args.output:
        atomic_write_text(args.output, text)
        written.append(str(args.output))
    if args.intrinsics_out:
        save_intrinsics(args.intrinsics_out, tsai_to_intrinsics(cam))
        written.append(str(args.intrinsics_out))
    if not written:
        sys.stdout.write(text)
    else:
        print(f"imported {args.tsai} ({args.model}): {', '.join(written)}", file=sys.stderr)
    return EXIT_OK


# ------------------------------------------------------------------------------------ pick
def _cmd_pick(args: argparse.Namespace) -> int:
    return serve(
        args.source,
        output=Path(args.output),
        port=args.port,
        host=args.host,
        frame=args.frame,
        intrinsics=args.intrinsics,
        name=args.name,
        points=args.points,
    )


def _cmd_zones(args: argparse.Namespace) -> int:
    return serve_zones(args.config, args.camera, port=args.port, host=args.host, frame=args.frame)


# ------------------------------------------------------------------------------------ parser
def add_commands(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="camera calibration: intrinsics, ground points, checks, point picking, imports"
    )
    csub = p.add_subparsers(dest="calibrate_command", required=True, metavar="ACTION")

    q = csub.add_parser("intrinsics", help="lens intrinsics from chessboard images (OpenCV YAML)")
    q.add_argument(
        "--images", required=True, nargs="+", help="image files, folders or quoted glob patterns ('dir/*.jpg')"
    )
    q.add_argument("--board", default="9x6", help="inner corners COLSxROWS (default 9x6)")
    q.add_argument("--square", type=float, default=0.025, help="square side in metres (default 0.025)")
    q.add_argument("--min-images", type=int, default=3, help="fewest images with the board found (default 3)")
    q.add_argument("-o", "--output", required=True, help="OpenCV intrinsics YAML to write")
    q.add_argument("--json", action="store_true", help="print {rms, images_used, images_rejected, ...} as JSON")
    q.set_defaults(func=_cmd_intrinsics)

    q = csub.add_parser("ground", help="ground calibration from image <-> ground points (metres)")
    q.add_argument("--image", required=True, help="the frame the points were picked on (image, or video: see --frame)")
    q.add_argument("--frame", type=int, default=0, help="frame index when --image is a video (default 0)")
    q.add_argument("--points", required=True, help="YAML: points: [{name, image: [u, v], ground: [x, y]}, ...]")
    q.add_argument(
        "--intrinsics", help="OpenCV intrinsics YAML: fit a pinhole camera with solvePnP (models lens distortion)"
    )
    q.add_argument(
        "--threshold-m", type=float, default=0.5, help="RANSAC / outlier threshold on the ground, metres (default 0.5)"
    )
    q.add_argument(
        "--threshold-px",
        type=float,
        default=4.0,
        help="outlier threshold in the image for solvePnP, pixels (default 4)",
    )
    q.add_argument("--name", help="camera name in the file (default: output file name)")
    q.add_argument("-o", "--output", required=True, help="Vigil calibration YAML to write")
    q.add_argument("--json", action="store_true", help="print the fit and per-point residuals as JSON")
    q.set_defaults(func=_cmd_ground)

    q = csub.add_parser("check", help="draw a metric grid on a frame and a bird's-eye warp side by side (PNG)")
    q.add_argument("--config", required=True, help="node config YAML")
    q.add_argument("--camera", help="camera name (default: the first enabled)")
    q.add_argument("--frame", type=int, default=0, help="frame index of the camera's source (default 0)")
    q.add_argument("--step", type=float, default=1.0, help="grid step in metres (default 1)")
    q.add_argument("-o", "--output", required=True, help="PNG to write")
    q.set_defaults(func=_cmd_check)

    q = csub.add_parser("pick", help="serve a local page to click ground points on a frame and save the calibration")
    q.add_argument("--source", required=True, help="video file, image or stream URL")
    q.add_argument("--frame", type=int, default=0, help="frame index to show (default 0)")
    q.add_argument("--port", type=int, default=8765, help="port on --host (default 8765; 0 = any free port)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    q.add_argument("--intrinsics", help="OpenCV intrinsics YAML (fit a pinhole camera instead of a homography)")
    q.add_argument("--points", help="YAML points file to start from (and kept up to date beside the output)")
    q.add_argument("--name", help="camera name in the file (default: output file name)")
    q.add_argument(
        "-o",
        "--output",
        default="camera.calib.yaml",
        help="Vigil calibration YAML to write (default camera.calib.yaml)",
    )
    q.set_defaults(func=_cmd_pick)

    q = csub.add_parser(
        "zones", help="serve a local page to draw a camera's zones and queue lines and save them into the node config"
    )
    q.add_argument("--config", required=True, help="node config YAML (edited in place; previous version kept as .bak)")
    q.add_argument("--camera", help="camera name (default: the first enabled)")
    q.add_argument("--frame", type=int, default=0, help="frame index of the camera's source to draw on (default 0)")
    q.add_argument("--port", type=int, default=8766, help="port on --host (default 8766; 0 = any free port)")
    q.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1 or ::1; no login)")
    q.set_defaults(func=_cmd_zones)

    q = csub.add_parser("import", help="import a PETS 2009 Tsai XML calibration as a Vigil calibration")
    q.add_argument("--tsai", required=True, help="PETS 2009 View_00N.xml")
    q.add_argument(
        "--model",
        choices=("tsai", "pinhole"),
        default="tsai",
        help="tsai: exact; pinhole: OpenCV model with k1,k2,k3 fitted to the Tsai lens (default tsai)",
    )
    q.add_argument("--name", help="camera name (default: the XML file name)")
    q.add_argument("-o", "--output", help="Vigil calibration YAML to write (default: print)")
    q.add_argument("--intrinsics-out", help="also write the lens as OpenCV intrinsics YAML")
    q.set_defaults(func=_cmd_import)


def main(argv: list[str] | None = None) -> int:
    """``python -m vigil.calibration.cli ACTION ...``: the ``calibrate`` commands on their own
    (same behaviour and exit codes as ``vigil calibrate``)."""

    parser = argparse.ArgumentParser(prog="vigil")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CalibrationError, SourceError, ConfigError, FileNotFoundError, PermissionError) as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
