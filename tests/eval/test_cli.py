"""The gate end to end: exit codes 0/1/2 against the real agent (in-process and over HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agent.eval.cli import main

from ..conftest import _free_port

CORPUS = [
    {"id": "sessions", "text": "Chat sessions are stored in Redis. Each session keeps the last fifty "
                               "messages and expires after seven days without activity."},
    {"id": "vectors", "text": "Chunk vectors are stored in Milvus. Without a server URI the agent uses "
                              "Milvus Lite, a local file under the data directory."},
    {"id": "pipeline", "text": "The Tekton pipeline runs the evaluation gate before every deploy and "
                               "stops the rollout when a threshold fails."},
]
QUESTIONS = [
    {"question": "Where are chat sessions stored and when do they expire?", "relevant_document_ids": ["sessions"]},
    {"question": "What does the agent use when no Milvus server URI is set?", "relevant_document_ids": ["vectors"]},
    {"question": "What runs before every deploy and stops the rollout?", "relevant_document_ids": ["pipeline"]},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"corpus": write_jsonl(tmp_path / "corpus.jsonl", CORPUS),
            "dataset": write_jsonl(tmp_path / "questions.jsonl", QUESTIONS),
            "report": tmp_path / "out" / "report.json"}



@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory, redis_url: str):
    """A real agent behind uvicorn on loopback (Milvus Lite, the session Redis server)."""
    import uvicorn

    from agent.api import create_app
    from agent.config import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("agent"), api_keys="test-key", redis_url=redis_url,
                        milvus_uri=None, rate_limit_per_minute=0, log_level="WARNING")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError("agent did not become ready")
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def test_passes_over_http_and_writes_both_reports(files, agent_url):
    code = main(["--dataset", str(files["dataset"]), "--corpus", str(files["corpus"]), "--url", agent_url,
                 "--api-key", "test-key", "--k", "2", "--min-hit-at-k", "1.0", "--min-mrr", "0.9",
                 "--min-answer-support", "0.8", "--report", str(files["report"]), "--progress", "never"])
    assert code == 0
    report = json.loads(files["report"].read_text())
    assert report["passed"] is True
    assert report["ingested"] == {"documents": 3, "chunks": 3}
    assert report["metrics"]["hit_at_k"] == 1.0
    assert report["metrics"]["answer_support"] >= 0.8
    assert report["metrics"]["latency_ms"]["chat"]["count"] == 3
    assert [t["name"] for t in report["thresholds"]] == ["min_hit_at_k", "min_mrr", "min_answer_support"]
    assert all(q["cited_document_ids"] for q in report["questions"])
    md = files["report"].with_suffix(".md").read_text()
    assert "# Evaluation report: PASSED" in md and "| min_mrr | >= 0.9 |" in md


def test_threshold_failure_exits_1_in_process_with_misses(files, tmp_path, capsys):
    # One question points at a document that does not answer it: a miss at k = 1.
    wrong = [*QUESTIONS[:2], {**QUESTIONS[2], "relevant_document_ids": ["sessions"]}]
    dataset = write_jsonl(tmp_path / "wrong.jsonl", wrong)
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"k": 1, "thresholds": {"min_hit_at_k": 0.9, "min_ndcg_at_k": 0.5}}))
    code = main(["--dataset", str(dataset), "--corpus", str(files["corpus"]), "--gate", str(gate),
                 "--no-chat", "--report", str(files["report"]), "--progress", "never"])
    assert code == 1
    report = json.loads(files["report"].read_text())
    checks = {c["name"]: c for c in report["thresholds"]}
    assert checks["min_hit_at_k"]["passed"] is False and checks["min_hit_at_k"]["value"] == pytest.approx(2 / 3, abs=1e-3)
    assert checks["min_ndcg_at_k"]["passed"] is True
    assert report["metrics"]["answer_support"] is None  # --no-chat
    assert [m["line"] for m in report["misses"]] == [3]
    assert report["misses"][0]["retrieved_document_ids"] == ["pipeline"]
    assert "FAILED 1/2 thresholds: min_hit_at_k" in capsys.readouterr().err
    assert "| 3 | What runs before every deploy" in files["report"].with_suffix(".md").read_text()


def test_unreachable_url_exits_2(files, capsys):
    code = main(["--dataset", str(files["dataset"]), "--url", f"http://127.0.0.1:{_free_port()}",
                 "--report", str(files["report"]), "--progress", "never"])
    assert code == 2
    assert "agent unreachable" in capsys.readouterr().err
    assert not files["report"].exists()


def test_wrong_api_key_exits_2(files, agent_url, capsys):
    code = main(["--dataset", str(files["dataset"]), "--url", agent_url, "--api-key", "wrong",
                 "--report", str(files["report"]), "--progress", "never"])
    assert code == 2
    assert "rejected the API key" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--gate", "missing.json"], "--gate missing.json: file not found"),
    (["--min-hit-at-k", "1.5"], "--min-hit-at-k: Input should be less than or equal to 1"),
    (["--k", "0"], "--k 0: must be between 1 and 50"),
    (["--api-key", "k"], "--api-key is only used with --url"),
])
def test_bad_flags_exit_2_before_starting_the_agent(files, extra, message, capsys):
    code = main(["--dataset", str(files["dataset"]), "--corpus", str(files["corpus"]),
                 "--report", str(files["report"]), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_bad_dataset_and_unknown_ids_exit_2(files, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x?", "relevant_document_ids": ["sessions"]}\n{"question": "y?"}\n')
    assert main(["--dataset", str(bad), "--corpus", str(files["corpus"]), "--report", str(files["report"])]) == 2
    assert "bad.jsonl:2: field 'relevant_document_ids': Field required" in capsys.readouterr().err
    stale = write_jsonl(tmp_path / "stale.jsonl", [{"question": "x?", "relevant_document_ids": ["gone"]}])
    assert main(["--dataset", str(stale), "--corpus", str(files["corpus"]), "--report", str(files["report"])]) == 2
    assert "not in the corpus (1): line 1: 'gone'" in capsys.readouterr().err
    assert main(["--dataset", str(files["dataset"]), "--report", str(files["report"])]) == 2
    assert "give --corpus" in capsys.readouterr().err


def test_module_entry_point_exit_code():
    # `python -m agent.eval` really exits with main()'s code (the pipeline only sees the process).
    proc = subprocess.run([sys.executable, "-m", "agent.eval", "--dataset", "nope.jsonl", "--report", "r.json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "nope.jsonl: file not found" in proc.stderr


def test_unwritable_report_location_exits_2(files, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["--dataset", str(files["dataset"]), "--corpus", str(files["corpus"]),
                 "--report", str(blocker / "report.json")])
    assert code == 2
    assert "cannot create its directory" in capsys.readouterr().err


def test_client_waits_out_503_and_429_then_reports_the_error():
    from agent.eval.client import AgentClient, AgentError

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "Milvus not connected"})
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"hits": [{"document_id": "a", "chunk_id": "a#0", "score": 1, "text": "x"}]})

    # The agent's HTTP API is the external system here: a stub transport stands in for it.
    client = AgentClient(httpx.Client(transport=httpx.MockTransport(handler), base_url="http://agent"), "stub")
    assert client.retrieve("q", 1)[0]["document_id"] == "a"
    assert calls == ["/retrieve"] * 3

    failing = AgentClient(httpx.Client(transport=httpx.MockTransport(
        lambda r: httpx.Response(503, headers={"Retry-After": "0"}, text="down")), base_url="http://agent"),
        "stub", max_retries=2)
    with pytest.raises(AgentError, match="returned HTTP 503"):
        failing.retrieve("q", 1)


def test_in_process_app_shares_a_loaded_encoder_and_uses_the_given_data_dir(tmp_path):
    from agent.embeddings import Encoder
    from agent.eval.client import in_process_app, in_process_client

    encoder = Encoder.load(device="cpu")
    with in_process_app(tmp_path / "agent", encoder=encoder) as http:
        assert http.app.state.resources.encoder is encoder           # not a second copy of the model
        response = http.post("/documents", json={"documents": CORPUS})  # the client sends the API key
        assert response.status_code == 200, response.text
    assert (tmp_path / "agent" / "milvus.db").exists()
    with in_process_client(tmp_path / "agent", encoder=encoder) as agent:  # the same index, reopened
        assert agent.retrieve("Where are chat sessions stored?", 1)[0]["document_id"] == "sessions"
