"""Retrieval and answer metrics, as pure functions over ranked ids and texts.

Every function here is deterministic and dependency-free so the gate's numbers can be checked by
hand (tests/eval/test_metrics.py does exactly that) and reused by the benchmarks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence


def dedupe_ranked(ids: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each id, in rank order (several chunks of one document)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in ids:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def first_relevant_rank(ranked: Sequence[str], relevant: Iterable[str], k: int) -> int | None:
    """1-based rank of the first relevant id within the top k, or None."""
    wanted = set(relevant)
    for rank, item in enumerate(ranked[:k], start=1):
        if item in wanted:
            return rank
    return None


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 if any relevant id is in the top k, else 0.0."""
    return 0.0 if first_relevant_rank(ranked, relevant, k) is None else 1.0


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant ids found in the top k."""
    wanted = set(relevant)
    if not wanted:
        raise ValueError("recall@k needs at least one relevant id")
    return len(wanted & set(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1/rank of the first relevant id within the top k (0.0 when none); the mean is MRR@k."""
    rank = first_relevant_rank(ranked, relevant, k)
    return 0.0 if rank is None else 1.0 / rank


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG@k: DCG = sum rel_i / log2(i + 1), normalised by the ideal ranking."""
    wanted = set(relevant)
    if not wanted:
        raise ValueError("nDCG@k needs at least one relevant id")
    dcg = sum(1.0 / math.log2(i + 1) for i, item in enumerate(ranked[:k], start=1) if item in wanted)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float] | None:
    if not values_ms:
        return None
    return {
        "p50": round(percentile(values_ms, 50), 3),
        "p95": round(percentile(values_ms, 95), 3),
        "p99": round(percentile(values_ms, 99), 3),
        "mean": round(sum(values_ms) / len(values_ms), 3),
        "count": len(values_ms),
    }


# --- answer support -----------------------------------------------------------------------------
# A sentence is "supported" when one cited passage contains at least SUPPORT_THRESHOLD of the
# sentence's content tokens (lower-cased words and numbers, stop words removed). Token overlap is
# crude next to an NLI model, but it is deterministic, explainable in one line, costs nothing, and
# catches what the gate is for: sentences whose words appear in none of the passages they cite.
SUPPORT_THRESHOLD = 0.6

_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its it's may might more most must no not of on or our should so such than that the
    their them then there these they this those to was we were what when where which while who why
    will with would you your yes also only very just about over any each all both other some""".split()
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[._'-][a-z0-9]+)*")
# Sentence ends: . ! ? followed by space, or a line break; markdown bullets/headings become breaks.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKUP = re.compile(r"^\s*(?:[-*+]|\d+[.)]|#+)\s+")
_CITATION_MARK = re.compile(r"\s*\[\d+(?:,\s*\d+)*\]")


def content_tokens(text: str) -> set[str]:
    return {t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS and len(t) > 1}


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer, with list markers and citation marks like [1] removed."""
    out = []
    for piece in _SENTENCE_END.split(_CITATION_MARK.sub("", text)):
        piece = _MARKUP.sub("", piece).strip()
        if piece:
            out.append(piece)
    return out


def sentence_support(sentence: str, passages: Sequence[str]) -> float | None:
    """Best share of the sentence's content tokens found in a single passage; None if it has none."""
    tokens = content_tokens(sentence)
    if not tokens:
        return None
    best = 0.0
    for passage in passages:
        best = max(best, len(tokens & content_tokens(passage)) / len(tokens))
    return best


def answer_support(answer: str, passages: Sequence[str],
                   threshold: float = SUPPORT_THRESHOLD) -> tuple[float | None, list[str]]:
    """(share of supported sentences, the unsupported sentences); share is None for no sentences.

    Sentences without content tokens ("Yes.", "See below:") are not counted either way.
    """
    counted = 0
    supported = 0
    unsupported: list[str] = []
    for sentence in split_sentences(answer):
        score = sentence_support(sentence, passages)
        if score is None:
            continue
        counted += 1
        if score >= threshold:
            supported += 1
        else:
            unsupported.append(sentence)
    if counted == 0:
        return None, []
    return supported / counted, unsupported


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
