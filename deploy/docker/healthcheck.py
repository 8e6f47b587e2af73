"""The container health check of the Vigil image: it asks the role that runs (``VIGIL_ROLE``).

* ``aggregator``: ``vigil status --aggregator $VIGIL_STATUS_FILE`` (default
  ``/run/vigil/aggregator.status``; the aggregator must run with ``--status-file`` on that
  path): exit 0 while the file is rewritten every few seconds and the store answers.
* ``console``: ``GET http://127.0.0.1:$VIGIL_CONSOLE_PORT/healthz`` (default port 8080) answers 200.
* ``edge``: ``vigil status --config $VIGIL_CONFIG --check`` (default ``/etc/vigil/node.yaml``):
  exit 0 while every enabled camera's worker runs, connects or has finished its replay; 1 when
  one failed, went silent (stale) or never started.

Exit 0 healthy, 1 unhealthy (one line on stdout saying why, which the engine keeps).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request


def _vigil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["vigil", *args], capture_output=True, text=True, timeout=8)


def check(role: str) -> tuple[bool, str]:
    if role == "aggregator":
        path = os.environ.get("VIGIL_STATUS_FILE", "/run/vigil/aggregator.status")
        proc = _vigil("status", "--aggregator", path, "--max-age-s", os.environ.get("VIGIL_STATUS_MAX_AGE_S", "15"))
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
    if role == "console":
        url = f"http://127.0.0.1:{os.environ.get('VIGIL_CONSOLE_PORT', '8080')}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status == 200, f"{url}: {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            return False, f"{url}: {exc}"
    if role == "edge":
        proc = _vigil("status", "--config", os.environ.get("VIGIL_CONFIG", "/etc/vigil/node.yaml"), "--check")
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-2000:]
    return False, f"VIGIL_ROLE={role!r}: expected aggregator, console or edge"


def main() -> int:
    ok, why = check(os.environ.get("VIGIL_ROLE", "edge"))
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
