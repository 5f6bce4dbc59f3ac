"""GET /tools and POST /invoke: run an allow-listed plugin with validated arguments."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.deps import ToolsDep, require_caller
from agent.api.models import ErrorResponse, InvokeRequest, InvokeResponse, ToolInfo, ToolsResponse
from agent.api.routing import AgentRoute

router = APIRouter(route_class=AgentRoute, tags=["tools"], dependencies=[Depends(require_caller)])

@router.get("/tools", response_model=ToolsResponse, summary="Tools callers may invoke")
async def list_tools(registry: ToolsDep) -> ToolsResponse:
    return ToolsResponse(tools=[ToolInfo(name=t.name, description=t.description,
                                         arguments_schema=t.arguments.model_json_schema())
                                for t in registry.available()])

@router.post("/invoke", response_model=InvokeResponse, summary="Run a tool",
             responses={s: {"model": ErrorResponse} for s in (400, 403, 404, 504)})
async def invoke(body: InvokeRequest, registry: ToolsDep) -> InvokeResponse:
    result = await registry.invoke(body.tool, body.arguments)
    return InvokeResponse(tool=body.tool, result=result)
