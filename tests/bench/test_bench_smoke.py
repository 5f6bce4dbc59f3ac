"""Every benchmark's code path on tiny sizes: real model, real Milvus Lite, real server, seconds."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench import chat, embedding, ingestion, platform, retrieval
from bench.cli import main as bench_main
from bench.common import Result, RunContext, Sizes, render_summary, write_result
from bench.corpus import Doc, build_chunks, make_queries, relevant_chunks

TINY = Sizes(embed_texts=6, embed_batch=4, embed_repeats=1, retrieval_sizes=(40, 80), queries=5,
             chat_docs=4, chat_requests=3, chat_concurrency=(1, 2), ingest_docs=4, memory_chunks=80)


@pytest.fixture(scope="module")
def ctx() -> RunContext:
    return RunContext(TINY, quick=True)


def rows(result: Result) -> dict[tuple[str, str], object]:
    return {(r.case, r.metric): r for r in result.rows}


def test_corpus_is_deterministic_distinct_and_prefix_stable():
    docs, chunks = build_chunks(300, 160, 32)
    again = build_chunks(150, 160, 32)[1]
    assert [c.id for c in chunks[:150]] == [c.id for c in again]
    assert len({c.text for c in chunks}) == 300
    assert chunks[0].document_id.startswith("pydoc:")
    assert all(len(c.text) <= 160 for c in chunks)
    assert {c.document_id for c in chunks} <= {d.id for d in docs}


def test_queries_come_with_every_chunk_that_holds_their_sentence():
    docs = [Doc("a", "The cache is flushed every ten minutes by the background worker thread. Nothing else."),
            Doc("b", "Copy: The cache is flushed every ten minutes by the background worker thread. More.")]
    _, chunks = build_chunks(2, documents=iter(docs))
    queries = make_queries(chunks, count=1, pool=1)
    assert queries[0].source_chunk == 0
    assert set(queries[0].text.split()) <= set(queries[0].sentence.split())
    assert relevant_chunks(queries, chunks) == [{0, 1}]
    with pytest.raises(RuntimeError, match="only 2 distinct chunks"):
        build_chunks(5, documents=iter(docs))


def test_exact_top_k_and_quality():
    m = np.eye(4, dtype=np.float32)
    assert retrieval.exact_top_k(m, np.array([0.1, 0.9, 0.5, 0.0], np.float32), 2).tolist() == [1, 2]
    assert retrieval.quality([[3, 1], [2, 0]], [{1}, {5}]) == {"hit_at_10": 0.5, "mrr_at_10": 0.25}


def test_embedding_bench(ctx):
    result = embedding.run(ctx)
    cos = rows(result)[("6 chunks, batch 4", "min cosine vs baseline")]
    assert cos.value >= 0.999 and cos.met  # the agent's encoder matches sentence-transformers
    tps = rows(result)[("6 chunks, batch 4", "texts/s")]
    assert tps.value > 0 and tps.baseline > 0


def test_retrieval_bench(ctx):
    result = retrieval.run(ctx)
    sizes = result.details["sizes"]
    assert [s["chunks"] for s in sizes] == [40, 80]
    for s in sizes:
        assert 0 <= s["ann_recall_at_10"] <= 1
        assert s["latency_ms"]["hybrid"]["n"] == 5
    # The ranking with its document-level lists (as /retrieve runs by default) at the smallest size only.
    assert set(sizes[0]["quality"]) == {"hybrid", "rrf", "dense", "bm25", "exact", "agent"}
    assert set(sizes[1]["quality"]) == {"hybrid", "rrf", "dense", "bm25", "exact"}
    assert {r.case for r in result.rows if "with document lists" in r.metric} == {"40 chunks",
                                                                                  golden_case(result)}
    # at this size the HNSW index is exact, and the queries' own chunks are easy to find
    assert sizes[0]["ann_recall_at_10"] == 1.0
    assert sizes[0]["quality"]["bm25"]["hit_at_10"] >= 0.8
    # The queries are sentences with words dropped: their own chunk holds every word in order.
    assert sizes[0]["quality"]["hybrid"]["mrr_at_10"] >= sizes[0]["quality"]["rrf"]["mrr_at_10"]
    assert ctx.shared["memory"]["rss_mb_by_size"][80] > 0
    golden = result.details["golden"]
    assert golden["questions"] >= 25 and set(golden["quality"]) == {"hybrid", "rrf", "dense", "bm25", "agent"}
    # Natural-language questions about our docs: retrieval finds a relevant section in the top 5.
    assert golden["quality"]["hybrid"]["hit_at_5"] >= 0.9
    assert golden["quality"]["agent"]["hit_at_5"] >= 0.9


def golden_case(result: Result) -> str:
    return next(r.case for r in result.rows if r.case.startswith("golden questions"))


def test_ingestion_bench_reuses_the_memory_figure(ctx):
    result = ingestion.run(ctx)
    assert result.details["documents"] == 4 and result.details["chunks"] >= 4
    memory = [r for r in result.rows if r.metric == "RSS MiB"][0]
    assert memory.value == ctx.shared["memory"]["rss_mb_by_size"][80]


def test_chat_bench(ctx):
    result = chat.run(ctx)
    levels = result.details["levels"]
    assert set(levels) == {1, 2}
    for level in levels.values():
        assert level["http"]["n"] == 9 and level["in_process"]["n"] == 9  # 3 requests x 3 rounds
        assert level["http"]["rps"] > 0 and level["in_process"]["p50"] > 0
    assert result.details["load_generator_cpu_ms_per_request"] > 0


def test_chat_baseline_process_failure_is_reported_with_its_log(tmp_path):
    # The in-process baseline runs in a child process: a child that dies must fail the benchmark
    # with the child's own error, not hang the bench waiting for a reply.
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data dir should be")
    with pytest.raises(RuntimeError, match="baseline") as exc:
        chat.Baseline(not_a_dir, tmp_path / "baseline.log")
    assert "Error" in str(exc.value)  # the child's traceback tail is in the message


def test_chat_baseline_process_stops_its_own_app_before_the_bench_removes_its_data(tmp_path):
    # Closing its stdin asks the child to shut its app down. Terminated instead, it left its
    # embedded Redis to save into the data dir after stop() returned, while the bench removed it.
    baseline = chat.Baseline(tmp_path / "data", tmp_path / "baseline.log")
    redis_pid = int((tmp_path / "data" / "redis.pid").read_text())
    baseline.stop()
    assert baseline.proc.returncode == 0, (f"baseline exited {baseline.proc.returncode}: "
                                           f"{(tmp_path / 'baseline.log').read_text()[-1500:]}")
    with pytest.raises(ProcessLookupError):  # the embedded redis-server is gone, not saving
        os.kill(redis_pid, 0)


def test_platform_bench(ctx):
    result = platform.run(ctx)
    assert result.details["preview_exit"] in (0, 1), result.notes
    assert result.details["stacks"] == ["dev", "local", "prod", "staging"]
    assert result.details["policy_exit"] in (0, 1), result.notes
    assert result.details["objects"] > 0


def test_results_and_summary(tmp_path):
    result = Result("embedding", "1. Embedding")
    result.add("case", "texts/s", 13.0, 10.0, "baseline", target="≥ 1.3× baseline", met=True)
    path = write_result(result, quick=True, seconds=1.5, out_dir=tmp_path)
    data = json.loads(path.read_text())
    assert data["rows"][0]["ratio"] == 1.3 and data["quick"] is True
    summary = render_summary(tmp_path).read_text()
    assert "| case | texts/s | 13.00 | 10.00 (baseline) | 1.30 | ≥ 1.3× baseline | yes |" in summary


def test_cli_rejects_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_main(["--only", "nope"])
    assert exc.value.code == 2


def test_disk_cache_returns_the_same_vectors_without_encoding(tmp_path, monkeypatch):
    texts = [c.text for c in build_chunks(20, 160, 32)[1]]
    first = RunContext(TINY, quick=True, cache_dir=tmp_path, disk_cache_min_texts=10)
    vectors = first.embed(texts)
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 1

    second = RunContext(TINY, quick=True, cache_dir=tmp_path, disk_cache_min_texts=10)
    second._encoder = first.encoder

    def refuse(*args, **kwargs):
        raise AssertionError("cached vectors must not be re-encoded")

    with monkeypatch.context() as patch:
        patch.setattr(second.encoder, "encode", refuse)
        assert np.array_equal(second.embed(texts), vectors)
    # other texts are a different cache entry
    assert not np.array_equal(first.embed(texts[::-1]), vectors)
