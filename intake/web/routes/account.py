"""登录, 退出, 用户 (admin), /healthz."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from intake.web import auth
from intake.web.common import Ctx, cookie_path, page, render, set_session_cookie
from storage.models import Role, utcnow


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def _next_path(value: object) -> str:
    """Only a path inside the console: never another site (no //host, no scheme)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10) if request.method == "POST" else None
    return await run_in_threadpool(_login, request, form)


def _login(request: Request, form: object) -> Response:
    app = request.app.state.intake
    next_path = _next_path((form or request.query_params).get("next"))  # type: ignore[union-attr]
    with app.db.session() as session:
        if not auth.has_users(session):
            return render(request, "setup.html", title="尚无用户")
        if form is None:
            return render(request, "login.html", title="登录", next=next_path, error="", username="")
        name, password = form.get("username"), form.get("password")  # type: ignore[attr-defined]
        if not isinstance(name, str) or not isinstance(password, str):
            return render(request, "login.html", 400, title="登录", next=next_path, error=auth.WRONG, username="")
        result = auth.login(session, name, password, now=utcnow())
        if result.user is None:
            return render(request, "login.html", 401, title="登录", next=next_path, error=result.message,
                          username=name)
        data = request.app.state.sessions.new(result.user.id)
    # Login-CSRF: there is no session to tie a token to yet; SameSite=Lax and the
    # credentials themselves guard it. A fresh token is minted on every login.
    response = RedirectResponse(request.scope.get("root_path", "") + next_path, status_code=303)
    set_session_cookie(request, response, request.app.state.sessions.dump(data))
    return response


@page()
def logout(ctx: Ctx) -> Response:
    response = ctx.redirect("login")
    response.delete_cookie(auth.COOKIE, path=cookie_path(ctx.request))
    return response


@page(admin=True)
def users(ctx: Ctx) -> Response:
    error = ""
    if ctx.form is not None:
        try:
            if ctx.field("action") == "disable":
                if ctx.field("name") == ctx.user.name:
                    raise auth.AccountError("不能停用自己的账户。")
                auth.disable_user(ctx.session, ctx.field("name"), actor=ctx.user.name, now=ctx.now)
            else:
                role = Role.ADMIN if ctx.field("role") == "admin" else Role.STAFF
                auth.add_user(ctx.session, ctx.field("name"), ctx.form.get("password") or "", role,  # type: ignore[arg-type]
                              actor=ctx.user.name, now=ctx.now)
            return ctx.redirect("users", {"done": "1"})
        except auth.AccountError as err:  # refused before anything changed
            error = str(err)
    return ctx.render("users.html", 400 if error else 200, users=auth.list_users(ctx.session), error=error,
                      title="用户", done=ctx.request.query_params.get("done", ""))


ROUTES = [
    Route("/healthz", healthz, name="healthz"),
    Route("/login", login, methods=["GET", "POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/users", users, methods=["GET", "POST"], name="users"),
]

