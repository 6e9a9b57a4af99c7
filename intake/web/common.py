"""What every page shares: the login and CSRF gate, templates, links under the path prefix.

A view is a plain function of a `Ctx` (request, open session, user, settings, form),
run in a worker thread inside one database transaction; `page()` wraps it with the
checks every page needs, so no view can forget them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from config.campaigns import CampaignSpec
from config.settings import Settings
from intake.actions import TrackingError
from intake.board import KIND_LABELS, STATE_LABELS, local_time
from intake.web.auth import COOKIE, SessionData, csrf_ok
from storage.models import Role, User, utcnow

HERE = Path(__file__).parent
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                        trim_blocks=True, lstrip_blocks=True)
templates.globals.update(STATE_LABELS=STATE_LABELS, KIND_LABELS=KIND_LABELS)
View = Callable[["Ctx"], Response]


def path_for(request: Request, route: str, query: dict[str, Any] | None = None, /, **params: Any) -> str:
    """A link to a route, with the reverse proxy's prefix (root_path) and no host."""
    path = request.scope.get("root_path", "") + str(request.app.url_path_for(route, **params))
    return path + ("?" + urlencode(query, doseq=True) if query else "")


@dataclass
class Ctx:
    request: Request
    session: Session
    user: User
    auth: SessionData
    settings: Settings
    form: FormData | None
    # A page about one submission shows (and its links keep) that submission's campaign.
    shown: CampaignSpec | None = None

    @property
    def app(self) -> Any:  # intake.app.App
        return self.request.app.state.intake

    @property
    def now(self) -> dt.datetime:
        return utcnow()

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    @property
    def campaign(self) -> CampaignSpec:
        """The campaign a page shows: `?campaign=<id>` (or the form's field), else the default."""
        if self.shown is not None:
            return self.shown
        wanted = self.request.query_params.get("campaign") or self.field("campaign")
        if not wanted:
            return self.settings.campaign
        spec = self.settings.campaign_set.get(wanted)
        if spec is None:
            raise TrackingError(f"没有编号为「{wanted}」的征集。")
        return spec

    def keep(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """A link's query with the chosen campaign kept (only when there is a choice)."""
        query = dict(query or {})
        if len(self.settings.campaigns) > 1:
            query.setdefault("campaign", self.campaign.id)
        return query

    def render(self, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, user=self.user, csrf=self.auth.csrf, settings=self.settings,
                      campaign=self.campaign, campaigns=list(self.settings.campaigns), keep=self.keep, **context)

    def redirect(self, route: str, query: dict[str, Any] | None = None, /, **params: Any) -> RedirectResponse:
        return RedirectResponse(path_for(self.request, route, query, **params), status_code=303)

    def time(self, moment: dt.datetime | None) -> str:
        return local_time(moment, self.request.app.state.tz)


def render(request: Request, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    def url(route: str, query: dict[str, Any] | None = None, /, **params: Any) -> str:
        return path_for(request, route, query, **params)

    static = request.scope.get("root_path", "") + "/static/"
    tz = request.app.state.tz
    html = templates.get_template(template).render(url=url, static=static, request=request,
                                               time=lambda m: local_time(m, tz), **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, message: str, status: int, user: Viewer | None = None,
               auth: SessionData | None = None) -> HTMLResponse:
    return render(request, "error.html", status, message=message, user=user, csrf=auth.csrf if auth else None)


def page(*, admin: bool = False) -> Callable[[View], Callable[[Request], Any]]:
    """Login required (redirect to /login with `next`); every POST must carry the session's
    CSRF token; `admin` pages refuse other roles. A refused act (TrackingError) is shown
    as its Chinese message."""

    def wrap(view: View) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await request.form(max_files=0, max_fields=500) if request.method == "POST" else None
            return await run_in_threadpool(_serve, view, request, admin, form)

        endpoint.__name__ = view.__name__
        return endpoint

    return wrap


def _serve(view: View, request: Request, admin: bool, form: FormData | None) -> Response:
    state = request.app.state
    auth = state.sessions.load(request.cookies.get(COOKIE))
    app = state.intake
    viewer = None
    try:
        with app.db.session() as session:
            user = session.get(User, auth.user_id) if auth else None
            if auth is None or user is None or user.disabled:
                return to_login(request)
            viewer = Viewer(user.name, user.role)
            if form is not None and not csrf_ok(auth, form.get("csrf")):
                return error_page(request, "请求已失效（缺少或错误的安全令牌），请返回页面刷新后重试。", 403, viewer, auth)
            if admin and user.role is not Role.ADMIN:
                return error_page(request, "只有管理员可以管理用户。", 403, viewer, auth)
            response = view(Ctx(request, session, user, auth, app.refresh_settings(), form))
    except TrackingError as err:  # the transaction is rolled back: a refused act changes nothing
        response = error_page(request, str(err), 400, viewer, auth)
    # Sliding expiry: the re-signed cookie's timestamp is this request (unless the view
    # ended the session: logout).
    if not any(k == b"set-cookie" and v.startswith(COOKIE.encode() + b"=") for k, v in response.raw_headers):
        set_session_cookie(request, response, state.sessions.dump(auth))
    return response


@dataclass(frozen=True)
class Viewer:
    """Who is looking, for the page frame (outlives the database session)."""

    name: str
    role: Role


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path[len(request.scope.get("root_path", "")):] or "/"
    if request.url.query:
        target += "?" + request.url.query
    query = {"next": target} if request.method == "GET" and target != "/" else None
    response = RedirectResponse(path_for(request, "login", query), status_code=303)
    response.delete_cookie(COOKIE, path=cookie_path(request))
    return response


def cookie_path(request: Request) -> str:
    return request.scope.get("root_path", "") or "/"


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    # Secure when the browser reached us over https; behind a proxy uvicorn takes the scheme
    # from X-Forwarded-Proto only when the proxy is in [web] trusted_proxies.
    response.set_cookie(COOKIE, value, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        path=cookie_path(request))
