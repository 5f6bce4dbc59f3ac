"""4. Ingestion throughput through the agent's API, and memory with 50k chunks indexed.

Ingestion goes through `POST /documents` on the real app in-process (chunking, embedding, Milvus
Lite upsert with BM25 analysis); the baseline is the encoder alone on the same chunks, the floor
ingestion cannot beat. Memory is the resident set of this process (model, vectors, Milvus Lite are
all in-process) once the agent's store holds the 50k-chunk index.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agent.eval.client import in_process_client
from bench.common import Result, RunContext, agent_chunker, log, progress, rss_mb

BATCH_DOCS = 16


def run(ctx: RunContext) -> Result:
    sizes = ctx.sizes
    docs_needed = sizes.ingest_docs
    docs, _ = ctx.corpus(max(sizes.ingest_docs * 4, 200))
    # Whole documents (not pre-chunked): pydoc topics and docstrings of varied length.
    docs = docs[:docs_needed]
    payload = [{"id": d.id, "text": d.text, "metadata": {"source": "bench"}} for d in docs]

    result = Result("ingestion", "4. Ingestion throughput and memory")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        with in_process_client(Path(tmp) / "agent", encoder=ctx.encoder) as agent:
            agent.ingest(payload[:2])  # warm-up
            chunks = 0
            start = time.perf_counter()
            for i in progress(range(0, len(payload), BATCH_DOCS), (len(payload) + BATCH_DOCS - 1) // BATCH_DOCS,
                              "ingest via POST /documents"):
                chunks += agent.ingest(payload[i:i + BATCH_DOCS])["chunks"]
            api_s = time.perf_counter() - start

    # Baseline: the same chunks through the encoder alone (what ingestion costs at the very least).
    chunker = agent_chunker(ctx.encoder)
    texts = [c.text for d in docs for c in chunker.split(d.text)]
    encoder = ctx.encoder
    start = time.perf_counter()
    encoder.encode(texts)
    encode_s = time.perf_counter() - start

    case = f"{len(docs)} documents, {chunks} chunks, {BATCH_DOCS} docs/request"
    result.add(case, "documents/s", round(len(docs) / api_s, 2), round(len(docs) / encode_s, 2),
               "encoder alone, same chunks")
    result.add(case, "chunks/s", round(chunks / api_s, 2), round(len(texts) / encode_s, 2),
               "encoder alone, same chunks")

    memory = ctx.shared.get("memory")
    target = sizes.memory_chunks
    if memory and target in memory.get("rss_mb_by_size", {}):
        result.notes.append("Memory from the retrieval benchmark's process, which also holds its smaller "
                            "indexes (Milvus Lite keeps closed instances until exit): an upper bound.")
    else:
        memory = _measure_memory(ctx, target)
        result.notes.append(f"Memory measured in this process with the {target:,}-chunk index alone.")
    rss_at = memory["rss_mb_by_size"][target]
    result.add(f"{target:,} chunks indexed", "RSS MiB", rss_at, memory["rss_mb_before_index"],
               "same process, model loaded, before encoding and indexing", unit="MiB")
    result.details = {"documents": len(docs), "chunks": chunks, "api_seconds": round(api_s, 3),
                      "encode_only_seconds": round(encode_s, 3), "memory": memory,
                      "overhead_vs_encoder": round(api_s / encode_s - 1, 3)}
    result.notes.append("Throughput includes chunking, embedding, BM25 analysis and the Milvus Lite upsert, "
                        "through the real route with auth and validation (in-process, no socket).")
    return result


def _measure_memory(ctx: RunContext, n: int) -> dict:
    from bench.retrieval import INDEX_CHUNK_CHARS, INDEX_CHUNK_OVERLAP, build_store

    _, chunks = ctx.corpus(n, INDEX_CHUNK_CHARS, INDEX_CHUNK_OVERLAP)
    chunks = chunks[:n]
    ctx.encoder  # loaded first, so the memory baseline includes the model
    before = rss_mb()
    vectors = ctx.embed([c.text for c in chunks], desc="encode chunks")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        store = build_store(Path(tmp), chunks, vectors, vectors.shape[1])
        after = rss_mb()
        store.close()
    log.info("memory: %.0f MiB before, %.0f MiB with %d chunks", before, after, n)
    return {"rss_mb_before_index": round(before, 1), "rss_mb_by_size": {n: round(after, 1)}}
