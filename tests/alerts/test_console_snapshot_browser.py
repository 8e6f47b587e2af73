"""An alarm's page with its snapshot, end to end in real headless Chromium (Debian's ``chromium``,
Playwright): the edge's :class:`~vigil.edge.media.MediaRecorder` stores the masked picture with the
overlay in the evidence folder (as it does at an alarm's start), the aggregator's store holds the
alarm whose start names it (``snapshot_id``), and the console started with that evidence folder
shows it on the alarm's page. The people's faces are pixelated in what the browser receives; the
view is in the access log. Screenshot to ``$VIGIL_ARTIFACTS``."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.config_parts import MediaConfig
from vigil.edge.media import MediaRecorder

from ..conftest import serve_in_thread

#: the snapshot as the page's canvas reads it: its size and the colour at (x, y)
PIXEL = """([x, y]) => {
  const img = document.getElementById('snapshot');
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return [img.naturalWidth, img.naturalHeight, Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3))];
}"""
EYE = (330, 215)  # the first person's left eye, black in the camera's frame


def _scene() -> tuple[np.ndarray, Detections]:
    """A 960 x 720 grey picture with two drawn people (body, head, black eyes) and their boxes."""
    img = np.full((720, 960, 3), 110, np.uint8)
    boxes = np.array([[300, 200, 380, 480], [520, 220, 600, 500]], np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1 + 40 : y2, x1:x2] = (40, 40, 160)
        img[y1 : y1 + 40, x1 + 20 : x2 - 20] = (150, 190, 230)
        img[y1 + 12 : y1 + 18, x1 + 28 : x1 + 34] = 0
        img[y1 + 12 : y1 + 18, x2 - 34 : x2 - 28] = 0
    return img, Detections(boxes, np.ones(2, np.float32), np.zeros(2, np.int64), tracker_id=np.array([1, 2]))


@pytest.fixture
def console(tmp_path, sample_payload):
    from vigil.alerts.console.app import create_app
    from vigil.alerts.console.db import ConsoleDB
    from vigil.alerts.events import Event
    from vigil.alerts.store import EventStore

    evidence = tmp_path / "evidence"
    rec = MediaRecorder(MediaConfig(evidence_dir=evidence), "piazza-1", ["person"])
    img, dets = _scene()
    assert img[EYE[1], EYE[0]].tolist() == [0, 0, 0]
    sid = rec.evidence.put(rec.picture(img, dets, violating=[(1, 2)]), camera="piazza-1", kind="snapshot")
    metres = {"value": 0.76, "distance_m": 0.76, "min_distance_m": 0.76, "threshold_m": 1.0}
    metres["positions_m"] = {"3": [1.0, 2.0], "7": [1.456, 2.608]}  # 0.76 m apart
    payload = sample_payload("distance_violation", **metres, snapshot_id=sid, recording="on")
    with EventStore(tmp_path / "events.db") as store:
        store.add(Event(type="distance_violation", camera="piazza-1", seq=1, time="2026-12-02T10:00:00Z",
                        state="start", payload=payload))  # fmt: skip
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("alice", "operator", "alice-password")
    app = create_app(db, follow=False, evidence_dir=evidence)
    with serve_in_thread(app, lifespan="on") as base:
        yield f"{base}", payload["alarm_id"], sid, db
    db.close()


def test_the_alarm_page_shows_its_masked_snapshot_in_chromium(launch_chromium, artifacts_dir, console):
    from playwright.sync_api import sync_playwright

    base, alarm_id, sid, db = console
    with sync_playwright() as pw:
        ctx = launch_chromium(pw, viewport={"width": 1400, "height": 1000}, locale="en-US")
        page = ctx.new_page()
        page.goto(f"{base}/lang/en?next=/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/alarm/{alarm_id}")
        page.wait_for_function("() => { const s = document.getElementById('snapshot'); return !!s && s.complete; }")
        assert page.get_attribute("#snapshot", "src") == f"/evidence/{sid}"
        w, h, eye = page.evaluate(PIXEL, list(EYE))
        assert (w, h) == (960, 720)
        assert sum(eye) > 150, f"the eye at {EYE} is still dark ({eye}): the face is not masked"
        assert "2 people 0.76 m apart" in page.text_content("#alarm-text")
        page.locator("#snapshot").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / "console-snapshot-01-alarm.png"), full_page=True)
        ctx.close()
    assert [a["target"] for a in db.audit_log(action="evidence_view")] == [sid]
