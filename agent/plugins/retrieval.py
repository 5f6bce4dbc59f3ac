"""The retrieval tool: search the agent's own documents (no other network access)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.plugins.registry import Tool
from agent.retrieval import Retriever


class RetrieveArgs(BaseModel):
    query: str = Field(..., min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=50)


def retrieval_tool(retriever: Retriever) -> Tool:
    async def run(args: RetrieveArgs) -> dict:
        hits = await retriever.search(args.query, args.top_k)
        return {"hits": [{"document_id": h.document_id, "chunk_id": h.chunk_id, "score": h.score,
                          "text": h.text} for h in hits]}

    return Tool(name="retrieve", description="Hybrid (dense + BM25) search over the ingested documents.",
                arguments=RetrieveArgs, func=run)
