"""Shared test fixtures: paths to test media and to ../shared (development checkouts only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = REPO / "data"
VTEST = DATA / "vtest.avi"
PETS_XML = SHARED / "data" / "pets2009" / "View_001.xml"
PETS_GT = SHARED / "data" / "pets2009" / "PETS2009-S2L1-dev.xml"
PETS_CONFIG = REPO / "deploy" / "examples" / "pets2009-s2l1.yaml"


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
