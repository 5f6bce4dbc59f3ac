"""Ingestion: POST /documents (chunk, embed, replace by id) and DELETE /documents/{id}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path

from agent.api.deps import RetrieverDep, SettingsDep, enforce_limit, enforce_metadata_limits, require_caller
from agent.api.models import (
    DOCUMENT_ID_PATTERN,
    DeleteDocumentResponse,
    DocumentsRequest,
    DocumentsResponse,
    ErrorResponse,
)
from agent.api.routing import AgentRoute
from agent.retrieval import SourceDocument

router = APIRouter(route_class=AgentRoute, tags=["documents"], dependencies=[Depends(require_caller)])


@router.post("/documents", response_model=DocumentsResponse, summary="Index documents (idempotent by id)")
async def ingest(body: DocumentsRequest, s: SettingsDep, retriever: RetrieverDep) -> DocumentsResponse:
    enforce_limit(len(body.documents), s.max_documents_per_request, ("body", "documents"))
    for i, doc in enumerate(body.documents):
        enforce_limit(doc.text, s.max_document_chars, ("body", "documents", i, "text"))
        enforce_metadata_limits(doc.metadata, s, ("body", "documents", i, "metadata"))
    result = await retriever.ingest([SourceDocument(d.id, d.text, d.metadata, d.title) for d in body.latest_by_id()])
    return DocumentsResponse(documents=result.documents, chunks=result.chunks,
                             replaced_chunks=result.replaced_chunks)


@router.delete("/documents/{document_id:path}", response_model=DeleteDocumentResponse,
               responses={404: {"model": ErrorResponse}}, summary="Remove a document and its chunks")
async def delete(retriever: RetrieverDep,
                 document_id: str = Path(..., pattern=DOCUMENT_ID_PATTERN)) -> DeleteDocumentResponse:
    deleted = await retriever.delete(document_id)
    if deleted == 0:
        raise HTTPException(404, f"document {document_id!r} is not indexed")
    return DeleteDocumentResponse(document_id=document_id, deleted_chunks=deleted)
