"""Plate transits at the aggregator: each ``plate_transit`` event is recorded in the transit
store on the event store's own database before the event is stored, and the stored event keeps
no copy of the plate unless it hit a list.

Fails closed. A transit of a vehicle on no list is stored only once its pseudonymised row is in
the transit table; when that cannot be done (the transit store cannot be opened, no usable
plate key, a bad transit) :meth:`PlateTransits.record` raises :class:`PlateRefused` and nothing
of the event is stored, streamed or acknowledged as stored: the caller (ingest) refuses it with
the exception's reason. A hit keeps its plate in clear by right (the list is its legal basis),
so a hit whose transit row cannot be written is still stored (the alarm must not be lost) and
the failure logged. A ``plate_hit`` that names no list hit is refused: it would store the clear
plate of a vehicle on no list.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vigil.plates.pseudonym import load_key, redact_event_payload
from vigil.plates.transits import TransitError

from ..events import Event
from ..store import Store

__all__ = ["PlateTransits", "PlateRefused"]

log = logging.getLogger(__name__)


class PlateRefused(Exception):
    """A plate event the aggregator must not store: ``reason`` (also ``str(exc)``) says why,
    for the sender's nack and the log.

    A refusal is final, also when the fault is the aggregator's (no usable plate key, the
    transit database not writable; a connection found broken is reopened and the transit tried
    once more first, so a restarted or failed-over server costs nothing): holding the event back
    unacknowledged would hold every later event of its camera behind it (the publisher keeps
    one window in flight, so a plate hit would wait behind a transit), and the privacy rule is
    to refuse, not to keep the plate somewhere. The edge counts it as rejected; the aggregator's log says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PlateTransits:
    """Records each ``plate_transit`` in the transit store of the event store's database
    (``store.open_transits()``, opened on the first transit, reopened after a database error).
    ``key_file``: the pseudonymisation key file (default: ``VIGIL_PLATE_KEY`` /
    ``VIGIL_PLATE_KEY_FILE`` / the default file, see :func:`~vigil.plates.pseudonym.load_key`).
    The key is read on first use and re-read until it is usable: fixing it needs no restart."""

    def __init__(self, store: Store, *, key_file: str | Path | None = None) -> None:
        self.store = store
        self.key_file = key_file
        self._transits: Any = None

    def key_problem(self) -> str | None:
        """Why no-hit transits would be refused now for want of a key (``None``: the key this
        recorder's transit store reads is usable). For a warning at start-up; reads no database."""
        try:
            load_key(key_file=self.key_file)
        except TransitError as exc:
            return str(exc)
        return None

    def record(self, event: Event) -> Event:
        """The event to store for ``event``, after recording a ``plate_transit`` in the transit
        table (:mod:`vigil.plates.transits`): other types unchanged, a hit unchanged, a transit
        that hit no list without any copy of its plate (no ``plate``, ``plate_hash``, ``votes``,
        ``raw_readings``, ``evidence_id``; :func:`~vigil.plates.pseudonym.redact_event_payload`).

        Raises :class:`PlateRefused` (nothing stored) for a no-hit transit that cannot be
        recorded and for a ``plate_hit`` without hits. Never raises anything else."""
        hit = bool(event.payload.get("hits"))
        if event.type == "plate_hit" and not hit:
            raise PlateRefused("plate_hit without a watch-list hit: its clear plate is not stored")
        if event.type != "plate_transit":
            return event
        try:
            try:
                self._add(event)
            except TransitError:
                raise
            except Exception:  # noqa: BLE001 - a broken connection (the server restarted): once more, anew
                self._drop_store()
                self._add(event)
        except Exception as exc:  # noqa: BLE001 - any failure: refuse (no hit) or log (hit), never stop ingest
            if not isinstance(exc, TransitError):
                self._drop_store()  # still broken: reopen on the next transit
            if not hit:
                raise PlateRefused(f"plate transit not recorded, so not stored (privacy fails closed): {exc}") from None
            log.error("aggregator: plate transit %s (a list hit) stored without its transit record: %s", event.id, exc)
            return event
        if hit:
            return event
        payload = redact_event_payload(event.payload)
        if payload is event.payload:
            return event
        return event.model_copy(update={"payload": payload})

    def _add(self, event: Event) -> None:
        if self._transits is None:
            options = {} if self.key_file is None else {"key_file": self.key_file}
            self._transits = self.store.open_transits(**options)
        self._transits.add_event(event)

    def _drop_store(self) -> None:
        transits, self._transits = self._transits, None
        if transits is not None:
            try:
                transits.close()
            except Exception:  # noqa: BLE001, S110 - it is being discarded because it broke
                pass

    def close(self) -> None:
        if self._transits is not None:
            self._transits.close()
            self._transits = None
