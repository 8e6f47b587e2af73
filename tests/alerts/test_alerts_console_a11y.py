"""Accessibility of the console's main pages: axe-core (npm, MPL-2.0) in real headless Chromium.

``scripts/test.sh`` installs axe-core into ``.cache/node`` (outside the source tree). A real
console (uvicorn, SQLite) holds a distance alarm (start, update, end), an occupancy alarm and a
plate hit; the test logs in as a supervisor and as an admin, opens every main page in both
languages and runs axe on each: no violation of impact ``serious`` or ``critical`` is allowed
(the failure lists each rule, its help and the elements). The page's own Content-Security-Policy
is bypassed only to inject axe.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ..conftest import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / ".cache" / "node" / "node_modules" / "axe-core" / "axe.min.js"
BAD = ("serious", "critical")


def _axe_or_skip() -> Path:
    if AXE.is_file():
        return AXE
    if os.environ.get("CI"):
        pytest.fail(f"{AXE} missing: scripts/test.sh installs axe-core (npm) before the tests")
    pytest.skip(f"{AXE} missing: npm install --prefix .cache/node axe-core@4 (scripts/test.sh does it)")


@pytest.fixture
def console(tmp_path, sample_payload):
    from vigil.alerts.console.app import create_app
    from vigil.alerts.console.db import ConsoleDB
    from vigil.alerts.events import Event
    from vigil.alerts.store import EventStore

    db_path = tmp_path / "events.db"
    dist = sample_payload("distance_violation", value=0.76, threshold=1.0, zone="piazza")
    occ = sample_payload("occupancy_limit")
    hit = sample_payload("plate_hit")
    with EventStore(db_path) as store:
        for seq, (etype, state, sev, payload) in enumerate(
            [
                ("distance_violation", "start", "warning", dist),
                ("distance_violation", "update", "warning", {**dist, "duration_s": 12.0}),
                ("distance_violation", "end", "warning", {**dist, "duration_s": 40.0, "reason": "clear"}),
                ("occupancy_limit", "start", "warning", occ),
                ("plate_hit", "start", "critical", hit),
            ],
            start=1,
        ):
            store.add(Event(type=etype, camera="piazza-1", seq=seq, time=f"2026-12-02T10:00:{seq:02d}Z",
                            severity=sev, state=state, payload=payload))  # fmt: skip
    db = ConsoleDB(db_path)
    db.add_user("sup", "supervisor", "supervisor-password")
    db.add_user("root", "admin", "admin-password")

    class NoTransits:
        def search_plate(self, plate, since=None, until=None):
            return []

    app = create_app(db, follow=False, transits=NoTransits())
    with serve_in_thread(app, lifespan="on") as base:
        yield f"{base}", dist["alarm_id"]
    db.close()


def _violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in BAD]


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def test_main_pages_have_no_serious_accessibility_violations(launch_chromium, artifacts_dir, console):
    from playwright.sync_api import sync_playwright

    _axe_or_skip()
    base, alarm_id = console
    pages = ["/", f"/alarm/{alarm_id}", "/cameras", "/transits", "/audit", "/account", "/map", "/tiles"]
    found: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        for lang in ("it", "en"):
            ctx = launch_chromium(pw, bypass_csp=True, viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.goto(f"{base}/lang/{lang}?next=/login")
            bad = _violations(page)
            if bad:
                found[f"{lang} /login"] = [
                    f"{v['id']}: {v['help']} {[n['target'] for n in v['nodes']][:5]}" for v in bad
                ]
            _login(page, base, "sup", "supervisor-password")
            for url in pages:
                r = page.goto(base + url)
                if r is not None and r.status == 404:
                    continue  # a page this console was not given (no sites file, no tiles folder)
                page.wait_for_load_state("load")
                bad = _violations(page)
                if bad:
                    found[f"{lang} {url}"] = [
                        f"{v['id']} ({v['impact']}): {v['help']} {[n['target'] for n in v['nodes']][:5]}" for v in bad
                    ]
            if lang == "en":
                page.goto(base + f"/alarm/{alarm_id}")
                page.screenshot(path=str(artifacts_dir / "console-a11y-01-alarm-en.png"), full_page=True)
            admin = launch_chromium(pw, bypass_csp=True).new_page()
            admin.goto(f"{base}/lang/{lang}?next=/login")
            _login(admin, base, "root", "admin-password")
            admin.goto(f"{base}/admin/accounts")
            bad = _violations(admin)
            if bad:
                found[f"{lang} /admin/accounts"] = [f"{v['id']} ({v['impact']}): {v['help']}" for v in bad]
            ctx.close()
        # the harness itself: axe must see a critical violation where there is one
        probe = launch_chromium(pw, bypass_csp=True).new_page()
        probe.set_content(
            '<html lang="en"><head><title>t</title></head><body><main><img src="x.png"></main></body></html>'
        )
        assert "image-alt" in [v["id"] for v in _violations(probe)]
    assert not found, "axe-core found serious/critical violations:\n" + "\n".join(
        f"{where}:\n  " + "\n  ".join(items) for where, items in found.items()
    )
