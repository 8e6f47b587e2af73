"""Edge evidence retention: the plate pipeline purges its evidence folder of crops older than
``plates.evidence_retention_days`` (default 7 days) on its first frame and then hourly, and logs
each purge."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest
from pydantic import ValidationError

from vigil.edge.config_parts import PlatesConfig
from vigil.plates.evidence import EvidenceStore
from vigil.plates.pipeline import EVIDENCE_PURGE_INTERVAL_S, PlatePipeline

DAY = 86400.0
IMG = np.zeros((120, 160, 3), np.uint8)


class NoPlates:
    def read(self, image, roi=None):
        return []


def _crop(store: EvidenceStore, age_days: float, now: float) -> str:
    eid = store.put(np.full((40, 160, 3), 200, np.uint8), camera="gate", kind="plate")
    t = now - age_days * DAY
    os.utime(store.folder / f"{eid}.jpg", (t, t))
    return eid


def test_default_and_validation():
    assert PlatesConfig().evidence_retention_days == 7.0
    assert PlatesConfig(evidence_retention_days=30).evidence_retention_days == 30.0
    for bad in (0, -1):
        with pytest.raises(ValidationError):
            PlatesConfig(evidence_retention_days=bad)


def test_pipeline_purges_old_evidence_on_schedule_and_logs_it(tmp_path, caplog):
    now = time.time()
    cfg = PlatesConfig(enabled=True, evidence_dir=tmp_path / "ev", queue_size=0)
    pipe = PlatePipeline(cfg, "gate", reader=NoPlates())
    store = pipe.evidence
    old, edge, young = _crop(store, 8, now), _crop(store, 7 + 60 / DAY, now), _crop(store, 6.9, now)
    assert pipe.evidence_purge_due(now)
    with caplog.at_level(logging.INFO, logger="vigil.plates.pipeline"):
        assert pipe.purge_evidence_if_due(now) == 2
    assert sorted(p.stem for p in store.folder.glob("*.jpg")) == [young]
    assert not (store.folder / f"{old}.json").exists() and not (store.folder / f"{edge}.json").exists()
    assert any(
        r.getMessage().startswith("retention: evidence older than 7 days: 2 deleted (camera gate")
        for r in caplog.records
    )
    # not again within the interval, even with crops now due
    assert pipe.purge_evidence_if_due(now + EVIDENCE_PURGE_INTERVAL_S / 2) is None
    assert not pipe.evidence_purge_due(now + EVIDENCE_PURGE_INTERVAL_S - 1)
    assert pipe.purge_evidence_if_due(now + EVIDENCE_PURGE_INTERVAL_S) == 0  # 6.9 days + 1 h: still young
    assert pipe.purge_evidence_if_due(now + 0.2 * DAY) == 1  # the next interval: now past 7 days
    assert list(store.folder.glob("*.jpg")) == []


def test_first_frame_purges_with_the_configured_retention(tmp_path):
    now = time.time()
    cfg = PlatesConfig(enabled=True, evidence_dir=tmp_path / "ev", evidence_retention_days=2, queue_size=0)
    pipe = PlatePipeline(cfg, "gate", reader=NoPlates())
    keep, gone = _crop(pipe.evidence, 1, now), _crop(pipe.evidence, 3, now)
    pipe.process(IMG, 0.0)
    assert [p.stem for p in pipe.evidence.folder.glob("*.jpg")] == [keep]
    assert gone not in {p.stem for p in pipe.evidence.folder.iterdir()}
    pipe.process(IMG, 0.1)  # not due again: nothing changes, nothing raised
    assert not pipe.evidence_purge_due()


def test_no_evidence_folder_no_purge():
    pipe = PlatePipeline(PlatesConfig(enabled=True, queue_size=0), "gate", reader=NoPlates())
    assert not pipe.evidence_purge_due() and pipe.purge_evidence_if_due() is None


def test_a_failing_purge_is_logged_and_never_raised(tmp_path, caplog):
    class Broken(EvidenceStore):
        def purge(self, *a, **k):
            raise PermissionError("denied")

    pipe = PlatePipeline(PlatesConfig(enabled=True, queue_size=0), "gate", reader=NoPlates(), evidence=Broken(tmp_path))
    with caplog.at_level(logging.ERROR, logger="vigil.plates.pipeline"):
        assert pipe.purge_evidence_if_due() is None
        pipe.process(IMG, 0.0)
    assert "evidence purge failed" in caplog.text


def test_purge_skips_files_that_vanish_during_the_scan(tmp_path, monkeypatch):
    from pathlib import Path

    now = time.time()
    store = EvidenceStore(tmp_path / "ev", blur_faces=False)
    gone, racy, old = (_crop(store, 10, now) for _ in range(3))
    (store.folder / f"{gone}.jpg").unlink()  # listed, then deleted by another purger before stat
    listed = sorted(store.folder.iterdir()) + [store.folder / f"{gone}.jpg"]
    real_stat = Path.stat

    def stat(self, *a, **k):
        st = real_stat(self, *a, **k)
        if self.name == f"{racy}.jpg":  # another purger deletes it between stat and unlink
            os.unlink(self)
        return st

    monkeypatch.setattr(Path, "iterdir", lambda self: iter(listed))
    monkeypatch.setattr(Path, "stat", stat)
    assert store.purge(DAY, now=now) == 1  # only `old` was deleted by this purge
    monkeypatch.undo()
    assert sorted(p.name for p in store.folder.iterdir()) == [f"{gone}.json"]
