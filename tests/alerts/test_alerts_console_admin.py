"""Account administration in the page (``/admin/accounts``): admins only, CSRF-checked, audited;
disabling an account, changing its role or resetting its password ends its sessions at once; the
last administrator cannot be locked out. The Chromium test adds an account, resets its password
and disables it, then checks that the disabled account cannot log in; its screenshot goes to
``$VIGIL_ARTIFACTS``."""

from __future__ import annotations

import re

import pytest

from ..conftest import serve_in_thread

pytest.importorskip("jinja2")

from starlette.testclient import TestClient  # noqa: E402

from vigil.alerts.console.accounts import AccountError  # noqa: E402
from vigil.alerts.console.app import create_app  # noqa: E402
from vigil.alerts.console.db import ConsoleDB  # noqa: E402
from vigil.alerts.store import EventStore  # noqa: E402


@pytest.fixture
def db(tmp_path):
    EventStore(tmp_path / "events.db").close()
    d = ConsoleDB(tmp_path / "events.db")
    d.add_user("root", "admin", "admin-password")
    d.add_user("op", "operator", "op-password")
    yield d
    d.close()


def _client(db):
    return TestClient(create_app(db, follow=False))


def _login(c, user: str, password: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"csrf": token, "username": user, "password": password}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:200]


def _csrf(c) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/admin/accounts").text).group(1)


def _post(c, **form):
    return c.post("/admin/accounts", data={"csrf": _csrf(c), **form}, headers={"Origin": "http://testserver"},
                  follow_redirects=False)  # fmt: skip


def test_only_an_admin_sees_the_page_and_a_refusal_is_audited(db):
    with _client(db) as c:
        _login(c, "op", "op-password")
        assert c.get("/admin/accounts").status_code == 403
        assert 'id="nav-accounts"' not in c.get("/").text
    assert [(a["user"], a["target"]) for a in db.audit_log(action="denied")] == [("op", "/admin/accounts")]
    with _client(db) as c:
        _login(c, "root", "admin-password")
        page = c.get("/admin/accounts")
        assert page.status_code == 200 and 'id="nav-accounts"' in page.text
        assert re.findall(r'<tr data-user="([^"]+)"', page.text) == ["op", "root"]


def test_disabling_an_account_ends_its_sessions_and_refuses_its_login(db):
    with _client(db) as op, _client(db) as admin:
        _login(op, "op", "op-password")
        assert op.get("/").status_code == 200
        _login(admin, "root", "admin-password")
        assert [a["sessions"] for a in db.accounts() if a["name"] == "op"] == [1]
        r = _post(admin, action="disable", name="op")
        assert (r.status_code, r.headers["location"]) == (303, "/admin/accounts?done=disabled&user=op")
        assert op.get("/", follow_redirects=False).headers["location"] == "/login"  # its session is gone
        token = re.search(r'name="csrf" value="([^"]+)"', op.get("/login").text).group(1)
        r = op.post("/login", data={"csrf": token, "username": "op", "password": "op-password"}, follow_redirects=False)
        assert r.status_code != 303  # refused like a wrong password
        assert _post(admin, action="enable", name="op").status_code == 303
        _login(op, "op", "op-password")
    acts = [(a["action"], a["target"], a["detail"]) for a in db.audit_log() if a["action"].startswith("account_")]
    assert ("account_disable", "op", "sessions_ended=1") in acts and (
        "account_enable",
        "op",
        "sessions_ended=0",
    ) in acts


def test_add_reset_and_role_change_each_end_the_accounts_sessions(db):
    with _client(db) as admin, _client(db) as new:
        _login(admin, "root", "admin-password")
        assert _post(admin, action="add", name="bea", role="supervisor", password="first-password").status_code == 303
        _login(new, "bea", "first-password")
        assert _post(admin, action="password", name="bea", password="second-password").status_code == 303
        assert new.get("/", follow_redirects=False).headers["location"] == "/login"
        _login(new, "bea", "second-password")
        assert _post(admin, action="role", name="bea", role="operator").status_code == 303
        assert new.get("/", follow_redirects=False).headers["location"] == "/login"
        assert db.user("bea") == {"name": "bea", "role": "operator", "enabled": True}
        r = _post(admin, action="add", name="bea", role="operator", password="x-password")
        assert r.status_code == 400 and "exists" in r.text
        r = _post(admin, action="password", name="bea", password="short")
        assert r.status_code == 400 and "8 characters" in r.text


def test_the_last_administrator_cannot_be_disabled_or_demoted(db):
    with pytest.raises(AccountError, match="last enabled administrator"):
        db.set_role("root", "operator")
    with pytest.raises(AccountError, match="last enabled administrator"):
        db.set_enabled("root", False)
    db.add_user("second", "admin", "second-password")
    assert db.set_role("root", "supervisor") == 0
    with _client(db) as admin:
        _login(admin, "second", "second-password")
        r = _post(admin, action="disable", name="second")
        assert r.status_code == 400 and "own account" in r.text
        r = _post(admin, action="role", name="second", role="operator")
        assert r.status_code == 400 and "last enabled administrator" in r.text


def test_a_post_without_csrf_is_refused(db):
    with _client(db) as admin:
        _login(admin, "root", "admin-password")
        r = admin.post("/admin/accounts", data={"action": "disable", "name": "op"}, follow_redirects=False)
        assert r.status_code == 400
    assert db.user("op")["enabled"] is True


@pytest.fixture
def server(db):
    with serve_in_thread(create_app(db, follow=False), lifespan="on") as base:
        yield f"{base}"


def test_account_administration_in_chromium(launch_chromium, artifacts_dir, server, db):
    from playwright.sync_api import sync_playwright

    def login(page, user, password):
        page.goto(f"{server}/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")

    with sync_playwright() as pw:
        ctx = launch_chromium(pw, viewport={"width": 1300, "height": 800})
        page = ctx.new_page()
        page.goto(f"{server}/lang/en?next=/login")
        login(page, "root", "admin-password")
        page.wait_for_url(re.compile(r".*/$"))
        page.click("#nav-accounts")
        page.fill("#new-name", "carla")
        page.select_option("#new-role", "supervisor")
        page.fill("#new-password", "carla-password-1")
        page.click("#add-submit")
        page.wait_for_selector("#admin-done")
        assert "Account added" in page.inner_text("#admin-done")
        page.fill("#password-carla", "carla-password-2")
        page.click("#reset-carla")
        page.wait_for_selector("#admin-done >> text=Password reset")
        page.click("#disable-carla")
        page.wait_for_selector("tr[data-user=carla] .account-state >> text=disabled")
        page.screenshot(path=str(artifacts_dir / "console-admin-01-accounts.png"), full_page=True)
        other = launch_chromium(pw).new_page()
        login(other, "carla", "carla-password-2")
        other.wait_for_selector("#login-error, .error")
        assert other.url.endswith("/login")
        ctx.close()
    assert db.user("carla") == {"name": "carla", "role": "supervisor", "enabled": False}


def test_the_language_switch_redirects_only_inside_the_console(db):
    with _client(db) as c:
        for nxt, where in (("/alarm/x?y=1", "/alarm/x?y=1"), ("//evil.example", "/"), ("/\\evil.example", "/"),
                           ("https://evil.example", "/"), ("/\\/evil.example", "/")):  # fmt: skip
            r = c.get("/lang/en", params={"next": nxt}, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, where), nxt
