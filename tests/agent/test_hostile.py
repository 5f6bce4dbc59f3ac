"""Hostile input through a real server process: it must stay fast, answer 4xx, never 500 or hang.

Bounds are generous (a loaded, shared 2-core machine) but catastrophic behaviour, a regex that
backtracks exponentially, a blocked event loop, a 500, still fails them by orders of magnitude.
"""

from __future__ import annotations

import threading
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
