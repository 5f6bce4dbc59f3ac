"""2. Retrieval at several index sizes: latency and quality of hybrid vs dense-only vs BM25-only,
and the dense ANN index against exact brute-force search.

The index is the agent's own `VectorStore` (Milvus Lite, the agent's schema, indexes and hybrid
query). Dense-only and BM25-only are the two halves of that hybrid query, run alone on the same
collection. Chunk vectors are encoded once per run and reused for every size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from agent.chunking import normalise_text
from agent.eval import metrics as m
from agent.ranking import Ranking
from agent.retrieval import hybrid_rank
from agent.stores.vectors import primary_key

from bench.common import Result, RunContext, agent_chunker, latency_ms, log, progress, rss_mb
from bench.corpus import ChunkRef, Doc, make_queries, relevant_chunks

K = 10
TARGET_ANN_RECALL = 0.98
INSERT_BATCH = 2_000
INDEX_WAIT_S = 600
# Index chunks are shorter than the agent's 800-char default: encoding cost is per token, and 50k
# chunks of ~170 tokens take 25+ minutes on 2 CPU cores, of ~35 tokens (160 chars) a few. Search
# cost depends on the chunk count and vector size, not on text length (BM25 postings aside).
INDEX_CHUNK_CHARS = 160
INDEX_CHUNK_OVERLAP = 32


def build_store(path: Path, chunks: list[ChunkRef], vectors: np.ndarray, dim: int):
    from agent.stores.vectors import ChunkRow, VectorStore

    store = VectorStore.lite(path, "bench_chunks", dim)
    for start in progress(range(0, len(chunks), INSERT_BATCH), (len(chunks) + INSERT_BATCH - 1) // INSERT_BATCH,
                          f"index {len(chunks)} chunks"):
        rows = [ChunkRow(c.document_id, c.id, c.text, vectors[start + i], {})
                for i, c in enumerate(chunks[start:start + INSERT_BATCH])]
        store.replace_documents([], rows)
    # Seal the segments and wait for the (background) dense index build, so searches go through
    # the ANN index as they would on a long-lived server rather than brute-forcing fresh rows.
    store.client.flush(store.collection)
    deadline = time.monotonic() + INDEX_WAIT_S
    while time.monotonic() < deadline:
        info = store.client.describe_index(store.collection, "dense")
        if info.get("pending_index_rows", 0) == 0 and info.get("indexed_rows", len(chunks)) >= len(chunks):
            break
        time.sleep(0.5)
    else:
        log.warning("dense index still building after %ds; ANN recall measured on a partial index", INDEX_WAIT_S)
    return store


def dense_search(store, vector: np.ndarray, k: int) -> list[str]:
    res = store.client.search(store.collection, data=[vector.tolist()], anns_field="dense",
                              search_params={"metric_type": "COSINE"}, limit=k, output_fields=["document_id"])
    return [primary_key(hit) for hit in res[0]]


def bm25_search(store, query: str, k: int) -> list[str]:
    res = store.client.search(store.collection, data=[query], anns_field="sparse",
                              search_params={"metric_type": "BM25"}, limit=k, output_fields=["document_id"])
    return [primary_key(hit) for hit in res[0]]


def hybrid_search(store, query: str, vector: np.ndarray, k: int) -> list[str]:
    """The agent's ranking (agent.retrieval.hybrid_rank with the default Ranking) on this store."""
    return [h.chunk_id for h in hybrid_rank(store, Ranking(), query, vector, k)]


def rrf_search(store, query: str, vector: np.ndarray, k: int) -> list[str]:
    """The agent's ranking without the phrase signal: dense + BM25 RRF alone."""
    return [h.chunk_id for h in hybrid_rank(store, Ranking(phrase_min_coverage=0), query, vector, k)]


def add_document_lists(ctx: RunContext, store, chunks: list[tuple[str, str]], documents: list[tuple[str, str]]):
    """The agent's document-level collections beside a chunk store, written as ingestion writes them
    (agent.retrieval.Retriever.ingest): every chunk's sentences encoded, every whole document for BM25.
    `chunks` and `documents` are (document id, text)."""
    from agent.chunking import split_sentences
    from agent.stores.documents import DocumentIndex
    from agent.stores.sentences import SentenceVectors

    pairs = list(dict.fromkeys((doc, s) for doc, text in chunks for s in split_sentences(text)))
    vectors = ctx.embed([s for _, s in pairs], desc="encode sentences")
    sentences = SentenceVectors(store)
    sentences.replace(list(dict.fromkeys(doc for doc, _ in pairs)),
                      [(doc, s, v) for (doc, s), v in zip(pairs, vectors, strict=True)])
    whole = DocumentIndex(store)
    whole.replace(documents)
    return sentences, whole


def agent_search(store, lists, query: str, vector: np.ndarray, k: int) -> list[str]:
    """The agent's ranking as /retrieve runs it by default (AGENT_SENTENCE_VECTORS=stored): the
    chunk lists plus the document-level lists of `add_document_lists`."""
    return [h.chunk_id for h in hybrid_rank(store, Ranking(), query, vector, k, *lists)]


def exact_top_k(matrix: np.ndarray, vector: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top k (rows are unit vectors): the ground truth for ANN recall."""
    scores = matrix @ vector
    top = np.argpartition(-scores, k)[:k] if len(scores) > k else np.arange(len(scores))
    return top[np.argsort(-scores[top])]


def quality(ranked: list[list[int]], relevant: list[set[int]], k: int = K) -> dict[str, float]:
    """hit@k and MRR@k with the evaluation gate's own metric functions."""
    pairs = list(zip(ranked, relevant, strict=True))
    return {"hit_at_10": round(m.mean([m.hit_at_k(ids, rel, k) for ids, rel in pairs]), 4),
            "mrr_at_10": round(m.mean([m.reciprocal_rank(ids, rel, k) for ids, rel in pairs]), 4)}


def measure_size(n: int, chunks: list[ChunkRef], vectors: np.ndarray, queries, relevant, qvecs, dim: int,
                 workdir: Path, ctx: RunContext | None = None, documents: list[Doc] | None = None) -> dict:
    """With `ctx` and `documents`, also the "agent" mode: the ranking with its document-level lists
    (their sentences encoded here, so only at the smallest size)."""
    sub_chunks, sub_vectors = chunks[:n], vectors[:n]
    index_of = {c.id: i for i, c in enumerate(sub_chunks)}
    rel = [{i for i in r if i < n} for r in relevant]
    start = time.perf_counter()
    store = build_store(workdir / f"n{n}", sub_chunks, sub_vectors, dim)
    load_s = time.perf_counter() - start
    rss_after = rss_mb()
    try:
        names = ["hybrid", "rrf", "dense", "bm25", "exact"]
        lists = None
        if ctx is not None and documents is not None:
            held = {c.document_id for c in sub_chunks}
            lists = add_document_lists(ctx, store, [(c.document_id, c.text) for c in sub_chunks],
                                       [(d.id, normalise_text(d.text)) for d in documents if d.id in held])
            names.append("agent")
        modes: dict[str, tuple[list, list]] = {mode: ([], []) for mode in names}
        ann_recall = []
        for q, qv in progress(list(zip(queries, qvecs, strict=True)), len(queries), f"queries @ {n}"):
            for mode in names:
                t0 = time.perf_counter()
                if mode == "agent":
                    ids = [index_of[c] for c in agent_search(store, lists, q.text, qv, K)]
                elif mode == "hybrid":
                    ids = [index_of[c] for c in hybrid_search(store, q.text, qv, K)]
                elif mode == "rrf":
                    ids = [index_of[c] for c in rrf_search(store, q.text, qv, K)]
                elif mode == "dense":
                    ids = [index_of[c] for c in dense_search(store, qv, K)]
                elif mode == "bm25":
                    ids = [index_of[c] for c in bm25_search(store, q.text, K)]
                else:
                    ids = exact_top_k(sub_vectors, qv, K).tolist()
                modes[mode][0].append(time.perf_counter() - t0)
                modes[mode][1].append(ids)
            exact = set(modes["exact"][1][-1])
            ann_recall.append(len(exact & set(modes["dense"][1][-1])) / min(K, n))
    finally:
        store.close()
    return {
        "chunks": n, "index_seconds": round(load_s, 2), "index_chunks_per_s": round(n / load_s, 1),
        "rss_mb_after_index": round(rss_after, 1),
        "ann_recall_at_10": round(float(np.mean(ann_recall)), 4),
        "latency_ms": {mode: latency_ms(times) for mode, (times, _) in modes.items()},
        "quality": {mode: quality(ranked, rel) for mode, (_, ranked) in modes.items()},
    }


# The second query family: the golden set's natural-language questions about the project docs,
# where relevance is judged per document (section), as the evaluation gate judges it.
REPO = Path(__file__).resolve().parent.parent
GOLDEN_DATASET = REPO / "agent" / "eval" / "golden" / "questions.jsonl"
# The golden set's frozen corpus (docs/evaluation.md, "The golden corpus").
GOLDEN_CORPUS = (REPO / "agent" / "eval" / "golden" / "corpus" / "docs",
                 REPO / "agent" / "eval" / "golden" / "corpus" / "README.md")
GOLDEN_K = 5


def measure_golden(ctx: RunContext, workdir: Path) -> dict:
    """MRR@5 and hit@5 by document of hybrid, RRF alone, dense, BM25 and the agent's ranking with
    its document-level lists on the golden questions."""
    from agent.eval.dataset import load_corpus, load_dataset
    from agent.stores.vectors import ChunkRow, VectorStore

    docs = load_corpus(list(GOLDEN_CORPUS))
    items = load_dataset(GOLDEN_DATASET)
    chunker = agent_chunker(ctx.encoder)
    pieces = [(d.id, f"{d.id}#{c.index}", c.text)  # as the agent indexes them, title included
              for d in docs for c in chunker.split(d.text, d.title)]
    vectors = ctx.embed([text for _, _, text in pieces], desc="encode golden corpus")
    questions = [item.question.question for item in items]
    qvecs = ctx.embed(questions, desc="encode golden questions")
    doc_of = {chunk_id: doc_id for doc_id, chunk_id, _ in pieces}
    store = VectorStore.lite(workdir / "golden", "golden_chunks", vectors.shape[1])
    try:
        store.replace_documents([], [ChunkRow(d, c, t, v, {}) for (d, c, t), v in zip(pieces, vectors, strict=True)])
        # Whole documents as Retriever.ingest indexes them: title line, then the text.
        lists = add_document_lists(ctx, store, [(d, t) for d, _, t in pieces],
                                   [(d.id, "\n".join(x for x in (d.title, d.text) if x)) for d in docs])
        ranked: dict[str, list[list[str]]] = {"hybrid": [], "rrf": [], "dense": [], "bm25": [], "agent": []}
        for q, qv in zip(questions, qvecs, strict=True):
            depth = GOLDEN_K * 8  # enough chunks to rank GOLDEN_K distinct documents
            chunk_lists = {"hybrid": hybrid_search(store, q, qv, depth), "rrf": rrf_search(store, q, qv, depth),
                           "dense": dense_search(store, qv, depth), "bm25": bm25_search(store, q, depth),
                           "agent": agent_search(store, lists, q, qv, depth)}
            for mode, ids in chunk_lists.items():
                ranked[mode].append(m.dedupe_ranked(doc_of[i] for i in ids))
    finally:
        store.close()
    relevant = [set(item.question.relevant_document_ids) for item in items]
    out = {}
    for mode, lists in ranked.items():
        pairs = list(zip(lists, relevant, strict=True))
        out[mode] = {"mrr_at_5": round(m.mean([m.reciprocal_rank(d, rel, GOLDEN_K) for d, rel in pairs]), 4),
                     "hit_at_5": round(m.mean([m.hit_at_k(d, rel, GOLDEN_K) for d, rel in pairs]), 4)}
    return {"questions": len(items), "documents": len(docs), "chunks": len(pieces), "quality": out}


def run(ctx: RunContext) -> Result:
    sizes = ctx.sizes
    largest = max(sizes.retrieval_sizes)
    docs, chunks = ctx.corpus(largest, INDEX_CHUNK_CHARS, INDEX_CHUNK_OVERLAP)
    chunks = chunks[:largest]
    ctx.encoder  # loaded first, so the memory baseline includes the model
    rss_before = rss_mb()
    vectors = ctx.embed([c.text for c in chunks], desc="encode chunks")
    queries = make_queries(chunks, sizes.queries, pool=min(sizes.retrieval_sizes))
    relevant = relevant_chunks(queries, chunks)
    qvecs = ctx.embed([q.text for q in queries], desc="encode queries")
    dim = vectors.shape[1]

    result = Result("retrieval", "2. Retrieval: hybrid vs dense vs BM25, ANN vs exact (Milvus Lite)")
    per_size = []
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        for n in sizes.retrieval_sizes:
            smallest = n == min(sizes.retrieval_sizes)
            stats = measure_size(n, chunks, vectors, queries, relevant, qvecs, dim, Path(tmp),
                                 ctx if smallest else None, docs if smallest else None)
            per_size.append(stats)
            log.info("retrieval @ %d: %s", n, stats["quality"])
            q, lat = stats["quality"], stats["latency_ms"]
            case = f"{n:,} chunks"
            best_single = max(q["dense"]["mrr_at_10"], q["bm25"]["mrr_at_10"])
            best_name = "dense" if q["dense"]["mrr_at_10"] >= q["bm25"]["mrr_at_10"] else "BM25"
            result.add(case, "MRR@10 hybrid", q["hybrid"]["mrr_at_10"], best_single,
                       f"better single mode ({best_name}; dense {q['dense']['mrr_at_10']}, "
                       f"BM25 {q['bm25']['mrr_at_10']})",
                       target="≥ baseline", met=q["hybrid"]["mrr_at_10"] >= best_single)
            best_hit = max(q["dense"]["hit_at_10"], q["bm25"]["hit_at_10"])
            result.add(case, "hit@10 hybrid", q["hybrid"]["hit_at_10"], best_hit,
                       f"better single mode (dense {q['dense']['hit_at_10']}, BM25 {q['bm25']['hit_at_10']})",
                       target="≥ baseline", met=q["hybrid"]["hit_at_10"] >= best_hit)
            result.add(case, "MRR@10 hybrid vs RRF alone", q["hybrid"]["mrr_at_10"], q["rrf"]["mrr_at_10"],
                       "dense + BM25 RRF without the phrase signal")
            if "agent" in q:
                for metric, label in (("mrr_at_10", "MRR@10"), ("hit_at_10", "hit@10")):
                    result.add(case, f"{label} with document lists", q["agent"][metric], q["hybrid"][metric],
                               "hybrid on chunks only", target="≥ baseline",
                               met=q["agent"][metric] >= q["hybrid"][metric])
            result.add(case, "ANN recall@10 (dense)", stats["ann_recall_at_10"], 1.0, "exact numpy search",
                       target=f"≥ {TARGET_ANN_RECALL}", met=stats["ann_recall_at_10"] >= TARGET_ANN_RECALL)
            for mode in ("hybrid", "rrf", "dense", "bm25"):
                for pct in ("p50", "p95"):
                    result.add(case, f"{mode} latency {pct}", lat[mode][pct], lat["exact"][pct],
                               "exact numpy dense search", unit="ms")
        golden = measure_golden(ctx, Path(tmp))
    gq = golden["quality"]
    case = f"golden questions ({golden['questions']}, {golden['chunks']} doc chunks)"
    for metric, label in (("mrr_at_5", "MRR@5 hybrid"), ("hit_at_5", "hit@5 hybrid")):
        best = max(gq["dense"][metric], gq["bm25"][metric])
        result.add(case, label, gq["hybrid"][metric], best,
                   f"better single mode (dense {gq['dense'][metric]}, BM25 {gq['bm25'][metric]})",
                   target="≥ baseline", met=gq["hybrid"][metric] >= best)
    result.add(case, "MRR@5 hybrid vs RRF alone", gq["hybrid"]["mrr_at_5"], gq["rrf"]["mrr_at_5"],
               "dense + BM25 RRF without the phrase signal")
    for metric, label in (("mrr_at_5", "MRR@5"), ("hit_at_5", "hit@5")):
        result.add(case, f"{label} with document lists", gq["agent"][metric], gq["hybrid"][metric],
                   "hybrid on chunks only", target="≥ baseline", met=gq["agent"][metric] >= gq["hybrid"][metric])
    memory = {"rss_mb_before_index": round(rss_before, 1),
              "rss_mb_by_size": {s["chunks"]: s["rss_mb_after_index"] for s in per_size}}
    ctx.shared["memory"] = memory
    result.details = {"k": K, "queries": len(queries), "sizes": per_size, "memory": memory, "golden": golden,
                      "query_examples": [{"query": q.text, "sentence": q.sentence} for q in queries[:5]]}
    result.notes += [
        f"{len(queries)} queries: a sentence drawn from one of the first {min(sizes.retrieval_sizes):,} chunks "
        "with ~30% of its words dropped; relevant = every chunk containing the sentence. Larger sizes add "
        "distractors only.",
        f"Index chunks are cut at {INDEX_CHUNK_CHARS} chars (overlap "
        f"{INDEX_CHUNK_OVERLAP}) so that encoding 50k of them fits a 2-core run.",
        "Golden questions: the evaluation gate's natural-language questions about this project's docs, "
        "relevance by document section; a second query family where word overlap is low.",
        "Latency is the search call alone (query vector precomputed); hybrid = the agent's ranking "
        "(`agent.retrieval.hybrid_rank`: the store's dense and BM25 searches fused and re-ranked by "
        "agent/ranking.py) over a store of chunks only; rrf = the same with the phrase signal off.",
        "With document lists = the ranking as /retrieve runs it by default (AGENT_SENTENCE_VECTORS=stored): "
        "the same chunks plus every chunk's sentences and every whole document (agent/stores/sentences.py, "
        f"documents.py); at {min(sizes.retrieval_sizes):,} chunks and on the golden questions only (its "
        f"sentences are encoded in the run).",
    ]
    return result
