"""Rate-limited logging: a hostile or broken peer must not fill the log.

:class:`RateLimitedLog` lets through at most ``burst`` lines per key (a kind of problem, e.g.
``"malformed"``) in each ``interval_s`` window; the rest are counted, and the first line let
through after a quiet spell says how many were suppressed. 20,000 rejected frames in a minute
give ``burst`` lines plus one summary, not 20,000 lines. Counters elsewhere keep the full count.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most ``burst`` lines per key per ``interval_s`` seconds on ``logger``.

    ``clock``: monotonic seconds (a test passes its own). Not thread-safe: one per thread.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = int(burst)
        self.interval_s = float(interval_s)
        self._clock = clock
        # key -> [window start, lines let through in the window, suppressed since the last line]
        self._keys: dict[str, list] = {}

    def log(self, key: str, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` has used its burst in this window;
        whether it was written."""
        now = self._clock()
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) > 1000:  # keys are kinds of problems, but bound them anyway
                self._keys.clear()
            state = self._keys[key] = [now, 0, 0]
        if now - state[0] >= self.interval_s:
            state[0], state[1] = now, 0
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        if state[2]:
            msg = f"{msg} ({state[2]} similar message(s) suppressed)"
            state[2] = 0
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(key, logging.WARNING, msg, *args)

    def error(self, key: str, msg: str, *args: object) -> bool:
        return self.log(key, logging.ERROR, msg, *args)

    def suppressed(self, key: str) -> int:
        """Lines of ``key`` suppressed since the last one written."""
        state = self._keys.get(key)
        return state[2] if state else 0
