"""The app factory: `create_app(settings)` wires resources in the lifespan and mounts the routers.

Nothing is created at import time. The lifespan loads the encoder, opens Milvus and Redis, builds
the tool registry and the executor, and closes them again on shutdown; routes receive them
through `Depends(get_resources)`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent import __version__
from agent.api.deps import RATE_LIMIT_STATE, Resources
from agent.api.routes import chat, documents, health, openai, retrieve, tools
from agent.config import Settings
from agent.embeddings import Encoder
from agent.execution import Executor
from agent.generation import ExtractiveGenerator, Generator, GeneratorUnavailable, OpenAIGenerator, SupportScorer
from agent.observability import Metrics, configure_logging, new_request_id, request_id_var
from agent.plugins import Tool, ToolError
from agent.plugins.builtins import builtin_registry
from agent.retrieval import Retriever
from agent.stores.sessions import RateDecision, RateLimiter, SessionStore, SessionStoreUnavailable, connect_redis
from agent.stores.vectors import VectorStore, VectorStoreUnavailable

log = logging.getLogger("agent.api")

MILVUS_RETRY_SECONDS = 5.0


def create_app(settings: Settings | None = None, *, encoder: Encoder | None = None,
               extra_tools: Sequence[Tool] = ()) -> FastAPI:
    """Build the agent app.

    `encoder` lets a caller share one loaded model between apps (tests, benchmarks);
    `extra_tools` registers more plugins (still subject to AGENT_TOOLS_ALLOWED).
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        enc = encoder or await anyio.to_thread.run_sync(
            lambda: Encoder.load(settings.embedding_model_path, settings.embedding_device,
                                 settings.embedding_batch_size))
        retriever = Retriever(enc, None, metrics, settings.chunk_size_chars, settings.chunk_overlap_chars)
        redis = connect_redis(settings)
        http_client: httpx.AsyncClient | None = None
        scorer = SupportScorer(enc, settings.answer_min_score)
        generator: Generator
        if settings.generator == "openai":
            headers = {}
            key = settings.secret("generator_api_key")
            if key:
                headers["Authorization"] = f"Bearer {key}"
            http_client = httpx.AsyncClient(base_url=settings.generator_base_url.rstrip("/") + "/",
                                            headers=headers, timeout=settings.generator_timeout_seconds)
            generator = OpenAIGenerator(http_client, settings.generator_model, scorer, settings.generator_max_tokens)
        else:
            generator = ExtractiveGenerator(scorer)
        registry = builtin_registry(settings, retriever, calls=metrics.tool_calls)
        for tool in extra_tools:
            registry.register(tool)
        app.state.resources = Resources(
            settings=settings, metrics=metrics, encoder=enc, retriever=retriever, redis=redis,
            sessions=SessionStore(redis.client, settings.session_ttl_seconds, settings.session_max_messages),
            limiter=RateLimiter(redis.client, settings.rate_limit_per_minute), tools=registry,
            executor=Executor(retriever, generator, registry, metrics),
            api_keys=[k.encode() for k in settings.api_key_list],
        )
        connector = asyncio.create_task(_connect_milvus(settings, retriever, enc.dim))
        with suppress(asyncio.TimeoutError):
            # Usually quick (Lite, or a healthy server); if not, keep starting and retry behind.
            await asyncio.wait_for(asyncio.shield(connector), timeout=30)
        if not settings.api_key_list:
            log.warning("no API keys configured (AGENT_API_KEYS / AGENT_API_KEYS_FILE): auth is disabled")
        log.info("agent started", extra={"version": __version__, "redis": redis.description,
                                         "milvus": settings.milvus_uri or "lite", "generator": generator.name,
                                         "device": str(enc.device), "tools": sorted(registry.allowed)})
        try:
            yield
        finally:
            connector.cancel()
            with suppress(asyncio.CancelledError):
                await connector
            if retriever.store is not None:
                await anyio.to_thread.run_sync(retriever.store.close)
            if http_client is not None:
                await http_client.aclose()
            with suppress(Exception):
                await redis.close()
            log.info("agent stopped")

    app = FastAPI(title="rag-platform agent", version=__version__, lifespan=lifespan,
                  description="Retrieval-augmented agent: documents, hybrid retrieval, cited chat, tools.")
    for module in (health, documents, retrieve, chat, tools, openai):
        app.include_router(module.router)
    _install_error_handlers(app, metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


async def _connect_milvus(settings: Settings, retriever: Retriever, dim: int) -> None:
    """Open the vector store, retrying until it answers: a Milvus outage at start is not fatal."""
    while True:
        try:
            if settings.milvus_uri:
                store = await anyio.to_thread.run_sync(lambda: VectorStore(
                    settings.milvus_uri, settings.milvus_collection, dim, settings.secret("milvus_token"),
                    phrase_min_coverage=settings.phrase_min_coverage))
            else:
                store = await anyio.to_thread.run_sync(lambda: VectorStore.lite(
                    settings.data_dir, settings.milvus_collection, dim,
                    phrase_min_coverage=settings.phrase_min_coverage))
            retriever.store = store
            return
        except Exception as exc:  # keep serving; /readyz reports not ready until this succeeds
            retriever.metrics.dependency_errors.labels("milvus").inc()
            log.error("Milvus unavailable, retrying", extra={"error": str(exc), "retry_in_s": MILVUS_RETRY_SECONDS})
            await asyncio.sleep(MILVUS_RETRY_SECONDS)


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(SessionStoreUnavailable)
    async def _redis_down(request: Request, exc: SessionStoreUnavailable) -> JSONResponse:
        metrics.dependency_errors.labels("redis").inc()
        log.warning("session store unavailable", extra={"error": str(exc)})
        return JSONResponse(status_code=503, headers={"Retry-After": "5"}, content={
            "detail": "session store (Redis) is unavailable; sessions cannot be read or saved. "
                      "Retry shortly: the agent reconnects by itself when Redis is back."})

    @app.exception_handler(VectorStoreUnavailable)
    async def _milvus_down(request: Request, exc: VectorStoreUnavailable) -> JSONResponse:
        log.warning("vector store unavailable", extra={"error": str(exc)})
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"detail": f"{exc}. Retry shortly."})

    @app.exception_handler(GeneratorUnavailable)
    async def _generator_down(request: Request, exc: GeneratorUnavailable) -> JSONResponse:
        return JSONResponse(status_code=502, content={"detail": str(exc)})

    @app.exception_handler(ToolError)
    async def _tool_error(request: Request, exc: ToolError) -> JSONResponse:
        content: dict[str, Any] = {"detail": str(exc)}
        if getattr(exc, "errors", None):
            content["errors"] = exc.errors  # type: ignore[attr-defined]
        return JSONResponse(status_code=exc.status_code, content=content)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": errors, "message": f"invalid request: {fields}"})


# ---------------------------------------------------------------------------- middleware
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
