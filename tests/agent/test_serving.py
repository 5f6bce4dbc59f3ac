"""Per-request cost of serving: what `python -m agent serve` sets up, and what a request pays for.

docs/benchmarks.md section 3 measures the effect; these tests pin the causes it found.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import AUTH


def test_no_request_hands_work_to_the_thread_pool_for_its_dependencies(make_settings, encoder, monkeypatch) -> None:
    # FastAPI runs a plain `def` dependency (or endpoint) through anyio's thread pool: one thread
    # hand-off per dependency per request, six per /chat before the getters became `async def`.
    import fastapi.dependencies.utils
    import fastapi.routing

    handed: list[str] = []
    for module in (fastapi.dependencies.utils, fastapi.routing):
        original = module.run_in_threadpool

        async def counting(func, *args, _original=original, **kwargs):
            handed.append(getattr(func, "__qualname__", repr(func)))
            return await _original(func, *args, **kwargs)

        monkeypatch.setattr(module, "run_in_threadpool", counting)
    with TestClient(create_app(make_settings(), encoder=encoder), headers=AUTH) as client:
        chat = client.post("/chat", json={"message": "hello"})
        assert chat.status_code == 200, chat.text
        assert client.get(f"/sessions/{chat.json()['session_id']}").status_code == 200
        assert client.post("/retrieve", json={"query": "rollout", "top_k": 3}).status_code == 200
        assert client.get("/tools").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert handed == [], f"run in the thread pool per request: {handed}"


def test_serve_makes_idle_openmp_workers_sleep(agent_server, monkeypatch) -> None:
    # libgomp prints the policy it actually took at load when OMP_DISPLAY_ENV is set: this proves
    # `serve` set it before torch was imported (set later, libgomp would report its default).
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    proc = agent_server(OMP_DISPLAY_ENV="TRUE").start()
    with proc.client() as client:
        assert client.post("/chat", json={"message": "hello"}).status_code == 200
    proc.stop()
    first = proc.log_path.read_text(errors="replace")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in first and "'ACTIVE'" not in first, proc.log_tail()
    # An operator's explicit choice wins.
    proc = agent_server(OMP_DISPLAY_ENV="TRUE", OMP_WAIT_POLICY="ACTIVE").start()
    proc.stop()
    second = proc.log_path.read_text(errors="replace")[len(first):]
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in second and "'PASSIVE'" not in second, second[-3000:]
