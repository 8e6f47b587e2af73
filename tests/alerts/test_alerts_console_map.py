"""The console's site map end to end in real headless Chromium (Debian's ``chromium``, Playwright).

A real :class:`Aggregator` (loopback, in a thread) stores what a real :class:`EventPublisher`
sends; the console, started with the PETS example sites file (``deploy/examples/sites-pets.yaml``:
ground metres -> plan pixels ``u = 20 (x + 35)``, ``v = 20 (15 - y)``), follows the aggregator's
stream. The test checks that an alarm open before the page loads is drawn at the camera's point,
that a distance alarm published while the page is open appears live at the plan pixel its
positions map to (exact within 1 px, both in the SVG and on the screen), and that it fades and
goes when it ends. Screenshots go to ``$VIGIL_ARTIFACTS``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..conftest import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
SITES = REPO / "deploy" / "examples" / "sites-pets.yaml"
CAMERA = "pets-view001"

#: where a marker's centre is on the screen, in the SVG's (plan pixel) coordinates
SCREEN_TO_PLAN = """(id) => {
  const c = document.querySelector(`a.marker[data-alarm="${id}"] circle.mk`);
  const r = c.getBoundingClientRect(), svg = document.getElementById("sitemap");
  const p = svg.createSVGPoint();
  p.x = r.left + r.width / 2; p.y = r.top + r.height / 2;
  const q = p.matrixTransform(svg.getScreenCTM().inverse());
  return [q.x, q.y, +c.getAttribute("cx"), +c.getAttribute("cy")];
}"""


@pytest.fixture
def map_stack(tmp_path, running_aggregator):
    from vigil.alerts.console import create_app
    from vigil.alerts.console.db import ConsoleDB
    from vigil.alerts.console.sitemap import load_sites

    db_path = tmp_path / "events.db"
    with running_aggregator(db_path) as agg:
        cdb = ConsoleDB(db_path)
        cdb.add_user("alice", "operator", "alice-pass-1")
        app = create_app(cdb, stream_endpoint=agg.stream_endpoint, sites=load_sites(SITES))
        try:
            with serve_in_thread(app, timeout_graceful_shutdown=1) as url:
                try:
                    yield {"url": url, "agg": agg, "db": cdb}
                finally:
                    app.state.hub.close()
        finally:
            cdb.close()


def test_map_live_alarm(launch_chromium, artifacts_dir, map_stack, sample_payload):
    from playwright.sync_api import sync_playwright

    from vigil.alerts.events import Event, utc_iso
    from vigil.alerts.publisher import EventPublisher

    url = map_stack["url"]
    pub = EventPublisher(map_stack["agg"].ingest_endpoint, timeout_s=0.5)
    occupancy_id = "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e11"
    distance_id = "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e12"
    # open before anyone looks, no positions: drawn at the camera's foot point
    pub.publish(
        Event(
            type="occupancy_limit",
            camera=CAMERA,
            seq=1,
            time=utc_iso(time.time()),
            severity="critical",
            payload=sample_payload("occupancy_limit", alarm_id=occupancy_id, tracks=[], positions_m={}),
        )
    )
    assert pub.flush(5).pending == 0
    with sync_playwright() as pw:
        ctx = launch_chromium(pw, viewport={"width": 1400, "height": 1100}, locale="en-US")
        try:
            page = ctx.new_page()
            page.goto(f"{url}/login")
            page.fill("#username", "alice")
            page.fill("#password", "alice-pass-1")
            page.click("#login-submit")
            page.wait_for_selector("#nav-map")
            page.click("#nav-map")
            page.wait_for_selector("#sitemap")
            page.wait_for_function("() => document.getElementById('live')?.classList.contains('on') === true")
            plan_ok = page.evaluate(
                "fetch(document.querySelector('#sitemap image').getAttribute('href')).then(r => r.status)"
            )
            assert plan_ok == 200
            assert page.locator("#fovs polygon.fov[data-camera='pets-view001']").count() == 1
            assert page.locator("#scalebar text").text_content().strip() == "10 m"
            first = page.evaluate(SCREEN_TO_PLAN, occupancy_id)
            # the camera's foot (-28.940, -19.529) m -> (121.20, 690.58) px
            assert abs(first[2] - 121.2) < 1e-6 and abs(first[3] - 690.58) < 1e-6
            assert abs(first[0] - 121.2) <= 1.0 and abs(first[1] - 690.58) <= 1.0
            assert page.locator(f'#markers a.marker.sev-critical.at-camera[data-alarm="{occupancy_id}"]').count() == 1

            # a distance alarm between two people at (1, 2) and (2, 4) m appears live at their mean
            payload = sample_payload(
                "distance_violation",
                alarm_id=distance_id,
                tracks=[3, 7],
                positions_m={"3": [1.0, 2.0], "7": [2.0, 4.0]},
                value=2.236,  # the two positions' distance (the payload model checks they agree)
                threshold=2.5,
                threshold_m=2.5,
            )
            t0 = time.monotonic()
            pub.publish(
                Event(
                    type="distance_violation",
                    camera=CAMERA,
                    seq=2,
                    time=utc_iso(time.time()),
                    severity="warning",
                    payload=payload,
                )
            )
            sel = f'#markers a.marker.sev-warning[data-alarm="{distance_id}"]'
            page.wait_for_selector(sel, timeout=10000)
            print(f"marker on the map {1000 * (time.monotonic() - t0):.0f} ms after publish()")
            u, v, cx, cy = page.evaluate(SCREEN_TO_PLAN, distance_id)
            assert (cx, cy) == (730.0, 240.0)  # u = 20 (1.5 + 35), v = 20 (15 - 3)
            assert abs(u - 730.0) <= 1.0 and abs(v - 240.0) <= 1.0, (u, v)
            people = page.eval_on_selector_all(
                f"{sel} circle.person", "cs => cs.map(c => [+c.getAttribute('cx'), +c.getAttribute('cy')])"
            )
            assert people == [[720.0, 260.0], [740.0, 220.0]]
            assert page.get_attribute(sel, "href").startswith("/alarm/")
            # the arrival pulse over before the picture
            page.wait_for_function(
                "s => document.querySelector(s)?.getAnimations({subtree: true}).length === 0", arg=sel, timeout=10000
            )
            page.screenshot(path=str(artifacts_dir / "console-map-01-live-alarm.png"), full_page=True)

            # it ends: the marker fades, then goes; the other stays
            end = {**payload, "reason": "clear", "duration_s": 4.0, "frame": 2}
            pub.publish(
                Event(
                    type="distance_violation",
                    camera=CAMERA,
                    seq=3,
                    time=utc_iso(time.time()),
                    severity="warning",
                    state="end",
                    payload=end,
                )
            )
            page.wait_for_selector(f'#markers a.marker.ended[data-alarm="{distance_id}"]', timeout=10000)
            page.wait_for_selector(sel, state="detached", timeout=30000)
            assert page.locator(f'#markers a.marker[data-alarm="{occupancy_id}"]').count() == 1
            page.screenshot(path=str(artifacts_dir / "console-map-02-after-end.png"), full_page=True)
        finally:
            ctx.close()
    pub.close()
