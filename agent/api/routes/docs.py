"""GET /openapi.json behind the API keys (AGENT_DOCS_ACCESS=auth); /docs and /redoc are then off,
since a browser loading them would not send the key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from agent.api.deps import require_caller

router = APIRouter(dependencies=[Depends(require_caller)], include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())
