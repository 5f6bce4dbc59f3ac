"""Answer generation from retrieved passages, with citations and an honest "not found".

Both backends first score every sentence of the retrieved passages against the question with the
encoder (cosine of unit vectors). If no sentence reaches `min_score`, the passages do not support
an answer and the reply says so instead of guessing; no backend call is made.

- `ExtractiveGenerator` (default, offline): the answer is the best supporting sentences, each
  followed by the [n] of the passage it came from.
- `OpenAIGenerator`: the passages go to an OpenAI-compatible /chat/completions endpoint (the GPU
  model server in the cluster) with instructions to cite them as [n].

`GenerationOptions` carries a request's `temperature` and `max_tokens` (POST /v1/chat/completions)
to the backend; each backend says below what it does with them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import numpy as np
import httpx

from agent.chunking import split_sentences
from agent.embeddings import Encoder
from agent.types import Hit

log = logging.getLogger(__name__)

NOT_FOUND = ("I could not find an answer to that in the indexed documents. "
             "Try rephrasing the question or ingest a document that covers it.")


@dataclass
class Answer:
    text: str
    citations: list[Hit] = field(default_factory=list)
    supported: bool = True
    # "length" when max_tokens shortened the answer (OpenAI's finish_reason), else "stop".
    finish_reason: str = "stop"


@dataclass(frozen=True)
class GenerationOptions:
    """One request's generation settings; None leaves the backend's default."""

    temperature: float | None = None
    max_tokens: int | None = None


DEFAULT_OPTIONS = GenerationOptions()


class GeneratorUnavailable(RuntimeError):
    """The generation backend failed or timed out."""


class Generator(Protocol):
    name: str

    async def generate(self, question: str, passages: list[Hit], question_vector: np.ndarray | None = None,
                       options: GenerationOptions = DEFAULT_OPTIONS) -> Answer: ...


@dataclass
class _Scored:
    passage: int
    sentence: str
    score: float


# Vectors for (passage, sentence) pairs from wherever they were kept; None where a vector is missing.
SentenceSource = Callable[[Sequence[Hit], Sequence[tuple[int, str]]], Awaitable[list[np.ndarray | None]]]


class SupportScorer:
    """Cosine between the question and every passage sentence.

    With a `stored` source (the sentence vectors written at ingestion, agent/stores/sentences.py)
    only sentences it lacks are encoded; without one, every sentence is encoded on every request
    (AGENT_SENTENCE_VECTORS=request, the old path). Both give the same scores."""

    def __init__(self, encoder: Encoder, min_score: float, stored: SentenceSource | None = None) -> None:
        self.encoder = encoder
        self.min_score = min_score
        self.stored = stored

    async def supported(self, question: str, passages: list[Hit],
                        question_vector: np.ndarray | None = None) -> list[_Scored] | None:
        """Scored sentences if the best one clears min_score, else None: every backend answers
        "not found" on the same rule, so an unsupported question never reaches an LLM."""
        scored = await self.score(question, passages, question_vector)
        return scored if scored and scored[0].score >= self.min_score else None

    async def score(self, question: str, passages: list[Hit],
                    question_vector: np.ndarray | None = None) -> list[_Scored]:
        """`question_vector`: the embedding retrieval already computed (saves encoding it again)."""
        items = [(i, s) for i, p in enumerate(passages) for s in split_sentences(p.text)]
        if not items:
            return []
        found: list[np.ndarray | None] = [None] * len(items)
        if self.stored is not None:
            found = await self.stored(passages, items)
        missing = [s for (_, s), v in zip(items, found, strict=True) if v is None]
        if question_vector is None:
            missing.insert(0, question)
        encoded = list(await self.encoder.encode_async(missing)) if missing else []
        if question_vector is None:
            question_vector = encoded.pop(0)
        fill = iter(encoded)
        vectors = np.stack([v if v is not None else next(fill) for v in found])
        sims = vectors @ question_vector
        scored = [_Scored(i, s, float(v)) for (i, s), v in zip(items, sims, strict=True)]
        return sorted(scored, key=lambda x: x.score, reverse=True)


class ExtractiveGenerator:
    """Quotes the best supporting sentences. It does not sample, so `temperature` has no effect.

    `max_tokens` bounds the answer in words (the unit the OpenAI endpoint's `usage` reports),
    citation marks included, by dropping the weaker sentences. Sentences are never cut: a quote
    cut short can say something its document does not, so the best sentence is always kept whole,
    even when it alone is longer than the bound.
    """

    name = "extractive"

    def __init__(self, scorer: SupportScorer, max_sentences: int = 3) -> None:
        self.scorer = scorer
        self.max_sentences = max_sentences

    async def generate(self, question: str, passages: list[Hit], question_vector: np.ndarray | None = None,
                       options: GenerationOptions = DEFAULT_OPTIONS) -> Answer:
        scored = await self.scorer.supported(question, passages, question_vector)
        if scored is None:
            return Answer(NOT_FOUND, [], supported=False)
        # Keep sentences close to the best one: a second fact is welcome, filler is not.
        floor = max(self.scorer.min_score, scored[0].score - 0.15)
        chosen: list[_Scored] = []
        words = 0
        finish_reason = "stop"
        for item in scored:
            if item.score < floor or len(chosen) == self.max_sentences:
                break
            if item.sentence in (c.sentence for c in chosen):
                continue
            length = len(item.sentence.split()) + 1  # + its [n]
            if options.max_tokens is not None and words + length > options.max_tokens:
                finish_reason = "length"
                if chosen:
                    break
            chosen.append(item)
            words += length
        cited: list[int] = []
        parts = []
        for item in chosen:
            if item.passage not in cited:
                cited.append(item.passage)
            sentence = item.sentence if item.sentence[-1] in ".!?" else item.sentence + "."
            parts.append(f"{sentence} [{cited.index(item.passage) + 1}]")
        return Answer(" ".join(parts), [passages[i] for i in cited], supported=True, finish_reason=finish_reason)


class OpenAIGenerator:
    """Sends the passages to an OpenAI-compatible backend.

    `max_tokens` (the constructor's, AGENT_GENERATOR_MAX_TOKENS) is the default and the ceiling:
    a request's `max_tokens` is sent when it is lower, so no client can make the model server
    generate more than the operator allows. `temperature` defaults to 0 (answers stick to the
    passages) and a request's value is sent as given.
    """

    name = "openai"

    SYSTEM = ("You answer questions using only the numbered passages provided. Cite every claim with the "
              "passage number in brackets, like [1]. If the passages do not contain the answer, say that "
              "you could not find it in the documents. Be concise.")

    def __init__(self, client: httpx.AsyncClient, model: str, scorer: SupportScorer, max_tokens: int = 512) -> None:
        self.client = client     # base_url, auth header and timeout are set by the app factory
        self.model = model
        self.scorer = scorer
        self.max_tokens = max_tokens

    async def generate(self, question: str, passages: list[Hit], question_vector: np.ndarray | None = None,
                       options: GenerationOptions = DEFAULT_OPTIONS) -> Answer:
        scored = await self.scorer.supported(question, passages, question_vector)
        if scored is None:
            return Answer(NOT_FOUND, [], supported=False)
        context = "\n\n".join(f"[{i + 1}] {p.text}" for i, p in enumerate(passages))
        max_tokens = self.max_tokens if options.max_tokens is None else min(options.max_tokens, self.max_tokens)
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": self.SYSTEM},
                         {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"}],
            "max_tokens": max_tokens,
            "temperature": 0 if options.temperature is None else options.temperature,
        }
        try:
            response = await self.client.post("chat/completions", json=body)
            response.raise_for_status()
            choice = response.json()["choices"][0]
            text = choice["message"]["content"].strip()
            finish_reason = "length" if choice.get("finish_reason") == "length" else "stop"
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("generator call failed", extra={"error": str(exc)})
            raise GeneratorUnavailable(f"generator backend at {self.client.base_url} failed: {exc}") from exc
        used = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text) if 0 < int(n) <= len(passages)})
        # Renumber to the citations list we return, so [1] is always citations[0].
        mapping = {old: new + 1 for new, old in enumerate(used)}
        text = re.sub(r"\[(\d+)\]", lambda m: f"[{mapping.get(int(m.group(1)), m.group(1))}]", text)
        cited = [passages[n - 1] for n in used] or passages
        return Answer(text, cited, supported=True, finish_reason=finish_reason)

