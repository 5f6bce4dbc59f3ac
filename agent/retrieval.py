"""Retrieval and ingestion: the encoder and the vector store behind one async facade.

The encoder (CPU-bound torch) and pymilvus (blocking gRPC) both run in worker threads, so
requests keep flowing while a large document is being embedded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

from agent.chunking import Chunker
from agent.embeddings import Encoder
from agent.observability import Metrics
from agent.ranking import Ranking
from agent.stores.vectors import ChunkRow, VectorStore, VectorStoreUnavailable
from agent.types import Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceDocument:
    id: str
    text: str
    metadata: dict[str, Any]
    title: str | None = None  # the contextual header of every chunk (agent.chunking.Chunker)


@dataclass
class IngestResult:
    documents: int
    chunks: int
    replaced_chunks: int


def hybrid_rank(store: VectorStore, ranking: Ranking, query: str, vector: np.ndarray, top_k: int) -> list[Hit]:
    """Blocking: the store's dense and BM25 candidates for one query, ranked by `ranking`."""
    depth = ranking.candidates(top_k)
    return ranking.rank(query, store.search_dense(vector, depth), store.search_bm25(query, depth), top_k)


class Retriever:
    """Ingestion (chunk, embed, store) and hybrid search (two store searches, fused and re-ranked here).

    Ranking lives here rather than in the store so it is one piece of plain Python whatever holds
    the chunks (Milvus Lite or a server), testable without Milvus, and changed in one place.
    """

    def __init__(self, encoder: Encoder, store: VectorStore | None, metrics: Metrics, chunker: Chunker,
                 ranking: Ranking | None = None) -> None:
        self.encoder = encoder
        self.store = store
        self.metrics = metrics
        self.chunker = chunker
        self.ranking = ranking or Ranking()

    def rank(self, query: str, vector: np.ndarray, top_k: int, ranking: Ranking | None = None) -> list[Hit]:
        """Blocking: the store's dense and BM25 candidates, fused and re-ranked (agent/ranking.py).

        `ranking` overrides the retriever's settings for this call (benchmarks compare variants)."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        return hybrid_rank(self.store, ranking or self.ranking, query, vector, top_k)

    async def _call(self, fn_name: str, *args: Any) -> Any:
        """Run a blocking method (ours or the VectorStore's) in a thread; any Milvus failure becomes unavailable."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        target = self if fn_name == "rank" else self.store
        try:
            return await anyio.to_thread.run_sync(getattr(target, fn_name), *args)
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
            return await anyio.to_thread.run_sync(self.encoder.encode, texts)

    async def search(self, query: str, top_k: int, vector=None) -> list[Hit]:
        """Hybrid search; pass `vector` when the query is already embedded.

        The retrieval histogram times the search alone, whichever caller embedded the query, so it
        means the same for /retrieve and /chat; the encoder call has its own histogram."""
        if vector is None:
            vector = (await self.embed([query]))[0]
        with self.metrics.retrieval_duration.time():
            return await self._call("rank", query, vector, top_k)

    async def ingest(self, documents: list[SourceDocument]) -> IngestResult:
        """Documents -> chunks in the store; re-ingesting an id replaces its chunks."""
        with self.metrics.ingestion_duration.time():
            rows: list[ChunkRow] = []
            texts: list[str] = []
            for doc in documents:
                for chunk in self.chunker.split(doc.text, doc.title):
                    text = chunk.text
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
