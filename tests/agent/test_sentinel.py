"""The Sentinel path (prod's Redis topology) against real redis-server processes.

Mirrors what infra/components/redis.py deploys: a password-protected primary and replica, and a
Sentinel that itself requires the same password. The agent reaches the primary through Sentinel
with its own `connect_redis`, and keeps working after Sentinel fails over to the replica.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from agent.config import Settings
from agent.stores.sessions import connect_redis

from ..conftest import _free_port, _redis_server_binary

PASSWORD = "s3ntinel-test-pw"


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def sentinel_setup(tmp_path: Path):
    binary = _redis_server_binary()
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> None:
        procs.append(subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    primary, replica, sentinel = _free_port(), _free_port(), _free_port()
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD, "--bind", "127.0.0.1", "--save", ""]
    start(["--port", str(primary), "--dir", str(tmp_path), *auth])
    _wait_port(primary)
    start(["--port", str(replica), "--dir", str(tmp_path), "--replicaof", "127.0.0.1", str(primary), *auth])
    _wait_port(replica)
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file, so it must be writable
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\nrequirepass {PASSWORD}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary} 1\n"
        f"sentinel auth-pass mymaster {PASSWORD}\n"
        "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n")
    start([str(conf), "--sentinel"])
    _wait_port(sentinel)
    yield {"primary": primary, "replica": replica, "sentinel": sentinel, "procs": procs}
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def test_sentinel_requires_the_password(sentinel_setup) -> None:
    anonymous = redis.Redis(port=sentinel_setup["sentinel"], socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")


def test_agent_reaches_the_primary_through_sentinel_and_survives_failover(sentinel_setup, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_sentinel_hosts=f"127.0.0.1:{sentinel_setup['sentinel']}",
                        redis_password=PASSWORD, redis_timeout_seconds=2)

    async def scenario() -> str:
        handle = connect_redis(settings)
        try:
            await handle.client.set("session:probe", "before")
            primary_proc = sentinel_setup["procs"][0]
            # Let the replica catch up, then kill the primary: Sentinel must promote the replica.
            replica = redis.Redis(port=sentinel_setup["replica"], password=PASSWORD)
            deadline = time.monotonic() + 10
            while replica.get("session:probe") != b"before" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            primary_proc.kill()
            primary_proc.wait(timeout=10)
            deadline = time.monotonic() + 30
            while True:
                try:
                    await handle.client.set("session:probe", "after")
                    break
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            return await handle.client.get("session:probe")
        finally:
            await handle.client.aclose()

    assert asyncio.run(scenario()) == "after"
    promoted = redis.Redis(port=sentinel_setup["replica"], password=PASSWORD)
    assert promoted.info("replication")["role"] == "master"
