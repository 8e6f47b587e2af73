"""What every console request handler needs, in one typed object on ``app.state.console``.

:func:`~.app.create_app` builds one :class:`ConsoleContext` per application; the module-level
handlers in :mod:`.routes` read it with :func:`context_of`. Nothing here is a global: two
applications in one process (tests do that) have separate hubs, throttles and stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import jinja2
from starlette.requests import Request

from vigil.plates.transits import TransitStore

from .db import ConsoleDB
from .live import Hub, StreamFollower

__all__ = ["ConsoleContext", "LoginThrottle", "TransitSearch", "context_of", "EVIDENCE_SUFFIXES"]

#: evidence crops are ``<evidence id><suffix>`` files in ``evidence_dir``, tried in this order
EVIDENCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class TransitSearch(Protocol):
    """The transit-search interface the console uses (:class:`~vigil.plates.transits.TransitStore`
    or a test double)."""

    def search_plate(self, plate: str, since: str | None = None, until: str | None = None) -> list[dict]: ...


class LoginThrottle:
    """Failed logins per (lower-cased user name, client address) within a sliding window.

    ``failures(key, now)`` forgets the ones older than ``window_s`` and counts the rest; a
    key with ``max_failures`` recent failures is refused without checking its password.
    """

    def __init__(self, window_s: float = 300.0, max_failures: int = 5) -> None:
        self.window_s = window_s
        self.max_failures = max_failures
        self._failures: dict[tuple[str, str], list[float]] = {}

    def failures(self, key: tuple[str, str], now: float) -> int:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        self._failures[key] = recent
        return len(recent)

    def throttled(self, key: tuple[str, str], now: float) -> bool:
        return self.failures(key, now) >= self.max_failures

    def record_failure(self, key: tuple[str, str], now: float) -> None:
        self._failures.setdefault(key, []).append(now)

    def clear(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


@dataclass
class ConsoleContext:
    """The dependencies of one console application.

    ``transits``: the plate-search store; ``None`` until the first search opens a
    :class:`TransitStore` on ``transits_path`` (see :meth:`transit_store`).
    ``evidence_root``: the resolved evidence folder, or ``None`` (no evidence served).
    ``follow``: start the stream follower with the application (tests drive the hub themselves).
    """

    db: ConsoleDB
    hub: Hub
    follower: StreamFollower
    templates: jinja2.Environment
    transits_path: Path
    transits: TransitSearch | None = None
    evidence_root: Path | None = None
    secure_cookies: bool = False
    follow: bool = True
    logins: LoginThrottle = field(default_factory=LoginThrottle)

    def transit_store(self) -> TransitSearch:
        """The transit store, opened on first use (most sessions never search)."""
        if self.transits is None:
            self.transits = TransitStore(str(self.transits_path))
        return self.transits

    def evidence_path(self, evidence_id: str) -> Path | None:
        """The evidence crop file for an id (already checked against the id pattern), if it
        exists directly inside ``evidence_root``."""
        if self.evidence_root is None:
            return None
        for ext in EVIDENCE_SUFFIXES:
            path = (self.evidence_root / f"{evidence_id}{ext}").resolve()
            if path.parent == self.evidence_root and path.is_file():
                return path
        return None


def context_of(request: Request) -> ConsoleContext:
    """The :class:`ConsoleContext` of the application serving ``request``."""
    return request.app.state.console
