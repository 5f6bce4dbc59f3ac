"""Sentence vectors computed once at ingestion, for the support scorer of /chat.

Every answer scores each sentence of its retrieved passages against the question
(agent/generation.py); the Retriever also searches them, ranking documents by their best sentence. Encoding those sentences on every request was most of /chat's cost; here
they are encoded at ingestion and kept in a second Milvus collection next to the chunks,
`<collection>_sentences`, one row per distinct sentence of a document:

- key: sha256(document id, NUL, sentence) - content-addressed, so a lookup needs only what a
  passage already carries (its document id and text), whatever version of the document wrote it;
- document_id: to drop a document's rows when it is re-ingested or deleted;
- vector: the encoder's float32 vector, bit-for-bit what encoding the sentence at request time
  gives up to float rounding in batching, so answers do not change.

It is a cache, never the source of truth: a sentence without a row (a document ingested before
this existed, a write cut short by a crash) is encoded at request time as before. The rows live
behind the same client, lock and deadline as the chunk store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence

import numpy as np

from agent.stores.vectors import MAX_ID_BYTES, VectorStore, in_filter

log = logging.getLogger(__name__)

SUFFIX = "_sentences"
WRITE_BATCH_ROWS = 512
LOOKUP_BATCH = 1024  # keys per query: bounds the filter expression


def sentence_key(document_id: str, sentence: str) -> str:
    return hashlib.sha256(f"{document_id}\0{sentence}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


class SentenceVectors:
    """The `<collection>_sentences` collection of a VectorStore (same client, lock and deadline)."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.collection = store.collection + SUFFIX
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        from pymilvus import DataType

        store = self.store
        with store._guard():
            if store.client.has_collection(self.collection, timeout=store.timeout):
                store.client.load_collection(self.collection, timeout=store.timeout)
                return
            schema = store.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=32)
            schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=store.dim)
            index = store.client.prepare_index_params()
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
            index.add_index(field_name="document_id", index_type="INVERTED")
            store.client.create_collection(self.collection, schema=schema, index_params=index,
                                           timeout=store.timeout)
            log.info("created Milvus collection", extra={"collection": self.collection})

    def replace(self, document_ids: Sequence[str], rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        """Make `rows` ((document id, sentence, vector)) the sentences of `document_ids`; returns rows written."""
        store = self.store
        payload = {sentence_key(doc, sentence): {"key": sentence_key(doc, sentence), "document_id": doc,
                                                 "vector": vector.tolist()}
                   for doc, sentence, vector in rows}
        with store._guard():
            self._delete_where(document_ids)
            batch = list(payload.values())
            for start in range(0, len(batch), WRITE_BATCH_ROWS):
                store.client.upsert(self.collection, batch[start:start + WRITE_BATCH_ROWS], timeout=store.timeout)
            if batch and store.is_lite:
                store.client.flush(self.collection, timeout=store.timeout)  # sealed rows are indexed (see VectorStore)
        return len(payload)

    def delete(self, document_id: str) -> None:
        with self.store._guard():
            self._delete_where([document_id])

    def _delete_where(self, document_ids: Sequence[str]) -> None:
        if document_ids:
            self.store.client.delete(self.collection, filter=in_filter("document_id", list(document_ids)),
                                     timeout=self.store.timeout)

    def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray | None]:
        """The stored vector of each (document id, sentence), or None where there is none."""
        keys = [sentence_key(doc, sentence) for doc, sentence in pairs]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        store = self.store
        with store._guard():
            for start in range(0, len(unique), LOOKUP_BATCH):
                part = unique[start:start + LOOKUP_BATCH]
                rows = store.client.query(self.collection, filter=in_filter("key", part),
                                          output_fields=["key", "vector"], timeout=store.timeout)
                for row in rows:
                    found[row["key"]] = np.asarray(row["vector"], dtype=np.float32)
        return [found.get(k) for k in keys]

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """(document id, cosine of its sentence most similar to `vector`) best first, over the best
        `limit` sentences: the Retriever's sentence-level dense signal (a question often matches one
        sentence, not a whole chunk)."""
        store = self.store
        with store._guard():
            result = store.client.search(self.collection, data=[vector.tolist()], anns_field="vector",
                                         search_params={"metric_type": "COSINE"}, limit=limit,
                                         output_fields=["document_id"], timeout=store.timeout)
        best: dict[str, float] = {}
        for item in (result[0] if result else []):
            best.setdefault(item["entity"]["document_id"], float(item["distance"]))
        return list(best.items())

    def count(self) -> int:
        with self.store._guard():
            stats = self.store.client.query(self.collection, filter="", output_fields=["count(*)"],
                                            timeout=self.store.timeout)
        return int(stats[0]["count(*)"]) if stats else 0
