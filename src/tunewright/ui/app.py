"""The dashboard's app factory: settings, the key check, templates and static files, and the routers
(runs and run pages, blind review, playground and feedback). Server-rendered HTML with a little plain
JavaScript; nothing to build."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

HERE = Path(__file__).parent
COOKIE = "tunewright_ui_key"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class UISettings:
    runs_dir: Path
    key: str | None = None  # required on every request when set (always set off loopback)
    serve_url: str | None = None  # a running `tunewright serve`, for the playground
    serve_key: str | None = None  # its API key, sent by the dashboard, never shown to the browser
    feedback_db: Path | None = None  # the server's feedback store, for the feedback page


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=str(HERE / "templates"))
    found.env.globals["percent"] = lambda value: "—" if value is None else f"{value * 100:.1f}%"
    return found


def create_app(settings: UISettings) -> FastAPI:
    from tunewright.ui.pages import router as pages
    from tunewright.ui.review_page import router as review
    from tunewright.ui.tools import router as tools

    app = FastAPI(title="tunewright ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.templates = templates()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (pages, review, tools):
        app.include_router(router)
    if settings.key is not None:
        app.middleware("http")(_key_check(settings.key))
    return app


def _key_check(key: str) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """A request passes with the key as a bearer token or cookie; `?key=` once sets the cookie."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.query_params.get("key")
        if given is not None and secrets.compare_digest(given, key):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
            target = request.url.path + (f"?{rest}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(COOKIE, key, httponly=True, samesite="strict")
            return redirect
        header = request.headers.get("authorization", "")
        offered = request.cookies.get(COOKIE) or header.removeprefix("Bearer ").strip()
        if offered and secrets.compare_digest(offered, key):
            return await call_next(request)
        return PlainTextResponse("401: open the address `tunewright ui` printed (it carries ?key=...), "
                                 "or send Authorization: Bearer <TUNEWRIGHT_UI_KEY>", status_code=401)

    return check


def page(request: Request, template: str, **context: object) -> Response:
    found: Jinja2Templates = request.app.state.templates
    return found.TemplateResponse(request, template, context)


def settings_of(request: Request) -> UISettings:
    found: UISettings = request.app.state.settings
    return found
