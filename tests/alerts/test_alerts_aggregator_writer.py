"""The store-writer thread on its own: batches that pile up are committed together, a full
queue says so (ingest then pauses), and a failed commit comes back as an error, not as seqs."""

from __future__ import annotations

import threading
import time

from vigil.alerts.aggregator.writer import MAX_QUEUED_BATCHES, Batch, StoreWriter
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore, StoreError


class _GatedStore:
    """A real SQLite store whose commits wait for ``gate``; the first ``fail`` commits fail."""

    def __init__(self, path, fail: int = 0) -> None:
        self.inner = EventStore(path)
        self.gate = threading.Event()
        self.fail = fail
        self.calls: list[int] = []

    def add_many_seq(self, events, texts=None, conflicts=None):
        self.gate.wait(10)
        self.calls.append(len(events))
        if len(self.calls) <= self.fail:
            raise StoreError("database or disk is full")
        return self.inner.add_many_seq(events, texts, conflicts)


def _batch(events) -> Batch:
    return Batch.of([([b"peer"], ev) for ev in events], [ev.to_json() for ev in events])


def test_piled_up_batches_are_committed_together_in_order(tmp_path, make_event):
    store = _GatedStore(tmp_path / "e.db")
    writer = StoreWriter(store)
    events = [make_event() for _ in range(12)]
    writer.start()
    try:
        for k in range(0, 12, 3):
            writer.submit(_batch(events[k : k + 3]))
        assert writer.queued == 4 and not writer.full
        store.gate.set()
    finally:
        writer.stop()
    commits = writer.take_committed()
    writer.close()
    assert writer.queued == 0
    assert sum(store.calls) == 12 and len(store.calls) < 4  # the first alone, the rest together
    seqs = [s for c in commits for _, batch_seqs in c.per_batch() for s in batch_seqs]
    assert seqs == list(range(1, 13))
    assert [ev for c in commits for b in c.batches for _, ev in b.items] == events


def test_full_queue_and_failed_commit(tmp_path, make_event):
    store = _GatedStore(tmp_path / "e.db", fail=1)
    writer = StoreWriter(store)
    writer.start()
    try:
        for _ in range(MAX_QUEUED_BATCHES):
            writer.submit(_batch([make_event()]))
        assert writer.full  # ingest pauses here
        store.gate.set()
    finally:
        writer.stop()
    commits = writer.take_committed()
    writer.close()
    assert not writer.full
    assert isinstance(commits[0].error, StoreError) and commits[0].seqs is None
    assert all(c.error is None for c in commits[1:])
    assert store.inner.count()[0] == MAX_QUEUED_BATCHES - len(commits[0].batches)


class _FlakySlowStore:
    """A real SQLite store behind a fault injector: the first commit fails (disk full, say),
    every commit takes ``delay_s``; records the batch sizes it was given."""

    def __init__(self, path, delay_s: float) -> None:
        self.inner = EventStore(path)
        self.path = self.inner.path
        self.delay_s = delay_s
        self.calls: list[int] = []

    def add_many_seq(self, events, texts=None, conflicts=None):
        events = list(events)
        self.calls.append(len(events))
        time.sleep(self.delay_s)
        if len(self.calls) == 1:
            raise StoreError(f"cannot write to event database {self.path}: database or disk is full")
        return self.inner.add_many_seq(events, texts, conflicts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_failed_commit_is_not_acked_and_slow_commits_are_grouped_without_loss(tmp_path, make_event, running_aggregator):
    """A batch the store cannot commit is not acknowledged (the publisher resends it), and
    while commits are slow the writer takes what piled up in one transaction: nothing is lost
    or stored twice, and ingest keeps answering."""
    store = _FlakySlowStore(tmp_path / "e.db", delay_s=0.05)
    events = [make_event(camera=f"cam{k % 3}", seq=k + 1) for k in range(600)]
    with running_aggregator(store) as agg:
        # one publisher per camera (as on a node): each has one window in flight, so what
        # piles up while a commit is slow is the other publishers' windows
        pubs = [EventPublisher(agg.ingest_endpoint, timeout_s=0.3, backoff_max_s=0.6, batch_max=16) for _ in range(3)]
        try:
            for k in range(0, len(events), 20):
                for c, pub in enumerate(pubs):
                    pub.publish_many([ev for ev in events[k : k + 20] if ev.camera == f"cam{c}"])
            reports = [pub.flush(30) for pub in pubs]
        finally:
            for pub in pubs:
                pub.close(0)
        stats = agg.stats()
        assert store.count() == (600, 600)
    assert all(r.complete for r in reports) and sum(r.acknowledged for r in reports) == 600
    assert stats["store_errors"] == 1 and stats["stored"] == 600
    assert max(store.calls) > 16  # several ingest batches committed together
