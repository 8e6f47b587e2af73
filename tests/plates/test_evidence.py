"""Evidence store: crops written whole into a 0700 folder as 0600 files, looked up by id, purged."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from vigil.plates.evidence import EvidenceError, EvidenceStore


def test_put_get_purge(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    eid = store.put(np.full((40, 160, 3), 200, np.uint8), camera="gate", kind="plate", plate="AB123CD")
    jpg, meta = tmp_path / "ev" / f"{eid}.jpg", tmp_path / "ev" / f"{eid}.json"
    assert (os.stat(tmp_path / "ev").st_mode & 0o777) == 0o700
    assert (jpg.stat().st_mode & 0o777) == 0o600 and (meta.stat().st_mode & 0o777) == 0o600
    assert store.get(eid)[:2] == b"\xff\xd8"  # a JPEG
    assert json.loads(meta.read_text())["plate"] == "AB123CD"
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == sorted([jpg.name, meta.name])  # no temp files
    with pytest.raises(EvidenceError):
        store.path("../../etc/passwd")
    with pytest.raises(EvidenceError):
        store.put(np.zeros((0, 0, 3), np.uint8))
    assert store.purge(3600) == 0
    assert store.purge(3600, keep={eid}, now=time.time() + 7200) == 0
    assert store.purge(3600, now=time.time() + 7200) == 1 and not jpg.exists() and not meta.exists()
