"""The Milvus store's write path on a real Milvus Lite collection."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from agent.embeddings import Encoder
from agent.stores.embedded_redis import DataDirInUse
from agent.stores.lite_server import LiteServer
from agent.stores.vectors import ChunkRow, LiteGate, VectorStore, VectorStoreUnavailable


def test_lite_store_seals_what_it_writes(tmp_path: Path, encoder: Encoder) -> None:
    # Unsealed rows are searched without an index in Milvus Lite (slow at a few thousand chunks),
    # so every write that adds rows is flushed; a write that only deletes is not.
    store = VectorStore.lite(tmp_path, "sealing", encoder.dim)
    flushes: list[str] = []
    real_flush = store.client.flush
    store.client.flush = lambda name, **kw: (flushes.append(name), real_flush(name, **kw))[1]
    try:
        vector = encoder.encode(["sealed rows"])[0]
        store.replace_documents([], [ChunkRow("a", "a#0", "sealed rows", vector, {})])
        assert flushes == ["sealing"]
        assert store.delete_document("a") == 1
        assert flushes == ["sealing"]
        assert store.search_dense(vector, 1) == [] and store.search_bm25("sealed rows", 1) == []
    finally:
        store.close()


def test_lite_recovers_from_an_index_file_cut_short_by_a_crash(tmp_path: Path, encoder: Encoder) -> None:
    # kill -9 while Milvus Lite writes a segment's index sidecar (it does so in place, after a
    # flush) leaves a truncated file that failed every later start ("File is too small: 8").
    store = VectorStore.lite(tmp_path, "cut", encoder.dim)
    vectors = encoder.encode(["harbour lamps", "keeper logs"])
    store.replace_documents(["a", "b"], [ChunkRow("a", "a#0", "harbour lamps", vectors[0], {}),
                                         ChunkRow("b", "b#0", "keeper logs", vectors[1], {})])
    store.close()
    sidecars = list(tmp_path.glob("milvus.db/collections/cut/partitions/*/indexes/*.*idx"))
    assert sidecars, "Milvus Lite's on-disk layout changed: update _drop_lite_index_sidecars"
    for path in sidecars:
        with path.open("r+b") as f:
            f.truncate(8)
    reopened = VectorStore.lite(tmp_path, "cut", encoder.dim)
    try:
        assert reopened.count_chunks() == 2
        assert reopened.search_dense(vectors[0], 1)[0].document_id == "a"
        assert reopened.search_bm25("harbour lamps", 1)[0].document_id == "a"
    finally:
        reopened.close()


def test_lite_gate_lets_reads_overlap_and_a_write_run_alone() -> None:
    gate = LiteGate()
    assert gate.acquire(True, 1) and gate.acquire(True, 1)        # two searches at once
    assert not gate.acquire(False, 0.05)                          # a write waits for both
    gate.release(True)
    assert not gate.acquire(False, 0.05)
    gate.release(True)
    assert gate.acquire(False, 0.05) and gate.writing
    assert not gate.acquire(True, 0.05)                           # no read beside a write
    gate.release(False)
    assert not gate.writing and gate.acquire(True, 0.05)
    gate.release(True)


def test_lite_gate_a_waiting_write_holds_back_new_reads_and_gets_in() -> None:
    # A steady stream of /chat searches must not starve an ingest.
    gate = LiteGate()
    assert gate.acquire(True, 1)
    got: list[bool] = []
    writer = threading.Thread(target=lambda: got.append(gate.acquire(False, 5)))
    writer.start()
    deadline = time.monotonic() + 5
    while gate._writers_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not gate.acquire(True, 0.1), "a new read overtook the waiting write"
    gate.release(True)
    writer.join(5)
    assert got == [True] and gate.writing
    gate.release(False)


def test_lite_gate_a_write_that_gives_up_releases_the_reads_it_held_back() -> None:
    gate = LiteGate()
    assert gate.acquire(True, 1)
    gave_up = threading.Thread(target=lambda: gate.acquire(False, 0.3))
    gave_up.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert gate.acquire(True, 2)                                  # admitted once the write gave up
    assert time.monotonic() - started < 1.5
    gave_up.join(2)
    gate.release(True)
    gate.release(True)


def test_a_dead_milvus_lite_child_is_restarted_and_keeps_its_data(tmp_path: Path, encoder: Encoder) -> None:
    # The embedded engine runs in a child process; if it dies alone (OOM killer, kill by hand) the
    # agent must not stay without a vector store until someone restarts it.
    store = VectorStore.lite(tmp_path, "revive", encoder.dim)
    try:
        vector = encoder.encode(["lamp oil for the harbour lights"])[0]
        store.replace_documents(["a"], [ChunkRow("a", "a#0", "lamp oil for the harbour lights", vector, {})])
        assert store.lite_server is not None
        old_pid = store.lite_server.process.pid
        os.kill(old_pid, signal.SIGKILL)
        store.lite_server.process.wait(10)
        with pytest.raises(VectorStoreUnavailable):
            store.search_dense(vector, 1)  # the call that finds it dead fails, retryably
        assert store.lite_server.running and store.lite_server.process.pid != old_pid
        assert [h.document_id for h in store.search_dense(vector, 1)] == ["a"]
        assert store.search_bm25("harbour lights", 1)[0].document_id == "a"
    finally:
        store.close()


def test_a_data_dir_whose_milvus_lite_another_process_runs_is_refused_by_name(tmp_path: Path, encoder: Encoder) -> None:
    # Two agents on one data dir: the second child waits for the lock (a previous engine may still
    # be closing), then says whose it is instead of timing out as "unreachable".
    first = VectorStore.lite(tmp_path, "shared", encoder.dim)
    try:
        started = time.monotonic()
        with pytest.raises(DataDirInUse, match="AGENT_DATA_DIR"):
            LiteServer(tmp_path / "milvus.db", lock_wait_s=0.5).start()
        assert time.monotonic() - started < 30
        assert first.count_chunks() == 0  # the first engine is untouched
    finally:
        first.close()
    # Once the first one is gone, the data dir is free again.
    second = LiteServer(tmp_path / "milvus.db", lock_wait_s=0.5)
    second.start()
    second.stop()


def test_a_hung_milvus_lite_child_costs_one_deadline_not_a_hang(tmp_path: Path, encoder: Encoder) -> None:
    # SIGSTOP: the child is alive (no restart) but answers nothing. Calls end at the store's
    # deadline as retryable outages; once it runs again, the same store serves the same data.
    store = VectorStore.lite(tmp_path, "hung", encoder.dim, timeout=1.0)
    vector = encoder.encode(["tide tables for the north harbour"])[0]
    try:
        store.replace_documents(["t"], [ChunkRow("t", "t#0", "tide tables for the north harbour", vector, {})])
        assert store.lite_server is not None
        pid = store.lite_server.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(VectorStoreUnavailable):
                store.search_dense(vector, 1)
            assert time.monotonic() - started < 5
            assert store.lite_server.process.pid == pid  # alive, only stopped: not restarted
        finally:
            os.kill(pid, signal.SIGCONT)
        assert store.search_dense(vector, 1)[0].document_id == "t"
    finally:
        store.close()
