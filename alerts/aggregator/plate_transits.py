"""Plate transits at the aggregator: each ``plate_transit`` event is recorded in the transit
store on the event store's own database before the event is stored, and the stored event loses
its clear plate unless it hit a list."""

from __future__ import annotations

import logging
from typing import Any

from vigil.plates.transits import redact_event_payload

from ..events import Event
from ..store import Store

__all__ = ["PlateTransits"]

log = logging.getLogger(__name__)


class PlateTransits:
    """Records each ``plate_transit`` in the transit store of the event store's database
    (``store.open_transits()``, opened on the first transit, retried while it fails)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._transits: Any = None

    def record(self, event: Event) -> Event:
        """Record a ``plate_transit`` in the transit table (:mod:`vigil.plates.transits`) and
        return the event to store: a transit without list hits loses its clear plate (keyed
        pseudonym instead), so the event table holds no plate of a vehicle on no list."""
        if event.type != "plate_transit":
            return event
        try:
            if self._transits is None:
                self._transits = self.store.open_transits()
            self._transits.add_event(event)
            payload = redact_event_payload(event.payload, self._transits.key)
        except Exception as exc:  # noqa: BLE001 - a transit problem must not stop event ingest
            log.error("aggregator: plate transit %s not recorded: %s", event.id, exc)
            payload = {k: v for k, v in event.payload.items() if k != "plate" or event.payload.get("hits")}
        if payload is event.payload:
            return event
        return event.model_copy(update={"payload": payload})

    def close(self) -> None:
        if self._transits is not None:
            self._transits.close()
            self._transits = None
