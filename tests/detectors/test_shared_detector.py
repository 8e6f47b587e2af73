"""The shared detector process: routing across camera processes, drops, shutdown, failures.

The backend is a fake defined here (passed as ``builder``): it "detects" one box whose
coordinates encode the frame's pixel values, so a result proves which frame it came from.
The detector process imports this module to unpickle the builder, so the repository root
goes on ``sys.path`` (spawned processes inherit it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.base import detect_batch
from vigil.detectors.detections import Detections
from vigil.detectors.shared import DetectorClosed, DetectorError, DetectorServer

REPO = Path(__file__).resolve().parents[2]
CTX = mp.get_context("spawn")


class FakeDetector:
    """Box ``[cam, k, cam + 10, k + 10]`` for a frame whose channel 0 is ``cam`` and channel 1 ``k``;
    ``class_id`` = the frame's width (tells the cameras' resolutions apart). ``cfg``:
    ``delay`` (s per batch), ``fail_on`` (a ``k`` that raises)."""

    class_names = ["cam", "frame"]

    def __init__(self, cfg: dict | None = None) -> None:
        cfg = cfg or {}
        self.delay = float(cfg.get("delay", 0.0))
        self.fail_on = cfg.get("fail_on")

    def detect(self, frame: np.ndarray) -> Detections:
        cam, k = float(frame[..., 0].mean()), float(frame[..., 1].mean())
        if self.fail_on is not None and k == self.fail_on:
            raise RuntimeError("bad frame")
        return Detections(xyxy=[[cam, k, cam + 10, k + 10]], confidence=[0.5], class_id=[frame.shape[1]])

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        if self.delay:
            time.sleep(self.delay)
        return [self.detect(f).with_metadata(batch=len(frames)) for f in frames]


def make_frame(shape, cam: int, k: int) -> np.ndarray:
    f = np.zeros((*shape, 3), np.uint8)
    f[..., 0], f[..., 1] = cam, k
    return f


def camera_process(client, cam: int, shape, n: int, out) -> None:
    """A camera worker: ``n`` synchronous detects, then ``n`` pipelined submit/poll frames."""
    got = []
    try:
        for k in range(n):
            d = client.detect(make_frame(shape, cam, k))
            got.append(("sync", k, d.xyxy.tolist(), d.class_id.tolist(), d.metadata.get("batch")))
        sent, k = {}, n
        while k < 2 * n or client.pending:
            if k < 2 * n and client.submit(make_frame(shape, cam, k)):
                sent[client.last_seq] = k
                k += 1
            d = client.poll(timeout=0.01)
            if d is not None:
                got.append(
                    (
                        "async",
                        sent[d.metadata["frame_seq"]],
                        d.xyxy.tolist(),
                        d.class_id.tolist(),
                        d.metadata.get("batch"),
                    )
                )
        out.put((cam, got, client.drops))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out.put((cam, f"{type(exc).__name__}: {exc}", 0))
    finally:
        client.close()


def hold_process(client, ready) -> None:
    """Connects, keeps two frames in flight, then waits to be killed."""
    client.submit(make_frame((32, 32), 9, 1))
    client.submit(make_frame((32, 32), 9, 2))
    ready.set()
    time.sleep(60)


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))


@pytest.fixture
def server_factory():
    servers = []

    def make(cfg=None, **kw):
        srv = DetectorServer(cfg or {}, builder=FakeDetector, **kw).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()
        assert s.leftover_segments() == []


def test_frames_from_two_processes_come_back_to_their_camera(server_factory):
    srv = server_factory({"delay": 0.01}, max_batch=4, max_wait_ms=30)
    assert srv.class_names == FakeDetector.class_names
    shapes = {3: (48, 64), 7: (40, 56)}
    n = 6
    out = CTX.Queue()
    procs = [
        CTX.Process(target=camera_process, args=(srv.client(f"cam{c}", s), c, s, n, out)) for c, s in shapes.items()
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=30)[:2] for _ in procs)
    for p in procs:
        p.join(10)
    for cam, got in results.items():
        assert not isinstance(got, str), got
        assert sorted(k for _, k, *_ in got) == list(range(2 * n))
        for mode, k, xyxy, cls, _ in got:
            assert xyxy == [[cam, k, cam + 10, k + 10]], (cam, mode, k)
            assert cls == [shapes[cam][1]]
        async_ks = [k for mode, k, *_ in got if mode == "async"]
        assert async_ks == sorted(async_ks)  # poll returns results in submission order
    s = srv.stats()
    assert s["frames_in"] == s["frames_out"] == 4 * n
    assert set(s["cameras"]) == {"cam3", "cam7"}
    assert s["cameras"]["cam3"]["frames_out"] == 2 * n
    assert s["batches"] < 4 * n and s["mean_batch"] > 1.0  # frames of both cameras shared batches
    batch_sizes = [b for got in results.values() for *_, b in got]
    assert max(batch_sizes) > 1


def test_full_ring_drops_and_counts_instead_of_blocking(server_factory):
    srv = server_factory({"delay": 0.4}, max_batch=8, max_wait_ms=0)
    client = srv.client("busy", (24, 32), slots=2)
    client.connect()
    t = time.monotonic()
    accepted = [client.submit(make_frame((24, 32), 1, k)) for k in range(10)]
    assert time.monotonic() - t < 0.3  # never waited for the 0.4 s inference
    assert accepted == [True, True] + [False] * 8
    assert client.drops == 8 and client.in_flight == 2
    assert srv.stats()["cameras"]["busy"]["drops"] == 8
    first, second = client.poll(timeout=5), client.poll(timeout=5)
    assert [first.metadata["frame_seq"], second.metadata["frame_seq"]] == [0, 1]
    assert first.xyxy[0, 1] == 0 and second.xyxy[0, 1] == 1
    assert client.poll() is None and client.submit(make_frame((24, 32), 1, 5))  # slots are free again
    with pytest.raises(ValueError, match="expected a uint8 frame of shape"):
        client.submit(np.zeros((10, 10, 3), np.uint8))
    client.close()


def test_stop_releases_every_shared_memory_segment():
    srv = DetectorServer({}, builder=FakeDetector).start()
    a, b = srv.client("a", (16, 16)), srv.client("b", (20, 30, 3), slots=3)
    assert a.detect(make_frame((16, 16), 1, 2)).xyxy.tolist() == [[1, 2, 11, 12]]
    b.submit(make_frame((20, 30), 2, 3))
    assert len(srv.leftover_segments()) == 2
    assert all(Path("/dev/shm", n).is_file() for n in srv.leftover_segments()) or not Path("/dev/shm").is_dir()
    sock_dir = Path(srv.address).parent
    srv.stop()
    assert srv.leftover_segments() == []
    assert not [p for p in os.listdir("/dev/shm") if p.startswith(srv.prefix)] if Path("/dev/shm").is_dir() else True
    assert not sock_dir.exists()
    assert srv.stats()["alive"] is False
    with pytest.raises(DetectorClosed):
        a.detect(make_frame((16, 16), 1, 2))
    a.close()
    b.close()
    srv.stop()  # idempotent


def test_killed_client_does_not_take_the_server_down(server_factory):
    srv = server_factory({"delay": 0.05}, max_batch=4, max_wait_ms=5)
    ready = CTX.Event()
    p = CTX.Process(target=hold_process, args=(srv.client("doomed", (32, 32)), ready))
    p.start()
    assert ready.wait(20)
    assert len(srv.leftover_segments()) == 1
    os.kill(p.pid, signal.SIGKILL)
    p.join(5)
    live = srv.client("live", (32, 32))
    for k in range(3):
        assert live.detect(make_frame((32, 32), 4, k)).xyxy.tolist() == [[4, k, 14, k + 10]]
    deadline = time.monotonic() + 5
    while srv.stats()["cameras"].get("doomed", {}).get("connected", True) and time.monotonic() < deadline:
        time.sleep(0.05)
    s = srv.stats()
    assert s["alive"] and s["cameras"]["doomed"]["connected"] is False
    assert s["cameras"]["live"]["frames_out"] == 3
    assert len(srv.leftover_segments()) == 1  # only the live camera's segment is left
    live.close()


def test_watchdog_and_detector_errors_are_reported(server_factory):
    srv = server_factory({"delay": 0.6, "fail_on": 13}, max_batch=2, max_wait_ms=0, inference_timeout_s=0.2)
    c = srv.client("slow", (8, 8))
    assert c.submit(make_frame((8, 8), 1, 1))
    time.sleep(0.4)
    s = srv.stats()  # answered while the inference is still running
    assert s["stuck"] and s["busy_ms"] > 200
    assert c.poll(timeout=5) is not None
    s = srv.stats()
    assert not s["stuck"] and s["watchdog_trips"] == 1 and s["inference_ms_max"] >= 550
    with pytest.raises(DetectorError, match="bad frame"):
        c.detect(make_frame((8, 8), 1, 13))
    assert c.detect(make_frame((8, 8), 1, 2)).xyxy[0, 1] == 2  # still serving
    assert srv.stats()["errors"] == 1
    c.close()


def _broken_builder(cfg):
    raise RuntimeError("no model here")


def test_start_reports_a_detector_that_cannot_be_built():
    srv = DetectorServer({}, builder=_broken_builder)
    with pytest.raises(DetectorError, match="no model here"):
        srv.start()
    assert srv.leftover_segments() == [] and not srv.is_alive()


def test_same_camera_twice_is_refused_and_batches_fall_back_to_detect(server_factory):
    srv = server_factory()
    a = srv.client("dup", (8, 8)).connect()
    with pytest.raises(DetectorError, match="already connected"):
        srv.client("dup", (8, 8)).connect()
    a.close()

    class Plain:  # no detect_batch: one detect per frame
        def detect(self, f):
            return Detections.empty({"w": f.shape[1]})

    assert [
        d.metadata["w"] for d in detect_batch(Plain(), [np.zeros((2, 3, 3), np.uint8), np.zeros((2, 5, 3), np.uint8)])
    ] == [3, 5]


def test_batching_bench_reports_single_and_batched_rates(vtest):
    from vigil.bench.detector_batching import run

    res = run(
        str(vtest),
        cameras=2,
        frames=3,
        batches=(2,),
        max_wait_ms=20,
        detector_cfg={},
        progress=False,
        builder=FakeDetector,
    )
    assert set(res["by_max_batch"]) == {"1", "2"}
    assert (
        res["single_fps"] > 0
        and res["batched_fps"] > 0
        and res["ratio"] == pytest.approx(res["batched_fps"] / res["single_fps"], rel=1e-2)
    )
    assert res["by_max_batch"]["1"]["mean_batch"] == 1.0
    assert res["backend_detect_batch"] is True and res["raw_onnx"] is None


def test_shape_from_first_frame_and_reconnect_on_resolution_change(server_factory):
    srv = server_factory()
    c = srv.client("auto")  # no frame_shape: the first frame gives it
    assert c.poll() is None and not c.connected
    assert c.detect(make_frame((12, 20), 2, 3)).xyxy.tolist() == [[2, 3, 12, 13]]
    assert c.frame_shape == (12, 20, 3)
    first = srv.leftover_segments()
    assert c.detect(make_frame((30, 40), 2, 4)).class_id.tolist() == [40]  # a new resolution: a new segment
    assert c.frame_shape == (30, 40, 3) and srv.leftover_segments() != first and len(srv.leftover_segments()) == 1
    c2 = pickle.loads(pickle.dumps(c))  # what a spawned worker receives: configuration, not the connection
    assert not c2.connected and c2.class_names == FakeDetector.class_names
    c.close()
