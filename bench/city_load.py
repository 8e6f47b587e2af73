"""The load model of ``vigil bench city`` (issue 17): what a city's cameras and plate gates send
to the central aggregator, as rates (events per second) and daily volumes (events per day),
and a deterministic schedule of valid schema-2 events that follows it.

The model (all rates at the busiest hour of a busy day; every parameter is a field of
:class:`LoadModel`, defaults in brackets):

- **Crowd alarms** per camera and busiest hour: distancing (``distance_violation``) [12],
  occupancy (``occupancy_limit``) [2] and risk (``risk_level``) [4] alarms. Each alarm is one
  ``start``, ``updates_per_alarm`` [4] ``update`` events (the rules' ``update_interval_s``
  [10 s] apart) and one ``end``, all sharing one ``alarm_id``: ``2 + updates_per_alarm`` events.
  Reasoning: a camera over a busy square raises a distancing alarm every few minutes at the
  peak, a zone over capacity or a high risk level a few times an hour.
- **Heat maps**: one ``heatmap`` event per camera every ``heatmap_interval_s`` [60 s], all day
  (two layers of at most 2,500 cells, as the edge sends them).
- **Camera health**: ``health_alarms_per_camera_day`` [4] alarms per camera and day (a
  ``start`` and an ``end``, ``health_alarm_s`` [120 s] apart), spread evenly over the day.
- **Plate gates**: ``gates`` gates of ``lanes_per_gate`` [1] lanes, each lane one car every
  ``1 / cars_per_lane_s`` [1 s] at the peak (a lane's saturation flow is about one car every
  2 s: one a second is an upper bound). Each car is one ``plate_transit``; one car in
  ``hit_every`` [200] is on a watch list: it also raises a ``plate_hit`` (before its transit),
  and its transit keeps the plate and the list hit.
- **Daily volume**: the busiest hour holds ``peak_hour_share`` [0.10] of a day's crowd alarms
  and of a day's traffic (the traffic engineers' K factor: the design hour is 8-12 % of the
  daily traffic), so a day is ``1 / peak_hour_share`` [10] busiest hours of them; heat maps and
  camera health are flat over the 24 hours.

So ``peak_events_per_s`` (:meth:`LoadModel.peak_events_per_s`) is, with ``C`` cameras, ``G``
gates, ``L`` lanes per gate::

    C * (a_distance + a_occupancy + a_risk) * (2 + updates) / 3600   crowd alarms
  + C / heatmap_interval_s                                           heat maps
  + C * health_alarms_per_camera_day * 2 / 86400                     camera health
  + G * L * cars_per_lane_s * (1 + 1 / hit_every)                    plate transits and hits

which for Modena's central side (300 cameras, 16 gates) is 9 + 5 + 1/36 + 16.08 =
30.1078 events/s. The arithmetic is exact (:class:`~fractions.Fraction`).

The schedule (:class:`CitySchedule`) makes every stream periodic with a random phase (seeded),
so its long-run rate is exactly the model's and a window of any length starts in the steady
state (alarms already open at the start contribute their remaining updates and end). Its
clock is simulated seconds; the bench plays it at ``factor`` times real time to offer
``factor`` times the peak rate with the same mix.

The publisher side (:func:`publisher_process`): the cameras and lanes are grouped into edge
nodes (:func:`city_nodes`: up to :data:`CAMERAS_PER_NODE` cameras or :data:`LANES_PER_NODE`
lanes each), one :class:`~vigil.alerts.publisher.EventPublisher` per node (each camera its own
name and ``seq``, so per-camera order is the publisher's outbox order); a process runs several
nodes and one schedule, and plays phases (``factor``, start time, seconds) on command.
"""

from __future__ import annotations

import heapq
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from vigil.alerts.events import Event, new_event_id, utc_iso
from vigil.alerts.keys import client_configurator
from vigil.alerts.publisher import EventPublisher
from vigil.geometry.risk import compact_grid

__all__ = [
    "KINDS",
    "ALARM_KINDS",
    "CAMERAS_PER_NODE",
    "LANES_PER_NODE",
    "LoadModel",
    "CitySchedule",
    "EventFactory",
    "camera_names",
    "lane_names",
    "city_nodes",
    "publisher_process",
]

#: the storage categories of the model (event types; a transit that hit a list is its own kind:
#: the aggregator keeps its plate, so it is stored larger)
KINDS = (
    "distance_violation",
    "occupancy_limit",
    "risk_level",
    "heatmap",
    "camera_health",
    "plate_transit",
    "plate_transit_hit",
    "plate_hit",
)
#: the crowd alarm kinds and their LoadModel rate fields (alarms per camera and busiest hour)
ALARM_KINDS = {
    "distance_violation": "distance_alarms_per_camera_h",
    "occupancy_limit": "occupancy_alarms_per_camera_h",
    "risk_level": "risk_alarms_per_camera_h",
}


def _q(x) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


@dataclass(frozen=True)
class LoadModel:
    """The city's load (see the module docstring). Rates in alarms per camera and hour, events
    per second, cars per lane and second; intervals in seconds."""

    cameras: int = 300
    gates: int = 16
    lanes_per_gate: int = 1
    distance_alarms_per_camera_h: float = 12
    occupancy_alarms_per_camera_h: float = 2
    risk_alarms_per_camera_h: float = 4
    updates_per_alarm: int = 4
    alarm_update_interval_s: float = 10
    heatmap_interval_s: float = 60
    health_alarms_per_camera_day: float = 4
    health_alarm_s: float = 120
    cars_per_lane_s: float = 1
    hit_every: int = 200
    peak_hour_share: float = Fraction(1, 10)
    consoles: int = 4

    def params(self) -> dict:
        """The parameters as JSON-ready numbers."""
        return {k: (float(v) if isinstance(v, Fraction) else v) for k, v in asdict(self).items()}

    def lanes(self) -> int:
        return self.gates * self.lanes_per_gate

    def peak_rates(self) -> dict[str, Fraction]:
        """Events per second of each kind (:data:`KINDS`) at the busiest hour, exact."""
        c, lanes = self.cameras, self.lanes()
        per_alarm = 2 + self.updates_per_alarm
        rates = {k: c * _q(getattr(self, f)) * per_alarm / 3600 for k, f in ALARM_KINDS.items()}
        rates["heatmap"] = c / _q(self.heatmap_interval_s)
        rates["camera_health"] = c * _q(self.health_alarms_per_camera_day) * 2 / 86400
        cars = lanes * _q(self.cars_per_lane_s)
        rates["plate_transit"] = cars * (self.hit_every - 1) / self.hit_every
        rates["plate_transit_hit"] = cars / self.hit_every
        rates["plate_hit"] = cars / self.hit_every
        return rates

    def peak_events_per_s(self) -> Fraction:
        """The whole city's events per second at the busiest hour (the formula above), exact."""
        return sum(self.peak_rates().values(), Fraction(0))

    def daily_events(self) -> dict[str, Fraction]:
        """Events per day of each kind: busiest-hour kinds times ``3600 / peak_hour_share``,
        flat kinds (heat maps, camera health) times 86,400."""
        flat = {"heatmap", "camera_health"}
        share = _q(self.peak_hour_share)
        return {k: r * 86400 if k in flat else r * 3600 / share for k, r in self.peak_rates().items()}


def camera_names(n: int) -> list[str]:
    """``cam001`` ... (zero-padded to the width of ``n``)."""
    w = max(3, len(str(n)))
    return [f"cam{i + 1:0{w}d}" for i in range(n)]


def lane_names(gates: int, lanes_per_gate: int) -> list[str]:
    """The plate camera of each gate lane: ``gate01`` (one lane) or ``gate01-l1`` ..."""
    if lanes_per_gate == 1:
        return [f"gate{g + 1:02d}" for g in range(gates)]
    return [f"gate{g + 1:02d}-l{j + 1}" for g in range(gates) for j in range(lanes_per_gate)]


# ---------------------------------------------------------------------------------- events
def _heat_layers(rng: np.random.Generator) -> dict:
    """Occupancy and risk layers of a 40 m x 25 m view on 0.5 m cells (80 x 50), a few people
    blobs: the compact grids (``compact_grid``) the edge publishes."""
    y, x = np.mgrid[0:50, 0:80]
    occ = np.zeros((50, 80))
    for _ in range(6):
        cx, cy, s = rng.uniform(5, 75), rng.uniform(5, 45), rng.uniform(2, 6)
        occ += rng.uniform(5, 40) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    occ[occ < 0.5] = 0
    risk = occ**1.5 / 10
    return {
        "occupancy": compact_grid(occ, (0.0, 0.0), 0.5, unit="person_s"),
        "risk": compact_grid(risk, (0.0, 0.0), 0.5, unit="risk_s"),
    }


def _templates(seed: int) -> dict[str, list[Event]]:
    """Valid events of each kind (built with the project's Event type, so checked against the
    payload models); the schedule copies them with a new id, camera, seq, time and alarm id."""
    aid, tid = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    now = utc_iso(0.0)
    rule_common = {"alarm_id": aid, "zone": "piazza", "duration_s": 20.0, "frame": 0}
    pos = {str(t): [round(1.0 + 0.7 * t % 30, 3), round(2.0 + 0.3 * t % 20, 3)] for t in range(101, 113)}
    payloads = {
        "distance_violation": {
            **rule_common,
            "rule": "distance",
            "tracks": [101, 102],
            "positions_m": {"101": [3.12, 4.25], "102": [3.928, 4.856]},  # 1.01 m apart, as value says
            "metric": "distance_m",
            "value": 1.01,
            "threshold": 1.5,
            "distance_m": 1.01,
            "min_distance_m": 0.87,
            "threshold_m": 1.5,
            "classes": ["person", "person"],
            "decision": "sure",
            "distance_sigma_m": 0.12,
            "distance_interval_m": [0.775, 1.245],
            "confidence": 0.9996,
        },
        "occupancy_limit": {
            **rule_common,
            "rule": "occupancy",
            "tracks": [int(t) for t in pos],
            "positions_m": pos,
            "metric": "people",
            "value": 12.0,
            "threshold": 10.0,
            "worst": 14.0,
            "area_m2": 120.0,
        },
        "risk_level": {
            **rule_common,
            "rule": "risk",
            "tracks": [101, 102, 103],
            "positions_m": {"101": [3.1, 4.2], "102": [3.9, 4.9], "103": [5.2, 4.4]},
            "metric": "risk_level",
            "value": 0.62,
            "threshold": 0.5,
            "worst": 0.64,
            "exposure": 41.2,
            "proximity": 0.81,
        },
    }
    out: dict[str, list[Event]] = {}
    for kind, p in payloads.items():
        ends = {**p, "reason": "clear"}
        out[kind] = [
            Event(type=kind, camera="t", seq=1, time=now, severity="warning", state="start", payload=p),
            Event(type=kind, camera="t", seq=1, time=now, severity="warning", state="update", payload=p),
            Event(type=kind, camera="t", seq=1, time=now, severity="info", state="end", payload=ends),
        ]
    rng = np.random.default_rng(seed)
    out["heatmap"] = [
        Event(
            type="heatmap",
            camera="t",
            seq=1,
            time=now,
            severity="info",
            state="update",
            payload={
                "rule": "heatmap",
                "layers": _heat_layers(rng),
                "bounds_m": [0.0, 40.0, 0.0, 25.0],
                "decay_tau_s": 600.0,
                "final": False,
                "frame": 0,
            },
        )
        for _ in range(8)
    ]
    health = {
        "alarm_id": aid,
        "rule": "health",
        "condition": "frozen",
        "health": "frozen",
        "metric": "frame_change",
        "value": 0.21,
        "threshold": 1.0,
        "duration_s": 12.0,
        "frame": 0,
    }
    out["camera_health"] = [
        Event(type="camera_health", camera="t", seq=1, time=now, severity="warning", state="start", payload=health),
        Event(
            type="camera_health",
            camera="t",
            seq=1,
            time=now,
            severity="info",
            state="end",
            payload={**health, "health": "ok", "reason": "clear", "duration_s": 120.0},
        ),
    ]
    hit = {
        "list": "A1",
        "list_name": "stolen vehicles",
        "plate": "FB482KT",
        "note": "",
        "exact": True,
        "source": "lists/a1.csv",
        "line": 17,
    }
    plate = {"alarm_id": aid, "transit_id": tid, "confidence": 0.93, "vehicle_class": "car", "frame": 0}
    transit = {
        **plate,
        "plate": "FB482KT",
        "readings": 7,
        "votes": {"FB482KT": 5.61, "FB482KI": 0.82},
        "direction": "in",
        "kind": "car",
        "country": "IT",
        "hits": [],
        "evidence_id": None,
        "duration_s": 1.84,
        "mode": "gate",
    }
    out["plate_transit"] = [
        Event(type="plate_transit", camera="t", seq=1, time=now, severity="info", state="end", payload=transit)
    ]
    out["plate_transit_hit"] = [
        Event(
            type="plate_transit",
            camera="t",
            seq=1,
            time=now,
            severity="critical",
            state="end",
            payload={**transit, "hits": [hit], "evidence_id": "ev-1"},
        )
    ]
    out["plate_hit"] = [
        Event(
            type="plate_hit",
            camera="t",
            seq=1,
            time=now,
            severity="critical",
            state="start",
            payload={
                **plate,
                "hits": [hit],
                "plate": "FB482KT",
                "lists": ["stolen vehicles"],
                "evidence_id": "ev-1",
            },
        )
    ]
    return out


_LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"


class EventFactory:
    """Events of each kind for camera ``camera`` with the next ``seq`` of that camera (kept
    here: one factory per set of cameras, so per-camera order is the order of the calls)."""

    def __init__(self, seed: int = 17) -> None:
        self.templates = _templates(seed)
        self.seq: dict[str, int] = {}
        self._rng = random.Random(seed)
        self.frame = 0

    def _plate(self) -> str:
        r = self._rng
        return (
            f"{r.choice(_LETTERS)}{r.choice(_LETTERS)}{r.randrange(1000):03d}{r.choice(_LETTERS)}{r.choice(_LETTERS)}"
        )

    def make(self, kind: str, camera: str, *, state: int = 0, alarm_id: str | None = None, **payload) -> Event:
        """The next event of ``kind`` for ``camera``. ``state``: which template (crowd alarms:
        0 start, 1 update, 2 end; camera health 0 start, 1 end; heat maps: which map)."""
        tpls = self.templates[kind]
        tpl = tpls[state % len(tpls)]
        seq = self.seq.get(camera, 0) + 1
        self.seq[camera] = seq
        self.frame += 1
        p = {**tpl.payload, "frame": self.frame, **payload}
        if "alarm_id" in p:
            p["alarm_id"] = alarm_id or str(uuid.uuid4())
        if "transit_id" in p and "transit_id" not in payload:
            p["transit_id"] = str(uuid.uuid4())
        if kind in ("plate_transit", "plate_transit_hit") and "plate" not in payload:
            p["plate"] = self._plate()
        return tpl.model_copy(
            update={"id": new_event_id(), "camera": camera, "seq": seq, "time": utc_iso(time.time()), "payload": p}
        )


# ---------------------------------------------------------------------------------- schedule
class CitySchedule:
    """The model's events for ``cameras`` and ``lanes`` (a share of the city) in simulated time
    (seconds): :meth:`due` yields ``(camera, events)`` of every stream due up to a time.

    Every stream is periodic with a seeded random phase: crowd alarm ``start``/``update``/``end``
    sub-streams of period ``3600 / alarms_per_h`` offset by the update interval, heat maps every
    ``heatmap_interval_s``, health starts and ends every ``86400 / alarms_per_day``, one car per
    lane every ``1 / cars_per_lane_s`` (one in ``hit_every`` a hit: ``plate_hit`` then its
    ``plate_transit``)."""

    def __init__(
        self, model: LoadModel, cameras: list[str], lanes: list[str], *, seed: int = 17, run: str = "city"
    ) -> None:
        self.model = model
        self.factory = EventFactory(seed)
        self._ns = uuid.uuid5(uuid.NAMESPACE_URL, f"vigil-bench-city/{run}")
        rng = random.Random(seed)
        self._heap: list[tuple[float, int, float, int, tuple]] = []  # (t, stream, period, n, what)
        m = model
        streams: list[tuple[float, float, int, tuple]] = []  # (first t, period, first n, what)
        steps = 2 + m.updates_per_alarm
        for cam in cameras:
            for kind, field in ALARM_KINDS.items():
                per_h = float(getattr(m, field))
                if per_h <= 0:
                    continue
                period, phase = 3600.0 / per_h, rng.uniform(0, 3600.0 / per_h)
                for j in range(steps):
                    state = 0 if j == 0 else (2 if j == steps - 1 else 1)
                    streams.append(self._sub(phase + j * float(m.alarm_update_interval_s), period, (kind, cam, state)))
            if m.heatmap_interval_s > 0:
                hp = float(m.heatmap_interval_s)
                streams.append((rng.uniform(0, hp), hp, 0, ("heatmap", cam, 0)))
            if m.health_alarms_per_camera_day > 0:
                period = 86400.0 / float(m.health_alarms_per_camera_day)
                phase = rng.uniform(0, period)
                for j in (0, 1):
                    streams.append(self._sub(phase + j * float(m.health_alarm_s), period, ("camera_health", cam, j)))
        if m.cars_per_lane_s > 0:
            period = 1.0 / float(m.cars_per_lane_s)
            for lane in lanes:
                streams.append((rng.uniform(0, period), period, rng.randrange(m.hit_every), ("car", lane, 0)))
        for i, (t, period, n, what) in enumerate(streams):
            self._heap.append((t, i, period, n, what))
        heapq.heapify(self._heap)
        self.streams = len(streams)

    @staticmethod
    def _sub(offset: float, period: float, what: tuple) -> tuple[float, float, int, tuple]:
        """A sub-stream at ``offset + n * period`` started in the steady state: its first time in
        ``[0, period)``, its first alarm index negative when that alarm began before 0."""
        n0 = int(offset // period)
        return (offset - n0 * period, period, -n0, what)

    def next_time(self) -> float:
        """Simulated time of the next event (``inf`` when there are no streams)."""
        return self._heap[0][0] if self._heap else float("inf")

    def due(self, until: float) -> Iterator[tuple[str, str, list[Event]]]:
        """``(kind, camera, events)`` of every stream due at simulated time ``<= until``, in time order."""
        heap = self._heap
        make = self.factory.make
        while heap and heap[0][0] <= until:
            t, i, period, n, what = heap[0]
            heapq.heapreplace(heap, (t + period, i, period, n + 1, what))
            kind, cam, state = what
            if kind == "car":
                if n % self.model.hit_every == 0:
                    aid, tid = str(uuid.uuid4()), str(uuid.uuid4())
                    plate = self.factory._plate()
                    hit = make("plate_hit", cam, alarm_id=aid, transit_id=tid, plate=plate)
                    transit = make("plate_transit_hit", cam, alarm_id=aid, transit_id=tid, plate=plate)
                    yield "plate_hit", cam, [hit, transit]
                else:
                    yield "plate_transit", cam, [make("plate_transit", cam)]
            elif kind == "heatmap":
                yield kind, cam, [make(kind, cam, state=n)]
            else:
                aid = str(uuid.uuid5(self._ns, f"{cam}/{kind}/{n}"))
                yield kind, cam, [make(kind, cam, state=state, alarm_id=aid)]


#: cameras per edge node (one publisher, one connection, one window in flight)
CAMERAS_PER_NODE = 25
#: gate lanes per plate node
LANES_PER_NODE = 4


# ---------------------------------------------------------------------------------- publisher processes
def city_nodes(cameras: list[str], lanes: list[str]) -> list[tuple[list[str], list[str]]]:
    """The edge nodes: ``(cameras, lanes)`` each, at most CAMERAS_PER_NODE / LANES_PER_NODE."""
    out = [(cameras[i : i + CAMERAS_PER_NODE], []) for i in range(0, len(cameras), CAMERAS_PER_NODE)]
    out += [([], lanes[i : i + LANES_PER_NODE]) for i in range(0, len(lanes), LANES_PER_NODE)]
    return out


def publisher_process(index: int, spec: dict, conn) -> None:
    """A publisher process: its share of the nodes, one schedule; obeys ``conn`` commands."""
    configure = client_configurator(spec["keys"], "city-edge") if spec["keys"] else None
    nodes = spec["nodes"]
    pubs, pub_of = [], {}
    for cams, lanes in nodes:
        pub = EventPublisher(
            spec["ingest"], configure_socket=configure, timeout_s=5.0, backoff_max_s=10.0, max_buffer=2_000_000
        )
        pubs.append(pub)
        for name in (*cams, *lanes):
            pub_of[name] = pub
    cameras = [c for cams, _ in nodes for c in cams]
    lanes = [lane for _, ls in nodes for lane in ls]
    model = LoadModel(**spec["model"])
    sched = CitySchedule(model, cameras, lanes, seed=17 + index, run=spec["run"])
    sim = 0.0
    conn.send({"ready": True, "cameras": len(cameras), "lanes": len(lanes), "nodes": len(pubs)})
    try:
        while True:
            cmd = conn.recv()
            if cmd["op"] == "phase":
                res, sim = _play(sched, pubs, pub_of, sim, cmd["factor"], cmd["start_at"], cmd["wall_s"])
                conn.send(res)
            elif cmd["op"] == "burst":
                conn.send(_burst(sched, pubs, pub_of, cameras, lanes, cmd["kind"], cmd["n"]))
            else:
                break
    finally:
        total = [p.close(1.0) for p in pubs]
        conn.send({"undelivered": sum(r.undelivered for r in total), "published": sum(r.published for r in total)})


def _acked(pubs) -> int:
    return sum(p.report().acknowledged for p in pubs)


def _drain(pubs, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    for p in pubs:
        if not p.flush(max(0.0, deadline - time.monotonic())).complete:
            return False
    return True


def _play(sched: CitySchedule, pubs, pub_of, sim0: float, factor: float, start_at: float, wall_s: float):
    """Offer the schedule's events of simulated ``[sim0, sim0 + wall_s * factor)`` at
    ``factor`` times real time from monotonic ``start_at``; then wait for every ack."""
    sim_end = sim0 + wall_s * factor
    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    acked0 = _acked(pubs)
    offered, kinds, backlog = 0, Counter(), 0
    next_sample = start_at
    while True:
        now = time.monotonic()
        sim_now = min(sim_end, sim0 + (now - start_at) * factor)
        groups: dict = defaultdict(list)
        for kind, cam, events in sched.due(sim_now - 1e-9 if sim_now >= sim_end else sim_now):
            groups[pub_of[cam]].extend(events)
            if kind == "plate_hit":  # the hit and its transit
                kinds["plate_hit"] += 1
                kinds["plate_transit_hit"] += 1
            else:
                kinds[kind] += len(events)
        for pub, events in groups.items():
            for i in range(0, len(events), 512):
                pub.publish_many(events[i : i + 512])
                offered += len(events[i : i + 512])
        if now >= next_sample:
            backlog = max(backlog, sum(p.report().pending for p in pubs))
            next_sample = now + 0.25
        if sim_now >= sim_end:
            break
        wake = start_at + (min(sched.next_time(), sim_end) - sim0) / factor
        delay = min(wake - time.monotonic(), 0.05)
        if delay > 0.0005:
            time.sleep(delay)
    emitted = time.monotonic()
    end = start_at + wall_s
    acked_in_step = _acked(pubs) - acked0 if emitted <= end + 0.05 else None
    if emitted < end:
        time.sleep(end - emitted)
        acked_in_step = _acked(pubs) - acked0
    drained = _drain(pubs)
    done = time.monotonic()
    return {
        "offered": offered,
        "kinds": dict(kinds),
        "emit_s": emitted - start_at,
        "acked_in_step": acked_in_step,
        "max_backlog": backlog,
        "drain_s": done - max(emitted, end) if drained else None,
    }, sim_end


def _burst(sched: CitySchedule, pubs, pub_of, cameras, lanes, kind: str, n: int) -> dict:
    """``n`` events of ``kind`` alone (round robin over this process's cameras or lanes), acked."""
    names = lanes if kind.startswith("plate") else cameras
    make = sched.factory.make
    events = [make(kind, names[i % len(names)], state=i) for i in range(n)]
    groups: dict = defaultdict(list)
    for e in events:
        groups[pub_of[e.camera]].append(e)
    for pub, evs in groups.items():
        for i in range(0, len(evs), 256):
            pub.publish_many(evs[i : i + 256])
    return {"offered": n, "complete": _drain(pubs)}
