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
from collections.abc import Sequence

from agent.stores.derived import DerivedCollection
from agent.stores.vectors import ANALYZER

SUFFIX = "_documents"
SEGMENT_CHARS = 16_000  # 4 bytes a character at most: fits Milvus's 65,535-byte VARCHAR
WRITE_BATCH_ROWS = 64


class DocumentIndex(DerivedCollection):
    """The `<collection>_documents` collection of a VectorStore (same client, lock and deadline)."""

    suffix = SUFFIX
    write_batch_rows = WRITE_BATCH_ROWS

    def _schema(self):
        from pymilvus import DataType, Function, FunctionType

        schema, index = self._base_schema(key_length=48)
        schema.add_field("text", DataType.VARCHAR, max_length=4 * SEGMENT_CHARS, enable_analyzer=True,
                         analyzer_params=ANALYZER)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="document_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return schema, index

    def replace(self, documents: Sequence[tuple[str, str]]) -> int:
        """Make `documents` ((id, text as indexed: title and body)) the rows of those ids; returns rows written."""
        rows = []
        for doc_id, text in documents:
            digest = hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            for n, start in enumerate(range(0, max(len(text), 1), SEGMENT_CHARS)):
                rows.append({"key": f"{digest}#{n}", "document_id": doc_id, "text": text[start:start + SEGMENT_CHARS]})
        return self._replace_rows([d for d, _ in documents], rows)

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """(document id, BM25 of its best segment) best first, as Milvus reports it (Milvus Lite
        gives BM25 as a negative distance, a server as a positive score: read the order)."""
        return self._best_per_document(query, "sparse", "BM25", limit)
