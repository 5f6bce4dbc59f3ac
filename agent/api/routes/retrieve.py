"""POST /retrieve: hybrid search without generation."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.deps import RetrieverDep, SettingsDep, enforce_limit, require_caller
from agent.api.models import HitOut, RetrieveRequest, RetrieveResponse
from agent.api.routing import AgentRoute

router = APIRouter(route_class=AgentRoute, tags=["retrieval"], dependencies=[Depends(require_caller)])


@router.post("/retrieve", response_model=RetrieveResponse, summary="Hybrid dense + BM25 search")
async def retrieve(body: RetrieveRequest, settings: SettingsDep, retriever: RetrieverDep) -> RetrieveResponse:
    enforce_limit(body.query, settings.max_message_chars, ("body", "query"))
    enforce_limit(body.top_k, settings.max_top_k, ("body", "top_k"))
    hits = await retriever.search(body.query, body.top_k)
    return RetrieveResponse(hits=[HitOut(**h.__dict__) for h in hits])
