"""Metric functions against cases computed by hand."""

import math

import pytest

from agent.eval import metrics as m

RANKED = ["d3", "d1", "d7", "d2", "d9"]


def test_hit_at_k_counts_only_the_top_k():
    assert m.hit_at_k(RANKED, {"d2"}, k=5) == 1.0
    assert m.hit_at_k(RANKED, {"d2"}, k=3) == 0.0
    assert m.hit_at_k(RANKED, {"x"}, k=5) == 0.0


def test_recall_at_k_is_the_share_of_relevant_found():
    assert m.recall_at_k(RANKED, {"d1", "d2", "x", "y"}, k=5) == 0.5
    assert m.recall_at_k(RANKED, {"d1", "d2", "x", "y"}, k=2) == 0.25
    with pytest.raises(ValueError):
        m.recall_at_k(RANKED, set(), k=5)


def test_reciprocal_rank_of_first_relevant_within_k():
    assert m.reciprocal_rank(RANKED, {"d7", "d9"}, k=5) == pytest.approx(1 / 3)
    assert m.reciprocal_rank(RANKED, {"d9"}, k=4) == 0.0
    assert m.first_relevant_rank(RANKED, {"d9"}, k=5) == 5


def test_ndcg_by_hand():
    # relevant d1 (rank 2) and d2 (rank 4): DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m.ndcg_at_k(RANKED, {"d1", "d2"}, k=5) == pytest.approx(expected)
    assert m.ndcg_at_k(["a", "b"], {"a"}, k=5) == 1.0
    assert m.ndcg_at_k(["b", "a"], {"a"}, k=1) == 0.0
    # ideal DCG is capped at k: 3 relevant ids but k = 2, both top slots relevant -> 1.0
    assert m.ndcg_at_k(["a", "b", "c"], {"a", "b", "c"}, k=2) == 1.0


def test_dedupe_keeps_first_rank_of_each_document():
    assert m.dedupe_ranked(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_percentile_matches_linear_interpolation():
    values = [10.0, 20.0, 30.0, 40.0]
    assert m.percentile(values, 50) == 25.0
    assert m.percentile(values, 95) == pytest.approx(38.5)  # pos 2.85 -> 30 + 0.85 * 10
    assert m.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        m.percentile([], 50)
    summary = m.latency_summary([1.0, 2.0, 3.0])
    assert summary["p50"] == 2.0 and summary["count"] == 3 and summary["mean"] == 2.0


def test_split_sentences_drops_markup_and_citation_marks():
    text = "Redis keeps sessions [1]. The TTL is a week!\n- Milvus stores vectors [2, 3]"
    assert m.split_sentences(text) == ["Redis keeps sessions.", "The TTL is a week!", "Milvus stores vectors"]


def test_answer_support_counts_sentences_backed_by_one_passage():
    passages = ["Sessions are stored in Redis with a TTL of seven days.",
                "Milvus Lite stores the vectors in a local file."]
    answer = ("Sessions are stored in Redis with a seven days TTL. "
              "Vectors live in a Milvus Lite local file. "
              "Kubernetes autoscales the GPU nodes with Karpenter. Yes.")
    share, unsupported = m.answer_support(answer, passages)
    # 3 counted sentences ("Yes." has no content tokens), the Karpenter one is in no passage.
    assert share == pytest.approx(2 / 3)
    assert unsupported == ["Kubernetes autoscales the GPU nodes with Karpenter."]


def test_answer_support_needs_one_passage_not_the_union():
    # Half the tokens in each passage: 0.5 < 0.6 in both, so unsupported although the union covers it.
    passages = ["alpha beta gamma", "delta epsilon zeta"]
    share, _ = m.answer_support("alpha beta gamma delta epsilon zeta", passages)
    assert share == 0.0
    assert m.sentence_support("alpha beta gamma delta", passages) == 0.75


def test_answer_support_none_without_sentences_or_passages():
    assert m.answer_support("", ["x"]) == (None, [])
    share, unsupported = m.answer_support("Redis keeps sessions.", [])
    assert share == 0.0 and unsupported == ["Redis keeps sessions."]
