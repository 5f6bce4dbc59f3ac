"""A collection derived from a VectorStore's documents, kept beside its chunks.

The sentence vectors (sentences.py) and the whole-document BM25 rows (documents.py) are both
`<collection><suffix>`, behind the chunk store's client, lock and deadline, keyed by document id,
written after the chunks and rebuilt by re-ingesting. Creating them, replacing a document's rows
and deleting them is the same code for both, and the part a crash during re-ingestion exercises
(tests/agent/test_crash.py), so it lives here once; each subclass brings its schema and row shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from agent.stores.vectors import MAX_ID_BYTES, VectorStore, in_filter

log = logging.getLogger(__name__)


class DerivedCollection:
    """`store.collection + suffix`: rows with a `document_id`, replaced and deleted per document."""

    suffix: ClassVar[str]
    write_batch_rows: ClassVar[int]

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.collection = store.collection + self.suffix
        self._ensure_collection()

    def _schema(self) -> tuple[Any, Any]:
        """(schema, index params) for a new collection: `_base_schema` plus the subclass's fields."""
        raise NotImplementedError

    def _base_schema(self, key_length: int) -> tuple[Any, Any]:
        """What every derived collection has: a primary `key` and an indexed `document_id` (what
        replace and delete filter on)."""
        from pymilvus import DataType

        client = self.store.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=key_length)
        schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        index = client.prepare_index_params()
        index.add_index(field_name="document_id", index_type="INVERTED")
        return schema, index

    def _ensure_collection(self) -> None:
        store = self.store
        with store._guard():
            if store.client.has_collection(self.collection, timeout=store.timeout):
                store.client.load_collection(self.collection, timeout=store.timeout)
                return
            schema, index = self._schema()
            store.client.create_collection(self.collection, schema=schema, index_params=index,
                                           timeout=store.timeout)
            log.info("created Milvus collection", extra={"collection": self.collection})

    def _replace_rows(self, document_ids: Sequence[str], rows: list[dict[str, Any]]) -> int:
        """Make `rows` the rows of `document_ids` (their old rows deleted first); returns rows written."""
        store = self.store
        with store._guard():
            self._delete_where(document_ids)
            for start in range(0, len(rows), self.write_batch_rows):
                store.client.upsert(self.collection, rows[start:start + self.write_batch_rows], timeout=store.timeout)
            if rows and store.is_lite:
                store.client.flush(self.collection, timeout=store.timeout)  # sealed rows are indexed (see VectorStore)
        return len(rows)

    def delete(self, document_id: str) -> None:
        with self.store._guard():
            self._delete_where([document_id])

    def _delete_where(self, document_ids: Sequence[str]) -> None:
        if document_ids:
            self.store.client.delete(self.collection, filter=in_filter("document_id", list(document_ids)),
                                     timeout=self.store.timeout)

    def _best_per_document(self, data: Any, anns_field: str, metric: str, limit: int) -> list[tuple[str, float]]:
        """(document id, score of its best row) best first over the best `limit` rows, the score as
        Milvus reports it (a distance or a similarity, by metric and deployment: read the order)."""
        store = self.store
        with store._guard(shared=True):
            result = store.client.search(self.collection, data=[data], anns_field=anns_field,
                                         search_params={"metric_type": metric}, limit=limit,
                                         output_fields=["document_id"], timeout=store.timeout)
        best: dict[str, float] = {}
        for item in (result[0] if result else []):
            best.setdefault(item["entity"]["document_id"], float(item["distance"]))
        return list(best.items())
