"""6. Agent memory under /chat load: RSS over time at concurrency 32, and whether it plateaus.

The server is `python -m agent serve` in its own process (as in the pod), with the chat
benchmark's corpus ingested. An httpx client drives /chat at concurrency 32, every request a new
session, for a few thousand requests; a sampler reads the server's RSS (the agent process, not
its embedded redis-server child) every half second, and beside it the RSS of its Milvus Lite child
(agent/stores/lite_server.py): in the cluster a Milvus server takes that place, so the pod is sized
from the agent process, and the child is reported for a machine running the embedded default. The baseline is the same process's RSS in
the same run, idle after start and ingest, before any /chat. It reports the plateau (the median
of the last third of the samples), the peak, the growth over the last third (a leak keeps
climbing there, a plateau does not), and RSS again after the load, idle.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.chat import API_KEY, _free_port, start_server, stop_server
from bench.common import Result, RunContext, log
from bench.corpus import make_queries

CONCURRENCY = 32
REQUESTS_FULL = 3000
REQUESTS_QUICK = 300
SAMPLE_EVERY_S = 0.5
IDLE_AFTER_S = 10
# Growth allowed over the last third of the run before we call it "still climbing".
PLATEAU_TOLERANCE = 0.05


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def _lite_child(pid: int) -> int | None:
    """The Milvus Lite child of the agent process `pid` (agent/stores/lite_server.py), if any."""
    import psutil

    for child in psutil.Process(pid).children():
        try:
            if "agent.stores.lite_server" in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    return None


def _sample(pid: int, samples: list[tuple[float, float, int, float]], done: list[int], stop: threading.Event) -> None:
    """(seconds, agent RSS MiB, requests done, Milvus Lite child RSS MiB) every SAMPLE_EVERY_S."""
    start = time.monotonic()
    lite = _lite_child(pid)
    while not stop.is_set():
        try:
            samples.append((round(time.monotonic() - start, 2), round(_rss_mb(pid), 1), done[0],
                            round(_rss_mb(lite), 1) if lite else 0.0))
        except Exception:  # noqa: BLE001 - the process ended: stop sampling
            return
        stop.wait(SAMPLE_EVERY_S)


async def _drive(base_url: str, messages: list[str], done: list[int]) -> list[int]:
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                 timeout=300, limits=limits) as client:
        async def one(message: str) -> None:
            async with sem:
                response = await client.post("/chat", json={"message": message})
                statuses.append(response.status_code)
                done[0] += 1

        await asyncio.gather(*(one(m) for m in messages))
    return statuses


def measure(data_dir: Path, messages: list[str], log_path: Path) -> dict:
    """Start a server on `data_dir`, drive `messages` through /chat, return the RSS series."""
    port = _free_port()
    proc = start_server(data_dir, port, log_path)
    try:
        time.sleep(2)
        idle_before = _rss_mb(proc.pid)
        lite = _lite_child(proc.pid)
        lite_idle_before = _rss_mb(lite) if lite else 0.0
        samples: list[tuple[float, float, int, float]] = []
        done = [0]
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(proc.pid, samples, done, stop), daemon=True)
        sampler.start()
        start = time.perf_counter()
        statuses = asyncio.run(_drive(f"http://127.0.0.1:{port}", messages, done))
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        time.sleep(IDLE_AFTER_S)
        idle_after = _rss_mb(proc.pid)
    finally:
        stop_server(proc)
    rss = [s[1] for s in samples]
    lite_rss = [s[3] for s in samples]
    last_third = rss[len(rss) * 2 // 3:] or rss
    at_two_thirds = rss[len(rss) * 2 // 3] if rss else idle_before
    return {"idle_before_mb": round(idle_before, 1), "plateau_mb": round(statistics.median(last_third), 1),
            "peak_mb": round(max(rss, default=idle_before), 1), "idle_after_mb": round(idle_after, 1),
            "growth_last_third": round(rss[-1] / at_two_thirds - 1, 4) if rss else 0.0,
            "requests": len(statuses), "errors": sum(1 for s in statuses if s != 200),
            "rps": round(len(statuses) / wall, 2),
            "lite_idle_before_mb": round(lite_idle_before, 1),
            "lite_plateau_mb": round(statistics.median(lite_rss[len(lite_rss) * 2 // 3:] or lite_rss or [0.0]), 1),
            "lite_peak_mb": round(max(lite_rss, default=lite_idle_before), 1), "samples": samples}


def run(ctx: RunContext) -> Result:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the log
    sizes = ctx.sizes
    docs, chunks = ctx.corpus(max(sizes.chat_docs * 4, 200))
    docs = docs[:sizes.chat_docs]
    doc_ids = {d.id for d in docs}
    doc_chunks = [c for c in chunks if c.document_id in doc_ids]
    total = REQUESTS_QUICK if ctx.quick else REQUESTS_FULL
    queries = make_queries(doc_chunks, min(total, 400), pool=len(doc_chunks), seed=17)
    messages = [(queries[i % len(queries)].text + "?") for i in range(total)]
    payload = [{"id": d.id, "text": d.text, "metadata": {}} for d in docs]

    result = Result("memory", "6. Agent memory under /chat load (concurrency 32): RSS over time")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        data_dir = Path(tmp) / "data"
        port = _free_port()
        proc = start_server(data_dir, port, Path(tmp) / "ingest.log")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {API_KEY}"},
                              timeout=300) as client:
                for i in range(0, len(payload), 16):
                    client.post("/documents", json={"documents": payload[i:i + 16]}).raise_for_status()
        finally:
            stop_server(proc)
        m = measure(data_dir, messages, Path(tmp) / "server.log")
    log.info("memory: idle %.0f MiB -> plateau %.0f MiB (peak %.0f), growth over the last third %.1f%%, "
             "idle after %.0f MiB, %d errors", m["idle_before_mb"], m["plateau_mb"], m["peak_mb"],
             100 * m["growth_last_third"], m["idle_after_mb"], m["errors"])
    case = f"/chat ×{m['requests']}, concurrency {CONCURRENCY}"
    result.add(case, "RSS plateau", m["plateau_mb"], m["idle_before_mb"], "same process idle, before load", unit="MiB")
    result.add(case, "RSS peak", m["peak_mb"], m["idle_before_mb"], "same process idle, before load", unit="MiB")
    result.add(case, "RSS idle after load", m["idle_after_mb"], m["idle_before_mb"], "same process idle, before load",
               unit="MiB")
    result.add(case, "growth over the last third", round(100 * m["growth_last_third"], 2), unit="%",
               target=f"≤ {PLATEAU_TOLERANCE:.0%} (plateau)", met=m["growth_last_third"] <= PLATEAU_TOLERANCE)
    result.add(case, "Milvus Lite child RSS peak", m["lite_peak_mb"], m["lite_idle_before_mb"],
               "same child idle, before load", unit="MiB")
    result.add(case, "errors", m["errors"], target="0", met=m["errors"] == 0)
    result.add(case, "req/s", m["rps"])
    result.details = {"documents": len(docs), "concurrency": CONCURRENCY, **m}
    result.notes.append("RSS of the agent process (its embedded redis-server and Milvus Lite children excluded: "
                        "in the cluster a Redis and a Milvus server take their place), sampled every "
                        f"{SAMPLE_EVERY_S} s; the Milvus Lite child's own RSS is its row; plateau = median of the last third of the samples; idle after = "
                        f"{IDLE_AFTER_S} s after the load. Size pod memory limits from the peak, with headroom.")
    return result
