"""Retrieval and ingestion: the encoder and the vector store behind one async facade.

The encoder (CPU-bound torch) and pymilvus (blocking gRPC) both run in worker threads, so
requests keep flowing while a large document is being embedded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio

from agent.chunking import chunk_text, with_title
from agent.embeddings import Encoder
from agent.observability import Metrics
from agent.stores.vectors import ChunkRow, VectorStore, VectorStoreUnavailable
from agent.types import Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceDocument:
    id: str
    text: str
    metadata: dict[str, Any]
    title: str | None = None  # the contextual header of every chunk (agent.chunking.with_title)


@dataclass
class IngestResult:
    documents: int
    chunks: int
    replaced_chunks: int


class Retriever:
    def __init__(self, encoder: Encoder, store: VectorStore | None, metrics: Metrics,
                 chunk_size: int, chunk_overlap: int) -> None:
        self.encoder = encoder
        self.store = store
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    async def _call(self, fn_name: str, *args: Any) -> Any:
        """Run a blocking VectorStore method in a thread; any Milvus failure becomes unavailable."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        try:
            return await anyio.to_thread.run_sync(getattr(self.store, fn_name), *args)
        except VectorStoreUnavailable:
            raise
        except Exception as exc:
            from pymilvus.exceptions import MilvusException

            if isinstance(exc, (MilvusException, ConnectionError, TimeoutError)):
                self.metrics.dependency_errors.labels("milvus").inc()
                raise VectorStoreUnavailable(f"the vector store (Milvus) failed: {exc}") from exc
            raise

    async def embed(self, texts: list[str]):
        with self.metrics.embedding_duration.time():
            return await self.encoder.encode_async(texts)

    async def search(self, query: str, top_k: int, vector=None) -> list[Hit]:
        """Hybrid search; pass `vector` when the query is already embedded.

        The retrieval histogram times the search alone, whichever caller embedded the query, so it
        means the same for /retrieve and /chat; the encoder call has its own histogram."""
        if vector is None:
            vector = (await self.embed([query]))[0]
        with self.metrics.retrieval_duration.time():
            return await self._call("hybrid_search", query, vector, top_k)

    async def ingest(self, documents: list[SourceDocument]) -> IngestResult:
        """Documents -> chunks in the store; re-ingesting an id replaces its chunks."""
        with self.metrics.ingestion_duration.time():
            rows: list[ChunkRow] = []
            texts: list[str] = []
            for doc in documents:
                for chunk in chunk_text(doc.text, self.chunk_size, self.chunk_overlap):
                    text = with_title(doc.title, chunk.text)
                    rows.append(ChunkRow(doc.id, f"{doc.id}#{chunk.index}", text, None, doc.metadata))  # type: ignore[arg-type]
                    texts.append(text)
            vectors = await self.embed(texts)
            for row, vector in zip(rows, vectors, strict=True):
                row.vector = vector
            ids = list(dict.fromkeys(d.id for d in documents))
            replaced = await self._call("replace_documents", ids, rows)
        self.metrics.ingested_chunks.inc(len(rows))
        log.info("ingested documents", extra={"documents": len(ids), "chunks": len(rows),
                                               "replaced_chunks": replaced})
        return IngestResult(len(ids), len(rows), replaced)

    async def delete(self, document_id: str) -> int:
        return await self._call("delete_document", document_id)
