"""scripts/pg-local.sh for real, against a private cluster (``--cluster-dir``, a free port), so no
system cluster is touched: the DSN file is mode 0600, its DSN connects with psycopg, and a second
run is idempotent (same DSN, still connecting). A few seconds with Debian's postgresql."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from vigil.postgres import read_dsn_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-local.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster_home():
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL server binaries missing (apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run the server as")
    # the server runs as postgres: its folder's parents must be open to it (pytest's tmp_path is not)
    base = tempfile.mkdtemp(prefix="vigil-pglocal-")
    os.chmod(base, 0o755)
    try:
        yield Path(base)
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "--cluster-dir", f"{base}/cluster", "--stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(base, ignore_errors=True)


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _connects(dsn: str) -> tuple:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(dsn, connect_timeout=10) as db:
        return db.execute("SELECT current_user, current_database(), inet_server_addr()::text").fetchone()


def test_pg_local_private_cluster_writes_a_0600_dsn_that_connects_and_is_idempotent(cluster_home: Path, tmp_path):
    port = _free_port()
    dsn_file = tmp_path / "conf" / "pg.dsn"
    args = ("--cluster-dir", str(cluster_home / "cluster"), "--port", str(port), "--dsn-file", str(dsn_file))
    first = _run(*args)
    assert f"--dsn-file {dsn_file}" in first.stderr  # it says how to use it
    st = dsn_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    dsn = read_dsn_file(dsn_file)  # Vigil's own reader (refuses a group/world-readable file)
    assert dsn.startswith("postgresql://vigil:") and dsn.endswith(f"@127.0.0.1:{port}/vigil")
    assert _connects(dsn) == ("vigil", "vigil", "127.0.0.1/32")
    # nothing secret on the script's output
    password = dsn.split(":")[2].split("@")[0]
    assert password not in first.stdout + first.stderr

    second = _run(*args)
    assert "keeping the password" in second.stderr
    assert read_dsn_file(dsn_file) == dsn
    assert stat.S_IMODE(dsn_file.stat().st_mode) == 0o600
    assert _connects(dsn)[0] == "vigil"

    # loopback only
    conf = (cluster_home / "cluster" / "postgresql.conf").read_text()
    assert "listen_addresses = '127.0.0.1'" in conf


def test_pg_local_refuses_unknown_options():
    proc = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "unknown option --bogus" in proc.stderr
