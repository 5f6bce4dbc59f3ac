"""What routes depend on: one narrow `Annotated` dependency per resource, the caller, and limits.

The lifespan builds one `Resources` per app and keeps it in `app.state.resources`; routes never
take the whole bag. Each declares exactly what it touches (`RetrieverDep`, `SessionsDep`, ...),
so a reader, and static call-following, can see which dependency a route can fail on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from agent.config import Settings
from agent.embeddings import Encoder
from agent.execution import Executor
from agent.observability import Metrics
from agent.plugins import ToolRegistry
from agent.retrieval import Retriever
from agent.stores.sessions import RateLimiter, RedisHandle, SessionStore, SessionStoreUnavailable

log = logging.getLogger(__name__)

# Key in the request state (scope["state"]) under which require_caller leaves the RateDecision.
RATE_LIMIT_STATE = "rate_limit"


@dataclass
class Resources:
    """Everything the app created in its lifespan (routes take single fields through the deps below)."""

    settings: Settings
    metrics: Metrics
    encoder: Encoder
    retriever: Retriever
    redis: RedisHandle
    sessions: SessionStore
    limiter: RateLimiter
    tools: ToolRegistry
    executor: Executor
    api_keys: list[bytes]


def _resources(request: Request) -> Resources:
    return request.app.state.resources


# The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in anyio's thread
# pool, so six trivial attribute reads cost /chat six thread hand-offs (queue, wake-up, GIL
# switch, loop wake-up) per request. Awaited on the event loop they cost nothing.


async def get_settings(request: Request) -> Settings:
    return _resources(request).settings


async def get_metrics(request: Request) -> Metrics:
    return _resources(request).metrics


async def get_encoder(request: Request) -> Encoder:
    return _resources(request).encoder


async def get_retriever(request: Request) -> Retriever:
    return _resources(request).retriever


async def get_redis(request: Request) -> RedisHandle:
    return _resources(request).redis


async def get_sessions(request: Request) -> SessionStore:
    return _resources(request).sessions


async def get_limiter(request: Request) -> RateLimiter:
    return _resources(request).limiter


async def get_tools(request: Request) -> ToolRegistry:
    return _resources(request).tools


async def get_executor(request: Request) -> Executor:
    return _resources(request).executor


async def get_api_keys(request: Request) -> list[bytes]:
    return _resources(request).api_keys


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EncoderDep = Annotated[Encoder, Depends(get_encoder)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
RedisDep = Annotated[RedisHandle, Depends(get_redis)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
ToolsDep = Annotated[ToolRegistry, Depends(get_tools)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
ApiKeysDep = Annotated[list[bytes], Depends(get_api_keys)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a short hash of their key (never the key itself) or 'anonymous'."""

    id: str


def authenticate(request: Request, keys: list[bytes]) -> Caller:
    if not keys:
        return Caller("anonymous")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    presented = token.strip().encode()
    # Compare against every key in constant time, without stopping early on a match.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    if scheme.lower() != "bearer" or not presented or not matched:
        raise HTTPException(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return Caller(hashlib.sha256(presented).hexdigest()[:16])


async def require_caller(request: Request, keys: ApiKeysDep, limiter: LimiterDep, metrics: MetricsDep) -> Caller:
    """Bearer auth, then the per-caller rate limit (Redis-backed, shared by every replica)."""
    caller = authenticate(request, keys)
    try:
        decision = await limiter.hit(caller.id)
    except SessionStoreUnavailable as exc:
        # Fail open: an outage of the limiter's store must not take retrieval down with it.
        metrics.dependency_errors.labels("redis").inc()
        log.warning("rate limiter unavailable, request allowed", extra={"error": str(exc)})
        return caller
    if decision.limit:
        # RateLimitHeadersMiddleware reports it on this request's response, whatever it turns out to be.
        setattr(request.state, RATE_LIMIT_STATE, decision)
    if not decision.allowed:
        metrics.rate_limited.inc()
        raise HTTPException(429, f"rate limit of {decision.limit} requests per minute exceeded; "
                                 f"retry in {decision.retry_after}s",
                            headers={"Retry-After": str(decision.retry_after)})
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]


def enforce_limit(value: Any, limit: int, loc: tuple[str | int, ...], what: str = "characters") -> None:
    """Raise the same 422 FastAPI gives for schema errors, naming the field, for a configured limit."""
    size = value if isinstance(value, int) else len(value)
    if size > limit:
        kind = "less_than_equal" if isinstance(value, int) else "string_too_long"
        msg = (f"Input should be less than or equal to {limit}" if isinstance(value, int)
               else f"String should have at most {limit} {what}")
        raise RequestValidationError([{"loc": loc, "msg": msg, "type": kind}])


def enforce_metadata_limits(metadata: dict[str, Any], settings: Settings, loc: tuple[str | int, ...]) -> None:
    """Metadata is copied onto every chunk and into every hit: bound its size and its nesting."""
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > settings.max_metadata_bytes:
        raise RequestValidationError([{"loc": loc, "type": "too_long", "msg": (
            f"metadata is {size} bytes as JSON; at most {settings.max_metadata_bytes} "
            "(AGENT_MAX_METADATA_BYTES) are stored with every chunk")}])
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > settings.max_metadata_depth:
                raise RequestValidationError([{"loc": loc, "type": "too_deep", "msg": (
                    f"metadata nests deeper than {settings.max_metadata_depth} levels (AGENT_MAX_METADATA_DEPTH)")}])
            stack += [(v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)]
