"""Account administration in the page: ``/admin/accounts`` (admins only).

``GET /admin/accounts`` lists the accounts (role, enabled, live sessions) with a form per
account; ``POST /admin/accounts`` does one ``action``: ``add`` (name, role, initial password),
``disable`` / ``enable``, ``role`` (a new role), ``password`` (an administrator's reset). A
disabled account cannot log in (its login fails like a wrong password) and loses its sessions
at once; a role change or a password reset ends the account's sessions too. The last enabled
administrator can be neither disabled nor demoted. Anyone else gets 403 (audited ``denied``);
every POST is CSRF-checked; every change is audited (``account_add``, ``account_disable``,
``account_enable``, ``account_role``, ``account_password_reset``) with the sessions it ended.
The results come back to the page (``?done=`` or an error message), never a stack trace.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .accounts import AccountError
from .auth import ROLES
from .context import context_of
from .routes import error_page, forbidden, render, to_login
from .security import checked_form, client_of, session_of

__all__ = ["ADMIN_ROUTES"]

_DONE = ("added", "disabled", "enabled", "role_changed", "password_reset")


def _page(request: Request, s: dict, status_code: int = 200, error: str | None = None) -> Response:
    db = context_of(request).db
    done = request.query_params.get("done")
    return render(
        request,
        "admin_accounts.html",
        status_code,
        session=s,
        accounts=db.accounts(),
        roles=ROLES,
        error=error,
        done=done if done in _DONE else None,
        who=request.query_params.get("user", "")[:64],
    )


async def accounts_page(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    if s["role"] != "admin":
        return forbidden(request, s, "/admin/accounts")
    return _page(request, s)


async def accounts_action(request: Request) -> Response:
    db = context_of(request).db
    s = session_of(request)
    if s is None:
        return to_login(request)
    if s["role"] != "admin":
        return forbidden(request, s, "/admin/accounts")
    form = await checked_form(request, s)
    if form is None:
        return error_page(request, 400, "csrf_failed", s)
    action = str(form.get("action", ""))
    name = str(form.get("name", "")).strip()
    client = client_of(request)
    try:
        if action == "add":
            role = str(form.get("role", ""))
            await run_in_threadpool(db.add_user, name, role, str(form.get("password", "")))
            db.audit(s["user"], "account_add", name, f"role={role}", client)
            done = "added"
        elif action in ("disable", "enable"):
            if action == "disable" and name == s["user"]:
                raise AccountError("an administrator cannot disable their own account here")
            ended = db.set_enabled(name, action == "enable")
            db.audit(s["user"], f"account_{action}", name, f"sessions_ended={ended}", client)
            done = f"{action}d"
        elif action == "role":
            role = str(form.get("role", ""))
            ended = db.set_role(name, role)
            db.audit(s["user"], "account_role", name, f"role={role} sessions_ended={ended}", client)
            done = "role_changed"
        elif action == "password":
            ended = await run_in_threadpool(db.reset_password, name, str(form.get("password", "")))
            db.audit(s["user"], "account_password_reset", name, f"sessions_ended={ended}", client)
            done = "password_reset"
        else:
            raise AccountError(f"unknown action {action[:32]!r}")
    except (AccountError, ValueError) as exc:
        db.audit(s["user"], "account_change_failed", name, f"{action[:32]}: {exc}", client)
        return _page(request, s, 400, error=str(exc))
    if name == s["user"] and action in ("role", "password"):
        return RedirectResponse("/login", status_code=303)  # their own sessions just ended
    return RedirectResponse(f"/admin/accounts?done={done}&user={quote(name)}", status_code=303)


ADMIN_ROUTES = [
    Route("/admin/accounts", accounts_page),
    Route("/admin/accounts", accounts_action, methods=["POST"]),
]
