"""The console's ASGI app (`create_app`) and how it is served (`serve`, `start_in_thread`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from config.settings import Settings
from intake.web.auth import Sessions, load_secret
from intake.web.common import HERE
from intake.web.routes import account, board, submission

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # Every script and style is our own file: nothing inline, nothing from elsewhere.
    b"content-security-policy": b"default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               b"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
}


class _Prefix:
    """Serve under `[web] base_path` (a reverse proxy's path prefix), whether or not the
    proxy strips it: root_path is set, so every link, redirect and asset carries it."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.prefix:
            path = scope["path"]
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                path = self.prefix + path
            scope = dict(scope, root_path=self.prefix, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class _Headers:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(settings: Settings, *, intake_app: Any = None, send_outbox: Callable[[], None] | None = None) -> ASGIApp:
    """The console over `settings`' database. `intake_app` (an intake.app.App) is shared with
    `intake run` when given; `send_outbox` sends what an act queued (default: right away,
    one sender at a time in this process)."""
    from intake.app import App

    app = intake_app or App(settings)
    site = Starlette(routes=[*account.ROUTES, *board.ROUTES, *submission.ROUTES,
                             Mount("/static", StaticFiles(directory=HERE / "static"), name="static")])
    site.state.intake = app
    site.state.sessions = Sessions(load_secret(settings), settings.web.session_idle_minutes)
    site.state.tz = ZoneInfo(settings.digest.timezone)
    site.state.send_outbox = send_outbox or _outbox_sender(app)
    # X-Forwarded-Proto/For are believed only from [web] trusted_proxies (the reverse proxy):
    # the cookie's Secure flag follows the scheme the browser used.
    trusted = ProxyHeadersMiddleware(_Headers(site), trusted_hosts=list(settings.web.trusted_proxies))
    return _Prefix(trusted, settings.web.base_path)


def _outbox_sender(app: Any) -> Callable[[], None]:
    lock = threading.Lock()

    def send() -> None:
        from notifications.outbox import Outbox

        with lock:
            try:
                Outbox(app.db, app.refresh_settings()).send_pending()
            except Exception:  # the act is recorded; the mail stays queued for the next pass
                log.exception("sending queued mail after a console action failed")

    return send


def server(settings: Settings, asgi: ASGIApp, host: str | None = None, port: int | None = None) -> Any:
    import uvicorn

    config = uvicorn.Config(
        asgi, host=host or settings.web.host, port=port or settings.web.port,
        proxy_headers=False,  # create_app applies them, from [web] trusted_proxies only
        log_config=None, access_log=False, server_header=False,
    )
    return uvicorn.Server(config)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """`intake web`: serve until interrupted."""
    server(settings, create_app(settings), host, port).run()


def start_in_thread(settings: Settings, intake_app: Any, send_outbox: Callable[[], None]) -> Any:
    """`intake run` with `[web] enabled`: the console in a daemon thread of the same process."""
    srv = server(settings, create_app(settings, intake_app=intake_app, send_outbox=send_outbox))
    threading.Thread(target=srv.run, name="web", daemon=True).start()
    return srv
