"""Deadlines against a hung Redis: a real redis-server is SIGSTOPped (it accepts connections, never
answers), which is worse than a dead one. Documented figures: /chat fails within
AGENT_REDIS_TIMEOUT_SECONDS (1 s) plus the rate limiter's deadline (0.25 s); routes that use Redis
only for the rate limit are slowed by at most that deadline (the limiter fails open); /readyz
answers within AGENT_PROBE_TIMEOUT_SECONDS (0.5 s) and names Redis as the dependency that is down.
Bounds below are generous for a loaded machine; before the fix these took 8 s, +2-4 s and 2 s.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import AUTH


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def test_a_hung_redis_costs_each_route_its_deadline_and_no_more(make_settings, encoder, redis_server_factory) -> None:
    server = redis_server_factory()
    with TestClient(create_app(make_settings(redis_url=server.url), encoder=encoder)) as client:
        client.post("/documents", headers=AUTH, json={"documents": [{"id": "kiwi", "text": "Kiwis are flightless."}]})
        session = client.post("/chat", headers=AUTH, json={"message": "hello"}).json()["session_id"]
        retrieve = lambda: client.post("/retrieve", headers=AUTH, json={"query": "kiwi"})  # noqa: E731
        baseline = statistics.median(_timed(retrieve)[1] for _ in range(3))

        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            chat, chat_s = _timed(lambda: client.post("/chat", headers=AUTH,
                                                      json={"message": "are kiwis birds?", "session_id": session}))
            assert chat.status_code == 503, chat.text
            assert chat.headers["retry-after"] == "5"
            assert chat_s < 2.5, f"/chat took {chat_s:.2f}s against a hung Redis"

            for _ in range(3):   # the limiter fails open: retrieval and ingestion keep working
                found, found_s = _timed(retrieve)
                assert found.status_code == 200 and "x-ratelimit-limit" not in found.headers
                assert found_s < baseline + 1.0, f"/retrieve {found_s:.2f}s vs {baseline:.2f}s with Redis up"
            ingest, ingest_s = _timed(lambda: client.post("/documents", headers=AUTH, json={"documents": [
                {"id": "moa", "text": "Moas were flightless too."}]}))
            assert ingest.status_code == 200 and ingest_s < 10

            ready, ready_s = _timed(lambda: client.get("/readyz"))
            assert ready.status_code == 503 and ready_s < 1.5, f"/readyz took {ready_s:.2f}s"
            checks = ready.json()["checks"]
            assert checks["redis"]["ok"] is False and "within" in checks["redis"]["detail"]["error"]
            assert checks["milvus"]["ok"] is True
        finally:
            os.kill(server.process.pid, signal.SIGCONT)

        # Redis answers again: the agent recovers without a restart (bounded wait).
        deadline = time.monotonic() + 10
        while True:
            back = client.post("/chat", headers=AUTH, json={"message": "hello again", "session_id": session})
            if back.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert back.status_code == 200, back.text
        assert client.get("/readyz").status_code == 200
