"""Memory of a node's processes while they run: ``python -m vigil.bench.worker_memory -- COMMAND ...``.

Runs ``COMMAND`` (e.g. ``vigil run --config node.yaml --no-publish --max-frames 40``), reads
``/proc`` of it and of every process it started (the supervisor's camera workers, the shared
detector, multiprocessing's resource tracker) every ``--interval-s`` seconds, and prints the last
reading of each process, taken just before it exited, as a table or ``--json``. All figures are
MiB: ``VmRSS`` (resident now) and ``VmHWM`` (its peak), ``RssAnon`` / ``RssFile`` (anonymous and
file-backed resident pages: shared libraries are file-backed and shared by every worker), ``Pss``
(resident pages divided among the processes sharing them) and ``USS`` (private pages: what one
more camera costs). bench/README.md, "Memory per camera (issue 19)", has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ProcMemory", "read_memory", "descendants", "sample_run", "main"]

_STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


@dataclass(frozen=True)
class ProcMemory:
    """One process's memory (MiB) as ``/proc/PID/status`` and ``smaps_rollup`` give it."""

    pid: int
    command: str
    vm_rss: float
    vm_hwm: float
    rss_anon: float
    rss_file: float
    pss: float
    uss: float
    threads: int


def read_memory(pid: int) -> ProcMemory | None:
    """The memory of process ``pid`` now; ``None`` when it is gone or cannot be read."""
    base = Path(f"/proc/{pid}")
    try:
        status = dict(line.split(":", 1) for line in (base / "status").read_text().splitlines() if ":" in line)
        rollup = {}
        for line in (base / "smaps_rollup").read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            rollup[key] = int(value.split()[0])
        command = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, ValueError):
        return None
    if any(k not in status for k in _STATUS_KEYS):
        return None  # a zombie has no memory lines
    mib = {k: int(status[k].split()[0]) / 1024 for k in _STATUS_KEYS}
    return ProcMemory(
        pid=pid,
        command=command,
        vm_rss=round(mib["VmRSS"], 1),
        vm_hwm=round(mib["VmHWM"], 1),
        rss_anon=round(mib["RssAnon"], 1),
        rss_file=round(mib["RssFile"], 1),
        pss=round(rollup.get("Pss", 0) / 1024, 1),
        uss=round((rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)) / 1024, 1),
        threads=int(status.get("Threads", "0").split()[0] or 0),
    )


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (children, their children, ...), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int((Path("/proc") / entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out


def sample_run(command: list[str], interval_s: float = 0.2) -> tuple[int, list[ProcMemory]]:
    """Run ``command`` to its end, reading its process tree every ``interval_s``; returns its exit
    code and the last reading of each process (the command's own first)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    last: dict[int, ProcMemory] = {}
    order: list[int] = []
    while proc.poll() is None:
        for pid in descendants(proc.pid):
            mem = read_memory(pid)
            if mem is not None:
                if pid not in last:
                    order.append(pid)
                last[pid] = mem
        time.sleep(interval_s)
    return proc.returncode, [last[p] for p in order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil.bench.worker_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--interval-s", type=float, default=0.2, help="seconds between readings (default 0.2)")
    parser.add_argument("--json", action="store_true", help="one JSON object per process")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    rc, readings = sample_run(command, args.interval_s)
    if args.json:
        for r in readings:
            print(json.dumps(asdict(r)))
    else:
        print(f"{'pid':>8} {'VmRSS':>7} {'VmHWM':>7} {'anon':>7} {'file':>7} {'Pss':>7} {'USS':>7} {'thr':>4}  command")
        for r in readings:
            print(
                f"{r.pid:>8} {r.vm_rss:>7.1f} {r.vm_hwm:>7.1f} {r.rss_anon:>7.1f} {r.rss_file:>7.1f} "
                f"{r.pss:>7.1f} {r.uss:>7.1f} {r.threads:>4}  {r.command[:70]}"
            )
    return rc


if __name__ == "__main__":
    sys.exit(main())
