"""What the benchmarks read about processes on this machine: a free loopback port, a process's
resident memory and its open file descriptors (Linux ``/proc``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["free_port", "rss_kib", "open_fds"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int | None:
    """Resident memory of process ``pid`` in KiB (``VmRSS``); ``None`` if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    """Open file descriptors of process ``pid``; ``None`` if they cannot be listed."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
