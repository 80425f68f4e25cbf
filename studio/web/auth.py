"""The one login (--auth user:pass): a random session token in an HttpOnly, SameSite=Strict cookie.

The same check guards every route (the UI page, Gradio's routes, /api, /docs and /openapi.json): the
LoginRequired middleware refuses anything but the login page until the cookie is valid, and Gradio is told
the user through `auth_dependency` (so it never runs its own login). SameSite=Strict means a browser never
sends the cookie with a request that another site started, on top of the Origin check in guard.py.

    GET  /login             the login form
    POST /login             form fields username, password -> cookie; 303 to / for a browser form,
                            200 {"success": true} for other clients (curl, gradio_client's auth=)
    GET  /logout            forgets the session
"""

from __future__ import annotations

import html
import secrets
import threading

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

AUTH_ENV = "FP_STUDIO_AUTH"
COOKIE = "fp_studio_session"
OPEN_PATHS = frozenset({"/login", "/logout", "/favicon.ico"})
LOGIN_MAX_BYTES = 16 * 1024


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'user:password' (the --auth flag or FP_STUDIO_AUTH) -> (user, password); None when unset."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be user:password")
    return user, password


class SessionAuth:
    """One user and password; sessions live in memory (a restart logs everyone out)."""

    def __init__(self, user: str, password: str) -> None:
        self._user = user
        self._password = password
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        ok_user = secrets.compare_digest(user.encode(), self._user.encode())
        ok_password = secrets.compare_digest(password.encode(), self._password.encode())
        return ok_user and ok_password

    def user(self, conn: HTTPConnection) -> str | None:
        """The logged-in user of a request, or None (also Gradio's `auth_dependency`)."""
        token = conn.cookies.get(COOKIE)
        if not token:
            return None
        with self._lock:
            return self._sessions.get(token)

    def _new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = self._user
        return token

    def _end_session(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["login"])

        @router.get("/login", include_in_schema=False)
        def login_page() -> HTMLResponse:
            return HTMLResponse(_login_html())

        # Anyone may post here before logging in: a form of two short fields, never a big body.
        @router.post("/login", include_in_schema=False, max_body_size=LOGIN_MAX_BYTES)
        async def login(request: Request) -> Response:
            form = await request.form()
            user, password = form.get("username"), form.get("password")
            browser = "text/html" in request.headers.get("accept", "")
            if not (isinstance(user, str) and isinstance(password, str) and self.check(user, password)):
                if browser:
                    return HTMLResponse(_login_html("Wrong username or password."), status_code=401)
                return JSONResponse({"detail": "wrong username or password"}, status_code=401)
            response: Response = RedirectResponse("/", status_code=303) if browser else JSONResponse(
                {"success": True})
            response.set_cookie(COOKIE, self._new_session(), httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
            return response

        @router.get("/logout", include_in_schema=False)
        def logout(request: Request) -> RedirectResponse:
            self._end_session(request.cookies.get(COOKIE))
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response

        return router


class LoginRequired:
    """ASGI middleware: without a valid session only the login page answers; a browser asking for a page is
    sent to it, everything else gets 401."""

    def __init__(self, app: ASGIApp, auth: SessionAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if self.auth.user(conn) is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] in ("GET", "HEAD") and "text/html" in conn.headers.get("accept", ""):
            response: Response = RedirectResponse("/login", status_code=303)
        else:
            response = JSONResponse({"detail": "Not authenticated"}, status_code=401)
        await response(scope, receive, send)


def _login_html(error: str = "") -> str:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>FP-Studio login</title>
<style>
body {{font-family: system-ui, sans-serif; display: flex; justify-content: center; margin-top: 12vh}}
form {{display: flex; flex-direction: column; gap: .6em; min-width: 18em}}
input, button {{font-size: 1em; padding: .45em}}
.error {{color: #b00020}}
</style></head>
<body><form method="post" action="/login">
<h1>FP-Studio</h1>{message}
<label>Username <input name="username" id="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password"
  required></label>
<button type="submit" id="login">Log in</button>
</form></body></html>
"""
