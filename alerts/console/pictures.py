"""Where the console finds an alarm's pictures and the live tiles (no routes here: :mod:`.media`
serves them, and the alarm page's handler can use :func:`alarm_media` without an import cycle).

An alarm's start event names its pictures (``snapshot_id``, ``clip_id``, ``recording``: see
``vigil.alerts.payloads.AlarmPayload`` and ``vigil.edge.media``); they are files directly inside the
console's evidence folder (``--evidence-dir``): ``<id>.jpg`` (snapshot, served by
``/evidence/{id}``) and ``<id>.mp4`` (clip, ``/clip/{id}``). Tiles are ``<camera>.jpg`` directly
inside ``--tiles-dir``.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CAMERA_RE", "EVIDENCE_ID_RE", "alarm_media", "file_inside", "snapshot_url", "tile_cameras"]

#: a camera name as the edge accepts it (letters, digits, ``_ . -``; not starting with a dot)
CAMERA_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
#: an evidence id of ``vigil.plates.evidence.EvidenceStore`` (32 hex digits)
EVIDENCE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def file_inside(root: Path | None, name: str) -> Path | None:
    """``root/name`` when it is a file directly inside ``root`` (a resolved folder), else ``None``."""
    if root is None:
        return None
    path = (root / name).resolve()
    return path if path.parent == root and path.is_file() else None


def tile_cameras(root: Path | None) -> list[str]:
    """The cameras with a tile in ``root``, sorted."""
    if root is None or not root.is_dir():
        return []
    return sorted(p.stem for p in root.glob("*.jpg") if CAMERA_RE.match(p.stem))


def _url(payload, key: str, suffix: str, prefix: str, root: Path | None) -> str | None:
    eid = payload.get(key) if isinstance(payload, dict) else None
    if isinstance(eid, str) and EVIDENCE_ID_RE.match(eid) and file_inside(root, f"{eid}{suffix}") is not None:
        return f"{prefix}{eid}"
    return None


def snapshot_url(payload: dict, evidence_root: Path | None) -> str | None:
    """``/evidence/<snapshot_id>`` of an alarm start's payload when that snapshot is stored."""
    return _url(payload, "snapshot_id", ".jpg", "/evidence/", evidence_root)


def alarm_media(events: list[dict], evidence_root: Path | None) -> dict:
    """What the alarm page shows of an alarm's pictures, from its events (stored-event dicts with
    ``payload``, in order): ``snapshot_url`` (``/evidence/<id>``), ``clip_url`` (``/clip/<id>``),
    each ``None`` when not stored (or not in the console's evidence folder), and ``recording``
    (``"on"``, ``"off"``: the site records nothing, or ``None``: not said)."""
    for ev in events:
        p = ev.get("payload") if isinstance(ev, dict) else None
        if isinstance(p, dict) and any(k in p for k in ("snapshot_id", "clip_id", "recording")):
            rec = p.get("recording")
            return {
                "snapshot_url": snapshot_url(p, evidence_root),
                "clip_url": _url(p, "clip_id", ".mp4", "/clip/", evidence_root),
                "recording": rec if rec in ("on", "off") else None,
            }
    return {"snapshot_url": None, "clip_url": None, "recording": None}
