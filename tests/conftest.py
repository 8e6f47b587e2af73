"""Shared test fixtures: paths to test media and to ../shared (development checkouts only),
a PostgreSQL server on loopback, browsers."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = REPO / "data"
VTEST = DATA / "vtest.avi"
PETS_XML = SHARED / "data" / "pets2009" / "View_001.xml"
PETS_GT = SHARED / "data" / "pets2009" / "PETS2009-S2L1-dev.xml"
PETS_CONFIG = REPO / "deploy" / "examples" / "pets2009-s2l1.yaml"


@pytest.fixture(autouse=True)
def _cpu_without_amx(monkeypatch):
    """Detectors built in a test choose as on a CPU without AMX, whatever CPU runs the tests
    (`precision: auto` would pick bf16 on one with AMX); tests of that choice patch it back."""
    monkeypatch.setattr("vigil.detectors.ov_session.cpu_has_amx", lambda: False)


@pytest.fixture
def vtest() -> Path:
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh` (extracts it from Debian's opencv-doc)")
    return VTEST


@pytest.fixture
def pets_gt() -> Path:
    if not PETS_GT.is_file():
        pytest.skip(f"{PETS_GT} missing: ../shared exists only beside development checkouts")
    return PETS_GT


@pytest.fixture
def default_model():
    """``(onnx_path, class_names)`` of the embedded detector; skips when it is not installed."""
    from vigil.models.cache import ModelNotFoundError, resolve_default_model

    try:
        return resolve_default_model()
    except ModelNotFoundError as exc:
        pytest.skip(f"embedded model missing ({exc}); run `bash scripts/setup.sh`")


# --------------------------------------------------------------------------- PostgreSQL
def _bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


@pytest.fixture(scope="module")
def pg_server():
    """A PostgreSQL server on loopback for one test module (Debian's binaries; trust auth,
    user ``vigil``); its libpq connection string without a database name."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
        )
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the test server as")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = tempfile.mkdtemp(prefix="vigil-pg-")
    data = os.path.join(base, "data")
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run(
            [*run_as, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "vigil", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *run_as,
                f"{bindir}/pg_ctl",
                "-D",
                data,
                "-l",
                os.path.join(base, "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL test server: {exc} {getattr(exc, 'stderr', b'')!r}")
    try:
        yield f"host=127.0.0.1 port={port} user=vigil"
    finally:
        subprocess.run(
            [*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dsn(pg_server):
    """A fresh, empty database on the test server: its connection string."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed")
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server + " dbname=postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{pg_server} dbname={name}"


# --------------------------------------------------------------------------- browser tests
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> str:
    """Path of Debian's chromium with Playwright's Python client importable, else skip."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python client) not installed: pip install 'vigil[test]'")
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if not path:
        pytest.skip("Debian's chromium not installed (apt-get install chromium; scripts/test.sh does it when it may)")
    return path


@pytest.fixture
def launch_chromium(tmp_path):
    """``launch(pw, **context_options)``: a headless Chromium context with a fresh profile.

    The flags keep Chromium off the (closed) network; never `playwright install`."""
    path = chromium_or_skip()

    def launch(pw, **options):
        profile = tempfile.mkdtemp(prefix="vigil-chromium-", dir=tmp_path)
        return pw.chromium.launch_persistent_context(
            profile, executable_path=path, args=CHROMIUM_ARGS, headless=True, **options
        )

    return launch


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests keep screenshots: ``$VIGIL_ARTIFACTS``, default ``out/test-artifacts``."""
    path = Path(os.environ.get("VIGIL_ARTIFACTS") or REPO / "out" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def serve_in_thread(app, **config):
    """Serve the ASGI ``app`` with uvicorn in a daemon thread on a free loopback port while the
    block runs; yields ``http://127.0.0.1:PORT`` once the server has started. ``config``: more
    ``uvicorn.Config`` options (``lifespan``, ``timeout_graceful_shutdown``, ...)."""
    import uvicorn  # noqa: PLC0415 - only the web tests need it

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)
        sock.close()
