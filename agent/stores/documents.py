"""Whole documents searched by BM25: the document-level lexical signal of the Retriever's ranking.

Chunk-level BM25 sees a chunk's words only; a question's words are often spread over a document
(its title, its options, its examples). BM25 over the whole document ranked documents better than
BM25 over their chunks on the tuning corpus (docs/benchmarks.md), so the Retriever adds this list
to its fusion. One row per document segment in `<collection>_documents` (Milvus's analyzer and
BM25 function, as for chunks); a document longer than a segment is split, and ranks as its best
segment. Like the sentence vectors it is derived data: written after the chunks, rebuilt by
re-ingesting, and a missing row only costs that document this signal.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from agent.stores.vectors import ANALYZER, MAX_ID_BYTES, VectorStore, in_filter

log = logging.getLogger(__name__)

SUFFIX = "_documents"
SEGMENT_CHARS = 16_000  # 4 bytes a character at most: fits Milvus's 65,535-byte VARCHAR
WRITE_BATCH_ROWS = 64


class DocumentIndex:
    """The `<collection>_documents` collection of a VectorStore (same client, lock and deadline)."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.collection = store.collection + SUFFIX
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        store = self.store
        with store._guard():
            if store.client.has_collection(self.collection, timeout=store.timeout):
                store.client.load_collection(self.collection, timeout=store.timeout)
                return
            schema = store.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=48)
            schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
            schema.add_field("text", DataType.VARCHAR, max_length=4 * SEGMENT_CHARS, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="document_bm25", function_type=FunctionType.BM25,
                                         input_field_names=["text"], output_field_names=["sparse"]))
            index = store.client.prepare_index_params()
            index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            index.add_index(field_name="document_id", index_type="INVERTED")
            store.client.create_collection(self.collection, schema=schema, index_params=index,
                                           timeout=store.timeout)
            log.info("created Milvus collection", extra={"collection": self.collection})

    def replace(self, documents: Sequence[tuple[str, str]]) -> int:
        """Make `documents` ((id, text as indexed: title and body)) the rows of those ids; returns rows written."""
        store = self.store
        rows = []
        for doc_id, text in documents:
            digest = hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            for n, start in enumerate(range(0, max(len(text), 1), SEGMENT_CHARS)):
                rows.append({"key": f"{digest}#{n}", "document_id": doc_id, "text": text[start:start + SEGMENT_CHARS]})
        with store._guard():
            if documents:
                store.client.delete(self.collection, filter=in_filter("document_id", [d for d, _ in documents]),
                                    timeout=store.timeout)
            for start in range(0, len(rows), WRITE_BATCH_ROWS):
                store.client.upsert(self.collection, rows[start:start + WRITE_BATCH_ROWS], timeout=store.timeout)
            if rows and store.is_lite:
                store.client.flush(self.collection, timeout=store.timeout)  # sealed rows are indexed (see VectorStore)
        return len(rows)

    def delete(self, document_id: str) -> None:
        with self.store._guard():
            self.store.client.delete(self.collection, filter=in_filter("document_id", [document_id]),
                                     timeout=self.store.timeout)

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """(document id, BM25 of its best segment) best first, as Milvus reports it (Milvus Lite
        gives BM25 as a negative distance, a server as a positive score: read the order)."""
        store = self.store
        with store._guard():
            result = store.client.search(self.collection, data=[query], anns_field="sparse",
                                         search_params={"metric_type": "BM25"}, limit=limit,
                                         output_fields=["document_id"], timeout=store.timeout)
        best: dict[str, float] = {}
        for item in (result[0] if result else []):
            best.setdefault(item["entity"]["document_id"], float(item["distance"]))
        return list(best.items())
