"""What every console request handler needs, in one typed object on ``app.state.console``.

:func:`~.app.create_app` builds one :class:`ConsoleContext` per application; the module-level
handlers in :mod:`.routes` read it with :func:`context_of`. Nothing here is a global: two
applications in one process (tests do that) have separate hubs, throttles and stores.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2
from starlette.requests import Request

from vigil.plates.transits import TransitStore, open_transit_store

from .db import ConsoleDB
from .live import Hub, StreamFollower
from .sitemap import SiteMap

__all__ = ["ConsoleContext", "LoginThrottle", "TransitSearch", "context_of", "source_key", "EVIDENCE_SUFFIXES"]

#: evidence crops are ``<evidence id><suffix>`` files in ``evidence_dir``, tried in this order
EVIDENCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class TransitSearch(Protocol):
    """The transit-search interface the console uses (:class:`~vigil.plates.transits.TransitStore`
    or a test double). The console passes ``since``/``until`` as epoch seconds (or ``None``)."""

    def search_plate(
        self, plate: str, since: float | str | None = None, until: float | str | None = None
    ) -> list[dict]: ...


def source_key(address: str) -> str:
    """The key failed logins from ``address`` are counted under: the address itself, an IPv6
    one by its /64 (one host usually holds a whole /64, so rotating within it gains nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Failed logins within sliding windows, counted four ways; a login attempt is refused,
    without checking its password, while any count is at its limit:

    * ``pair``: per (lower-cased user name, source) — ``per_pair`` in ``window_s``;
    * ``source``: per source address (:func:`source_key`) — ``per_source`` in ``window_s``,
      whatever the user names: spraying many names from one place is stopped;
    * ``user``: per user name, from anywhere — ``per_user`` in ``window_s``: guessing one
      account's password from many addresses is stopped (at the price that such an attack
      keeps that account out for the window; its owner is told to try again later);
    * ``overall``: all failures — ``overall_per_min`` in the last minute: spraying many names
      from many addresses is slowed to that rate (every login waits while it lasts).

    A success clears its pair and its user name's count (the owner is in), not its source's:
    one valid account must not reset a source's count. Memory is bounded: each count keeps at
    most its limit of times, and at most ``max_keys`` keys (the stalest dropped first).
    """

    def __init__(
        self,
        window_s: float = 300.0,
        per_pair: int = 5,
        per_source: int = 20,
        per_user: int = 10,
        overall_per_min: int = 60,
        max_keys: int = 10000,
    ) -> None:
        self.window_s = window_s
        self.limits = {"pair": per_pair, "source": per_source, "user": per_user}
        self.overall_per_min = overall_per_min
        self.max_keys = max_keys
        self._counts: dict[str, dict[Any, deque[float]]] = {k: {} for k in self.limits}
        self._overall: deque[float] = deque(maxlen=max(1, overall_per_min))
        self._reported: dict[tuple[str, Any], float] = {}

    def _keys(self, user: str, source: str) -> dict[str, Any]:
        src = source_key(source)
        return {"pair": (user.lower(), src), "source": src, "user": user.lower()}

    def refused(self, user: str, source: str, now: float) -> str | None:
        """Which count refuses a login by ``user`` from ``source`` now (``None``: none does)."""
        for kind, key in self._keys(user, source).items():
            times = self._counts[kind].get(key)
            if times and len(times) >= self.limits[kind] and now - times[0] < self.window_s:
                return kind
        if len(self._overall) >= self.overall_per_min and now - self._overall[0] < 60.0:
            return "overall"
        return None

    def first_refusal(self, kind: str, user: str, source: str, now: float) -> bool:
        """Whether this is the first refusal by count ``kind`` for its key in ``window_s`` (the
        console audits that one, not every refused attempt of a flood)."""
        key = (kind, "*" if kind == "overall" else self._keys(user, source)[kind])
        last = self._reported.get(key)
        if last is not None and now - last < self.window_s:
            return False
        self._reported.pop(key, None)
        self._reported[key] = now
        self._bound(self._reported)
        return True

    def record_failure(self, user: str, source: str, now: float) -> None:
        for kind, key in self._keys(user, source).items():
            counts = self._counts[kind]
            times = counts.pop(key, None)  # re-inserted last: the dict's order is staleness
            if times is None:
                times = deque(maxlen=max(1, self.limits[kind]))
            times.append(now)
            counts[key] = times
            self._bound(counts)
        self._overall.append(now)

    def clear(self, user: str, source: str) -> None:
        keys = self._keys(user, source)
        self._counts["pair"].pop(keys["pair"], None)
        self._counts["user"].pop(keys["user"], None)

    def size(self) -> int:
        """Keys held (for tests of the memory bound)."""
        return sum(len(c) for c in self._counts.values()) + len(self._reported)

    def _bound(self, table: dict) -> None:
        """Drop the stalest keys of ``table`` beyond ``max_keys`` (insertion order is staleness)."""
        while len(table) > self.max_keys:
            table.pop(next(iter(table)))


@dataclass
class ConsoleContext:
    """The dependencies of one console application.

    ``transits``: the plate-search store; ``None`` until the first search opens one (see
    :meth:`transit_store`): in the PostgreSQL database ``transits_dsn`` when set, else a
    :class:`TransitStore` on the SQLite file ``transits_path``.
    ``evidence_root``: the resolved evidence folder, or ``None`` (no evidence served).
    ``follow``: start the stream follower with the application (tests drive the hub themselves).
    """

    db: ConsoleDB
    hub: Hub
    follower: StreamFollower
    templates: jinja2.Environment
    transits_path: Path | None
    transits: TransitSearch | None = None
    evidence_root: Path | None = None
    secure_cookies: bool = False
    follow: bool = True
    logins: LoginThrottle = field(default_factory=LoginThrottle)
    transits_dsn: str | None = None
    #: the site map (``--sites``; :mod:`.sitemap`), or ``None``: ``/map`` says there is none
    sites: SiteMap | None = None
    #: the resolved live-tiles folder (``--tiles-dir``; :mod:`.media`), or ``None``: no tiles
    tiles_root: Path | None = None

    def transit_store(self) -> TransitSearch:
        """The transit store, opened on first use (most sessions never search)."""
        if self.transits is None:
            if self.transits_dsn is not None:
                self.transits = open_transit_store(dsn=self.transits_dsn)
            else:
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
