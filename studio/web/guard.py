"""Host and Origin checks in front of every route (UI, Gradio's routes, /api, docs).

- Host: only this server's own names are answered (loopback names, the --listen address, address literals
  when listening on all interfaces, and the names given with --allowed-hosts). A DNS-rebinding page reaches
  the server under the attacker's own host name, so it is refused here.
- Origin: a request a browser sends for a page of another origin (another site, or another port on
  localhost) is refused, whatever its method or content type, so no other page can queue jobs or read
  answers. Clients that are not browsers send no Origin and pass.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of requests the user made on this origin (or typed / bookmarked).
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def host_name(host: str | None) -> str:
    """'Localhost:7860' -> 'localhost', '[::1]:7860' -> '::1'; '' for a missing or malformed header."""
    if not host:
        return ""
    try:
        return urlsplit("//" + host).hostname or ""
    except ValueError:
        return ""


class HostPolicy:
    """Which Host header names this server answers to."""

    def __init__(self, listen: str, extra: Iterable[str] = ()) -> None:
        self.listen = listen.strip().strip("[]").lower()
        self.extra = {host_name(h) or h.strip().lower() for h in extra if h.strip()}

    def allows(self, host: str | None) -> bool:
        name = host_name(host)
        if not name:
            return False
        if name in LOOPBACK_NAMES or name == self.listen or name in self.extra:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False  # a name nobody configured: possibly an attacker's domain rebound to this machine
        # An address literal cannot be rebound; on all interfaces any address that reached us is ours.
        return address.is_loopback or self.listen in WILDCARD_ADDRESSES


def is_same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


class HostOriginGuard:
    """ASGI middleware: 403 for a foreign Host, or for a request sent on behalf of another origin."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        why = self.refusal(scope)
        if why is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), why)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accept answers 403
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"detail": why}, status_code=403)(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.policy.allows(host):
            return f"host {host!r} is not allowed (see --allowed-hosts)"
        origin = headers.get("origin")
        if origin is not None:
            if not is_same_origin(origin, host):
                return f"cross-origin request from {origin!r}"
            return None
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            site = headers.get("sec-fetch-site")
            if site is not None and site not in OWN_FETCH_SITES:
                return f"cross-site request (Sec-Fetch-Site: {site})"
        return None
