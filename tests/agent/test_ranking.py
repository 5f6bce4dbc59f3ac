"""Rank fusion and the phrase signal: the coverage function against a plain LCS, RRF and the re-rank on
their own, and the Retriever's ranking over a real Milvus Lite collection."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.embeddings import Encoder
from agent.chunking import Chunker
from agent.observability import Metrics
from agent.ranking import RRF_K, Ranking, normalised, ordered_coverage, phrase_rerank, rrf, words
from agent.retrieval import Retriever
from agent.types import Hit
from agent.stores.vectors import ChunkRow, VectorStore


def lcs_length(a: list[str], b: list[str]) -> int:
    """Textbook dynamic-programming LCS: the reference for the bit-parallel version."""
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def test_ordered_coverage_equals_lcs_over_query_length() -> None:
    rng = random.Random(3)
    vocab = ["a", "b", "c", "d", "e", "f"]  # small, so words repeat and subsequences overlap
    for _ in range(500):
        query = [rng.choice(vocab) for _ in range(rng.randint(1, 70))]  # past 64 bits too
        text = [rng.choice(vocab) for _ in range(rng.randint(0, 90))]
        assert ordered_coverage(query, " ".join(text)) == pytest.approx(lcs_length(query, text) / len(query))


@pytest.mark.parametrize(("query", "text", "expected"), [
    ("dog chased cat", "The dog, having chased the cat, slept.", 1.0),
    ("dog chased cat", "The cat chased the dog.", 1 / 3),
    ("Redis PASSWORD", "the redis password file", 1.0),
    ("", "anything", 0.0),
    ("?!", "anything", 0.0),
])
def test_ordered_coverage_examples(query: str, text: str, expected: float) -> None:
    assert ordered_coverage(words(query), text) == pytest.approx(expected)


FUSED = [("near-miss", 0.0325), ("quoted", 0.0320), ("other", 0.0300)]
TEXTS = {"near-miss": "chased cat dog", "quoted": "the dog was chased by a cat", "other": "nothing here"}


def _rerank(query: str, min_coverage: float) -> list[tuple[str, float]]:
    return phrase_rerank(query, [c for c, _ in FUSED], score=dict(FUSED).__getitem__,
                         text=TEXTS.__getitem__, min_coverage=min_coverage)


def test_phrase_rerank_puts_the_in_order_match_first_on_the_rrf_scale() -> None:
    ranked = _rerank("dog chased cat", 0.8)
    assert [c for c, _ in ranked] == ["quoted", "near-miss", "other"]
    assert dict(ranked)["quoted"] == pytest.approx(0.0320 + 1 / (RRF_K + 1))
    assert dict(ranked)["near-miss"] == pytest.approx(0.0325)  # 2/3 in order: below the bar


def test_phrase_rerank_off_or_without_a_match_keeps_the_fused_ranking() -> None:
    assert _rerank("dog chased cat", 0) == FUSED
    assert _rerank("penguins in winter", 0.8) == FUSED


def test_phrase_rerank_orders_several_matches_by_coverage() -> None:
    texts = {"full": "alpha beta gamma delta epsilon", "most": "alpha beta gamma delta", "none": "zeta"}
    ranked = phrase_rerank("alpha beta gamma delta epsilon", ["none", "most", "full"], score=lambda c: 0.0,
                           text=texts.__getitem__, min_coverage=0.8)
    assert ranked == [("full", pytest.approx(1 / (RRF_K + 1))), ("most", pytest.approx(1 / (RRF_K + 2))),
                      ("none", 0.0)]


def test_retriever_ranks_the_chunk_with_the_words_in_order_first(tmp_path: Path, encoder: Encoder) -> None:
    # The two sentences are the same bag of words: BM25 cannot tell them apart and the embeddings
    # barely can, so only word order decides, in both directions.
    texts = {"a": "the cat chased the dog across the yard", "b": "the dog chased the cat across the yard",
             "c": "milvus stores vectors", "d": "redis keeps the sessions"}
    store = VectorStore.lite(tmp_path, "ranking", encoder.dim)
    retriever = Retriever(encoder, store, Metrics(), Chunker.for_encoder(encoder))
    try:
        vectors = encoder.encode(list(texts.values()))
        store.replace_documents([], [ChunkRow(doc, f"{doc}#0", text, vec, {})
                                     for (doc, text), vec in zip(texts.items(), vectors, strict=True)])
        for query, expected in (("dog chased cat", "b"), ("cat chased dog", "a")):
            vector = encoder.encode([query])[0]
            hits = retriever.rank(query, vector, 2)
            assert hits[0].document_id == expected, query
            plain = retriever.rank(query, vector, 2, Ranking(phrase_min_coverage=0))
            # RRF alone barely separates them (BM25 ties the two, dense's margin is slim); the
            # phrase signal adds a whole rank's worth to the in-order chunk.
            assert {h.document_id for h in plain} == {"a", "b"}
            k = Ranking().rrf_k
            step = 1 / (k + 1) - 1 / (k + 2)
            assert plain[0].score - plain[1].score <= 2 * step + 1e-9  # a rank apart in each list at most
            plain_score = {h.document_id: h.score for h in plain}[expected]
            assert hits[0].score == pytest.approx(plain_score + 1 / (k + 1))  # a whole first rank's worth
            assert hits[0].score - hits[1].score > 1 / (k + 1) - 2 * step
    finally:
        store.close()



def test_rrf_sums_reciprocal_ranks_and_keeps_first_seen_order_on_ties() -> None:
    fused = rrf([["a", "b", "c"], ["b", "d"]], key=str, k=60)
    assert [x for x, _ in fused] == ["b", "a", "d", "c"]
    assert dict(fused)["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert dict(fused)["a"] == pytest.approx(1 / 61)
    assert [x for x, _ in rrf([["a"], ["b"]], key=str)] == ["a", "b"]  # a tie: the first list's item first
    weighted = rrf([["a"], ["b"]], key=str, weights=[1.0, 2.0])
    assert [x for x, _ in weighted] == ["b", "a"]


def _hit(chunk: str, text: str = "") -> Hit:
    return Hit(document_id=chunk.split("#")[0], chunk_id=chunk, score=0.0, text=text)


def test_normalised_keeps_margins_and_reads_the_direction_from_the_order() -> None:
    # A document far ahead stays far ahead (a rank would say only "first").
    assert normalised([("a", 40.0), ("b", 22.0), ("c", 20.0)]) == pytest.approx({"a": 1.0, "b": 0.1, "c": 0.0})
    # Milvus Lite reports BM25 as negative distances, best first: the same scores.
    assert normalised([("a", -40.0), ("b", -22.0), ("c", -20.0)]) == pytest.approx({"a": 1.0, "b": 0.1, "c": 0.0})
    # A document's first entry is its best; ties and a single document are all 1.
    assert normalised([("a", 0.9), ("a", 0.5), ("b", 0.7)]) == pytest.approx({"a": 1.0, "b": 0.0})
    assert normalised([("a", 3.0), ("b", 3.0)]) == {"a": 1.0, "b": 1.0}
    assert normalised([]) == {}


def test_document_evidence_lifts_only_the_best_chunk_of_a_document() -> None:
    dense = [_hit("a#0"), _hit("b#0"), _hit("c#0"), _hit("c#1")]
    bm25 = [_hit("a#1"), _hit("b#0"), _hit("c#1")]
    for i, h in enumerate(dense):
        h.score = 0.9 - 0.1 * i  # cosines, best first
    for i, h in enumerate(bm25):
        h.score = -(30.0 - 10 * i)  # Milvus Lite's negative BM25, best first
    ranking = Ranking(rrf_k=10, phrase_min_coverage=0)
    plain = ranking.rank("q", dense, bm25, 5)
    assert [h.chunk_id for h in plain][:1] == ["b#0"]  # in both lists: chunk RRF alone
    # Without document-level lists the ranking is the chunk RRF (a store with chunks only).
    fused = {h.chunk_id: s for h, s in rrf([dense, bm25], key=lambda h: h.chunk_id, k=10)}
    assert {h.chunk_id: h.score for h in plain} == pytest.approx(fused)
    sentences = [("c", 0.8), ("b", 0.6), ("a", 0.4)]
    documents = [("c", -12.0), ("a", -11.0), ("b", -2.0)]
    lifted = ranking.rank("q", dense, bm25, 5, sentence_documents=sentences, documents=documents)
    ids = [h.chunk_id for h in lifted]
    score = {h.chunk_id: h.score for h in lifted}
    evidence = ranking.document_scores(dense, bm25, sentences, documents)
    # dense by document: a 1, b 0.5, c 0; chunk BM25: a 1, b 0.5, c 0; sentences: c 1, b 0.5, a 0;
    # whole documents: c 1, a 0.9, b 0.
    assert evidence == pytest.approx({"a": 1.0 + 0.5 + 0.0 + 0.9, "b": 0.5 + 0.25 + 0.75 + 0.0,
                                      "c": 0.0 + 0.0 + 1.5 + 1.0})
    # A document's best chunk (first in the chunk RRF: c#1, a#0, b#0) carries its document's score,
    # on the scale of one first RRF rank per unit; the chunk RRF counts half beside it.
    for best, doc in (("c#1", "c"), ("a#0", "a"), ("b#0", "b")):
        assert score[best] == pytest.approx(0.5 * fused[best] + evidence[doc] / 11)
    # Its other chunks keep their own chunk evidence only, however strong the document is.
    assert score["c#0"] == pytest.approx(0.5 * fused["c#0"])
    assert score["a#1"] == pytest.approx(0.5 * fused["a#1"])
    assert ids == ["c#1", "a#0", "b#0", "a#1", "c#0"]  # the top three span three documents
    # Empty lists (an index without those collections) change nothing.
    assert ranking.rank("q", dense, bm25, 5, (), ()) == plain


def test_the_phrase_signal_needs_nearly_every_query_word_in_order_by_default() -> None:
    # A sibling page holding most of a question's words in order must not jump the queue
    # (it did at 0.8 on the tuning corpus: docs/benchmarks.md).
    dense = [_hit("a#0", "if not specified the current zone property will be used"),
             _hit("b#0", "if not specified the zone will be used")]
    query = "if not specified the current zone property will be used"
    assert Ranking().rank(query, dense, [], 2)[0].chunk_id == "a#0"
    sibling = "if not specified the current region property will be used"  # 9 of 10 words in order
    ranked = Ranking().rank(sibling, list(reversed(dense)), [], 2)
    assert ranked[0].chunk_id == "b#0"  # no boost for 0.9 coverage: RRF order stands
    assert Ranking(phrase_min_coverage=0.8).rank(sibling, list(reversed(dense)), [], 2)[0].chunk_id == "a#0"


def test_a_quoted_chunk_carries_its_document_score_not_its_better_fused_neighbour() -> None:
    # A look-up quotes a#1; dense prefers its overlapping neighbour a#0, so a#0 is a's best-fused chunk.
    quote = "restart the sentinel only after the replica has caught up"
    dense = [_hit("a#0", "overlap: stop the sentinel, wait for the replica, then restart"),
             _hit("b#0", "unrelated sentinel text"), _hit("a#1", f"the runbook says {quote} fully")]
    bm25 = [_hit("a#1", dense[2].text), _hit("a#0", dense[0].text), _hit("b#0", dense[1].text)]
    for i, h in enumerate(dense):
        h.score = 0.9 - 0.1 * i
    for i, h in enumerate(bm25):
        h.score = -(30.0 - 10 * i)
    documents = [("a", -20.0), ("b", -5.0)]
    sentences = [("a", 0.9), ("b", 0.3)]
    fused = [h.chunk_id for h, _ in rrf([dense, bm25], key=lambda h: h.chunk_id, k=10)]
    assert fused.index("a#0") < fused.index("a#1")  # the neighbour is a's best chunk by fusion
    ranked = Ranking().rank(quote, dense, bm25, 3, sentence_documents=sentences, documents=documents)
    assert ranked[0].chunk_id == "a#1"
    # Without a quote the document score still lifts the best-fused chunk alone.
    plain = Ranking().rank("sentinel replica", dense, bm25, 3, sentence_documents=sentences, documents=documents)
    assert plain[0].chunk_id == "a#0"


def test_with_document_lists_a_quotation_ranks_its_chunk_first_by_chunk_evidence() -> None:
    # The quoted sentence was copied from document a into document b, and b is more like the query
    # as a whole (its document lists say so). The look-up's own chunk is a#3: first in BM25 and by
    # chunk RRF. Document evidence lifted b#0 past it; a quotation is chunk-level evidence.
    quote = "the keeper lights the harbour lamps at dusk"
    dense = [_hit("b#0", f"as the guide says, {quote} on most evenings"), _hit("a#3", f"{quote} every day"),
             _hit("b#1", "harbour lamps and the keeper's logbook")]
    bm25 = [_hit("a#3", dense[1].text), _hit("b#1", dense[2].text), _hit("b#0", dense[0].text)]
    for i, h in enumerate(dense):
        h.score = 0.9 - 0.1 * i
    for i, h in enumerate(bm25):
        h.score = -(30.0 - 10 * i)
    fused = [h.chunk_id for h, _ in rrf([dense, bm25], key=lambda h: h.chunk_id, k=10)]
    assert fused.index("a#3") < fused.index("b#0")  # a#3 is the better chunk on its own evidence
    documents = [("b", -40.0), ("a", -10.0)]
    sentences = [("b", 0.95), ("a", 0.5)]
    without = Ranking(quote_min_words=10**6).rank(quote, dense, bm25, 3, sentence_documents=sentences,
                                                  documents=documents)
    assert without[0].chunk_id == "b#0"  # what the document lists alone decide
    ranked = Ranking().rank(quote, dense, bm25, 3, sentence_documents=sentences, documents=documents)
    assert [h.chunk_id for h in ranked][:2] == ["a#3", "b#0"]
    assert ranked[0].score > ranked[1].score > ranked[2].score  # scores still follow the order
    # Short queries are keywords, not quotations: three words in order prove little.
    short = Ranking().rank("harbour lamps keeper", dense, bm25, 3, sentence_documents=sentences, documents=documents)
    assert short[0].document_id == "b"
