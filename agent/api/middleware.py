"""ASGI middleware: request ids, metrics and access logs; rate-limit headers; the body size limit.

Plain ASGI classes rather than `BaseHTTPMiddleware`, so streaming responses pass through untouched
and the request state is the same dict the routes write to.
"""

from __future__ import annotations

import logging
import re
import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.deps import RATE_LIMIT_STATE
from agent.observability import Metrics, new_request_id, request_id_var
from agent.stores.sessions import RateDecision

log = logging.getLogger("agent.api")

_CONVERTER = re.compile(r":\w+}")


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The matched route's path template, or 'unmatched' (bounded label cardinality)."""
    route = scope.get("route")
    if route is None:
        router = getattr(app, "router", None)
        for candidate in getattr(router, "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    return _CONVERTER.sub("}", path) if path else "unmatched"


class ObservabilityMiddleware:
    """Request id (X-Request-ID in and out), request metrics by route template, one JSON access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = new_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope["app"], scope)
            method = scope["method"]
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_duration.labels(route, method).observe(elapsed)
            log.log(logging.WARNING if status >= 500 else logging.INFO, "request",
                    extra={"method": method, "route": route, "path": scope["path"], "status": status,
                           "duration_ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)


class RateLimitHeadersMiddleware:
    """`X-RateLimit-Limit` and `X-RateLimit-Remaining` on the response to every request the rate
    limiter counted, so clients can slow down before a 429. `require_caller` leaves its decision in
    the request state; reading it here, at the response start, covers errors and streams too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the dict request.state writes to, shared with the route

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision: RateDecision | None = state.get(RATE_LIMIT_STATE)
                if decision is not None:
                    message["headers"] = [*message.get("headers", []),
                                          (b"x-ratelimit-limit", str(decision.limit).encode()),
                                          (b"x-ratelimit-remaining", str(decision.remaining).encode())]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class _BodyTooLarge(HTTPException):
    """Raised from receive(); an HTTPException so FastAPI's body parsing re-raises it as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body exceeds {max_bytes} bytes (AGENT_MAX_BODY_BYTES)")


class BodyLimitMiddleware:
    """413 for bodies over the limit: from Content-Length up front, or while streaming chunked bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(status_code=413, content={
            "detail": f"request body exceeds {self.max_bytes} bytes (AGENT_MAX_BODY_BYTES)"})
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
