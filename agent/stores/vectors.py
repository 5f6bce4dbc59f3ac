"""Chunks and their vectors in Milvus, searched densely and by BM25.

One collection holds, per chunk: the text (with Milvus's analyzer on, so a BM25 function fills a
sparse vector at insert time), the dense embedding, the document id and the metadata. Reads are
two plain searches, dense cosine and BM25 full text; the Retriever (agent/retrieval.py) fuses and
re-ranks them (agent/ranking.py), so ranking does not depend on the store. It is the same code against Milvus Lite (a local file, the default) and a Milvus server (the cluster).

The pymilvus client is synchronous: callers in async code run these methods in a thread
(`anyio.to_thread.run_sync`) so the event loop never blocks on Milvus.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.types import Hit

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 8192     # VARCHAR limit for a chunk (chunks are ~800 chars)
MAX_ID_CHARS = 256
# English analyzer (stemming + stop words): without stop words BM25 ranks chunks by "the" and "a".
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]},
                       {"type": "stemmer", "language": "english"}]}


class VectorStoreUnavailable(RuntimeError):
    """Milvus could not be reached (not connected yet, or a call failed)."""


@dataclass
class ChunkRow:
    document_id: str
    chunk_id: str
    text: str
    vector: np.ndarray
    metadata: dict[str, Any]


def primary_key(item: dict[str, Any]) -> str:
    # pymilvus names the key field in a hit by its name; older releases said "id".
    return str(item["chunk_id"] if "chunk_id" in item else item["id"])


class VectorStore:
    """Hybrid-searchable chunk store on Milvus (Lite file or server)."""

    def __init__(self, uri: str, collection: str, dim: int, token: str | None = None) -> None:
        from pymilvus import MilvusClient

        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.is_lite = not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        kwargs: dict[str, Any] = {"uri": uri}
        if token:
            kwargs["token"] = token
        self.client = MilvusClient(**kwargs)
        # Milvus Lite is a single embedded process: serialise calls from the thread pool.
        self._lock = threading.Lock() if self.is_lite else None
        self._ensure_collection()

    @classmethod
    def lite(cls, data_dir: Path, collection: str, dim: int) -> VectorStore:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(str(data_dir / "milvus.db"), collection, dim)

    def _guard(self):
        return self._lock if self._lock is not None else nullcontext()

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        with self._guard():
            if self.client.has_collection(self.collection):
                self.client.load_collection(self.collection)
                return
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_CHARS + 16)
            schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_CHARS)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_CHARS, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                         input_field_names=["text"], output_field_names=["sparse"]))
            index = self.client.prepare_index_params()
            index.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="COSINE")
            index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            index.add_index(field_name="document_id", index_type="INVERTED")
            self.client.create_collection(self.collection, schema=schema, index_params=index)
            log.info("created Milvus collection", extra={"collection": self.collection, "uri": self._safe_uri})

    @property
    def _safe_uri(self) -> str:
        return self.uri.split("@")[-1]

    # ------------------------------------------------------------------ writes
    def replace_documents(self, document_ids: list[str], rows: list[ChunkRow]) -> int:
        """Delete every chunk of `document_ids`, then insert `rows`. Returns chunks deleted."""
        with self._guard():
            deleted = self._delete_where(document_ids)
            if rows:
                self.client.upsert(self.collection, [
                    {"chunk_id": r.chunk_id, "document_id": r.document_id, "text": r.text,
                     "metadata": r.metadata, "dense": r.vector.tolist()} for r in rows])
                if self.is_lite:
                    # Milvus Lite searches unsealed (growing) rows without an index: hybrid search
                    # over 5k fresh chunks took 585 ms, 21 ms once sealed. A server seals on its own,
                    # and its docs advise against frequent flushes there (many tiny segments).
                    self.client.flush(self.collection)
        return deleted

    def delete_document(self, document_id: str) -> int:
        with self._guard():
            return self._delete_where([document_id])

    def _delete_where(self, document_ids: list[str]) -> int:
        if not document_ids:
            return 0
        # Ids are validated by the API to contain no quotes or backslashes; json.dumps quotes them.
        # (Milvus Lite does not support filter templates, so the list is inlined.)
        flt = f"document_id in {json.dumps(document_ids)}"
        existing = self.client.query(self.collection, filter=flt, output_fields=["chunk_id"])
        if not existing:
            return 0
        self.client.delete(self.collection, ids=[e["chunk_id"] for e in existing])
        return len(existing)

    # ------------------------------------------------------------------ reads
    # Two plain searches; fusing them (and any re-ranking) is the Retriever's job (agent/retrieval.py),
    # so the ranking is the same whichever store holds the chunks.
    def search_dense(self, vector: np.ndarray, limit: int) -> list[Hit]:
        """Chunks by cosine similarity to `vector` (ANN index), best first; `score` is the cosine."""
        return self._search([vector.tolist()], "dense", "COSINE", limit)

    def search_bm25(self, query: str, limit: int) -> list[Hit]:
        """Chunks by BM25 over their analysed text (Milvus full-text search), best first."""
        return self._search([query], "sparse", "BM25", limit)

    def _search(self, data: list, field: str, metric: str, limit: int) -> list[Hit]:
        with self._guard():
            result = self.client.search(self.collection, data=data, anns_field=field,
                                        search_params={"metric_type": metric}, limit=limit,
                                        output_fields=["document_id", "text", "metadata"])
        return [Hit(document_id=item["entity"]["document_id"], chunk_id=primary_key(item),
                    score=float(item["distance"]), text=item["entity"]["text"],
                    metadata=item["entity"].get("metadata") or {})
                for item in (result[0] if result else [])]

    def count_chunks(self) -> int:
        with self._guard():
            stats = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(stats[0]["count(*)"]) if stats else 0

    def ping(self) -> dict[str, Any]:
        """Readiness probe: the collection exists and answers a count."""
        return {"collection": self.collection, "chunks": self.count_chunks(),
                "mode": "lite" if self.is_lite else "server"}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing is best effort on shutdown
            log.debug("milvus close failed", exc_info=True)
