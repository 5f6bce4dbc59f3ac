"""7. Known-item retrieval, judged per document: the agent's /retrieve against an off-the-shelf hybrid.

Corpora: bench/data/known-item-{heldout,tuning,development}.jsonl (bench/known_item_corpus.py says
how they were built). Each question names exactly one document. The agent ingests every document through
`POST /documents` and answers `POST /retrieve` with top_k = 20; its ranking of documents is the
first distinct documents among those 20 chunks. The baseline (bench/baseline_hybrid.py) ranks
documents directly. hit@5 and MRR@10 over documents; per-query wins and losses by reciprocal rank.
Only the held-out corpus carries targets; the two development corpora (tuning, development) are
reported beside it so that a gain found there can be seen to carry over, or not.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agent.eval import metrics as m
from agent.eval.client import in_process_client
from bench.baseline_hybrid import OffTheShelfHybrid
from bench.common import Result, RunContext, log, progress
from bench.known_item_corpus import CORPORA, DEVELOPMENT, KnownItem, load

TOP_CHUNKS = 20  # /retrieve depth; documents are the first distinct ones among these chunks
HIT_K, MRR_K = 5, 10
TARGET_RATIO = 1.05
BATCH_DOCS = 16


def agent_rankings(ctx: RunContext, items: list[KnownItem], workdir: Path) -> tuple[list[list[str]], dict]:
    """Document rankings from the agent's /retrieve, plus ingestion and query timings."""
    payload = [{"id": d.id, "text": d.text, "metadata": {"family": d.family}} for d in items]
    rankings = []
    with in_process_client(workdir, encoder=ctx.encoder) as agent:
        start = time.perf_counter()
        chunks = 0
        for i in progress(range(0, len(payload), BATCH_DOCS), (len(payload) + BATCH_DOCS - 1) // BATCH_DOCS,
                          "agent: ingest"):
            chunks += agent.ingest(payload[i:i + BATCH_DOCS])["chunks"]
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        asked = questions(items)
        for d in progress(asked, len(asked), "agent: /retrieve"):
            hits = agent.retrieve(d.question, TOP_CHUNKS)
            rankings.append(m.dedupe_ranked(h["document_id"] for h in hits))
        query_s = time.perf_counter() - start
    return rankings, {"chunks": chunks, "ingest_seconds": round(ingest_s, 2),
                      "retrieve_ms_mean": round(1000 * query_s / len(asked), 2)}


def baseline_rankings(items: list[KnownItem], model_path: str) -> tuple[dict[str, list[list[str]]], dict]:
    start = time.perf_counter()
    hybrid = OffTheShelfHybrid([d.id for d in items], [d.text for d in items], model_path)
    index_s = time.perf_counter() - start
    out: dict[str, list[list[str]]] = {"hybrid": [], "bm25": [], "dense": []}
    asked = questions(items)
    for d in progress(asked, len(asked), "baseline: search"):
        for name, ranking in hybrid.search(d.question, MRR_K).items():
            out[name].append(ranking)
    return out, {"chunks": len(hybrid.chunk_doc), "index_seconds": round(index_s, 2)}


def questions(items: list[KnownItem]) -> list[KnownItem]:
    """The documents that carry a question (the others are distractors only)."""
    return [d for d in items if d.question]


def score(rankings: list[list[str]], items: list[KnownItem]) -> dict:
    rr = [m.reciprocal_rank(r, {d.id}, MRR_K) for r, d in zip(rankings, items, strict=True)]
    hits = [m.hit_at_k(r, {d.id}, HIT_K) for r, d in zip(rankings, items, strict=True)]
    return {"hit_at_5": round(m.mean(hits), 4), "mrr_at_10": round(m.mean(rr), 4), "rr": rr}


def wins_losses(ours: list[float], theirs: list[float], items: list[KnownItem]) -> dict:
    """Per query, by reciprocal rank@10: where the agent ranks the document higher, lower, the same."""
    def rank(rr: float) -> int | None:
        return round(1 / rr) if rr else None

    wins = [{"id": d.id, "agent_rank": rank(a), "baseline_rank": rank(b)}
            for a, b, d in zip(ours, theirs, items, strict=True) if a > b]
    losses = [{"id": d.id, "agent_rank": rank(a), "baseline_rank": rank(b)}
              for a, b, d in zip(ours, theirs, items, strict=True) if a < b]
    return {"wins": len(wins), "losses": len(losses), "ties": len(items) - len(wins) - len(losses),
            "won": wins, "lost": losses}


def measure(ctx: RunContext, corpus: str, workdir: Path, limit: int | None = None) -> dict:
    items = load(corpus)[:limit]
    asked = questions(items)
    agent, agent_info = agent_rankings(ctx, items, workdir / corpus)
    base, base_info = baseline_rankings(items, str(ctx.encoder.model_path))
    scores = {"agent": score(agent, asked), **{f"baseline_{k}": score(v, asked) for k, v in base.items()}}
    duel = wins_losses(scores["agent"]["rr"], scores["baseline_hybrid"]["rr"], asked)
    for s in scores.values():
        s.pop("rr")
    log.info("known-item %s: %s; wins %d, losses %d", corpus, scores, duel["wins"], duel["losses"])
    return {"corpus": corpus, "documents": len(items), "questions": len(asked), "scores": scores,
            "versus_baseline": duel, "agent": agent_info, "baseline": base_info}


def run(ctx: RunContext, corpora: tuple[str, ...] = (*CORPORA, DEVELOPMENT)) -> Result:
    result = Result("known_item", "7. Known-item retrieval per document: /retrieve vs an off-the-shelf hybrid")
    limit = 60 if ctx.quick else None
    details = {}
    with tempfile.TemporaryDirectory(prefix="bench-known-item-") as tmp:
        for corpus in corpora:
            stats = measure(ctx, corpus, Path(tmp), limit)
            details[corpus] = stats
            s, duel = stats["scores"], stats["versus_baseline"]
            held_out = corpus == "heldout"
            case = f"{corpus} ({stats['documents']} documents, {stats['questions']} questions)"
            for metric, label in (("hit_at_5", "hit@5"), ("mrr_at_10", "MRR@10")):
                base = s["baseline_hybrid"][metric]
                result.add(case, f"{label} /retrieve", s["agent"][metric], base,
                           "off-the-shelf hybrid: bm25s + sentence-transformers, RRF",
                           target=f"≥ {TARGET_RATIO}× baseline" if held_out else "",
                           met=(s["agent"][metric] >= TARGET_RATIO * base) if held_out else None)
                result.add(case, f"{label} baseline halves", s["baseline_bm25"][metric], s["baseline_dense"][metric],
                           "dense MiniLM over 800-char chunks (measured = BM25 over whole documents)")
            result.add(case, "queries won / lost vs baseline", duel["wins"], duel["losses"],
                       f"lost (ties {duel['ties']})")
    result.details = details
    result.notes += [
        "Held-out corpus: judged only, never tuned on; tuning and development corpora: where ideas were tried "
        "(docs/benchmarks.md). All built once by bench/known_item_corpus.py, in suites: held-out and tuning from "
        "manual pages (sections 1, 5, 7, 8) and Python standard-library modules, development from other text "
        "(man sections 2 and 3, third-party modules); the question is a sentence of the document (6-12 words, "
        "found in no other document), cut out of it with its whole paragraph (inverse cloze).",
        f"/retrieve with top_k={TOP_CHUNKS}; documents = the first distinct ones among those chunks; "
        f"hit@{HIT_K} and MRR@{MRR_K} by document. Won/lost: reciprocal rank per query against the hybrid.",
    ]
    return result
