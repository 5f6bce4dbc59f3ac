"""The Milvus store's write path on a real Milvus Lite collection."""

from __future__ import annotations

from pathlib import Path

from agent.embeddings import Encoder
from agent.stores.vectors import ChunkRow, VectorStore


def test_lite_store_seals_what_it_writes(tmp_path: Path, encoder: Encoder) -> None:
    # Unsealed rows are searched without an index in Milvus Lite (slow at a few thousand chunks),
    # so every write that adds rows is flushed; a write that only deletes is not.
    store = VectorStore.lite(tmp_path, "sealing", encoder.dim)
    flushes: list[str] = []
    real_flush = store.client.flush
    store.client.flush = lambda name, **kw: (flushes.append(name), real_flush(name, **kw))[1]
    try:
        vector = encoder.encode(["sealed rows"])[0]
        store.replace_documents([], [ChunkRow("a", "a#0", "sealed rows", vector, {})])
        assert flushes == ["sealing"]
        assert store.delete_document("a") == 1
        assert flushes == ["sealing"]
        assert store.search_dense(vector, 1) == [] and store.search_bm25("sealed rows", 1) == []
    finally:
        store.close()
