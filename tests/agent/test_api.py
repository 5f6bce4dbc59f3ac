"""Every route against the real model, Milvus Lite and a real Redis server."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import API_KEY, AUTH, CORPUS


# ------------------------------------------------------------------ retrieval
@pytest.mark.parametrize(("query", "expected"), [
    ("Which volcano threatens Catania?", "volcano"),
    ("how do I repair a punctured inner tube", "bicycle"),
    ("what happens when the Moon and Sun line up", "tides"),
    ("how is the immune system trained", "vaccines"),
    ("XK-42 warranty claim", "warranty"),                             # rare token: BM25 side
    ("1908 London", "marathon"),
    ("How long is a marathon in km?", "marathon"),
    ("which bird keeps its egg on its feet in the Antarctic", "penguins"),
])
def test_hybrid_retrieval_finds_the_right_document(corpus_client: TestClient, query: str, expected: str) -> None:
    response = corpus_client.post("/retrieve", headers=AUTH, json={"query": query, "top_k": 3})
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert hits[0]["document_id"] == expected, [h["document_id"] for h in hits]
    assert hits[0]["chunk_id"].startswith(f"{expected}#")
    assert hits[0]["text"] in CORPUS[expected]
    assert hits[0]["metadata"] == {"topic": expected}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_retrieve_top_k_bounds_name_the_field(corpus_client: TestClient) -> None:
    for top_k in (0, 51):
        response = corpus_client.post("/retrieve", headers=AUTH, json={"query": "tides", "top_k": top_k})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "top_k"]
        assert "top_k" in response.json()["message"]
    assert len(corpus_client.post("/retrieve", headers=AUTH, json={"query": "tides", "top_k": 2}).json()["hits"]) == 2


def test_field_length_limit_names_the_field(corpus_client: TestClient) -> None:
    response = corpus_client.post("/chat", headers=AUTH, json={"message": "x" * 4001})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "message"]
    response = corpus_client.post("/documents", headers=AUTH, json={"documents": [{"id": "bad\x01id", "text": "t"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "documents", 0, "id"]


def test_body_size_limit_is_413(corpus_client: TestClient) -> None:
    big = {"documents": [{"id": "big", "text": "word " * 500_000}]}   # ~2.5 MB > 2 MB default
    response = corpus_client.post("/documents", headers=AUTH, json=big)
    assert response.status_code == 413
    assert "AGENT_MAX_BODY_BYTES" in response.json()["detail"]


def test_body_limit_applies_to_chunked_bodies_too(corpus_client: TestClient) -> None:
    def chunks():
        for _ in range(300):
            yield b"x" * 10_000

    response = corpus_client.post("/documents", headers={**AUTH, "Content-Type": "application/json"},
                                  content=chunks())
    assert response.status_code == 413


# ------------------------------------------------------------------ auth
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY},
                                     {"Authorization": f"Basic {API_KEY}"}])
def test_protected_routes_need_a_valid_key(corpus_client: TestClient, headers: dict) -> None:
    calls = [("post", "/retrieve", {"query": "q"}), ("post", "/chat", {"message": "hi"}),
             ("post", "/documents", {"documents": [{"id": "a", "text": "b"}]}), ("delete", "/documents/a", None),
             ("get", "/sessions/abc", None), ("get", "/tools", None),
             ("post", "/invoke", {"tool": "calculator", "arguments": {"expression": "1+1"}}),
             ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})]
    for method, path, body in calls:
        response = corpus_client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_probes_and_metrics_are_open(corpus_client: TestClient) -> None:
    assert corpus_client.get("/healthz").json() == {"status": "ok"}
    ready = corpus_client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {"redis", "milvus", "model"} <= set(body["checks"])
    assert body["checks"]["milvus"]["detail"]["chunks"] >= len(CORPUS)
    assert corpus_client.get("/metrics").status_code == 200


def test_any_listed_key_works(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(api_keys="first-key\nsecond-key"), encoder=encoder)) as client:
        for key in ("first-key", "second-key"):
            assert client.get("/tools", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/tools", headers={"Authorization": "Bearer first"}).status_code == 401


# ------------------------------------------------------------------ ingestion
def test_ingestion_is_idempotent_by_id_and_delete_removes(make_settings, encoder) -> None:
    long_text = " ".join(f"Sentence number {i} talks about lighthouse keepers and their lamps." for i in range(60))
    with TestClient(create_app(make_settings(), encoder=encoder)) as client:
        first = client.post("/documents", headers=AUTH, json={"documents": [{"id": "doc/1", "text": long_text}]})
        assert first.status_code == 200
        assert first.json()["chunks"] > 1                    # long text was chunked
        assert first.json()["replaced_chunks"] == 0
        again = client.post("/documents", headers=AUTH, json={"documents": [{"id": "doc/1", "text": long_text}]})
        assert again.json() == {**first.json(), "replaced_chunks": first.json()["chunks"]}
        ready = client.get("/readyz").json()
        assert ready["checks"]["milvus"]["detail"]["chunks"] == first.json()["chunks"]

        # Re-ingest with different text replaces: the old chunks are gone.
        client.post("/documents", headers=AUTH, json={"documents": [
            {"id": "doc/1", "text": "Only about espresso pressure now."}]})
        hits = client.post("/retrieve", headers=AUTH, json={"query": "lighthouse keepers", "top_k": 5}).json()["hits"]
        assert [h["text"] for h in hits] == ["Only about espresso pressure now."]

        deleted = client.delete("/documents/doc/1", headers=AUTH)
        assert deleted.status_code == 200
        assert deleted.json() == {"document_id": "doc/1", "deleted_chunks": 1}
        assert client.delete("/documents/doc/1", headers=AUTH).status_code == 404
        assert client.post("/retrieve", headers=AUTH, json={"query": "espresso"}).json()["hits"] == []


def test_document_title_heads_every_chunk_and_finds_its_topic(make_settings, encoder) -> None:
    # Only the title says what the document is about; its body never names the topic.
    body = " ".join(f"Step {i}: turn the valve a quarter and wait for the gauge to settle." for i in range(40))
    other = " ".join(f"Step {i}: knead the dough and let it rest under a cloth." for i in range(40))
    with TestClient(create_app(make_settings(), encoder=encoder)) as client:
        response = client.post("/documents", headers=AUTH, json={"documents": [
            {"id": "boiler", "text": body, "title": "Bleeding a steam radiator"},
            {"id": "bread", "text": other, "title": "Baking sourdough bread"}]})
        assert response.status_code == 200 and response.json()["chunks"] > 4
        hits = client.post("/retrieve", headers=AUTH,
                           json={"query": "how to bleed a steam radiator", "top_k": 10}).json()["hits"]
        assert hits and all(h["text"].startswith("Bleeding a steam radiator\n") for h in hits
                            if h["document_id"] == "boiler")
        assert {h["document_id"] for h in hits[:4]} == {"boiler"}
        too_long = client.post("/documents", headers=AUTH, json={"documents": [
            {"id": "x", "text": "body", "title": "t" * 513}]})
        assert too_long.status_code == 422 and "title" in too_long.text


def test_an_id_sent_twice_in_one_request_is_written_once_with_its_last_text(corpus_client: TestClient) -> None:
    # The schema cannot forbid it, so the server accepts it: as if the two were sent in order.
    response = corpus_client.post("/documents", headers=AUTH, json={"documents": [
        {"id": "dup", "text": "Zebras have stripes."}, {"id": "dup", "text": "Zebus have humps."}]})
    assert response.status_code == 200, response.text
    assert response.json()["documents"] == 1 and response.json()["chunks"] == 1
    hits = corpus_client.post("/retrieve", headers=AUTH, json={"query": "zebra zebu", "top_k": 50}).json()["hits"]
    assert [h["text"] for h in hits if h["document_id"] == "dup"] == ["Zebus have humps."]
    assert corpus_client.delete("/documents/dup", headers=AUTH).status_code == 200


def test_schema_and_server_agree_on_the_issue_cases(corpus_client: TestClient) -> None:
    schema = corpus_client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["RetrieveRequest"]["properties"]["top_k"]["maximum"] == 50          # AGENT_MAX_TOP_K
    assert schema["ChatRequest"]["properties"]["message"]["maxLength"] == 4000        # AGENT_MAX_MESSAGE_CHARS
    assert schema["ChatCompletionRequest"]["properties"]["messages"]["contains"]["properties"]["role"] == {
        "const": "user"}
    for blank in (" ", "\t\n", "\u3000\ufeff", "\x00\x1f"):
        response = corpus_client.post("/chat", headers=AUTH, json={"message": blank})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "message"], blank
    openai = corpus_client.post("/v1/chat/completions", headers=AUTH,
                                json={"messages": [{"role": "user", "content": "  \n "}]}).json()
    assert openai["citations"] == [] and "no text" in openai["choices"][0]["message"]["content"]


# ------------------------------------------------------------------ chat
def test_chat_answers_with_citations_from_the_right_document(corpus_client: TestClient) -> None:
    response = corpus_client.post("/chat", headers=AUTH, json={"message": "What pressure is espresso brewed at?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["intent"] == "question"
    assert body["supported"] is True
    assert "nine bars" in body["answer"]
    assert "[1]" in body["answer"]
    assert body["citations"][0]["document_id"] == "coffee"


def test_chat_says_so_when_documents_do_not_support_an_answer(corpus_client: TestClient) -> None:
    body = corpus_client.post("/chat", headers=AUTH,
                              json={"message": "Who composed the opera Turandot?"}).json()
    assert body["supported"] is False
    assert body["citations"] == []
    assert "could not find" in body["answer"]


def test_follow_up_uses_session_history(corpus_client: TestClient) -> None:
    first = corpus_client.post("/chat", headers=AUTH, json={"message": "How do emperor penguins incubate the egg?"})
    session_id = first.json()["session_id"]
    follow = corpus_client.post("/chat", headers=AUTH, json={"message": "and for how long?", "session_id": session_id})
    body = follow.json()
    assert body["intent"] == "follow_up"
    assert body["session_id"] == session_id
    assert body["citations"][0]["document_id"] == "penguins"
    assert "two months" in body["answer"]

    session = corpus_client.get(f"/sessions/{session_id}", headers=AUTH)
    assert session.status_code == 200
    messages = session.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "and for how long?"
    assert 0 < session.json()["ttl_seconds"] <= 7 * 24 * 3600


def test_chat_intents_chit_chat_and_tool_call(corpus_client: TestClient) -> None:
    hello = corpus_client.post("/chat", headers=AUTH, json={"message": "Hello!"}).json()
    assert hello["intent"] == "chit_chat" and hello["citations"] == []
    calc = corpus_client.post("/chat", headers=AUTH, json={"message": "what is (12 + 3) * 4?"}).json()
    assert calc["intent"] == "tool_call"
    assert calc["tool_result"] == {"expression": "(12 + 3) * 4", "value": 60}
    assert "60" in calc["answer"]


def test_unknown_session_is_404_and_sessions_are_per_key(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(api_keys="key-a,key-b"), encoder=encoder)) as client:
        a = {"Authorization": "Bearer key-a"}
        b = {"Authorization": "Bearer key-b"}
        session_id = client.post("/chat", headers=a, json={"message": "hi"}).json()["session_id"]
        assert client.get(f"/sessions/{session_id}", headers=a).status_code == 200
        assert client.get(f"/sessions/{session_id}", headers=b).status_code == 404
        assert client.get("/sessions/never-made", headers=a).status_code == 404


def test_history_is_bounded(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(session_max_messages=4), encoder=encoder)) as client:
        session_id = "bounded-session"
        for i in range(4):
            client.post("/chat", headers=AUTH, json={"message": f"hello number {i}?", "session_id": session_id})
        messages = client.get(f"/sessions/{session_id}", headers=AUTH).json()["messages"]
        assert len(messages) == 4
        assert messages[0]["content"] == "hello number 2?"


# ------------------------------------------------------------------ tools
def test_tools_and_invoke(corpus_client: TestClient) -> None:
    tools = corpus_client.get("/tools", headers=AUTH).json()["tools"]
    assert {t["name"] for t in tools} == {"calculator", "retrieve"}
    calc = next(t for t in tools if t["name"] == "calculator")
    assert "expression" in calc["arguments_schema"]["properties"]

    result = corpus_client.post("/invoke", headers=AUTH, json={"tool": "calculator",
                                                               "arguments": {"expression": "2 ** 10 - 24"}})
    assert result.status_code == 200
    assert result.json() == {"tool": "calculator", "result": {"expression": "2 ** 10 - 24", "value": 1000}}

    search = corpus_client.post("/invoke", headers=AUTH, json={"tool": "retrieve",
                                                                "arguments": {"query": "castling", "top_k": 1}})
    assert search.json()["result"]["hits"][0]["document_id"] == "chess"


# ------------------------------------------------------------------ OpenAI-compatible
def test_openai_compatible_chat_completions(corpus_client: TestClient) -> None:
    response = corpus_client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "rag-agent", "temperature": 0.2, "user": "someone",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "What does chlorophyll absorb?"}]}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert "sunlight" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["citations"][0]["document_id"] == "photosynthesis"


def test_openai_compatible_follow_up_and_streaming(corpus_client: TestClient) -> None:
    messages = [{"role": "user", "content": "How are glaciers formed?"},
                {"role": "assistant", "content": "From snow that does not melt."},
                {"role": "user", "content": "and how does it move?"}]
    with corpus_client.stream("POST", "/v1/chat/completions", headers=AUTH,
                              json={"messages": messages, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    first = json.loads(events[0])
    assert first["object"] == "chat.completion.chunk"
    assert "downhill" in first["choices"][0]["delta"]["content"]
    no_user = corpus_client.post("/v1/chat/completions", headers=AUTH,
                                 json={"messages": [{"role": "system", "content": "x"}]})
    assert no_user.status_code == 422


def test_openai_compatible_options_shape_the_extractive_answer(corpus_client: TestClient) -> None:
    def ask(**options) -> tuple[str, int]:
        response = corpus_client.post("/v1/chat/completions", headers=AUTH, json={
            "messages": [{"role": "user", "content": "Tell me about photosynthesis"}], **options})
        assert response.status_code == 200, response.text
        body = response.json()
        return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"]

    full, full_words = ask()
    parts = re.split(r"(?<=\]) ", full)        # "sentence [n]" each, best first
    assert len(parts) == 2, full
    first, first_words = parts[0], len(parts[0].split())
    # max_tokens is a budget in words (the unit of usage), citation marks included.
    assert ask(max_tokens=full_words) == (full, full_words)
    assert ask(max_tokens=full_words - 1) == (first, first_words)      # the weaker sentence goes
    assert ask(max_tokens=first_words) == (first, first_words)
    # A sentence is never cut: a budget smaller than the best sentence still gets all of it.
    assert ask(max_tokens=1) == (first, first_words)
    def finish(**options) -> str:
        return corpus_client.post("/v1/chat/completions", headers=AUTH, json={
            "messages": [{"role": "user", "content": "Tell me about photosynthesis"}], **options}
        ).json()["choices"][0]["finish_reason"]

    assert finish() == finish(max_tokens=full_words) == "stop"
    assert finish(max_tokens=full_words - 1) == finish(max_tokens=1) == "length"
    # OpenAI's newer name for the same bound.
    assert ask(max_completion_tokens=full_words - 1) == (first, first_words)
    conflict = corpus_client.post("/v1/chat/completions", headers=AUTH, json={
        "messages": [{"role": "user", "content": "Tell me about photosynthesis"}],
        "max_tokens": 5, "max_completion_tokens": 6})
    assert conflict.status_code == 422 and "send one of them" in conflict.text
    # The extractive generator does not sample: temperature changes nothing.
    assert ask(temperature=0) == ask(temperature=2) == (full, full_words)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("temperature", -0.1, "greater than or equal to 0"),
    ("temperature", 2.5, "less than or equal to 2"),
    ("max_tokens", 0, "greater than or equal to 1"),
])
def test_openai_compatible_options_out_of_range_name_the_field(corpus_client: TestClient, field: str,
                                                                value: float, expected: str) -> None:
    response = corpus_client.post("/v1/chat/completions", headers=AUTH, json={
        "messages": [{"role": "user", "content": "What does chlorophyll absorb?"}], field: value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert response.json()["message"] == f"invalid request: {field}: Input should be {expected}"


# ------------------------------------------------------------------ metrics and logs
def test_metrics_use_route_templates_and_record_timings(corpus_client: TestClient) -> None:
    corpus_client.delete("/documents/not-there-123", headers=AUTH)
    corpus_client.post("/retrieve", headers=AUTH, json={"query": "tides"})
    corpus_client.post("/chat", headers=AUTH, json={"message": "What causes ocean tides?"})  # generation
    text = corpus_client.get("/metrics").text
    assert 'agent_http_requests_total{method="DELETE",route="/documents/{document_id}",status="404"}' in text
    assert 'agent_http_requests_total{method="POST",route="/retrieve",status="200"}' in text
    assert 'agent_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/retrieve"}' in text
    assert "not-there-123" not in text
    for name in ("agent_retrieval_duration_seconds_count", "agent_ingestion_duration_seconds_count",
                 "agent_generation_duration_seconds_count", "agent_embedding_duration_seconds_count"):
        line = next(line for line in text.splitlines() if line.startswith(name))
        assert float(line.split()[-1]) >= 1, line


def test_request_id_is_echoed(corpus_client: TestClient) -> None:
    response = corpus_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len(corpus_client.get("/healthz").headers["x-request-id"]) == 32


def test_openapi_schema_has_models_for_every_route(corpus_client: TestClient) -> None:
    schema = corpus_client.get("/openapi.json").json()
    for path, method in [("/documents", "post"), ("/retrieve", "post"), ("/chat", "post"),
                         ("/invoke", "post"), ("/v1/chat/completions", "post")]:
        op = schema["paths"][path][method]
        assert "$ref" in str(op["requestBody"]), path
        assert "$ref" in str(op["responses"]["200"]), path
    for path in ("/tools", "/sessions/{session_id}", "/healthz", "/readyz", "/documents/{document_id}"):
        op = next(iter(schema["paths"][path].values()))
        assert "$ref" in str(op["responses"]["200"]), path


def test_docs_and_readyz_details_can_be_kept_for_key_holders(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(docs_access="auth", readyz_details="auth"), encoder=encoder)) as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/openapi.json", headers=AUTH).json()["info"]["title"] == "rag-platform agent"
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        anonymous = client.get("/readyz")
        assert anonymous.status_code == 200
        assert all(check["detail"] is None for check in anonymous.json()["checks"].values())
        assert client.get("/readyz", headers=AUTH).json()["checks"]["redis"]["detail"]["target"]
    with TestClient(create_app(make_settings(docs_access="off"), encoder=encoder)) as client:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert client.get(path, headers=AUTH).status_code == 404
