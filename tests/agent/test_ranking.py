"""Rank fusion's phrase signal: the coverage function against a plain LCS, the re-rank on its own,
and the store's hybrid search on a real Milvus Lite collection."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.embeddings import Encoder
from agent.ranking import RRF_K, ordered_coverage, phrase_rerank, words
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


def test_hybrid_search_ranks_the_chunk_with_the_words_in_order_first(tmp_path: Path, encoder: Encoder) -> None:
    # The two sentences are the same bag of words: BM25 cannot tell them apart and the embeddings
    # barely can, so only word order decides, in both directions.
    texts = {"a": "the cat chased the dog across the yard", "b": "the dog chased the cat across the yard",
             "c": "milvus stores vectors", "d": "redis keeps the sessions"}
    store = VectorStore.lite(tmp_path, "ranking", encoder.dim)
    try:
        vectors = encoder.encode(list(texts.values()))
        store.replace_documents([], [ChunkRow(doc, f"{doc}#0", text, vec, {})
                                     for (doc, text), vec in zip(texts.items(), vectors, strict=True)])
        for query, expected in (("dog chased cat", "b"), ("cat chased dog", "a")):
            vector = encoder.encode([query])[0]
            hits = store.hybrid_search(query, vector, 2)
            assert hits[0].document_id == expected, query
            plain = store.hybrid_search(query, vector, 2, phrase_min_coverage=0)
            # RRF alone barely separates them (an exact tie, broken by key order, on one of the
            # two); the phrase signal adds a whole rank's worth to the in-order chunk.
            assert plain[0].score - plain[1].score < 0.001
            assert hits[0].score - hits[1].score > 1 / (RRF_K + 1) - 0.001
    finally:
        store.close()

