"""3. `/chat` end to end through uvicorn on loopback: against the same work in-process, and
against today's path (every passage sentence encoded per request).

The server is `python -m agent serve` in its own process (as in the pod), driven by an httpx async
client at each concurrency level; every request is a new session, so its cost includes the Redis
session read and write. Two baselines, each measured alternately with it in the same run:

- the same pipeline (perception -> decision -> execution: retrieval and extractive generation)
  called directly on a copy of the data, without HTTP, auth, middleware or sessions
  (overhead = HTTP p50 / in-process p50 - 1). It runs in a process of its own, started like the
  server (same environment, `agent.__main__.prepare_process`), so the two differ only by what
  is measured: not by the bench process's threads, heap or OpenMP state (see `baseline_main`);
- a second server on another copy of the same index with AGENT_SENTENCE_VECTORS=per_request: the
  support scorer encodes every sentence of the retrieved passages on every request, as /chat
  did before sentence vectors were stored at ingestion. Both servers must give the same answers
  (text and cited chunks) to every message; the speed-up is measured at concurrency 8.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import selectors
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
TARGET_SPEEDUP = 3.0
SPEEDUP_CONCURRENCY = 8
ROUNDS = 3
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60  # the baseline child's own shutdown: Milvus Lite and the embedded Redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a server (or of the in-process baseline) on `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update({"AGENT_DATA_DIR": str(data_dir), "AGENT_API_KEYS": API_KEY, "AGENT_RATE_LIMIT_PER_MINUTE": "0",
                "HF_HUB_OFFLINE": "1"})
    env.update({f"AGENT_{k.upper()}": v for k, v in settings.items()})
    return env


def start_server(data_dir: Path, port: int, log_path: Path, **settings: str) -> subprocess.Popen:
    """`settings`: extra AGENT_* variables, e.g. sentence_vectors="per_request"."""
    env = _agent_env(data_dir, **settings)
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
    # httpx logs every request at INFO: the load generator would format and write a log line per
    # request on the cores the server needs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                 timeout=300, limits=limits) as client:
        async def call(message: str) -> None:
            response = await client.post("/chat", json={"message": message})
            response.raise_for_status()

        await _load(call, messages[:2], 1)  # warm-up: connections, first-request paths
        return await _load(call, messages, concurrency)


async def http_answers(base_url: str, messages: list[str]) -> list[tuple[str, list[str]]]:
    """Each message's answer text and cited chunk ids, one request at a time."""
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                 timeout=300) as client:
        out = []
        for message in messages:
            response = await client.post("/chat", json={"message": message})
            response.raise_for_status()
            body = response.json()
            out.append((body["answer"], [c["chunk_id"] for c in body["citations"]]))
        return out


def in_process_pipeline(resources):
    """The work /chat does, minus HTTP, auth, middleware and the session store."""
    async def call(message: str) -> None:
        await resources.executor.respond(message, [])

    return call


class Baseline:
    """The in-process pipeline in a child process (`baseline_main`), driven over its stdin/stdout:
    one JSON line per load ({"messages", "concurrency"}) answered by one ({"latencies", "wall"})."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as logfile:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.chat", "--baseline", str(data_dir)],
                                         env=_agent_env(data_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=logfile, text=True)
        if self._reply(READY_TIMEOUT_S) != {"ready": True}:
            raise RuntimeError(f"in-process baseline did not start; log: {log_path.read_text()[-1500:]}")

    def _reply(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                stop_server(self.proc)  # hung: an EOF would not be read either
                raise RuntimeError(f"in-process baseline silent for {timeout:g}s; log: {self.log_path.read_text()[-1500:]}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"in-process baseline exited with {self.proc.wait()}; "
                               f"log: {self.log_path.read_text()[-1500:]}")
        return json.loads(line)

    def load(self, messages: list[str], concurrency: int) -> tuple[list[float], float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"messages": messages, "concurrency": concurrency}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(READY_TIMEOUT_S)
        return reply["latencies"], reply["wall"]

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()  # EOF: the child shuts its app down and exits
        # Let it: terminated at once, the child died before its app had stopped the embedded Redis,
        # which then (SIGTERM on its parent's death) saved into the data dir while the bench removed
        # that dir ("Directory not empty").
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("in-process baseline still running %gs after EOF; terminating it", STOP_TIMEOUT_S)
        stop_server(self.proc)


def baseline_main(data_dir: Path) -> int:
    """The child side of `Baseline`. The process is prepared exactly as `python -m agent serve`
    prepares itself (environment, OpenMP wait policy, malloc arenas) before torch loads, and opens
    the app as the server does, from its own AGENT_* settings; only HTTP, auth, middleware and the
    Redis session are left out. In the bench process instead, the baseline inherited whatever
    OpenMP teams, heap and threads the earlier benchmarks had left, which the server does not."""
    from agent.__main__ import prepare_process

    settings = prepare_process()
    from agent.api import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as client:  # runs the lifespan; no request goes through it
        call = in_process_pipeline(client.app.state.resources)
        client.portal.call(_load, call, ["warm-up: what is a rollout?"], 1)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            latencies, wall = client.portal.call(_load, call, request["messages"], request["concurrency"])
            print(json.dumps({"latencies": latencies, "wall": wall}), flush=True)
    return 0


def run(ctx: RunContext) -> Result:
    sizes = ctx.sizes
    docs, chunks = ctx.corpus(max(sizes.chat_docs * 4, 200))
    docs = docs[:sizes.chat_docs]
    doc_ids = {d.id for d in docs}
    doc_chunks = [c for c in chunks if c.document_id in doc_ids]
    queries = make_queries(doc_chunks, sizes.chat_requests, pool=len(doc_chunks), seed=11)
    messages = [q.text + "?" for q in queries]
    payload = [{"id": d.id, "text": d.text, "metadata": {}} for d in docs]

    result = Result("chat", "3. /chat end to end: uvicorn on loopback vs in-process pipeline, and vs today's path")
    # The speed-up is read at concurrency 8 (the smallest level of a smoke run that is above 1).
    speedup_level = SPEEDUP_CONCURRENCY if SPEEDUP_CONCURRENCY in sizes.chat_concurrency else max(sizes.chat_concurrency)
    levels: dict[int, dict] = {c: {} for c in sizes.chat_concurrency}
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        served, direct = Path(tmp) / "served", Path(tmp) / "direct"
        with in_process_app(direct, encoder=ctx.encoder) as client:
            for i in range(0, len(payload), 16):
                client.post("/documents", json={"documents": payload[i:i + 16]}).raise_for_status()
        # Copies of the same index: the server opens one, the in-process pipeline another,
        # so both stay up and the measurements can alternate (background load on a shared machine
        # then hits both alike).
        shutil.copytree(direct, served)
        shutil.copytree(direct, Path(tmp) / "old")
        # The baseline's own copy too: one Milvus Lite engine per data dir (it locks the dir).
        shutil.copytree(direct, Path(tmp) / "baseline")
        port, old_port = _free_port(), _free_port()
        base_url, old_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{old_port}"
        proc = start_server(served, port, Path(tmp) / "server.log")
        old_proc = baseline = None
        client_cpu = [0.0, 0]  # the load generator's CPU seconds (this process) and requests, HTTP rounds
        try:
            old_proc = start_server(Path(tmp) / "old", old_port, Path(tmp) / "server-old.log",
                                    sentence_vectors="per_request")
            baseline = Baseline(Path(tmp) / "baseline", Path(tmp) / "baseline.log")
            new_answers = asyncio.run(http_answers(base_url, messages))
            old_answers = asyncio.run(http_answers(old_url, messages))
            baseline.load(messages[:2], 1)  # warm-up, as http_load does
            for round_ in range(ROUNDS):
                for conc in sizes.chat_concurrency:
                    modes = ("http", "in_process") + (("old_path",) if conc == speedup_level else ())
                    for mode in modes:
                        if mode == "http":
                            cpu = time.process_time()
                            lat, wall = asyncio.run(http_load(base_url, messages, conc))
                            client_cpu[0] += time.process_time() - cpu
                            client_cpu[1] += len(lat) + 2  # + the warm-up requests
                        elif mode == "old_path":
                            lat, wall = asyncio.run(http_load(old_url, messages, conc))
                        else:
                            lat, wall = baseline.load(messages, conc)
                        samples, total = levels[conc].get(mode, ([], 0.0))
                        levels[conc][mode] = (samples + lat, total + wall)
                        log.info("chat %s c=%d round %d: p50 %.0f ms, %.2f req/s", mode, conc, round_ + 1,
                                 latency_ms(lat)["p50"], len(lat) / wall)
        finally:
            stop_server(proc)
            if old_proc is not None:
                stop_server(old_proc)
            if baseline is not None:
                baseline.stop()
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
        if "old_path" in lv:
            old = lv["old_path"]
            result.add(case, "req/s vs today's path", http["rps"], old["rps"],
                       "sentences encoded per request (AGENT_SENTENCE_VECTORS=per_request)",
                       target=f"≥ {TARGET_SPEEDUP:g}× baseline", met=http["rps"] >= TARGET_SPEEDUP * old["rps"])
            result.add(case, "p50 vs today's path", http["p50"], old["p50"],
                       "sentences encoded per request (AGENT_SENTENCE_VECTORS=per_request)", unit="ms")
    same = sum(a == b for a, b in zip(new_answers, old_answers, strict=True))
    result.add(f"{len(messages)} messages", "same answer and citations as today's path", same, len(messages),
               "messages", target="all", met=same == len(messages))
    result.details = {"documents": len(docs), "requests_per_level": len(messages), "levels": levels,
                      "load_generator_cpu_ms_per_request": round(1000 * client_cpu[0] / max(client_cpu[1], 1), 2),
                      "example_messages": messages[:3],
                      "answers_differing_from_todays_path": [
                          {"message": m, "now": a, "today": b}
                          for m, a, b in zip(messages, new_answers, old_answers, strict=True) if a != b]}
    result.notes.append(f"{len(messages)} /chat requests per level and mode in each of {ROUNDS} alternating rounds "
                        f"(samples pooled), each a new session, over {len(docs)} ingested documents; warm-up "
                        "requests are not counted.")
    result.notes.append("The in-process baseline runs in a process of its own, prepared like the server's "
                        "(agent.__main__.prepare_process); the HTTP rounds' load generator (httpx, in the bench "
                        f"process) used {result.details['load_generator_cpu_ms_per_request']} ms of CPU per request "
                        "on the same cores.")
    result.notes.append(f"Today's path: a second server on a copy of the same index with "
                        f"AGENT_SENTENCE_VECTORS=per_request (every passage sentence encoded per request), "
                        f"measured at concurrency {speedup_level} in the same alternating rounds.")
    return result


if __name__ == "__main__":  # `python -m bench.chat --baseline DATA_DIR`: the child of `Baseline`
    if len(sys.argv) != 3 or sys.argv[1] != "--baseline":
        print("usage: python -m bench.chat --baseline DATA_DIR (started by bench/chat.py itself)", file=sys.stderr)
        sys.exit(2)
    sys.exit(baseline_main(Path(sys.argv[2])))
