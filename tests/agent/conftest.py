"""Agent test fixtures: the real model (loaded once), real Redis, Milvus Lite in tmp dirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agent.api import create_app  # noqa: E402
from agent.config import Settings  # noqa: E402
from agent.embeddings import Encoder  # noqa: E402

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# A dozen short, distinct paragraphs: each query in the tests has exactly one right answer.
CORPUS = {
    "volcano": "Mount Etna is an active stratovolcano on the east coast of Sicily. Its eruptions are frequent "
               "and lava flows have reached the town of Catania several times in recorded history.",
    "sourdough": "A sourdough starter is a fermented mixture of flour and water that contains wild yeast and "
                 "lactic acid bacteria. Feed the starter daily and bake when it doubles in size.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the Moon, with a smaller "
             "contribution from the Sun. Spring tides happen when the Sun and Moon align.",
    "chess": "In chess, castling moves the king two squares towards a rook and places that rook on the "
             "square the king crossed. It is illegal to castle out of check.",
    "photosynthesis": "Photosynthesis converts light energy into chemical energy. Chlorophyll in the "
                      "chloroplasts absorbs sunlight, and the plant releases oxygen as a by-product.",
    "bicycle": "To fix a flat bicycle tyre, remove the wheel, lever the tyre off the rim, find the puncture "
               "in the inner tube and seal it with a rubber patch before reinflating.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars of "
              "pressure. A single shot takes roughly twenty-five seconds to extract.",
    "penguins": "Emperor penguins breed during the Antarctic winter. The male incubates the single egg on "
                "his feet for about two months while the female feeds at sea.",
    "vaccines": "Vaccines train the immune system by exposing it to a harmless piece or weakened form of a "
                "pathogen, so that memory cells respond quickly to a later infection.",
    "warranty": "The XK-42 router ships with a three year limited warranty. Claims require the original "
                "receipt and the serial number printed under the device.",
    "marathon": "A marathon is 42.195 kilometres long. The distance was standardised in 1921 and traces back "
                "to the 1908 London Olympics course.",
    "glaciers": "Glaciers form where more snow accumulates each winter than melts each summer. Over decades "
                "the snow compacts into dense blue ice that flows slowly downhill.",
}


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The real all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    return Encoder.load(device="cpu")


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = {"data_dir": tmp_path / "data", "redis_url": redis_url, "api_keys": API_KEY,
                  "rate_limit_per_minute": 100_000, "log_level": "WARNING"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory: pytest.TempPathFactory, redis_url: str, encoder: Encoder) -> Iterator[TestClient]:
    """One app with the corpus ingested, shared by the read-only API tests of a module."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("agent-data"), redis_url=redis_url, api_keys=API_KEY,
                        rate_limit_per_minute=100_000, log_level="WARNING")
    with TestClient(create_app(settings, encoder=encoder)) as client:
        response = client.post("/documents", headers=AUTH, json={"documents": [
            {"id": doc_id, "text": text, "metadata": {"topic": doc_id}} for doc_id, text in CORPUS.items()]})
        assert response.status_code == 200, response.text
        yield client


# ------------------------------------------------------------------ a real server process
READY_TIMEOUT_S = 120


@dataclass
class AgentProcess:
    """`python -m agent serve` in its own process on loopback, as in the pod: a test may kill -9 it."""

    data_dir: Path
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> AgentProcess:
        from ..conftest import _free_port

        self.port = _free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        full.update({"AGENT_DATA_DIR": str(self.data_dir), "AGENT_API_KEYS": API_KEY,
                     "AGENT_RATE_LIMIT_PER_MINUTE": "0", "AGENT_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
                     **self.env, **env})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=full, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"agent not ready after {READY_TIMEOUT_S}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=timeout)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def agent_server(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., AgentProcess]]:
    """Factory of agent server processes on one data dir and the session's Redis (stopped after)."""
    made: list[AgentProcess] = []

    def make(**env: str) -> AgentProcess:
        proc = AgentProcess(tmp_path / "agent-data", {"AGENT_REDIS_URL": redis_url, **env}, tmp_path / "agent.log")
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.stop()
