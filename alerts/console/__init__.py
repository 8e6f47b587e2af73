"""The operator console: a web page for the control room (``vigil console``).

A separate process beside the aggregator. It reads the aggregator's database, SQLite
(``--db``) or PostgreSQL (``--dsn``/``--dsn-file``): the stored events (history, detail,
per-camera overview); and follows the aggregator's operator stream
(:class:`~vigil.alerts.tail.StreamClient`; ``--stream`` repeated: several aggregators, with
fail-over) to push new events to browsers over Server-Sent Events within a fraction of a
second. Its own state (accounts, sessions, acknowledgements and closings, the audit log) lives
in ``console_*`` tables that it creates itself in the same database (SQLite: ``--state-db``
puts them in another file), with one set of queries for both (:mod:`.dbconn` holds what
differs).

Why a separate process and not inside the aggregator: the aggregator is a single-threaded
ZeroMQ loop whose latency bounds every edge node's delivery; a web server (TLS-terminating
proxy, slow browsers, password hashing) must never stall it, and the console can be
restarted, upgraded or left out without touching ingest. Both use the same database (SQLite
in WAL mode: readers never block the writer); the console's writes are a few rows per
operator action. ``GET /healthz`` answers 200 while the database does (health checks).

Modules: :mod:`.db` (state tables and event queries), :mod:`.auth` (password hashing),
:mod:`.live` (stream follower and the fan-out to browsers), :mod:`.i18n` (it/en),
:mod:`.context` (the typed dependencies on ``app.state.console``), :mod:`.security`
(sessions, cookies, CSRF, security headers), :mod:`.views` (what the pages draw),
:mod:`.routes` (one handler per URL), :mod:`.app` (:func:`create_app` and :func:`serve`),
:mod:`.cli` (``vigil console``).
"""

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    """``create_app`` and ``serve`` on first use: importing a part of the console (the
    aggregator's retention imports :mod:`.db` to purge the console's tables) must not load the
    web stack, the site map's geometry and OpenCV (tens of MB of a long-running process)."""
    if name in __all__:
        from . import app  # noqa: PLC0415 - see above

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
