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
from collections.abc import Iterable, Sequence

import numpy as np

from agent.stores.derived import DerivedCollection
from agent.stores.vectors import in_filter

SUFFIX = "_sentences"
WRITE_BATCH_ROWS = 512
LOOKUP_BATCH = 1024  # keys per query: bounds the filter expression


def sentence_key(document_id: str, sentence: str) -> str:
    return hashlib.sha256(f"{document_id}\0{sentence}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


class SentenceVectors(DerivedCollection):
    """The `<collection>_sentences` collection of a VectorStore (same client, lock and deadline)."""

    suffix = SUFFIX
    write_batch_rows = WRITE_BATCH_ROWS

    def _schema(self):
        from pymilvus import DataType

        schema, index = self._base_schema(key_length=32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.store.dim)
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        return schema, index

    def replace(self, document_ids: Sequence[str], rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        """Make `rows` ((document id, sentence, vector)) the sentences of `document_ids`; returns rows written."""
        payload = {sentence_key(doc, sentence): {"key": sentence_key(doc, sentence), "document_id": doc,
                                                 "vector": vector.tolist()}
                   for doc, sentence, vector in rows}
        return self._replace_rows(document_ids, list(payload.values()))

    def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray | None]:
        """The stored vector of each (document id, sentence), or None where there is none."""
        keys = [sentence_key(doc, sentence) for doc, sentence in pairs]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        store = self.store
        with store._guard(shared=True):
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
        return self._best_per_document(vector.tolist(), "vector", "COSINE", limit)

    def count(self) -> int:
        with self.store._guard(shared=True):
            stats = self.store.client.query(self.collection, filter="", output_fields=["count(*)"],
                                            timeout=self.store.timeout)
        return int(stats[0]["count(*)"]) if stats else 0
