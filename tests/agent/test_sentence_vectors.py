"""Sentence vectors written at ingestion: /chat's answers are the same as when every sentence is
encoded per request (the old path), without encoding any sentence per request; a missing row
falls back to encoding; re-ingest and delete leave no stale rows. Real model, real Milvus Lite."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agent.chunking import Chunker
from agent.embeddings import Encoder
from agent.generation import ExtractiveGenerator, SupportScorer
from agent.observability import Metrics
from agent.retrieval import Retriever, SourceDocument
from agent.stores.sentences import sentence_key
from agent.stores.vectors import VectorStore

from .conftest import CORPUS

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "Which volcano threatens Catania?", "How do I feed a sourdough starter?", "What causes spring tides?",
    "Can you castle out of check?", "What does chlorophyll absorb?", "How do I patch an inner tube?",
    "How long does an espresso shot take?", "Who incubates the emperor penguin egg?",
    "How do vaccines train the immune system?", "What do I need for a warranty claim on the XK-42?",
    "How long is a marathon?", "Why is glacier ice blue?", "What is the TTL of a session?",
    "How does the agent split documents into chunks?", "Which settings control the rate limit?",
    "What happens when Milvus is down?", "How are secrets mounted?", "quantum chromodynamics of gluons",
]


class CountingEncoder:
    """The real encoder, counting the texts each call encodes."""

    def __init__(self, encoder: Encoder) -> None:
        self.inner = encoder
        self.calls: list[int] = []

    def encode(self, texts, batch_size=None):
        self.calls.append(len(texts))
        return self.inner.encode(texts, batch_size)

    async def encode_async(self, texts, batch_size=None):
        self.calls.append(len(texts))
        return await self.inner.encode_async(texts, batch_size)


def answers(retriever: Retriever, generator: ExtractiveGenerator) -> list[tuple[str, list[str], bool]]:
    async def run() -> list[tuple[str, list[str], bool]]:
        out = []
        for q in QUESTIONS:
            vector = (await retriever.embed([q]))[0]
            passages = await retriever.search(q, 5, vector=vector)
            a = await generator.generate(q, passages, question_vector=vector)
            out.append((a.text, [c.chunk_id for c in a.citations], a.supported))
        return out

    return anyio.run(run)


@pytest.fixture
def retriever(tmp_path: Path, encoder: Encoder) -> Retriever:
    store = VectorStore.lite(tmp_path, "sentences", encoder.dim)
    r = Retriever(encoder, store, Metrics(), Chunker.for_encoder(encoder, 128, 16))
    docs = [SourceDocument(k, v, {}) for k, v in CORPUS.items()]
    docs.append(SourceDocument("agent.md", (REPO / "docs" / "agent.md").read_text(), {}, "The agent"))
    anyio.run(r.ingest, docs)
    yield r
    store.close()


def test_stored_sentence_vectors_give_the_same_answers_without_encoding_sentences(
        retriever: Retriever, encoder: Encoder) -> None:
    old = ExtractiveGenerator(SupportScorer(encoder, 0.35))  # every sentence encoded per request
    counting = CountingEncoder(encoder)
    new = ExtractiveGenerator(SupportScorer(counting, 0.35, retriever.stored_sentence_vectors))  # type: ignore[arg-type]
    before = answers(retriever, old)
    after = answers(retriever, new)
    assert after == before  # same sentences chosen, same citations, same "not found"
    assert sum(supported for _, _, supported in before) >= len(QUESTIONS) - 3  # a real test: mostly answered
    assert not any(not supported for _, _, supported in before[:12]), "each CORPUS question has its answer"
    assert counting.calls == [], "no sentence was encoded at request time"


def test_a_missing_row_is_encoded_at_request_time(retriever: Retriever, encoder: Encoder) -> None:
    store = retriever.sentences()
    sentence = "A single shot takes roughly twenty-five seconds to extract."
    assert store.lookup([("coffee", sentence)])[0] is not None
    key = sentence_key("coffee", sentence)
    with retriever.store._guard():
        retriever.store.client.delete(store.collection, filter=f'key in ["{key}"]')
    counting = CountingEncoder(encoder)
    scorer = SupportScorer(counting, 0.35, retriever.stored_sentence_vectors)  # type: ignore[arg-type]
    q = "How long does an espresso shot take?"
    passages = anyio.run(retriever.search, q, 3)
    reference = anyio.run(SupportScorer(encoder, 0.35).score, q, passages)
    scored = anyio.run(scorer.score, q, passages)
    assert [(s.passage, s.sentence) for s in scored] == [(s.passage, s.sentence) for s in reference]
    assert [round(s.score, 5) for s in scored] == [round(s.score, 5) for s in reference]
    assert counting.calls == [2]  # the question and the one sentence without a row


def test_reingest_and_delete_leave_no_stale_rows(retriever: Retriever) -> None:
    store = retriever.sentences()
    old = "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars of pressure."
    assert store.lookup([("coffee", old)])[0] is not None
    anyio.run(retriever.ingest, [SourceDocument("coffee", "Filter coffee drips through paper by gravity alone.", {})])
    assert store.lookup([("coffee", old)]) == [None]
    assert store.lookup([("coffee", "Filter coffee drips through paper by gravity alone.")])[0] is not None
    total = store.count()
    anyio.run(retriever.delete, "coffee")
    assert store.count() == total - 1
    assert store.lookup([("coffee", "Filter coffee drips through paper by gravity alone.")]) == [None]
