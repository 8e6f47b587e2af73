"""Sessions, cookies, CSRF checks and the security headers of the console.

Sessions are server-side (:meth:`ConsoleDB.session`): a random token in an ``HttpOnly``,
``SameSite=Strict`` cookie. Over HTTPS (the request scheme, which uvicorn's proxy headers
take from the reverse proxy, or ``secure_cookies=True``) the cookie is ``Secure`` and named
with the ``__Host-`` prefix. Every POST carries a CSRF token, checked together with the
``Origin`` header: the session's token, or for the login form a double-submit cookie
(``vigil_login``). :class:`SecurityHeaders` adds a strict Content-Security-Policy (no inline
script), ``X-Frame-Options: DENY`` and, on HTTPS, HSTS to every response.

Forwarded headers (:class:`ProxyHeaders`): the client address that the login throttle counts
and the audit log records, and the request scheme, are the socket's unless the direct peer is
one of the configured trusted proxies (``--trusted-proxy``; default none). Only then are
``X-Forwarded-For`` (or, without it, RFC 7239 ``Forwarded``) and ``X-Forwarded-Proto`` read:
the client is the right-most address that is not itself a trusted proxy, so what a client
wrote into the header before the proxy appended its peer is ignored. A proxy in front must
therefore append (nginx: ``proxy_add_x_forwarded_for``) or replace ``X-Forwarded-For``.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .auth import new_token
from .context import context_of

__all__ = [
    "ProxyHeaders",
    "SecurityHeaders",
    "parse_proxies",
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(proxies: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxy addresses or networks (``127.0.0.1``, ``10.0.0.0/8``, ``::1``; a comma-
    separated string is split). ``ValueError`` names one that is neither."""
    out = []
    for item in proxies:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {part!r}") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a forwarded-header node: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``,
    ``::1``, quoted or not (``unknown`` and obfuscated identifiers: ``None``)."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` nodes of RFC 7239 ``Forwarded`` header values, in order."""
    nodes = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                k, _, v = pair.partition("=")
                if k.strip().lower() == "for":
                    nodes.append(v)
    return nodes


def _forwarded_proto(values: list[str]) -> str | None:
    found = None
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                k, _, v = pair.partition("=")
                if k.strip().lower() == "proto":
                    found = v.strip().strip('"').lower()
    return found


class ProxyHeaders:
    """Pure ASGI wrapper: the request's client address and scheme from forwarded headers, when
    (and only when) the direct peer is a trusted proxy (module docstring). ``trusted`` empty:
    the socket's peer and scheme always. An address that cannot be read ends the walk: the
    client is then the last address read (a trusted hop's, or the peer itself). ``state`` is
    the wrapped application's."""

    def __init__(self, app, trusted: Iterable[str] = ()) -> None:
        self.app = app
        self.state = app.state
        self.trusted = parse_proxies(trusted)

    def is_trusted(self, ip) -> bool:
        return ip is not None and any(ip.version == n.version and ip in n for n in self.trusted)

    def resolve(self, peer: str, headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None]:
        """The client address and the forwarded scheme (``None``: keep the socket's) of a
        request from ``peer`` with these raw headers."""
        if not self.trusted or not self.is_trusted(_ip(peer)):
            return peer, None
        xff, fwd, proto = [], [], []
        for k, v in headers:
            name = k.lower()
            if name == b"x-forwarded-for":
                xff.append(v.decode("latin-1"))
            elif name == b"forwarded":
                fwd.append(v.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                proto.append(v.decode("latin-1"))
        nodes = [n for v in xff for n in v.split(",")] if xff else _forwarded_for(fwd)
        client = peer
        for node in reversed(nodes):
            ip = _ip(node)
            if ip is None:
                break
            client = str(ip)
            if not self.is_trusted(ip):
                break
        scheme = proto[-1].split(",")[-1].strip().lower() if proto else _forwarded_proto(fwd)
        return client, scheme if scheme in ("http", "https") else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            peer = scope.get("client")
            if peer:
                client, scheme = self.resolve(peer[0], scope.get("headers") or [])
                scope = {**scope, "client": (client, peer[1] if client == peer[0] else 0)}
                if scheme:
                    scope["scheme"] = scheme if scope["type"] == "http" else {"http": "ws", "https": "wss"}[scheme]
        await self.app(scope, receive, send)
