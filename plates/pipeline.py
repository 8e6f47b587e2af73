"""Per-camera plate pipeline: localise and read plates, vote per vehicle pass, emit transits.

Modes (``plates.mode`` in the camera config):

- ``gate``: plates are large in frame; the reader searches the region of interest
  (``plates.roi``, default the whole frame) with no vehicle detector. Readings are linked
  across frames by position into passes.
- ``traffic``: plates are searched inside the tracked detections of the vehicle classes
  (car, motorcycle, bus, truck); the tracker's id defines the pass.

Per pass: readings are voted (per normalised text, the sum of each reading's confidence times
its quality: plate size, sharpness and frontality, doubled for a sure reading), the best crop kept,
the direction taken from the pass's first and last position relative to ``plates.line``
(``in``: crossing from the right of the line A→B to its left; ``out``: the reverse; ``null``:
no crossing). The watch lists are checked on every new leading reading: a hit emits a
``plate_hit`` alarm (severity ``critical``) while the vehicle is still in view, once per pass.
When the pass ends (not seen for ``close_after_s``, or the stream ends) one ``plate_transit``
event is emitted (severity ``info``, or ``critical`` with hits) carrying plate, confidence,
direction, vehicle class, hits and the evidence id (hits only).

OCR runs off the video loop (``plates.queue_size`` > 0, the default): ``process()`` hands the
frame's reading request to one worker thread through a bounded queue and returns at once; when
the queue is full the request is dropped and counted (``stats["dropped"]``), never blocking the
loop. Results are merged on later ``process()`` calls strictly in frame order, each frame replayed
with its own timestamp (readings, "still in view", pass closing), so voting, direction and
transits are the same as inline reading, only emitted a frame or a few later. ``flush()`` waits
for the queued requests before closing the passes (nothing is lost at the end of a replay).
onnxruntime releases the GIL during inference, so a thread is enough. ``queue_size: 0`` reads
inline in the video loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vigil.alarm import AlarmChange

from .evidence import EvidenceStore
from .ocr import OnnxPlateRecognizer, TextRecognizer
from .reader import PlateReader
from .watchlists import WatchLists

log = logging.getLogger(__name__)

__all__ = ["PlatePipeline", "PlatePass", "side_of_line", "build_reader", "EVIDENCE_PURGE_INTERVAL_S"]

#: how often (seconds) the camera's evidence folder is purged of crops older than
#: ``plates.evidence_retention_days`` (the first purge runs on the first frame)
EVIDENCE_PURGE_INTERVAL_S = 3600.0


def side_of_line(line, point) -> float:
    """> 0 left of A→B (image coordinates, y down: "left" as drawn on screen), < 0 right."""
    (ax, ay), (bx, by) = line
    px, py = point
    return float((bx - ax) * (ay - py) - (by - ay) * (ax - px))


def build_reader(cfg):
    """The :class:`~vigil.plates.reader.PlateReader` a ``PlatesConfig`` (the camera config's
    ``plates`` section) asks for: the default PP-OCRv4 models, or the configured ONNX detector /
    recogniser."""
    recognizer = None
    if cfg.recognizer_format == "fast_plate_ocr":
        h, w = cfg.recognizer_input or (None, None)
        recognizer = OnnxPlateRecognizer(
            cfg.recognizer_model,
            cfg.recognizer_alphabet,
            height=h,
            width=w,
            grayscale=cfg.recognizer_channels == 1,
            pad=cfg.recognizer_pad,
            threads=cfg.threads,
        )
    elif cfg.recognizer_model is not None or cfg.recognizer_alphabet:
        recognizer = TextRecognizer(cfg.recognizer_model, threads=cfg.threads, alphabet=cfg.recognizer_alphabet)
    return PlateReader(
        region=cfg.region,
        det_max_side=cfg.det_max_side,
        threads=cfg.threads,
        max_plates=cfg.max_plates_per_frame,
        min_confidence=cfg.min_confidence,
        det_model=cfg.detector_model,
        recognizer=recognizer,
        # the cross-check pairs PP-OCR with Vigil's line model; another recogniser format reads alone
        cross_check=cfg.cross_check if cfg.recognizer_format == "ppocr" else "off",
    )


@dataclass
class _FrameRecord:
    """One processed frame waiting to be merged: its reading request (if any) and its result."""

    t: float
    job: tuple | None = None  # ("gate", roi) or ("traffic", [(key, vclass, foot, roi)])
    found: list = field(default_factory=list)  # gate: readings; traffic: (key, reading, vclass, foot)
    alive: set | None = None  # traffic: tracker keys in view on this frame
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class PlatePass:
    key: object
    transit_id: str
    first_t: float
    last_t: float
    first_pt: tuple[float, float]
    last_pt: tuple[float, float]
    vehicle_class: str | None = None
    votes: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)  # text -> (confidence, crop, kind, country)
    last_box: tuple | None = None
    hit_sent: bool = False
    hits: list = field(default_factory=list)
    evidence_id: str | None = None
    crossings: list = field(default_factory=list)

    def leader(self) -> tuple[str | None, float]:
        if not self.votes:
            return None, 0.0
        text = max(self.votes, key=lambda t: (self.votes[t], self.counts[t]))
        return text, self.votes[text]

    @property
    def readings(self) -> int:
        return sum(self.counts.values())

    @property
    def alarm_id(self) -> str:
        """The id of the pass's alarm: its ``plate_hit`` (start) and ``plate_transit`` (end)
        carry it; the same UUID as ``transit_id``, made when the pass starts."""
        return self.transit_id


class PlatePipeline:
    """Plate reading for one camera. ``process(image, timestamp, tracked, class_names)`` returns
    :class:`~vigil.alarm.AlarmChange` values (``plate_hit`` starts, ``plate_transit`` ends, both
    with the pass's ``alarm_id``; their payload fields in ``extra``), which
    ``vigil.alerts.events.event_from_change`` turns into events like any rule's."""

    def __init__(self, cfg, camera: str, reader=None, watchlists=None, evidence=None) -> None:
        self.cfg = cfg
        self.camera = camera
        if reader is None:
            reader = build_reader(cfg)
        self.reader = reader
        if watchlists is None and cfg.watchlists:
            watchlists = WatchLists(cfg.watchlists, check_interval_s=cfg.watchlist_check_s)
        self.watchlists = watchlists
        if evidence is None and cfg.evidence_dir is not None:
            evidence = EvidenceStore(cfg.evidence_dir)
        self.evidence = evidence
        self.evidence_retention_days = float(getattr(cfg, "evidence_retention_days", 7.0))
        self._evidence_purged_at: float | None = None  # wall-clock time (epoch s) of the last purge
        self.passes: dict[object, PlatePass] = {}
        self.frames = 0
        self._next_key = 0
        # OCR off the video loop: requests -> worker thread -> records merged in frame order
        self.queue_size = int(getattr(cfg, "queue_size", 0) or 0)
        self.stats = {"queued": 0, "dropped": 0, "processed": 0, "errors": 0}
        self._requests: queue.Queue | None = queue.Queue(maxsize=self.queue_size) if self.queue_size > 0 else None
        self._records: deque[_FrameRecord] = deque()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- OCR worker
    @property
    def queue_depth(self) -> int:
        """Reading requests waiting for the OCR thread."""
        return self._requests.qsize() if self._requests is not None else 0

    def status(self) -> dict:
        """Counters for the status reporter."""
        return {
            "plate_queue_depth": self.queue_depth,
            "plate_queued": self.stats["queued"],
            "plate_dropped": self.stats["dropped"],
            "plate_processed": self.stats["processed"],
            "plate_errors": self.stats["errors"],
        }

    def _run_job(self, image, job) -> list:
        kind, arg = job
        try:
            if kind == "gate":
                return list(self.reader.read(image, roi=arg))
            out = []
            for key, vclass, foot, roi in arg:
                for r in self.reader.read(image, roi=roi)[:1]:
                    out.append((key, r, vclass, foot))
            return out
        except Exception:  # noqa: BLE001 - a failed reading must never stop the camera
            self.stats["errors"] += 1
            log.warning("plate reading failed on camera %s", self.camera, exc_info=True)
            return []

    def _worker(self) -> None:
        q = self._requests
        while True:
            item = q.get()
            try:
                if item is None:
                    return
                rec, image = item
                rec.found = self._run_job(image, rec.job)
                self.stats["processed"] += 1
                rec.done.set()
            finally:
                q.task_done()

    def _submit(self, rec: _FrameRecord, image) -> None:
        if self._requests is None:
            rec.found = self._run_job(image, rec.job)
            self.stats["processed"] += 1
            rec.done.set()
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._worker, name=f"plates:{self.camera}", daemon=True)
            self._thread.start()
        try:
            self._requests.put_nowait((rec, image))
            self.stats["queued"] += 1
        except queue.Full:
            self.stats["dropped"] += 1
            rec.job, rec.found = None, []
            rec.done.set()

    def drain(self, timeout_s: float = 60.0) -> list[AlarmChange]:
        """Wait (up to ``timeout_s``) for the queued readings and merge them; alarm changes."""
        deadline = time.monotonic() + timeout_s
        for rec in list(self._records):
            if not rec.done.wait(max(0.0, deadline - time.monotonic())):
                log.warning(
                    "plate OCR did not finish within %.0f s on camera %s; readings dropped", timeout_s, self.camera
                )
                break
        return self._merge(force=True)

    def close(self) -> None:
        """Stop the OCR thread (a later ``process()`` starts a new one)."""
        t = self._thread
        if t is not None and t.is_alive() and self._requests is not None:
            self._requests.put(None)
            t.join(timeout=10)
        self._thread = None

    # ---------------------------------------------------------------- evidence retention
    def evidence_purge_due(self, now: float | None = None) -> bool:
        """Whether the evidence folder is due for a purge at ``now`` (epoch seconds, default the
        wall clock): never purged yet, :data:`EVIDENCE_PURGE_INTERVAL_S` since the last one, or the
        clock went back."""
        if self.evidence is None:
            return False
        now = time.time() if now is None else float(now)
        last = self._evidence_purged_at
        return last is None or now - last >= EVIDENCE_PURGE_INTERVAL_S or now < last

    def purge_evidence_if_due(self, now: float | None = None) -> int | None:
        """Delete the crops older than ``evidence_retention_days`` (days) when due (see
        :meth:`evidence_purge_due`); the number deleted, ``None`` when not due. Logged; a failure
        is logged and retried at the next interval, never raised into the video loop."""
        now = time.time() if now is None else float(now)
        if not self.evidence_purge_due(now):
            return None
        self._evidence_purged_at = now
        try:
            n = self.evidence.purge(self.evidence_retention_days * 86400.0, now=now)
        except OSError as exc:
            log.error("retention: evidence purge failed on camera %s (%s): %s", self.camera, self.evidence.folder, exc)
            return None
        log.info(
            "retention: evidence older than %g days: %d deleted (camera %s, %s)",
            self.evidence_retention_days,
            n,
            self.camera,
            self.evidence.folder,
        )
        return n

    # ---------------------------------------------------------------- reading
    def _gate_found(self, readings) -> list[tuple[object, object, str | None, tuple[float, float]]]:
        """Gate readings linked to passes (at merge time, against the passes open then)."""
        out = []
        for r in readings:
            cx, cy = (r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2
            out.append((self._gate_key(r.box), r, None, (cx, cy)))
        return out

    def _gate_key(self, box) -> object:
        """Link a reading to an open pass by position (the nearest within 1.5 plate widths)."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        width = max(1.0, box[2] - box[0])
        best, best_d = None, 1.5 * width
        for key, p in self.passes.items():
            if p.last_box is None:
                continue
            px, py = (p.last_box[0] + p.last_box[2]) / 2, (p.last_box[1] + p.last_box[3]) / 2
            d = float(np.hypot(cx - px, cy - py))
            if d < best_d:
                best, best_d = key, d
        if best is None:
            self._next_key += 1
            best = ("gate", self._next_key)
        return best

    def _traffic_job(self, tracked, class_names) -> list:
        """The vehicles to search on this frame: (key, class, foot point, roi)."""
        out = []
        if tracked is None or len(tracked) == 0 or tracked.tracker_id is None:
            return out
        wanted = set(self.cfg.vehicle_classes)
        rows = [i for i in range(len(tracked)) if class_names[int(tracked.class_id[i])] in wanted]
        # the largest vehicles first (nearest, best plates), at most max_vehicles per frame
        rows.sort(
            key=lambda i: -float((tracked.xyxy[i, 2] - tracked.xyxy[i, 0]) * (tracked.xyxy[i, 3] - tracked.xyxy[i, 1]))
        )
        for i in rows[: self.cfg.max_vehicles_per_frame]:
            x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
            if (x2 - x1) < self.cfg.min_vehicle_px or (y2 - y1) < self.cfg.min_vehicle_px / 2:
                continue
            foot = ((x1 + x2) / 2, y2)
            out.append(
                (("track", int(tracked.tracker_id[i])), class_names[int(tracked.class_id[i])], foot, (x1, y1, x2, y2))
            )
        return out

    def overlay(self, now: float, max_age_s: float = 1.0) -> list[tuple[tuple[float, float, float, float], str, bool]]:
        """What to draw on the annotated video: (last plate box, "TEXT" or "TEXT [lists]", hit)
        of each open pass read within ``max_age_s`` of ``now``."""
        out = []
        for p in self.passes.values():
            text, _ = p.leader()
            if text is None or p.last_box is None or now - p.last_t > max_age_s:
                continue
            lists = sorted({h["list"] for h in p.hits})
            out.append((p.last_box, f"{text} [{','.join(lists)}]" if lists else text, bool(lists)))
        return out

    # ---------------------------------------------------------------- per frame
    def process(self, image, timestamp: float, tracked=None, class_names=()) -> list[AlarmChange]:
        self.frames += 1
        if self.evidence is not None:
            self.purge_evidence_if_due()
        rec = _FrameRecord(float(timestamp))
        if self.cfg.mode == "traffic" and tracked is not None and tracked.tracker_id is not None:
            rec.alive = {("track", int(t)) for t in tracked.tracker_id}
        if (self.frames - 1) % max(1, self.cfg.every_n_frames) == 0:
            if self.cfg.mode == "traffic":
                vehicles = self._traffic_job(tracked, class_names)
                rec.job = ("traffic", vehicles) if vehicles else None
            else:
                rec.job = ("gate", tuple(self.cfg.roi) if self.cfg.roi else None)
        self._records.append(rec)
        if rec.job is None:
            rec.done.set()
        else:
            self._submit(rec, image)
        return self._merge()

    def _merge(self, force: bool = False) -> list[AlarmChange]:
        """Replay the finished frames in order (``force``: also those whose reading never finished)."""
        specs: list[AlarmChange] = []
        while self._records and (force or self._records[0].done.is_set()):
            rec = self._records.popleft()
            found = rec.found if rec.done.is_set() else []
            if rec.job is not None and rec.job[0] == "gate":
                found = self._gate_found(found)
            for key, reading, vclass, point in found:
                specs += self._add(key, reading, vclass, point, rec.t)
            if rec.alive:
                for key in rec.alive & set(self.passes):
                    self.passes[key].last_t = rec.t  # still in view (even if not read this frame)
            for key in [k for k, p in self.passes.items() if rec.t - p.last_t > self.cfg.close_after_s]:
                specs += self._close(self.passes.pop(key))
        return specs

    def flush(self) -> list[AlarmChange]:
        """End of stream: wait for the queued readings, merge them, close every pass and the OCR thread."""
        specs = self.drain()
        self.close()
        for key in list(self.passes):
            specs += self._close(self.passes.pop(key))
        return specs

    def _add(self, key, reading, vclass, point, t) -> list[AlarmChange]:
        p = self.passes.get(key)
        if p is None:
            p = PlatePass(key, str(uuid.uuid4()), t, t, point, point, vclass)
            self.passes[key] = p
        p.last_t, p.last_pt, p.last_box = t, point, tuple(reading.box)
        if vclass:
            p.vehicle_class = vclass
        if self.cfg.line:
            s0, s1 = side_of_line(self.cfg.line, p.first_pt), side_of_line(self.cfg.line, point)
            if s0 != 0 and s1 != 0 and (s0 > 0) != (s1 > 0):
                p.crossings.append("in" if s0 < 0 < s1 else "out")
        text = reading.text
        # a reading's vote: its calibrated confidence times its quality (size, sharpness,
        # frontality); a sure reading (every character confident, a known format) counts double
        weight = float(reading.confidence) * float(reading.quality) * (2.0 if reading.sure else 1.0)
        p.votes[text] = p.votes.get(text, 0.0) + weight
        p.counts[text] = p.counts.get(text, 0) + 1
        prev = p.best.get(text)
        if prev is None or reading.confidence > prev[0]:
            p.best[text] = (float(reading.confidence), reading.crop, reading.kind, reading.country)
        return self._check_hit(p, t)

    def _check_hit(self, p: PlatePass, t: float) -> list[AlarmChange]:
        if self.watchlists is None or p.hit_sent:
            return []
        text, _ = p.leader()
        if text is None or p.counts[text] < self.cfg.min_readings:
            return []
        hits = self.watchlists.match(text, when=None)
        if not hits:
            return []
        p.hit_sent = True
        p.hits = [h.to_dict() for h in hits]
        p.evidence_id = self._store_evidence(p, text, t)
        conf = p.best[text][0]
        return [
            AlarmChange(
                event_type="plate_hit",
                rule="plate",
                state="start",
                alarm_id=p.alarm_id,
                severity="critical",
                timestamp_s=t,
                started_at=p.first_t,
                duration_s=t - p.first_t,
                key=(p.transit_id,),
                extra={
                    "transit_id": p.transit_id,
                    "plate": text,
                    "confidence": round(conf, 3),
                    "hits": p.hits,
                    "lists": sorted({h["list"] for h in p.hits}),
                    "vehicle_class": p.vehicle_class,
                    "evidence_id": p.evidence_id,
                },
            )
        ]

    def _store_evidence(self, p: PlatePass, text: str, t: float) -> str | None:
        if self.evidence is None:
            return None
        crop = p.best[text][1]
        if crop is None:
            return None
        try:
            return self.evidence.put(crop, camera=self.camera, kind="plate", plate=text, transit_id=p.transit_id)
        except Exception as exc:  # noqa: BLE001 - evidence must never stop the alarm
            log.warning("plate evidence not stored: %s", exc)
            return None

    def _close(self, p: PlatePass) -> list[AlarmChange]:
        text, score = p.leader()
        if text is None or p.readings < self.cfg.min_readings:
            return []
        specs: list[AlarmChange] = []
        if not p.hit_sent and self.watchlists is not None:
            specs += self._check_hit(p, p.last_t)  # a short pass still raises its alarm first
        if (
            self.watchlists is not None
            and p.hits
            and text != p.hits[0].get("plate")
            and not self.watchlists.match(text)
        ):
            pass  # the leader changed after the alarm: the transit keeps the alarm's hits
        total = sum(p.votes.values())
        conf, _crop, kind, country = p.best[text]
        direction = None
        if p.crossings:
            direction = p.crossings[-1]
        payload = {
            "transit_id": p.transit_id,
            "plate": text,
            "confidence": round(conf * score / total, 3),
            "readings": p.readings,
            "votes": {k: round(v, 3) for k, v in sorted(p.votes.items(), key=lambda kv: -kv[1])[:5]},
            "direction": direction,
            "vehicle_class": p.vehicle_class,
            "kind": kind,
            "country": country,
            "hits": p.hits,
            "evidence_id": p.evidence_id,
            "duration_s": round(p.last_t - p.first_t, 2),
            "mode": self.cfg.mode,
        }
        specs.append(
            AlarmChange(
                event_type="plate_transit",
                rule="plate",
                state="end",
                alarm_id=p.alarm_id,
                severity="critical" if p.hits else "info",
                timestamp_s=p.last_t,
                started_at=p.first_t,
                duration_s=p.last_t - p.first_t,
                key=(p.transit_id,),
                extra=payload,
            )
        )
        return specs
