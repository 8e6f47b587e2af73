"""Live tiles end to end in real headless Chromium (Debian's ``chromium``, Playwright): the edge's
:class:`~vigil.edge.media.MediaRecorder` writes a masked tile with the overlay into a folder, the
console started with ``tiles_dir`` shows it on ``/tiles``, and when the node overwrites the tile the
page shows the new one within a few refreshes (``static/tiles.js``, every 2 s). Screenshots go to
``$VIGIL_ARTIFACTS``."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.config_parts import MediaConfig
from vigil.edge.media import MediaRecorder

from ..conftest import serve_in_thread

#: what the page's canvas reads of a tile: its size and the colour at (x, y)
PIXEL = """([x, y]) => {
  const img = document.querySelector('figure.tile img');
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return [img.naturalWidth, img.naturalHeight, Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3))];
}"""


def _scene(bg: tuple[int, int, int]) -> tuple[np.ndarray, Detections]:
    """A 960 x 720 picture (background ``bg``, BGR) with two drawn people and their boxes."""
    img = np.zeros((720, 960, 3), np.uint8)
    img[:] = bg
    boxes = np.array([[300, 200, 380, 480], [520, 220, 600, 500]], np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1 + 40 : y2, x1:x2] = (40, 40, 160)  # body
        img[y1 : y1 + 40, x1 + 20 : x2 - 20] = (150, 190, 230)  # head
        img[y1 + 12 : y1 + 18, x1 + 28 : x1 + 34] = 0  # eyes
        img[y1 + 12 : y1 + 18, x2 - 34 : x2 - 28] = 0
    return img, Detections(boxes, np.ones(2, np.float32), np.zeros(2, np.int64), tracker_id=np.array([1, 2]))


@pytest.fixture
def tiles_console(tmp_path):
    from vigil.alerts.console import create_app
    from vigil.alerts.console.db import ConsoleDB
    from vigil.alerts.store import EventStore

    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("alice", "operator", "alice-pass-1")
    tiles = tmp_path / "tiles"
    app = create_app(db, follow=False, tiles_dir=tiles)
    try:
        with serve_in_thread(app, timeout_graceful_shutdown=1) as url:
            yield {"url": url, "tiles": tiles}
    finally:
        db.close()


def test_the_tiles_page_shows_the_masked_tile_and_follows_its_updates(launch_chromium, artifacts_dir, tiles_console):
    from playwright.sync_api import sync_playwright

    rec = MediaRecorder(MediaConfig(tiles_dir=tiles_console["tiles"], tile_interval_s=1.0), "piazza-1", ["person"])
    img, people = _scene((90, 140, 60))
    rec.observe(img, 0.0, people, violating=[(1, 2)])
    assert rec.counts["tiles"] == 1
    with sync_playwright() as pw:
        ctx = launch_chromium(pw, viewport={"width": 1100, "height": 800}, locale="en-US")
        try:
            page = ctx.new_page()
            page.goto(f"{tiles_console['url']}/login")
            page.fill("#username", "alice")
            page.fill("#password", "alice-pass-1")
            page.click("#login-submit")
            page.wait_for_selector("#nav-tiles")
            page.click("#nav-tiles")
            page.wait_for_function(
                "() => (document.querySelector('figure.tile img')?.naturalWidth ?? 0) > 0", timeout=15000
            )
            w, h, bg = page.evaluate(PIXEL, [20, 700 * 640 // 960])
            assert (w, h) == (640, 480)  # shrunk to 640 px wide
            assert all(abs(a - b) <= 12 for a, b in zip(bg, (60, 140, 90)))  # RGB of the BGR background
            # the eyes of person 1 (head at 320-360 x 200-240 in the frame) are gone: the head is flat blocks
            head = np.array([page.evaluate(PIXEL, [x * 640 // 960, 215 * 640 // 960])[2] for x in range(331, 356, 4)])
            assert head.min() > 40, head  # no black eye pixel survives the mask
            page.screenshot(path=str(artifacts_dir / "console-tiles-01-first.png"), full_page=True)
            first = page.get_attribute("figure.tile", "data-loaded")
            img2, _ = _scene((150, 60, 40))  # the node overwrites the tile: a new background
            rec.observe(img2, 1.0, people)
            page.wait_for_function(
                "(old) => { const f = document.querySelector('figure.tile'); return !!f && f.dataset.loaded !== old; }",
                arg=first,
                timeout=15000,
            )
            deadline = time.time() + 15
            while True:
                bg2 = page.evaluate(PIXEL, [20, 700 * 640 // 960])[2]
                if all(abs(a - b) <= 12 for a, b in zip(bg2, (40, 60, 150))) or time.time() > deadline:
                    break
                page.wait_for_timeout(250)
            assert all(abs(a - b) <= 12 for a, b in zip(bg2, (40, 60, 150))), bg2
            page.screenshot(path=str(artifacts_dir / "console-tiles-02-updated.png"), full_page=True)
        finally:
            ctx.close()
