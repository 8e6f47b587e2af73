"""The aggregator: receive events from edge workers, store them, acknowledge, re-publish.

:class:`Aggregator` (:mod:`.service`) composes :mod:`.ingest` (the ingest ROUTER and the
acknowledgements), :mod:`.writer` (the store-writer thread) and :mod:`.stream` (operator
fan-out and replay).
"""

from .service import COUNTERS, Aggregator, AggregatorError

__all__ = ["Aggregator", "AggregatorError", "COUNTERS"]
