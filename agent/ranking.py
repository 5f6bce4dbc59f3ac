"""Rank fusion for hybrid retrieval (`Ranking`, run by the Retriever), and the phrase-match signal.

Dense and BM25 results are fused by reciprocal rank (RRF): each list adds 1 / (k + rank) to a
chunk's score; document-level lists (documents by best sentence, by whole-document BM25) add to
every chunk of the documents they rank (see `Ranking`). Both lists are bags of words or meanings, so neither sees word *order*: a pasted
error message or a half-remembered sentence finds its chunk in BM25's top few, and RRF then lets a
dense near-miss (often the overlapping neighbour chunk) outrank it.

The phrase list is a third RRF input over the fused candidates: chunks that contain at least
`min_coverage` of the query's words in the query's order, best coverage first. Natural-language
questions almost never reach that share (their words are spread over a passage), so for them
the list is empty and ranking is plain dense + BM25 RRF; for look-ups it puts the quoted chunk on top.
docs/benchmarks.md has the measurements behind the default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from agent.types import Hit

RRF_K = 60  # the constant of Cormack et al. (2009); Ranking uses 10 (measured: docs/benchmarks.md)
DEFAULT_PHRASE_MIN_COVERAGE = 0.95

_WORD = re.compile(r"\w+")
T = TypeVar("T")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ordered_coverage(query_words: Sequence[str], text: str) -> float:
    """Share of the query's words found in `text` in the query's order (any gaps allowed).

    That is the longest common subsequence of the two word sequences over the query length,
    computed bit-parallel (Hyyrö 2004): one big-int update per text word instead of a
    query x text table, so scoring 20 chunks of 800 characters takes well under a millisecond.
    """
    m = len(query_words)
    if m == 0:
        return 0.0
    match: dict[str, int] = {}
    for i, word in enumerate(query_words):
        match[word] = match.get(word, 0) | (1 << i)
    full = (1 << m) - 1
    v = full  # a zero bit marks a query position already matched in order
    for word in words(text):
        u = v & match.get(word, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return (m - v.bit_count()) / m


def phrase_rerank(query: str, fused: Sequence[T], score: Callable[[T], float], text: Callable[[T], str],
                  min_coverage: float = DEFAULT_PHRASE_MIN_COVERAGE,
                  k: int = RRF_K) -> list[tuple[T, float]]:
    """Add the phrase list to RRF-fused candidates; returns (candidate, new score), best first.

    `fused` is ordered best first and `score` gives its RRF score on the same 1/(k + rank) scale.
    `min_coverage` 0 turns the signal off (the fused order and scores come back unchanged).
    """
    scored = [(item, score(item)) for item in fused]
    query_words = words(query)
    if min_coverage <= 0 or not query_words:
        return scored
    coverage = [ordered_coverage(query_words, text(item)) for item, _ in scored]
    phrase_order = sorted((i for i, c in enumerate(coverage) if c >= min_coverage),
                          key=lambda i: (-coverage[i], i))  # ties keep the fused order
    boosted = list(scored)
    for rank, i in enumerate(phrase_order, start=1):
        item, s = boosted[i]
        boosted[i] = (item, s + 1.0 / (k + rank))
    # A stable sort keeps the fused order among equal scores.
    return sorted(boosted, key=lambda pair: -pair[1])


def rrf(lists: Sequence[Sequence[T]], key: Callable[[T], str], k: int = RRF_K,
        weights: Sequence[float] | None = None) -> list[tuple[T, float]]:
    """Reciprocal rank fusion: each list adds weight / (k + rank) to an item; best first.

    An item keeps its first appearance (lists earlier in `lists` win); ties keep that order too.
    """
    scores: dict[str, float] = {}
    first: dict[str, T] = {}
    for i, ranked in enumerate(lists):
        w = 1.0 if weights is None else weights[i]
        for rank, item in enumerate(ranked, start=1):
            name = key(item)
            first.setdefault(name, item)
            scores[name] = scores.get(name, 0.0) + w / (k + rank)
    return sorted(((first[n], s) for n, s in scores.items()), key=lambda pair: -pair[1])


@dataclass(frozen=True)
class Ranking:
    """How the Retriever turns its candidate lists into its top k chunks.

    Chunks found by dense and BM25 search are fused by RRF. Two document-level lists then add to
    every candidate chunk of a document ranked there, on the same 1/(k + rank) scale: documents by
    their best sentence (dense, agent/stores/sentences.py) and documents by BM25 over their whole
    text (agent/stores/documents.py). Last, the phrase signal re-ranks the fused pool. The
    weights and k were chosen on the tuning corpus only (docs/benchmarks.md); a list that is empty
    (an old index, a store without those collections) simply adds nothing.
    """

    rrf_k: int = 10
    phrase_min_coverage: float = DEFAULT_PHRASE_MIN_COVERAGE
    sentence_weight: float = 1.5
    document_weight: float = 1.0
    sentence_depth: int = 300  # sentences asked for: documents ranked by their best one
    document_depth: int = 100

    @staticmethod
    def candidates(top_k: int) -> int:
        """How many chunks to ask each chunk search for."""
        return max(top_k * 4, 40)

    def rank(self, query: str, dense: Sequence[Hit], bm25: Sequence[Hit], top_k: int,
             sentence_documents: Sequence[str] = (), documents: Sequence[str] = ()) -> list[Hit]:
        k = self.rrf_k
        fused = rrf([dense, bm25], key=lambda h: h.chunk_id, k=k)
        for weight, ranked in ((self.sentence_weight, sentence_documents), (self.document_weight, documents)):
            if not weight or not ranked:
                continue
            doc_rank = {doc: r for r, doc in enumerate(ranked, start=1)}
            fused = [(hit, s + (weight / (k + doc_rank[hit.document_id]) if hit.document_id in doc_rank else 0.0))
                     for hit, s in fused]
        order = sorted(fused, key=lambda pair: -pair[1])  # stable: RRF's order on ties
        pool = order[:max(top_k * 2, 20)]  # what the phrase signal may reorder
        ranked = phrase_rerank(query, [hit for hit, _ in pool], score=_score_of(pool), text=lambda h: h.text,
                               min_coverage=self.phrase_min_coverage, k=k)
        return [replace(hit, score=score) for hit, score in ranked[:top_k]]


def _score_of(pool: Sequence[tuple[Hit, float]]) -> Callable[[Hit], float]:
    by_id = {hit.chunk_id: s for hit, s in pool}
    return lambda hit: by_id[hit.chunk_id]
