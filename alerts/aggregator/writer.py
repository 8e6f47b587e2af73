"""The store-writer thread: commits validated batches while the serving thread reads the next.

The serving thread :meth:`~StoreWriter.submit`\\ s each validated ingest batch; the writer
thread takes what is queued (several batches in one transaction when they pile up, at most
:data:`MAX_COMMIT_EVENTS` events), commits it with the store's ``add_many_seq`` and hands the
result back (:meth:`~StoreWriter.take_committed`), waking the serving thread's poll through
:attr:`~StoreWriter.committed`. Acknowledgements go out only from there, after the commit.

At most :data:`MAX_QUEUED_BATCHES` batches wait (:attr:`~StoreWriter.full`); the serving thread
then stops reading ingest, so a slow disk pushes back on the publishers (ZeroMQ high-water
marks) instead of growing memory. A failed commit comes back as a :class:`Commit` with its
``error``: nothing in it is acknowledged and the publishers resend.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from ..events import Event
from ..store import Store, StoreError
from ..transport import Wakeup

__all__ = ["Batch", "Commit", "StoreWriter", "MAX_QUEUED_BATCHES", "MAX_COMMIT_EVENTS"]

log = logging.getLogger(__name__)

MAX_QUEUED_BATCHES = 8  # validated batches waiting for the writer before ingest pauses
MAX_COMMIT_EVENTS = 8192  # events the writer commits in one transaction at most


class Batch(NamedTuple):
    """One ingest read's valid events: ``(envelope, event)`` each (the envelope is the peer's
    routing frames, where its acknowledgement goes) and the events' JSON, in the same order.

    Filled by the writer as it commits: ``rejected`` (index in the batch -> why the store
    refused that event's data; the others were committed without it) and ``conflicts``
    (indices of duplicates whose content differs from the stored event)."""

    items: list[tuple[list[bytes], Event]]
    texts: list[str]
    rejected: dict[int, str]
    conflicts: set[int]

    @classmethod
    def of(cls, items: list[tuple[list[bytes], Event]], texts: list[str]) -> "Batch":
        return cls(items, texts, {}, set())


@dataclass(frozen=True)
class Commit:
    """Batches committed together: per event its new ``stream_seq`` (``None``: a duplicate), in
    batch order; or the ``error`` that kept all of them from being committed."""

    batches: list[Batch]
    seqs: list[int | None] | None = None
    error: StoreError | None = None

    def per_batch(self) -> Iterator[tuple[Batch, list[int | None]]]:
        """Each batch with its own slice of ``seqs`` (a committed :class:`Commit` only)."""
        k = 0
        for batch in self.batches:
            yield batch, self.seqs[k : k + len(batch.items)]
            k += len(batch.items)


class StoreWriter:
    """Commit batches to ``store`` in a thread of their own (see the module docstring).

    Thread-safety: :meth:`submit`, :meth:`take_committed`, :attr:`full` and :meth:`stop` belong to
    the serving thread; the writer thread only reads the job queue and appends results.
    """

    def __init__(
        self, store: Store, *, max_queued: int = MAX_QUEUED_BATCHES, max_events: int = MAX_COMMIT_EVENTS
    ) -> None:
        self.store = store
        self.max_queued = int(max_queued)
        self.max_events = int(max_events)
        self.committed = Wakeup()  # set by the writer after each commit; poll its ``reader``
        self.queued = 0  # batches submitted and not yet taken back
        self._jobs: queue.Queue[Batch | None] = queue.Queue()
        self._results: deque[Commit] = deque()
        self._thread: threading.Thread | None = None

    @property
    def full(self) -> bool:
        """``max_queued`` batches wait: stop reading ingest until some are taken back."""
        return self.queued >= self.max_queued

    def start(self) -> None:
        """Start the writer thread (one per :meth:`~vigil.alerts.aggregator.Aggregator.run`)."""
        self._thread = threading.Thread(target=self._run, name="aggregator-store-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self.queued += 1
        self._jobs.put(batch)

    def stop(self) -> None:
        """Commit what is queued, then stop the thread (its results wait in :meth:`take_committed`)."""
        if self._thread is None:
            return
        self._jobs.put(None)
        self._thread.join()
        self._thread = None

    def take_committed(self) -> list[Commit]:
        """What the writer has finished since the last call, oldest first."""
        self.committed.clear()
        done = []
        while self._results:
            commit = self._results.popleft()
            self.queued -= len(commit.batches)
            done.append(commit)
        return done

    def close(self) -> None:
        self.committed.close()

    def _run(self) -> None:
        """Writer thread: commit queued batches (several at once when they pile up) and hand
        the results back to the serving thread."""
        while True:
            job = self._jobs.get()
            stopping = job is None
            jobs = [] if stopping else [job]
            n_events = 0 if stopping else len(job.items)
            while not stopping and n_events < self.max_events:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    jobs.append(more)
                    n_events += len(more.items)
            if jobs:
                self._results.append(self._commit(jobs))
                self.committed.set()
            if stopping:
                return

    def _commit(self, jobs: list[Batch]) -> Commit:
        """Commit the events of ``jobs`` in one transaction. When the store refuses the *data*
        (:attr:`StoreError.data_error`: e.g. text PostgreSQL cannot hold), the group is split in
        halves until the events at fault are alone; they are marked in their batch's
        ``rejected`` and everything else is committed, so one bad event never holds up the
        others (nor makes its sender resend the whole batch forever). Any other error (disk
        full, locked) fails the whole group: nothing is acknowledged, the publishers resend."""
        where = [(batch, k) for batch in jobs for k in range(len(batch.items))]
        events = [batch.items[k][1] for batch, k in where]
        texts = [batch.texts[k] for batch, k in where]
        seqs: list[int | None] = [None] * len(events)
        try:
            self._commit_span(events, texts, seqs, where, 0, len(events))
        except StoreError as exc:
            for batch in jobs:
                batch.rejected.clear()
                batch.conflicts.clear()
            return Commit(jobs, error=exc)
        return Commit(jobs, seqs=seqs)

    def _commit_span(
        self,
        events: list[Event],
        texts: list[str],
        seqs: list[int | None],
        where: list[tuple[Batch, int]],
        lo: int,
        hi: int,
    ) -> None:
        """Commit ``events[lo:hi]`` into ``seqs[lo:hi]`` (see :meth:`_commit`); raises the
        :class:`StoreError` that is not about one event's data."""
        conflicts: list[str] = []
        try:
            got = self.store.add_many_seq(events[lo:hi], texts[lo:hi], conflicts)
        except StoreError as exc:
            if not exc.data_error:
                raise
            if hi - lo == 1:
                batch, k = where[lo]
                batch.rejected[k] = str(exc)
                return
            mid = (lo + hi) // 2
            self._commit_span(events, texts, seqs, where, lo, mid)
            self._commit_span(events, texts, seqs, where, mid, hi)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill ingest silently
            log.exception("aggregator: unexpected error storing %d event(s)", hi - lo)
            raise StoreError(f"unexpected {type(exc).__name__}: {exc}") from None
        seqs[lo:hi] = got
        if conflicts:
            clash = set(conflicts)
            for i in range(lo, hi):
                if got[i - lo] is None and events[i].id in clash:
                    batch, k = where[i]
                    batch.conflicts.add(k)
