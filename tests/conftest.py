"""Shared test fixtures: paths to test media and to ../shared (development checkouts only)."""

from __future__ import annotations

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
