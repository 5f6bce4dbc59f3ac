"""Rank fusion for hybrid retrieval (`Ranking`, run by the Retriever), and the phrase-match signal.

Dense and BM25 results are fused by reciprocal rank (RRF): each list adds 1 / (k + rank) to a
chunk's score; documents are scored from document-level lists (by best sentence, by
whole-document BM25, by best chunk), their scores rescaled per list, and a document's score lifts
its best chunk (see `Ranking`). Both chunk lists are bags of words or meanings, so neither sees word *order*: a pasted
error message or a half-remembered sentence finds its chunk in BM25's top few, and RRF then lets a
dense near-miss (often the overlapping neighbour chunk) outrank it.

The phrase list is a third RRF input over the fused candidates: chunks that contain at least
`min_coverage` of the query's words in the query's order, best coverage first. Natural-language
questions almost never reach that share (their words are spread over a passage), so for them
the list is empty and ranking is plain dense + BM25 RRF; for look-ups it puts the quoted chunk on top
of the chunk RRF. With document lists, a document's score lifts the chunk that holds the query in
order when it has one; lifting its best chunk by chunk RRF instead often lifted a neighbour of the
quoted chunk past it. And a query of 4 or more words that chunks hold in order ranks those chunks
first (`quotations_first`): document scores outweigh one phrase rank (docs/benchmarks.md, section 2).
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
                  k: int = RRF_K, coverage_of: Callable[[T], float] | None = None) -> list[tuple[T, float]]:
    """Add the phrase list to RRF-fused candidates; returns (candidate, new score), best first.

    `fused` is ordered best first and `score` gives its RRF score on the same 1/(k + rank) scale.
    `min_coverage` 0 turns the signal off (the fused order and scores come back unchanged).
    `coverage_of`: an item's `ordered_coverage` when the caller already computed it.
    """
    scored = [(item, score(item)) for item in fused]
    query_words = words(query)
    if min_coverage <= 0 or not query_words:
        return scored
    coverage = [coverage_of(item) if coverage_of else ordered_coverage(query_words, text(item)) for item, _ in scored]
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


def normalised(ranked: Sequence[tuple[str, float]]) -> dict[str, float]:
    """One document list's scores rescaled to [0, 1]: its best document 1, the last one it returned 0.

    `ranked` is (document id, score) best first, as a search returns it; a document's first entry
    is its best. The direction is read from the order, not from the sign: Milvus Lite reports BM25
    as negative distances, a Milvus server as positive scores. Unlike a rank, the rescaled score
    keeps a list's margins: a document far ahead of the rest stays far ahead.
    """
    best: dict[str, float] = {}
    for doc, score in ranked:
        best.setdefault(doc, score)
    if not best:
        return {}
    values = list(best.values())
    sign = -1.0 if values[0] < values[-1] else 1.0
    top, bottom = sign * values[0], sign * values[-1]
    if top <= bottom:
        return dict.fromkeys(best, 1.0)
    return {doc: (sign * score - bottom) / (top - bottom) for doc, score in best.items()}


@dataclass(frozen=True)
class Ranking:
    """How the Retriever turns its candidate lists into its top k chunks.

    Chunks found by dense and BM25 search are fused by RRF. With document-level evidence (the
    documents ranked by their best sentence, agent/stores/sentences.py, and by BM25 over their
    whole text, agent/stores/documents.py), documents are scored too, from four lists: those two
    and the two chunk lists seen per document (a document's best chunk in each). Each list's
    scores are rescaled to [0, 1] (`normalised`, so a list's margins count, not only its order)
    and summed with the weights below; a document's score, on the scale of one first RRF rank
    (1 / (k + 1) per unit), goes to one candidate chunk only (`_lifted_chunks`). Its other chunks keep their
    chunk evidence alone, so the top k still spans several documents. Last, the phrase signal
    re-ranks the fused pool (with document lists, a quotation's chunks go first: `quotations_first`).

    Without document-level lists (a store with chunks only, bench section 2) the ranking is the
    chunk RRF and the phrase signal alone. The weights were measured on two development corpora
    and the golden set (docs/benchmarks.md, section 7); the held-out corpus chose nothing.
    """

    rrf_k: int = 10
    phrase_min_coverage: float = DEFAULT_PHRASE_MIN_COVERAGE
    sentence_weight: float = 1.5  # documents by their best sentence (dense)
    document_weight: float = 1.0  # documents by BM25 over their whole text
    dense_document_weight: float = 1.0  # documents by their best chunk in the dense list
    bm25_document_weight: float = 0.5  # ... in the chunk BM25 list (whole-document BM25 says most of it)
    chunk_weight: float = 0.5  # the chunk RRF beside document evidence (1 without it)
    quote_min_words: int = 4  # with document lists, a query this long that a chunk holds in order ranks it first
    sentence_depth: int = 300  # sentences asked for: documents ranked by their best one
    document_depth: int = 100

    @staticmethod
    def candidates(top_k: int) -> int:
        """How many chunks to ask each chunk search for."""
        return max(top_k * 4, 40)

    def document_scores(self, dense: Sequence[Hit], bm25: Sequence[Hit],
                        sentence_documents: Sequence[tuple[str, float]],
                        documents: Sequence[tuple[str, float]]) -> dict[str, float]:
        """Each document's weighted sum of its rescaled scores in the four document lists."""
        lists = ((self.dense_document_weight, [(h.document_id, h.score) for h in dense]),
                 (self.bm25_document_weight, [(h.document_id, h.score) for h in bm25]),
                 (self.sentence_weight, sentence_documents), (self.document_weight, documents))
        scores: dict[str, float] = {}
        for weight, ranked in lists:
            if not weight:
                continue
            for doc, value in normalised(ranked).items():
                scores[doc] = scores.get(doc, 0.0) + weight * value
        return scores

    def rank(self, query: str, dense: Sequence[Hit], bm25: Sequence[Hit], top_k: int,
             sentence_documents: Sequence[tuple[str, float]] = (),
             documents: Sequence[tuple[str, float]] = ()) -> list[Hit]:
        """`dense` and `bm25`: chunk hits best first (their scores as the store gives them);
        `sentence_documents` and `documents`: (document id, score) best first."""
        k = self.rrf_k
        coverage = _coverage_memo(query)
        fused = rrf([dense, bm25], key=lambda h: h.chunk_id, k=k)
        with_documents = bool(sentence_documents or documents)
        chunk_rrf = {hit.chunk_id: s for hit, s in fused} if with_documents else {}
        if with_documents:
            evidence = self.document_scores(dense, bm25, sentence_documents, documents)
            lifted = self._lifted_chunks(fused, coverage)
            rescored = []
            for hit, s in fused:
                bonus = evidence.get(hit.document_id, 0.0) / (k + 1) if hit.chunk_id in lifted else 0.0
                rescored.append((hit, self.chunk_weight * s + bonus))
            fused = rescored
        order = sorted(fused, key=lambda pair: -pair[1])  # stable: RRF's order on ties
        pool = order[:max(top_k * 2, 20)]  # what the phrase signal may reorder
        if with_documents and self.phrase_min_coverage > 0 and len(words(query)) >= self.quote_min_words:
            quoted = quotations_first(pool, coverage, chunk_rrf, self.phrase_min_coverage, k)
            if quoted is not None:
                return [replace(hit, score=score) for hit, score in quoted[:top_k]]
        ranked = phrase_rerank(query, [hit for hit, _ in pool], score=_score_of(pool), text=lambda h: h.text,
                               min_coverage=self.phrase_min_coverage, k=k, coverage_of=coverage)
        return [replace(hit, score=score) for hit, score in ranked[:top_k]]

    def _lifted_chunks(self, fused: Sequence[tuple[Hit, float]], coverage: Callable[[Hit], float]) -> set[str]:
        """The one chunk per document that its document score lifts: the best-fused chunk that holds
        the query in order (a look-up's quoted chunk), else its best-fused chunk. Lifting the best-fused
        one alone put a neighbour of the quoted chunk ahead of it (docs/benchmarks.md, section 2)."""
        best: dict[str, str] = {}
        quoted: dict[str, str] = {}
        for hit, _ in fused:  # best first
            best.setdefault(hit.document_id, hit.chunk_id)
            if (self.phrase_min_coverage > 0 and hit.document_id not in quoted
                    and coverage(hit) >= self.phrase_min_coverage):
                quoted[hit.document_id] = hit.chunk_id
        return set((best | quoted).values())


def quotations_first(pool: Sequence[tuple[Hit, float]], coverage: Callable[[Hit], float],
                     chunk_rrf: dict[str, float], min_coverage: float, k: int) -> list[tuple[Hit, float]] | None:
    """The chunks that hold the query in order (coverage >= `min_coverage`) ahead of the rest of
    `pool`, best coverage first, then by their own chunk RRF (dense and BM25 on the chunk, not its
    document's score); the rest keep their order. None when no chunk holds the query.

    With document lists a document's score (up to four lists) outweighs the phrase list's one
    RRF rank, so a look-up's quoted chunk fell behind a chunk of a document that is more similar
    as a whole, or behind its own document's lifted chunk; and between two quoted chunks (text
    copied from one document into another) the document scores, not the chunks, chose. A chunk
    that holds a query of `Ranking.quote_min_words` or more words in order is chunk-level
    evidence that document similarity should not override (docs/benchmarks.md, section 2).
    Scores stay monotonic: a quoted chunk scores above the pool's best, 1 / (k + rank) apart.
    """
    quoted = [pair for pair in pool if coverage(pair[0]) >= min_coverage]
    if not quoted:
        return None
    quoted.sort(key=lambda pair: (-coverage(pair[0]), -chunk_rrf.get(pair[0].chunk_id, 0.0)))  # stable
    top = max(s for _, s in pool)
    chosen = {hit.chunk_id for hit, _ in quoted}
    return ([(hit, top + 1.0 / (k + rank)) for rank, (hit, _) in enumerate(quoted, start=1)]
            + [pair for pair in pool if pair[0].chunk_id not in chosen])


def _coverage_memo(query: str) -> Callable[[Hit], float]:
    """A chunk's `ordered_coverage` of the query, computed once per chunk for the lifted chunks
    and the phrase re-rank alike."""
    query_words = words(query)
    seen: dict[str, float] = {}

    def coverage(hit: Hit) -> float:
        if hit.chunk_id not in seen:
            seen[hit.chunk_id] = ordered_coverage(query_words, hit.text)
        return seen[hit.chunk_id]

    return coverage


def _score_of(pool: Sequence[tuple[Hit, float]]) -> Callable[[Hit], float]:
    by_id = {hit.chunk_id: s for hit, s in pool}
    return lambda hit: by_id[hit.chunk_id]
