"""3. `/chat` end to end through uvicorn on loopback, against the same work in-process.

The server is `python -m agent serve` in its own process (as in the pod), driven by an httpx async
client at each concurrency level; every request is a new session, so its cost includes the Redis
session read and write. The baseline is the same pipeline (perception -> decision -> execution:
retrieval and extractive generation) called directly on the same data directory, at the same
concurrency, without HTTP, auth, middleware or sessions. Overhead = HTTP p50 / in-process p50 - 1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agent.eval.client import in_process_app
from bench.common import Result, RunContext, latency_ms, log
from bench.corpus import make_queries

API_KEY = "bench"  # the key the uvicorn server is started with

TARGET_OVERHEAD = 0.30
ROUNDS = 3
READY_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update({"AGENT_DATA_DIR": str(data_dir), "AGENT_API_KEYS": API_KEY, "AGENT_RATE_LIMIT_PER_MINUTE": "0",
                "HF_HUB_OFFLINE": "1"})
    with log_path.open("wb") as logfile:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent server exited with {proc.returncode}; log: {log_path.read_text()[-1500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"agent server not ready after {READY_TIMEOUT_S}s; log: {log_path.read_text()[-1500:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load(call, messages: list[str], concurrency: int) -> tuple[list[float], float]:
    """Run every message through `call` with at most `concurrency` in flight: (latencies, wall)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(message: str) -> None:
        async with sem:
            start = time.perf_counter()
            await call(message)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    return latencies, time.perf_counter() - start


async def http_load(base_url: str, messages: list[str], concurrency: int) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                 timeout=300, limits=limits) as client:
        async def call(message: str) -> None:
            response = await client.post("/chat", json={"message": message})
            response.raise_for_status()

        await _load(call, messages[:2], 1)  # warm-up: connections, first-request paths
        return await _load(call, messages, concurrency)


def in_process_pipeline(resources):
    """The work /chat does, minus HTTP, auth, middleware and the session store."""
    async def call(message: str) -> None:
        await resources.executor.respond(message, [])

    return call


def run(ctx: RunContext) -> Result:
    sizes = ctx.sizes
    docs, chunks = ctx.corpus(max(sizes.chat_docs * 4, 200))
    docs = docs[:sizes.chat_docs]
    doc_ids = {d.id for d in docs}
    doc_chunks = [c for c in chunks if c.document_id in doc_ids]
    queries = make_queries(doc_chunks, sizes.chat_requests, pool=len(doc_chunks), seed=11)
    messages = [q.text + "?" for q in queries]
    payload = [{"id": d.id, "text": d.text, "metadata": {}} for d in docs]

    result = Result("chat", "3. /chat end to end: uvicorn on loopback vs in-process pipeline")
    levels: dict[int, dict] = {c: {"http": ([], 0.0), "in_process": ([], 0.0)} for c in sizes.chat_concurrency}
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        served, direct = Path(tmp) / "served", Path(tmp) / "direct"
        with in_process_app(direct, encoder=ctx.encoder) as client:
            for i in range(0, len(payload), 16):
                client.post("/documents", json={"documents": payload[i:i + 16]}).raise_for_status()
        # Two copies of the same index: the server opens one, the in-process pipeline the other,
        # so both stay up and the measurements can alternate (background load on a shared machine
        # then hits both alike).
        shutil.copytree(direct, served)
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        proc = start_server(served, port, Path(tmp) / "server.log")
        try:
            with in_process_app(direct, encoder=ctx.encoder) as client:
                call = in_process_pipeline(client.app.state.resources)
                client.portal.call(_load, call, messages[:2], 1)
                for round_ in range(ROUNDS):
                    for conc in sizes.chat_concurrency:
                        for mode in ("http", "in_process"):
                            if mode == "http":
                                lat, wall = asyncio.run(http_load(base_url, messages, conc))
                            else:
                                lat, wall = client.portal.call(_load, call, messages, conc)
                            samples, total = levels[conc][mode]
                            levels[conc][mode] = (samples + lat, total + wall)
                            log.info("chat %s c=%d round %d: p50 %.0f ms, %.2f req/s", mode, conc, round_ + 1,
                                     latency_ms(lat)["p50"], len(lat) / wall)
        finally:
            stop_server(proc)
    levels = {conc: {mode: {**latency_ms(samples), "rps": round(len(samples) / wall, 2)}
                     for mode, (samples, wall) in lv.items()} for conc, lv in levels.items()}

    for conc, lv in levels.items():
        http, base = lv["http"], lv["in_process"]
        overhead = http["p50"] / base["p50"] - 1
        lv["overhead_p50"] = round(overhead, 4)
        case = f"concurrency {conc}"
        result.add(case, "p50", http["p50"], base["p50"], "in-process pipeline", unit="ms",
                   target=f"≤ +{TARGET_OVERHEAD:.0%}", met=overhead <= TARGET_OVERHEAD)
        result.add(case, "p95", http["p95"], base["p95"], "in-process pipeline", unit="ms")
        result.add(case, "req/s", http["rps"], base["rps"], "in-process pipeline",
                   target=f"≥ {1 - TARGET_OVERHEAD:.0%} of baseline", met=http["rps"] >= (1 - TARGET_OVERHEAD) * base["rps"])
    result.details = {"documents": len(docs), "requests_per_level": len(messages), "levels": levels,
                      "example_messages": messages[:3]}
    result.notes.append(f"{len(messages)} /chat requests per level and mode in each of {ROUNDS} alternating rounds "
                        f"(samples pooled), each a new session, over {len(docs)} ingested documents; warm-up "
                        "requests are not counted.")
    return result
