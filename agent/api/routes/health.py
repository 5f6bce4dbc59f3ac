"""Probes and metrics: open (no auth), cheap, and never touching request state.

/readyz checks Redis and Milvus concurrently, each under AGENT_PROBE_TIMEOUT_SECONDS, so it
answers within that deadline whatever hangs and names the dependency that did. Its details
(targets, errors) are public or for API-key holders only (AGENT_READYZ_DETAILS); the status and
the code stay open for the kubelet.
"""

from __future__ import annotations

import asyncio
import time

import anyio
from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.api.deps import (
    ApiKeysDep,
    EncoderDep,
    MetricsDep,
    RedisDep,
    RetrieverDep,
    SessionsDep,
    SettingsDep,
    authenticate,
)
from agent.api.models import Check, HealthResponse, ReadyResponse
from agent.api.routing import AgentRoute
from agent.retrieval import Retriever
from agent.stores.sessions import RedisHandle, SessionStore, SessionStoreUnavailable

router = APIRouter(route_class=AgentRoute, tags=["operations"])


@router.get("/healthz", response_model=HealthResponse, summary="The process is up")
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


async def _check_redis(sessions: SessionStore, redis: RedisHandle, deadline: float) -> Check:
    try:
        start = time.perf_counter()
        await sessions.ping(timeout=deadline)
        return Check(ok=True, detail={"target": redis.description,
                                      "latency_ms": round((time.perf_counter() - start) * 1000, 2)})
    except SessionStoreUnavailable as exc:
        return Check(ok=False, detail={"target": redis.description, "error": str(exc)})


async def _check_milvus(retriever: Retriever, deadline: float) -> Check:
    store = retriever.store
    if store is None:
        return Check(ok=False, detail={"error": "not connected yet (retrying in the background)"})
    try:
        with anyio.fail_after(deadline):
            detail = await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)
        return Check(ok=True, detail=detail)
    except TimeoutError:
        return Check(ok=False, detail={"error": f"Milvus did not answer within {deadline:g}s"})
    except Exception as exc:  # any failure means not ready; the detail says which
        return Check(ok=False, detail={"error": f"{type(exc).__name__}: {exc}"})


@router.get("/readyz", response_model=ReadyResponse, summary="Redis, Milvus and the model all answer",
            responses={503: {"model": ReadyResponse}})
async def readyz(request: Request, response: Response, settings: SettingsDep, keys: ApiKeysDep,
                 sessions: SessionsDep, redis: RedisDep, retriever: RetrieverDep, encoder: EncoderDep,
                 metrics: MetricsDep) -> ReadyResponse:
    deadline = settings.probe_timeout_seconds
    redis_check, milvus_check = await asyncio.gather(_check_redis(sessions, redis, deadline),
                                                     _check_milvus(retriever, deadline))
    model_check = Check(ok=True, detail={"device": str(encoder.device), "dim": encoder.dim,
                                         "path": str(encoder.model_path)})
    checks = {"redis": redis_check, "milvus": milvus_check, "model": model_check}
    ready = all(c.ok for c in checks.values())
    metrics.ready.set(1 if ready else 0)
    if not ready:
        response.status_code = 503
    if settings.readyz_details == "auth" and not _authenticated(request, keys):
        checks = {name: Check(ok=check.ok) for name, check in checks.items()}
    return ReadyResponse(status="ready" if ready else "not_ready", checks=checks)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def _authenticated(request: Request, keys: list[bytes]) -> bool:
    try:
        authenticate(request, keys)
    except HTTPException:
        return False
    return True
