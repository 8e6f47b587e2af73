"""Sessions, cookies, CSRF checks and the security headers of the console.

Sessions are server-side (:meth:`ConsoleDB.session`): a random token in an ``HttpOnly``,
``SameSite=Strict`` cookie. Over HTTPS (the request scheme, which uvicorn's proxy headers
take from the reverse proxy, or ``secure_cookies=True``) the cookie is ``Secure`` and named
with the ``__Host-`` prefix. Every POST carries a CSRF token, checked together with the
``Origin`` header: the session's token, or for the login form a double-submit cookie
(``vigil_login``). :class:`SecurityHeaders` adds a strict Content-Security-Policy (no inline
script), ``X-Frame-Options: DENY`` and, on HTTPS, HSTS to every response.
"""

from __future__ import annotations

import hmac

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .auth import new_token
from .context import context_of

__all__ = [
    "SecurityHeaders",
    "checked_form",
    "client_of",
    "cookie_name",
    "is_secure",
    "new_login_token",
    "same_origin",
    "session_of",
    "set_login_cookie",
    "LOGIN_COOKIE",
]

SESSION_COOKIE = "vigil_session"
LOGIN_COOKIE = "vigil_login"  # the login form's double-submit CSRF token


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


def is_secure(request: Request) -> bool:
    return context_of(request).secure_cookies or request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return f"__Host-{SESSION_COOKIE}" if is_secure(request) else SESSION_COOKIE


def session_of(request: Request) -> dict | None:
    """The request's live session (``{"user", "role", "csrf"}``), or ``None``."""
    return context_of(request).db.session(request.cookies.get(cookie_name(request)))


def new_login_token() -> str:
    """A fresh login CSRF token: rendered into the login form and set by :func:`set_login_cookie`."""
    return new_token()


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    """The login form's double-submit cookie (an hour, like the form)."""
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=is_secure(request), max_age=3600)


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # an old browser without Origin: the token alone decides
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


async def checked_form(request: Request, session: dict | None, expected: str | None = None) -> FormData | None:
    """The POSTed form if its ``csrf`` field matches (``expected``, else the session's token) and
    the ``Origin`` is this site; else ``None``, with a ``csrf_refused`` audit entry."""
    form = await request.form()
    token = str(form.get("csrf", ""))
    want = expected if expected is not None else (session or {}).get("csrf", "")
    if not want or not hmac.compare_digest(token.encode(), want.encode()) or not same_origin(request):
        context_of(request).db.audit(
            (session or {}).get("user", "-"), "csrf_refused", request.url.path, "", client_of(request)
        )
        return None
    return form


_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Pure ASGI wrapper (streaming responses untouched) adding the security headers; HSTS on https.

    ``state`` is the wrapped application's, so ``create_app(...).state`` reaches the context."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + _HEADERS
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
