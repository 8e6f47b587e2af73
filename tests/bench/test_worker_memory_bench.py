"""vigil.bench.worker_memory: a command's process tree sampled from /proc, the last reading of each."""

from __future__ import annotations

import os
import sys

from vigil.bench.worker_memory import descendants, main, read_memory, sample_run

# a parent that starts a child holding 64 MiB of touched memory for about a second
_TREE = (
    "import subprocess, sys; "
    "subprocess.run([sys.executable, '-c', 'import time; b = b\"x\" * (64 << 20); time.sleep(1.5)'], check=True)"
)


def test_read_memory_of_this_process_and_of_none():
    me = read_memory(os.getpid())
    assert me is not None and me.pid == os.getpid()
    assert 0 < me.uss <= me.vm_rss <= me.vm_hwm
    assert me.rss_anon + me.rss_file <= me.vm_rss + 0.2  # plus shared memory, rounded to 0.1 MiB
    assert read_memory(2**22 + 12345) is None  # above pid_max's default: no such process
    assert descendants(os.getpid())[0] == os.getpid()


def test_sample_run_reads_the_child_a_command_starts():
    rc, readings = sample_run([sys.executable, "-c", _TREE], interval_s=0.05)
    assert rc == 0
    assert len(readings) == 2
    parent, child = readings
    assert "subprocess.run" in parent.command and "64 << 20" in child.command
    # the last reading may come after the child freed its 64 MiB on the way out, so only its peak
    # (VmHWM, which never decreases) is sure to show them
    assert child.vm_hwm >= 64 > parent.vm_hwm
    assert 0 < child.uss <= child.vm_rss <= child.vm_hwm


def test_main_prints_one_json_line_per_process_and_returns_the_exit_code(capsys):
    assert main(["--json", "--interval-s", "0.05", "--", sys.executable, "-c", _TREE + "; sys.exit(3)"]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith('{"pid": ') for line in lines)
