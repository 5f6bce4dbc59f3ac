"""Generation backends: the OpenAI-compatible one against a local stub HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from agent.api import create_app
from agent.generation import split_sentences

from .conftest import AUTH, CORPUS


class StubModelServer:
    """A tiny OpenAI-compatible /v1/chat/completions server that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply = "Etna erupts often [2]."
        self.finish_reason = "stop"
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                payload = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": stub.reply},
                     "finish_reason": stub.finish_reason}]}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubModelServer]:
    server = StubModelServer()
    yield server
    server.close()


@pytest.fixture
def openai_client(make_settings, encoder, stub, tmp_path) -> Iterator[TestClient]:
    key_file = tmp_path / "generator-key"
    key_file.write_text("sk-stub-123\n")
    settings = make_settings(generator="openai", generator_base_url=stub.url, generator_model="served-model",
                             generator_api_key_file=key_file, generator_max_tokens=300)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        client.post("/documents", headers=AUTH, json={"documents": [
            {"id": k, "text": CORPUS[k]} for k in ("volcano", "glaciers", "coffee")]})
        yield client


def test_openai_backend_sends_passages_and_maps_citations(openai_client: TestClient, stub: StubModelServer) -> None:
    response = openai_client.post("/chat", headers=AUTH, json={"message": "How often does Mount Etna erupt?"})
    assert response.status_code == 200, response.text
    sent = stub.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer sk-stub-123"
    assert sent["body"]["model"] == "served-model"
    prompt = sent["body"]["messages"][-1]["content"]
    assert "Question: How often does Mount Etna erupt?" in prompt
    # The stub cited passage [2]: the answer is renumbered so [1] is citations[0].
    passages = [line for line in prompt.splitlines() if line.startswith("[")]
    second = passages[1].split("] ", 1)[1]
    body = response.json()
    assert body["answer"] == "Etna erupts often [1]."
    assert [c["text"] for c in body["citations"]] == [second]


def test_openai_backend_gets_each_requests_temperature_and_max_tokens(openai_client, stub) -> None:
    def sent(**options) -> dict:
        response = openai_client.post("/v1/chat/completions", headers=AUTH, json={
            "messages": [{"role": "user", "content": "How often does Mount Etna erupt?"}], **options})
        assert response.status_code == 200, response.text
        return {name: stub.requests[-1]["body"][name] for name in ("temperature", "max_tokens")}

    # Defaults: temperature 0, max_tokens = AGENT_GENERATOR_MAX_TOKENS.
    assert sent() == {"temperature": 0, "max_tokens": 300}
    assert sent(temperature=0.7, max_tokens=64) == {"temperature": 0.7, "max_tokens": 64}
    assert sent(temperature=2, max_tokens=300) == {"temperature": 2, "max_tokens": 300}
    # AGENT_GENERATOR_MAX_TOKENS is the ceiling: a larger request is lowered to it, not refused.
    assert sent(max_tokens=4096) == {"temperature": 0, "max_tokens": 300}
    # Options are per request: the next one without them gets the defaults again, /chat too.
    assert sent() == {"temperature": 0, "max_tokens": 300}
    assert openai_client.post("/chat", headers=AUTH, json={"message": "How often does Mount Etna erupt?"}
                              ).status_code == 200
    assert {k: stub.requests[-1]["body"][k] for k in ("temperature", "max_tokens")} == {
        "temperature": 0, "max_tokens": 300}


def test_openai_backend_finish_reason_length_reaches_the_client(openai_client, stub) -> None:
    question = {"messages": [{"role": "user", "content": "How often does Mount Etna erupt?"}], "max_tokens": 3}
    stub.finish_reason = "length"  # the model server stopped at max_tokens
    body = openai_client.post("/v1/chat/completions", headers=AUTH, json=question).json()
    assert body["choices"][0]["finish_reason"] == "length"
    streamed = openai_client.post("/v1/chat/completions", headers=AUTH, json={**question, "stream": True}).text
    assert '"finish_reason": "length"' in streamed
    stub.finish_reason = "stop"
    body = openai_client.post("/v1/chat/completions", headers=AUTH, json=question).json()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_openai_backend_is_not_called_without_supporting_passages(openai_client, stub) -> None:
    body = openai_client.post("/chat", headers=AUTH, json={"message": "Who painted the Mona Lisa?"}).json()
    assert body["supported"] is False
    assert stub.requests == []


def test_openai_backend_failure_is_502(openai_client, stub) -> None:
    stub.status = 500
    response = openai_client.post("/chat", headers=AUTH, json={"message": "How often does Mount Etna erupt?"})
    assert response.status_code == 502
    assert "generator backend" in response.json()["detail"]


def test_sentence_split_keeps_meaningful_sentences() -> None:
    assert split_sentences("First point here. Second one follows!\n- A list item that is long") == [
        "First point here.", "Second one follows!", "A list item that is long"]
