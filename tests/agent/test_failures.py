"""Honest error classes: only an unreachable or too-slow dependency is a 503 with Retry-After."""

from __future__ import annotations

import logging
import threading
import time

from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import AUTH


def test_a_request_milvus_refuses_is_a_logged_500_not_an_outage(make_settings, encoder, caplog) -> None:
    with TestClient(create_app(make_settings(), encoder=encoder), raise_server_exceptions=False) as client:
        client.post("/documents", headers=AUTH, json={"documents": [{"id": "d", "text": "Kiwis are birds."}]})
        store = client.app.state.resources.retriever.store
        store.client.drop_collection(store.collection)       # the schema is gone behind the agent's back
        agent_log = logging.getLogger("agent")      # JSON logs do not propagate to pytest's handler
        agent_log.addHandler(caplog.handler)
        try:
            response = client.post("/retrieve", headers=AUTH, json={"query": "kiwi"})
        finally:
            agent_log.removeHandler(caplog.handler)
        assert response.status_code == 500, response.text
        assert "retry-after" not in response.headers
        assert response.headers["x-request-id"] in response.json()["detail"]
        assert any("Milvus refused" in r.getMessage() and r.exc_info for r in caplog.records)
        assert 'agent_dependency_errors_total{dependency="milvus"}' not in client.get("/metrics").text


def test_a_milvus_call_past_its_deadline_is_a_503_with_retry_after(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(milvus_timeout_seconds=0.5), encoder=encoder)) as client:
        client.post("/documents", headers=AUTH, json={"documents": [{"id": "d", "text": "Kiwis are birds."}]})
        store = client.app.state.resources.retriever.store
        held = threading.Event()

        def hold_lite() -> None:          # a long write holding Milvus Lite
            assert store._lock.acquire(False, 5)
            try:
                held.set()
                time.sleep(2)
            finally:
                store._lock.release(False)

        holder = threading.Thread(target=hold_lite)
        holder.start()
        held.wait(5)
        start = time.perf_counter()
        response = client.post("/retrieve", headers=AUTH, json={"query": "kiwi"})
        elapsed = time.perf_counter() - start
        holder.join()
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "AGENT_MILVUS_TIMEOUT_SECONDS" in response.json()["detail"]
        assert elapsed < 1.5
        assert 'agent_dependency_errors_total{dependency="milvus"} 1.0' in client.get("/metrics").text
        assert client.post("/retrieve", headers=AUTH, json={"query": "kiwi"}).status_code == 200
