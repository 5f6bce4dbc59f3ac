"""POST /retrieve: hybrid search without generation."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.deps import Resources, enforce_limit, get_resources, require_caller
from agent.api.models import HitOut, RetrieveRequest, RetrieveResponse

router = APIRouter(tags=["retrieval"], dependencies=[Depends(require_caller)])


@router.post("/retrieve", response_model=RetrieveResponse, summary="Hybrid dense + BM25 search")
async def retrieve(body: RetrieveRequest, res: Resources = Depends(get_resources)) -> RetrieveResponse:
    enforce_limit(body.query, res.settings.max_message_chars, ("body", "query"))
    enforce_limit(body.top_k, res.settings.max_top_k, ("body", "top_k"))
    hits = await res.retriever.search(body.query, body.top_k)
    return RetrieveResponse(hits=[HitOut(**h.__dict__) for h in hits])
