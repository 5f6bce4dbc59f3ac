"""Hostile input through a real server process: it must stay fast, answer 4xx, never 500 or hang.

Bounds are generous (a loaded, shared 2-core machine) but catastrophic behaviour, a regex that
backtracks exponentially, a blocked event loop, a 500, still fails them by orders of magnitude.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import time
from collections.abc import Iterator

import httpx
import pytest

from agent.perception import perceive

from .conftest import AUTH, AgentProcess

# Families of messages that make backtracking matchers explode; 3,900 characters each (under the
# default AGENT_MAX_MESSAGE_CHARS, so they reach perception).
ADVERSARIAL = {
    "sum then a letter": "1" + "+1 " * 1300 + "x",
    "spaced digits": "1" + " 1" * 1950 + "x",
    "dotted digits": "1" + ".1" * 1950 + "+",
    "open parens": "(" * 3899 + "1",
    "signs": "1" + "+-" * 1949 + "x",
    "operators": "1" + "**" * 1949 + "x",
    "whitespace": "1 +" + " " * 3890 + "x",
}


@pytest.mark.parametrize("message", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_perception_is_linear_on_adversarial_messages(message: str) -> None:
    start = time.perf_counter()
    perception = perceive(message)
    assert time.perf_counter() - start < 0.25, "perception must be linear in the message length"
    assert perception.intent == "question"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[AgentProcess]:
    """One real agent process for the module's HTTP tests."""
    tmp = tmp_path_factory.mktemp("hostile")
    proc = AgentProcess(tmp / "data", {"AGENT_REDIS_URL": redis_url}, tmp / "agent.log")
    proc.start()
    try:
        with proc.client() as client:
            assert client.post("/documents", json={"documents": [
                {"id": "tides", "text": "Ocean tides are caused mainly by the gravitational pull of the Moon."}]}
            ).status_code == 200
        yield proc
    finally:
        proc.stop()


def _probe_while(url: str, busy: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=10) as probe:
        while busy.is_set():
            start = time.perf_counter()
            try:
                probe.get("/healthz")
            except httpx.TimeoutException:
                pass
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)


def test_hostile_chat_message_does_not_stall_the_event_loop(server: AgentProcess) -> None:
    # The reproducer: 71 characters stalled /healthz for 1.2 s; ~100 hung the pod.
    messages = ["1" + "+1 " * n + "x" for n in (23, 33, 40)] + [ADVERSARIAL["sum then a letter"]]
    latencies: list[float] = []
    busy = threading.Event()
    busy.set()
    prober = threading.Thread(target=_probe_while, args=(server.url, busy, latencies))
    prober.start()
    try:
        with server.client(timeout=20) as client:
            for message in messages:
                start = time.perf_counter()
                try:
                    response = client.post("/chat", json={"message": message})
                finally:
                    elapsed = time.perf_counter() - start
                assert response.status_code == 200, response.text
                assert response.json()["intent"] == "question"
                assert elapsed < 10, f"/chat took {elapsed:.1f}s on a {len(message)}-character message"
    finally:
        busy.clear()
        prober.join(timeout=15)
    assert latencies and max(latencies) < 1.0, f"/healthz stalled {max(latencies):.2f}s behind a chat message"


# ------------------------------------------------------------------ ids, Unicode, surrogates
IDS = ["café", "文档-1", 'say "hi"', "back\\slash", "it's", "a/b?c#d", "emoji 🦜", "\\\"'", "文" * 256]


def test_any_printable_id_is_ingested_found_replaced_and_deleted(make_settings, encoder) -> None:
    from fastapi.testclient import TestClient

    from agent.api import create_app

    with TestClient(create_app(make_settings(), encoder=encoder)) as client:
        docs = [{"id": doc_id, "text": f"Lighthouse number {i} guards the {doc_id[:20]} harbour."}
                for i, doc_id in enumerate(IDS)]
        first = client.post("/documents", headers=AUTH, json={"documents": docs})
        assert first.status_code == 200, first.text
        again = client.post("/documents", headers=AUTH, json={"documents": docs})
        assert again.json()["replaced_chunks"] == len(IDS), again.text
        hits = client.post("/retrieve", headers=AUTH, json={"query": "lighthouse harbour", "top_k": 50}).json()["hits"]
        assert sorted(h["document_id"] for h in hits) == sorted(IDS)
        assert {h["chunk_id"] for h in hits} == {f"{i}#0" for i in IDS}
        for doc_id in IDS:
            path = "/documents/" + urllib.parse.quote(doc_id, safe="")
            deleted = client.delete(path, headers=AUTH)
            assert deleted.status_code == 200, (doc_id, deleted.text)
            assert deleted.json() == {"document_id": doc_id, "deleted_chunks": 1}
            assert client.delete(path, headers=AUTH).status_code == 404
        assert client.get("/readyz").json()["checks"]["milvus"]["detail"]["chunks"] == 0
        metrics = client.get("/metrics").text
        assert 'agent_dependency_errors_total{dependency="milvus"}' not in metrics


SURROGATE = "\ud800"


@pytest.mark.parametrize(("method", "path", "body", "loc"), [
    ("post", "/chat", {"message": f"hi {SURROGATE}"}, ["body", "message"]),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": SURROGATE}]},
     ["body", "messages", 0, "content"]),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
     ["body", "messages", 0, "content", 0, "text"]),
    ("post", "/documents", {"documents": [{"id": f"x{SURROGATE}", "text": "t"}]}, ["body", "documents", 0, "id"]),
    ("post", "/documents", {"documents": [{"id": "x", "text": SURROGATE}]}, ["body", "documents", 0, "text"]),
    ("post", "/documents", {"documents": [{"id": "x", "text": "t", "metadata": {"k": [SURROGATE]}}]},
     ["body", "documents", 0, "metadata", "k", 0]),
    ("post", "/documents", {"documents": [{"id": "x", "text": "t", "metadata": {SURROGATE: 1}}]},
     ["body", "documents", 0, "metadata", "\\ud800"]),
    ("post", "/retrieve", {"query": SURROGATE}, ["body", "query"]),
    ("post", "/invoke", {"tool": "calculator", "arguments": {"expression": SURROGATE}}, ["body", "arguments", "expression"]),
])
def test_a_lone_surrogate_anywhere_is_a_422_naming_the_field(corpus_client, method, path, body, loc) -> None:
    # json.dumps escapes the surrogate as \\ud800, as a hostile client would send it.
    response = corpus_client.request(method, path, headers={**AUTH, "Content-Type": "application/json"},
                                     content=json.dumps(body).encode())
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert response.json()["detail"][0]["type"] == "string_unicode"


def test_a_surrogate_pair_is_one_valid_character(corpus_client) -> None:
    response = corpus_client.post("/chat", headers={**AUTH, "Content-Type": "application/json"},
                                  content=b'{"message": "parrot \\ud83e\\udd9c?"}')
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"message": "unterminated', ["body", 12]),
    (b'{"message": "\xff\xfe"}', ["body", 13]),                 # not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, ["body"]),              # deeper than the decoder's stack
    (b'{"message": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}", None),   # deep but parseable
    (b"", ["body"]),
    (b"null", ["body"]),
])
def test_malformed_json_is_a_422_never_a_400_or_500(corpus_client, body: bytes, loc) -> None:
    response = corpus_client.post("/chat", headers={**AUTH, "Content-Type": "application/json"}, content=body)
    assert response.status_code == 422, response.text
    if loc is not None:
        assert response.json()["detail"][0]["loc"] == loc


def test_control_characters_and_unicode_everywhere_are_answered(corpus_client) -> None:
    nasty = "\x00\x07\x1b[31m\u202e\u200b\ufeff\U0010ffff 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷽ e\u0301 tides?"
    for method, path, body in [
        ("post", "/chat", {"message": nasty}),
        ("post", "/retrieve", {"query": nasty}),
        ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": nasty}]}),
        ("post", "/documents", {"documents": [{"id": "nasty", "text": nasty, "title": nasty,
                                               "metadata": {nasty: nasty, "n": [nasty, {"x": nasty}]}}]}),
        ("post", "/invoke", {"tool": "calculator", "arguments": {"expression": nasty}}),
    ]:
        response = corpus_client.request(method, path, headers=AUTH, json=body)
        assert response.status_code in (200, 400), (path, response.status_code, response.text)
    hits = corpus_client.post("/retrieve", headers=AUTH, json={"query": nasty, "top_k": 50}).json()["hits"]
    stored = next(h for h in hits if h["document_id"] == "nasty")
    assert stored["metadata"] == {nasty: nasty, "n": [nasty, {"x": nasty}]}
    assert corpus_client.delete("/documents/nasty", headers=AUTH).status_code == 200


# ------------------------------------------------------------------ bounded sizes
def test_metadata_is_bounded_so_responses_are_too(corpus_client) -> None:
    # The request: 1.2 MB of metadata, copied onto each of 50 chunks, a 60 MB /retrieve.
    huge = {"documents": [{"id": "fat", "text": "Walruses haul out on ice floes. " * 1500,
                           "metadata": {"blob": "x" * 1_200_000}}]}
    response = corpus_client.post("/documents", headers=AUTH, json=huge)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["detail"][0]["loc"] == ["body", "documents", 0, "metadata"]
    assert "AGENT_MAX_METADATA_BYTES" in response.json()["message"]
    deep: dict = {}
    for _ in range(9):
        deep = {"d": deep}
    too_deep = corpus_client.post("/documents", headers=AUTH, json={"documents": [
        {"id": "deep", "text": "t", "metadata": deep}]})
    assert too_deep.status_code == 422 and "AGENT_MAX_METADATA_DEPTH" in too_deep.json()["message"]

    # At the limit: every hit carries it, and the largest /retrieve stays under a megabyte.
    fat = {"documents": [{"id": "fat", "text": "Walruses haul out on ice floes. " * 1500,
                          "metadata": {"blob": "x" * 8000}}]}
    assert corpus_client.post("/documents", headers=AUTH, json=fat).status_code == 200
    biggest = corpus_client.post("/retrieve", headers=AUTH, json={"query": "walrus ice floes", "top_k": 50})
    assert biggest.status_code == 200 and len(biggest.json()["hits"]) >= 40
    assert len(biggest.content) < 1_000_000, len(biggest.content)
    assert corpus_client.delete("/documents/fat", headers=AUTH).status_code == 200


def test_huge_and_deeply_nested_bodies_are_refused_fast(corpus_client) -> None:
    for body in (b'{"message": "' + b"a" * 3_000_000 + b'"}',          # over AGENT_MAX_BODY_BYTES
                 b'{"message": "hi", "x": ' + b"[" * 500_000 + b"]" * 500_000 + b"}",
                 b'{"message": "hi", "x": ' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}"):
        start = time.perf_counter()
        response = corpus_client.post("/chat", headers={**AUTH, "Content-Type": "application/json"}, content=body)
        assert response.status_code in (413, 422), response.text[:200]
        assert time.perf_counter() - start < 5
