"""The memory benchmark's code path on a tiny load: a real server, a few /chat, RSS sampled."""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.chat import API_KEY, _free_port, start_server, stop_server
from bench.memory import measure


def test_memory_bench_samples_a_real_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    proc = start_server(data, port, tmp_path / "ingest.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {API_KEY}"},
                          timeout=120) as client:
            client.post("/documents", json={"documents": [
                {"id": "tides", "text": "Ocean tides are caused mainly by the gravitational pull of the Moon."}]}
            ).raise_for_status()
    finally:
        stop_server(proc)
    result = measure(data, ["what causes tides?"] * 12, tmp_path / "server.log")
    assert result["requests"] == 12 and result["errors"] == 0
    assert result["samples"] and all(rss > 100 for _, rss, _, _ in result["samples"])
    # The Milvus Lite child is found and sampled beside the agent (its own row in the table).
    assert all(lite > 50 for _, _, _, lite in result["samples"]) and result["lite_peak_mb"] > 50
    assert result["idle_before_mb"] > 100 and result["peak_mb"] >= result["plateau_mb"] > 100
