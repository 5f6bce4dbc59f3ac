"""Retrieval and ingestion: the encoder and the vector store behind one async facade.

The encoder (CPU-bound torch) and pymilvus (blocking gRPC) both run in worker threads, so
requests keep flowing while a large document is being embedded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import numpy as np

from agent.chunking import Chunker, split_sentences
from agent.embeddings import Encoder
from agent.observability import Metrics
from agent.ranking import Ranking
from agent.stores.documents import DocumentIndex
from agent.stores.sentences import SentenceVectors
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


def hybrid_rank(store: VectorStore, ranking: Ranking, query: str, vector: np.ndarray, top_k: int,
                sentences: SentenceVectors | None = None, documents: DocumentIndex | None = None) -> list[Hit]:
    """Blocking: the store's dense and BM25 chunk candidates for one query, and the document-level
    lists when their collections are given, ranked by `ranking`."""
    depth = ranking.candidates(top_k)
    return ranking.rank(query, store.search_dense(vector, depth), store.search_bm25(query, depth), top_k,
                        sentence_documents=sentences.search(vector, ranking.sentence_depth) if sentences else (),
                        documents=documents.search(query, ranking.document_depth) if documents else ())


class Retriever:
    """Ingestion (chunk, embed, store) and hybrid search (two store searches, fused and re-ranked here).

    Ranking lives here rather than in the store so it is one piece of plain Python whatever holds
    the chunks (Milvus Lite or a server), testable without Milvus, and changed in one place.
    """

    def __init__(self, encoder: Encoder, store: VectorStore | None, metrics: Metrics, chunker: Chunker,
                 ranking: Ranking | None = None, sentence_vectors: bool = True) -> None:
        """`sentence_vectors`: encode every chunk's sentences at ingestion and keep them, with each
        whole document for BM25, beside the chunks (agent/stores/sentences.py, documents.py): the
        ranking's document-level lists, and the support scorer's vectors (no encoding per request).
        False: chunks only, as before (ranking without those lists)."""
        self.encoder = encoder
        self.store = store
        self.metrics = metrics
        self.chunker = chunker
        self.ranking = ranking or Ranking()
        self.sentence_vectors = sentence_vectors
        self._sentences: SentenceVectors | None = None
        self._documents: DocumentIndex | None = None

    def sentences(self) -> SentenceVectors:
        """Blocking: the sentence-vector collection beside the current store (created on first use)."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        if self._sentences is None or self._sentences.store is not self.store:
            self._sentences = SentenceVectors(self.store)
        return self._sentences

    def documents(self) -> DocumentIndex:
        """Blocking: the whole-document BM25 collection beside the current store (created on first use)."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        if self._documents is None or self._documents.store is not self.store:
            self._documents = DocumentIndex(self.store)
        return self._documents

    def rank(self, query: str, vector: np.ndarray, top_k: int, ranking: Ranking | None = None) -> list[Hit]:
        """Blocking: the store's dense and BM25 candidates, fused and re-ranked (agent/ranking.py).

        `ranking` overrides the retriever's settings for this call (benchmarks compare variants)."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        if not self.sentence_vectors:
            return hybrid_rank(self.store, ranking or self.ranking, query, vector, top_k)
        return hybrid_rank(self.store, ranking or self.ranking, query, vector, top_k, self.sentences(),
                           self.documents())

    async def _call(self, fn_name: str, *args: Any) -> Any:
        """Run a blocking VectorStore method in a thread (see `_run`)."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        return await self._run(getattr(self.store, fn_name), *args)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking Milvus work in a thread; any Milvus failure becomes unavailable."""
        if self.store is None:
            raise VectorStoreUnavailable("the vector store (Milvus) is not connected yet")
        try:
            return await anyio.to_thread.run_sync(fn, *args)
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
            return await self._run(self.rank, query, vector, top_k)

    async def ingest(self, documents: list[SourceDocument]) -> IngestResult:
        """Documents -> chunks in the store; re-ingesting an id replaces its chunks (and sentence vectors)."""
        with self.metrics.ingestion_duration.time():
            rows: list[ChunkRow] = []
            texts: list[str] = []
            for doc in documents:
                for chunk in self.chunker.split(doc.text, doc.title):
                    text = chunk.text
                    rows.append(ChunkRow(doc.id, f"{doc.id}#{chunk.index}", text, None, doc.metadata))  # type: ignore[arg-type]
                    texts.append(text)
            # The support scorer's sentences, once per document, encoded in the same call as the chunks.
            pairs = list(dict.fromkeys((row.document_id, s) for row in rows for s in split_sentences(row.text))
                         ) if self.sentence_vectors else []
            vectors = await self.embed(texts + [s for _, s in pairs])
            for row, vector in zip(rows, vectors[:len(rows)], strict=True):
                row.vector = vector
            ids = list(dict.fromkeys(d.id for d in documents))
            replaced = await self._call("replace_documents", ids, rows)
            if self.sentence_vectors:
                # After the chunks: a crash in between leaves sentences to encode per request, never wrong ones.
                written = [(doc, s, v) for (doc, s), v in zip(pairs, vectors[len(rows):], strict=True)]
                await self._run(lambda: self.sentences().replace(ids, written))
                whole = {d.id: "\n".join(x for x in (d.title, d.text) if x) for d in documents}  # last copy wins
                await self._run(lambda: self.documents().replace(list(whole.items())))
        self.metrics.ingested_chunks.inc(len(rows))
        log.info("ingested documents", extra={"documents": len(ids), "chunks": len(rows),
                                               "replaced_chunks": replaced})
        return IngestResult(len(ids), len(rows), replaced)

    async def delete(self, document_id: str) -> int:
        deleted = await self._call("delete_document", document_id)
        if self.sentence_vectors:
            await self._run(lambda: self.sentences().delete(document_id))
            await self._run(lambda: self.documents().delete(document_id))
        return deleted

    async def stored_sentence_vectors(self, passages: Sequence[Hit],
                                      items: Sequence[tuple[int, str]]) -> list[np.ndarray | None]:
        """The support scorer's source (agent.generation.SentenceSource): the vectors written at
        ingestion for (passage index, sentence) pairs, None where there is none (then encoded)."""
        if not self.sentence_vectors or self.store is None:
            return [None] * len(items)
        try:
            pairs = [(passages[i].document_id, s) for i, s in items]
            return await self._run(lambda: self.sentences().lookup(pairs))
        except VectorStoreUnavailable as exc:
            # A cache: /chat still answers (encoding the sentences) when the lookup fails.
            log.warning("sentence vectors unavailable, encoding per request", extra={"error": str(exc)})
            return [None] * len(items)
