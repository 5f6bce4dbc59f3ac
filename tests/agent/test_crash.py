"""Crash safety of re-ingest: a real server is killed (-9) at each step of a write.

Each step is a point inside `VectorStore.replace_documents` where the test-only fault hook
(AGENT_TEST_CRASH_AT) kills the process as kill -9 would. After a restart, every document that
was acknowledged before must be there, complete, in its old or its new version, never neither
and never a mix; search must never return two versions of one document; and nothing that the
crash left behind may stay in the index.
"""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import AgentProcess

DOCS = ("alpha", "bravo", "charlie")
STEPS = ("insert:partial", "insert", "flush", "delete")
# Small chunks: every document spans several, so a half-written version is visible as such.
ENV = {"AGENT_CHUNK_SIZE_TOKENS": "64", "AGENT_CHUNK_OVERLAP_TOKENS": "8"}


def _text(doc: str, version: int) -> str:
    return " ".join(f"Lighthouse {doc} keeper log v{version} entry {i} notes the lamp and the tide."
                    for i in range(12))


def _ingest(client: httpx.Client, version: int) -> dict:
    response = client.post("/documents", json={"documents": [{"id": d, "text": _text(d, version)} for d in DOCS]})
    assert response.status_code == 200, response.text
    return response.json()


def _versions_found(client: httpx.Client, chunks_per_doc: int) -> dict[str, int]:
    """Per document, the one version search returns, checked complete (all its chunks)."""
    found = {}
    for doc in DOCS:
        hits = client.post("/retrieve", json={"query": f"lighthouse {doc} keeper log", "top_k": 50}).json()["hits"]
        mine = [h for h in hits if h["document_id"] == doc]
        versions = {int(v) for h in mine for v in re.findall(r"\bv(\d+)\b", h["text"])}
        assert len(versions) == 1, f"{doc}: search returned versions {sorted(versions)} (want exactly one)"
        assert len({h["chunk_id"] for h in mine}) == chunks_per_doc, f"{doc}: {len(mine)} chunks, incomplete"
        found[doc] = versions.pop()
    return found


def test_kill_9_at_every_step_of_a_reingest_never_loses_an_acknowledged_document(agent_server) -> None:
    server: AgentProcess = agent_server(**ENV).start()
    with server.client() as client:
        first = _ingest(client, 1)
    chunks_per_doc = first["chunks"] // len(DOCS)
    assert chunks_per_doc >= 3
    acknowledged = 1
    server.stop()

    for step in STEPS:
        crashing = agent_server(**ENV, AGENT_TEST_CRASH_AT=step).start()
        with crashing.client() as client, pytest.raises(httpx.TransportError):
            client.post("/documents", json={"documents": [
                {"id": d, "text": _text(d, acknowledged + 1)} for d in DOCS]})
        assert crashing.wait_exit(10) == -9, f"step {step}: the fault hook did not kill the server"

        server = agent_server(**ENV).start()
        with server.client() as client:
            found = _versions_found(client, chunks_per_doc)
            assert set(found.values()) <= {acknowledged, acknowledged + 1}, (step, found)
            if step == "insert:partial":          # half the batch's rows: some document stayed old
                assert acknowledged in found.values(), (step, found)
            if step == "delete":                  # the old version was already gone
                assert set(found.values()) == {acknowledged + 1}, (step, found)
            ready = client.get("/readyz").json()
            # Nothing the crash left behind stays: exactly one complete version per document.
            assert ready["checks"]["milvus"]["detail"]["chunks"] == chunks_per_doc * len(DOCS), (step, ready)
            acknowledged += 2
            again = _ingest(client, acknowledged)
            assert again["replaced_chunks"] == chunks_per_doc * len(DOCS)
            assert set(_versions_found(client, chunks_per_doc).values()) == {acknowledged}
        server.stop()
