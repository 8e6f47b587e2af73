"""The console's Starlette application (:func:`create_app`) and :func:`serve` (uvicorn).

Pages (all but ``/login`` and ``/healthz``, the container health check, need a session): ``/`` live alarm list with
filters; ``/alarm/{id}`` detail, actions and history; ``/cameras`` per-camera overview;
``/transits`` plate search (supervisor, admin); ``/audit`` the access log (supervisor,
admin); ``/admin/accounts`` account administration (admin: :mod:`.admin`). ``/api/stream``
is the Server-Sent-Events feed of new alarms (``Last-Event-ID`` resumes); ``/api/actions`` that of
operators' actions, from the ``console_actions`` table, so across console processes too
(:mod:`.liveactions`; its watcher thread runs with the lifespan). ``/map`` draws live
alarms on the plan of each area of the sites file
(:mod:`.sitemap`, :mod:`.maproutes`). ``/evidence/{id}`` serves an evidence crop from
``evidence_dir`` to logged-in users; ``/tiles``, ``/tile/{camera}`` (live tiles from ``tiles_dir``)
and ``/clip/{id}`` (plate clips) are in :mod:`.media`.
The handlers are in :mod:`.routes`, what they draw in :mod:`.views`; each reads the
application's :class:`~.context.ConsoleContext` from ``app.state.console``.

Security (:mod:`.security`): accounts with scrypt-hashed passwords and roles; server-side
sessions (random token in an ``HttpOnly``, ``SameSite=Strict`` cookie, stored by digest; idle
and absolute expiry); CSRF: a per-session token in every form, checked with the ``Origin``
header on every POST (login uses a double-submit cookie); failed logins throttled per user
and client; a strict Content-Security-Policy (no inline script), ``X-Frame-Options: DENY``.
Failed logins are throttled per (user, client), per client, per user and overall
(:class:`~.context.LoginThrottle`); a password change or reset ends the user's other sessions.
Behind an HTTPS reverse proxy (which must pass ``Host``, ``X-Forwarded-For`` and
``X-Forwarded-Proto``) listed in ``trusted_proxies`` (``--trusted-proxy``), the client address
and the request scheme come from those headers (:class:`~.security.ProxyHeaders`; from anyone
else they are ignored): on ``https`` cookies get ``Secure`` and the ``__Host-`` prefix
(``secure_cookies=True`` forces that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import jinja2
import uvicorn
import zmq
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .admin import ADMIN_ROUTES
from .context import ConsoleContext, LoginThrottle, TransitSearch
from .db import ConsoleDB
from .live import Hub, StreamFollower
from .liveactions import ACTION_ROUTES, ActionWatch
from .maproutes import MAP_ROUTES
from .media import MEDIA_ROUTES
from .routes import ROUTES
from .security import ProxyHeaders, SecurityHeaders
from .sitemap import SiteMap

__all__ = ["create_app", "serve"]

HERE = Path(__file__).parent


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Follow the aggregator's stream while the application runs; wake every feed at the end."""
    ctx: ConsoleContext = app.state.console
    if ctx.follow:
        ctx.follower.start()
    app.state.actions.start()  # operator actions to every browser (:mod:`.liveactions`)
    try:
        yield
    finally:
        ctx.hub.close()
        app.state.actions.stop()
        if ctx.follow:
            ctx.follower.stop()


def create_app(
    db: ConsoleDB,
    *,
    stream_endpoint: str | Sequence[str] | None = None,
    configure_socket: Callable[[zmq.Socket], None] | None = None,
    transits: TransitSearch | None = None,
    transits_db: str | Path | None = None,
    evidence_dir: str | Path | None = None,
    secure_cookies: bool = False,
    follow: bool = True,
    trusted_proxies: Iterable[str] = (),
    login_throttle: LoginThrottle | None = None,
    sites: SiteMap | None = None,
    tiles_dir: str | Path | None = None,
) -> ProxyHeaders:
    """The Starlette application over an open :class:`ConsoleDB` (wrapped in the security
    headers and the forwarded-header handling).

    ``stream_endpoint``: the aggregator's operator stream, or a list of endpoints to fail over
    between (``None``: poll the database).
    ``transits``: an object with ``search_plate(plate, since=None, until=None) -> list[dict]``;
    without one, the transit store is opened lazily on the first search: the SQLite file
    ``transits_db`` if given, else the console's database (its SQLite events file, or its
    PostgreSQL database). ``follow=False``: do not start the stream follower.
    ``trusted_proxies``: addresses or networks of reverse proxies whose forwarded headers are
    believed (default none: the socket's peer is the client; ``ValueError`` for a bad one).
    ``login_throttle``: the failed-login limits (default :class:`LoginThrottle`'s).
    ``sites``: the site map (:func:`~.sitemap.load_sites`) behind ``/map`` (:mod:`.maproutes`).
    ``tiles_dir``: the edge nodes' live-tiles folder behind ``/tiles`` and ``/tile/{camera}`` (:mod:`.media`).
    The result's ``state`` holds ``console`` (the :class:`ConsoleContext`) and, for tests and
    callers that stop it, ``hub``, ``follower`` and ``db``.
    """
    hub = Hub()
    follower = StreamFollower(
        hub,
        endpoint=stream_endpoint,
        start_seq=db.last_stream_seq(),
        configure_socket=configure_socket,
        last_seq_in_db=db.last_stream_seq,
    )
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    ctx = ConsoleContext(
        db=db,
        hub=hub,
        follower=follower,
        templates=templates,
        transits_path=Path(transits_db) if transits_db else db.events_path,
        transits_dsn=None if transits_db else db.dsn,
        transits=transits,
        evidence_root=Path(evidence_dir).resolve() if evidence_dir else None,
        secure_cookies=secure_cookies,
        follow=follow,
        logins=login_throttle or LoginThrottle(),
        sites=sites,
        tiles_root=Path(tiles_dir).resolve() if tiles_dir else None,
    )
    app = Starlette(
        routes=[
            *ROUTES,
            *MAP_ROUTES,
            *MEDIA_ROUTES,
            *ADMIN_ROUTES,
            *ACTION_ROUTES,
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.console = ctx
    app.state.hub = hub
    app.state.follower = follower
    app.state.db = db
    app.state.actions = ActionWatch(db)
    # pages start the live-actions feed after the newest action they were drawn with
    templates.globals["live_actions_cursor"] = lambda: app.state.actions.hub.last_seq
    return ProxyHeaders(SecurityHeaders(app), trusted_proxies)


def serve(db: ConsoleDB, *, host: str = "127.0.0.1", port: int = 8080, **kwargs) -> int:
    """Run the console until interrupted. ``kwargs`` go to :func:`create_app` (forwarded
    headers are its business, ``trusted_proxies``: uvicorn's own proxy handling is off, so
    that one rule decides which peer is believed)."""
    app = create_app(db, **kwargs)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    return 0
