"""Exception handlers: what each failure class means to a client (status, headers, message).

Only a dependency that cannot be reached in time is a 503 with Retry-After (retrying helps).
A request Milvus cannot take because of its content is a 422 naming the field; anything else
is a 500, logged with its cause and the request id (retrying the same request would not help).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agent.generation import GeneratorUnavailable
from agent.observability import Metrics, request_id_var
from agent.plugins import ToolError
from agent.stores.sessions import SessionStoreUnavailable
from agent.stores.vectors import VectorStoreError, VectorStoreRejected, VectorStoreUnavailable

log = logging.getLogger("agent.api")


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(SessionStoreUnavailable)
    async def _redis_down(request: Request, exc: SessionStoreUnavailable) -> JSONResponse:
        metrics.dependency_errors.labels("redis").inc()
        log.warning("session store unavailable", extra={"error": str(exc)})
        return JSONResponse(status_code=503, headers={"Retry-After": "5"}, content={
            "detail": "session store (Redis) is unavailable; sessions cannot be read or saved. "
                      "Retry shortly: the agent reconnects by itself when Redis is back."})

    @app.exception_handler(VectorStoreUnavailable)
    async def _milvus_down(request: Request, exc: VectorStoreUnavailable) -> JSONResponse:
        metrics.dependency_errors.labels("milvus").inc()
        log.warning("vector store unavailable", extra={"error": str(exc)})
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"detail": f"{exc}. Retry shortly."})

    @app.exception_handler(VectorStoreRejected)
    async def _milvus_rejected(request: Request, exc: VectorStoreRejected) -> JSONResponse:
        return await _invalid(request, RequestValidationError(
            [{"loc": exc.loc, "msg": str(exc), "type": "value_error"}]))

    @app.exception_handler(VectorStoreError)
    async def _milvus_refused(request: Request, exc: VectorStoreError) -> JSONResponse:
        log.error("Milvus refused a call", exc_info=exc)
        return _internal_error()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises it afterwards, so the server logs it as well.
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return _internal_error()

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


def _internal_error() -> JSONResponse:
    request_id = request_id_var.get()
    return JSONResponse(status_code=500, content={
        "detail": f"internal error; it is logged with request id {request_id}"})
