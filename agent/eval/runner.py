"""Drive the agent over the dataset and compute the metrics (no I/O beyond the client)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.eval import metrics as m
from agent.eval.client import AgentClient
from agent.eval.dataset import DatasetItem, Document

log = logging.getLogger("agent.eval")
T = TypeVar("T")

# POST /documents accepts at most 256 documents and 2 MB per request; small batches stay far below.
INGEST_BATCH_DOCS = 32
INGEST_BATCH_CHARS = 500_000


def progress(items: Iterable[T], total: int, desc: str, enabled: bool) -> Iterator[T]:
    """tqdm on a terminal; otherwise one structured log line when the phase ends."""
    if enabled:
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit="question" if desc == "questions" else "batch",
                        file=sys.stderr, dynamic_ncols=True)
        return
    start = time.perf_counter()
    count = 0
    for item in items:
        count += 1
        yield item
    log.info("phase done", extra={"phase": desc, "count": count,
                                  "seconds": round(time.perf_counter() - start, 3)})


def _batches(docs: list[Document]) -> Iterator[list[Document]]:
    batch: list[Document] = []
    size = 0
    for doc in docs:
        if batch and (len(batch) >= INGEST_BATCH_DOCS or size + len(doc.text) > INGEST_BATCH_CHARS):
            yield batch
            batch, size = [], 0
        batch.append(doc)
        size += len(doc.text)
    if batch:
        yield batch


def ingest(client: AgentClient, docs: list[Document], show_progress: bool) -> dict[str, int]:
    batches = list(_batches(docs))
    chunks = 0
    for batch in progress(batches, len(batches), "ingest", show_progress):
        body = client.ingest([d.model_dump() for d in batch])
        chunks += int(body.get("chunks", 0) or 0) if isinstance(body, dict) else 0
    return {"documents": len(docs), "chunks": chunks}


@dataclass
class QuestionResult:
    line: int
    question: str
    relevant: list[str]
    retrieved: list[str]  # distinct document ids in rank order
    hit: float
    recall: float
    reciprocal_rank: float
    ndcg: float
    retrieve_ms: float
    chat_ms: float | None = None
    answer: str | None = None
    cited: list[str] = field(default_factory=list)
    support: float | None = None
    unsupported: list[str] = field(default_factory=list)
    abstained: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line, "question": self.question, "relevant_document_ids": self.relevant,
            "retrieved_document_ids": self.retrieved,
            "first_relevant_rank": m.first_relevant_rank(self.retrieved, self.relevant, len(self.retrieved) or 1),
            "hit": self.hit, "recall": round(self.recall, 4), "reciprocal_rank": round(self.reciprocal_rank, 4),
            "ndcg": round(self.ndcg, 4), "retrieve_ms": round(self.retrieve_ms, 3),
            "chat_ms": None if self.chat_ms is None else round(self.chat_ms, 3),
            "answer": self.answer, "cited_document_ids": self.cited,
            "answer_support": None if self.support is None else round(self.support, 4),
            "unsupported_sentences": self.unsupported, "abstained": self.abstained,
        }


def evaluate_question(client: AgentClient, item: DatasetItem, k: int, chat: bool) -> QuestionResult:
    q = item.question
    start = time.perf_counter()
    hits = client.retrieve(q.question, k)
    retrieve_ms = (time.perf_counter() - start) * 1000
    # Metrics are over documents: the top-k chunks mapped to their documents, first rank kept.
    ranked = m.dedupe_ranked(str(h["document_id"]) for h in hits[:k])
    result = QuestionResult(
        line=item.line, question=q.question, relevant=q.relevant_document_ids, retrieved=ranked,
        hit=m.hit_at_k(ranked, q.relevant_document_ids, k),
        recall=m.recall_at_k(ranked, q.relevant_document_ids, k),
        reciprocal_rank=m.reciprocal_rank(ranked, q.relevant_document_ids, k),
        ndcg=m.ndcg_at_k(ranked, q.relevant_document_ids, k),
        retrieve_ms=retrieve_ms,
    )
    if chat:
        start = time.perf_counter()
        body = client.chat(q.question)
        result.chat_ms = (time.perf_counter() - start) * 1000
        result.answer = str(body.get("answer") or "")
        citations = body.get("citations") or []
        result.cited = m.dedupe_ranked(str(c.get("document_id")) for c in citations)
        if body.get("supported") is False and not citations:
            # The agent said it found no answer instead of inventing one: not an ungrounded claim,
            # so it is counted as an abstention, not in answer support.
            result.abstained = True
            return result
        # Answers are judged against the cited passages only: a claim backed by a passage the
        # answer does not cite is still unsupported for the reader.
        result.support, result.unsupported = m.answer_support(
            result.answer, [str(c.get("text") or "") for c in citations])
    return result


def aggregate(results: list[QuestionResult]) -> dict[str, Any]:
    supports = [r.support for r in results if r.support is not None]
    chat_ms = [r.chat_ms for r in results if r.chat_ms is not None]
    return {
        "questions": len(results),
        "hit_at_k": round(m.mean([r.hit for r in results]), 4),
        "recall_at_k": round(m.mean([r.recall for r in results]), 4),
        "mrr": round(m.mean([r.reciprocal_rank for r in results]), 4),
        "ndcg_at_k": round(m.mean([r.ndcg for r in results]), 4),
        "answer_support": None if not supports else round(m.mean(supports), 4),
        "answered": len(supports),
        "abstained": sum(r.abstained for r in results),
        "latency_ms": {
            "retrieve": m.latency_summary([r.retrieve_ms for r in results]),
            "chat": m.latency_summary(chat_ms),
        },
    }


def run(client: AgentClient, items: list[DatasetItem], k: int, chat: bool,
        show_progress: bool) -> list[QuestionResult]:
    return [evaluate_question(client, item, k, chat)
            for item in progress(items, len(items), "questions", show_progress)]
