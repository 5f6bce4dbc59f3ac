"""What every benchmark shares: the run context (corpus, encoder, embedding cache), timing helpers,
progress, and the result format (JSON per benchmark plus one Markdown table for all)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from agent.eval.metrics import percentile

log = logging.getLogger("bench")
T = TypeVar("T")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_DIR = Path(__file__).resolve().parent.parent / "build" / "bench-cache"
DISK_CACHE_MIN_TEXTS = 5_000


@dataclass
class Row:
    """One figure beside its baseline, measured in the same run."""

    case: str
    metric: str
    value: float | None
    baseline: float | None = None
    baseline_name: str = ""
    unit: str = ""
    target: str = ""
    met: bool | None = None  # None: no target for this row

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class Result:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row


# Character chunks of the synthetic corpus (what the agent's token-aware chunks come to on English prose).
CORPUS_CHUNK_CHARS, CORPUS_CHUNK_OVERLAP = 800, 150


def agent_chunker(encoder):
    """The agent's chunker with the agent's default settings, so baselines cut text as the agent does."""
    from agent.chunking import Chunker
    from agent.config import Settings

    fields = Settings.model_fields
    return Chunker.for_encoder(encoder, fields["chunk_size_tokens"].default, fields["chunk_overlap_tokens"].default)


def machine() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def rss_mb() -> float:
    """Resident memory of this process and its children, in MiB."""
    import psutil

    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def latency_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50": round(percentile(ms, 50), 3), "p95": round(percentile(ms, 95), 3),
            "mean": round(sum(ms) / len(ms), 3), "n": len(ms)}


def progress(items: Iterable[T], total: int | None, desc: str) -> Iterator[T]:
    """tqdm on a terminal, a log line per phase otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
        return
    start = time.perf_counter()
    n = 0
    for item in items:
        n += 1
        yield item
    log.info("%s: %d items in %.1fs", desc, n, time.perf_counter() - start)


@dataclass
class Sizes:
    """Everything that --quick shrinks."""

    embed_texts: int
    embed_batch: int
    embed_repeats: int
    retrieval_sizes: tuple[int, ...]
    queries: int
    chat_docs: int
    chat_requests: int
    chat_concurrency: tuple[int, ...]
    ingest_docs: int
    memory_chunks: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(embed_texts=512, embed_batch=32, embed_repeats=2, retrieval_sizes=(1_000, 10_000, 50_000),
                   queries=200, chat_docs=200, chat_requests=32, chat_concurrency=(1, 8, 32),
                   ingest_docs=200, memory_chunks=50_000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(embed_texts=128, embed_batch=32, embed_repeats=2, retrieval_sizes=(300, 1_000),
                   queries=30, chat_docs=40, chat_requests=16, chat_concurrency=(1, 8),
                   ingest_docs=40, memory_chunks=1_000)


class RunContext:
    """Shared, lazily built state of one `python -m bench` run: corpus, encoder, embeddings.

    Embeddings are cached by text for the whole run, so the 1k/10k/50k retrieval sizes and the
    memory measurement reuse one encoding of each chunk.
    """

    def __init__(self, sizes: Sizes, quick: bool, cache_dir: Path | None = None,
                 disk_cache_min_texts: int = DISK_CACHE_MIN_TEXTS) -> None:
        self.sizes = sizes
        self.quick = quick
        self.cache_dir = cache_dir
        self.disk_cache_min_texts = disk_cache_min_texts
        self._encoder = None
        self._corpora: dict[tuple[int, int], tuple[list, list]] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._model_digest: str | None = None
        self.shared: dict[str, Any] = {}  # figures one benchmark measures for another

    @property
    def encoder(self):
        if self._encoder is None:
            from agent.embeddings import Encoder

            self._encoder = Encoder.load(device="cpu")
        return self._encoder

    def corpus(self, chunks_needed: int, chunk_size: int | None = None, overlap: int | None = None):
        """(documents, chunks) with at least `chunks_needed` chunks of `chunk_size` characters
        (800, overlapping by 150, unless given)."""
        chunk_size = CORPUS_CHUNK_CHARS if chunk_size is None else chunk_size
        overlap = CORPUS_CHUNK_OVERLAP if overlap is None else overlap
        key = (chunk_size, overlap)
        cached = self._corpora.get(key)
        if cached is None or len(cached[1]) < chunks_needed:
            from bench.corpus import build_chunks

            start = time.perf_counter()
            # Deterministic sources in a fixed order: a longer corpus extends a shorter one.
            cached = build_chunks(chunks_needed, chunk_size, overlap)
            self._corpora[key] = cached
            log.info("corpus: %d chunks of <= %d chars from %d documents in %.1fs", len(cached[1]), chunk_size,
                     len(cached[0]), time.perf_counter() - start)
        return cached

    def embed(self, texts: Sequence[str], desc: str = "embedding") -> np.ndarray:
        """Vectors for texts, encoding only the ones not seen before in this run.

        With a cache_dir, a large text list (the index corpus) is also kept on disk, keyed by the
        model weights and the exact texts, so a re-run skips re-encoding 50k chunks. The embedding
        benchmark never goes through here: it times real encoding.
        """
        if self.cache_dir is not None and len(texts) >= self.disk_cache_min_texts:
            path = self.cache_dir / f"embeddings-{self._digest(texts)}.npy"
            if path.exists():
                vectors = np.load(path)
                if vectors.shape == (len(texts), self.encoder.dim):
                    log.info("%s: %d vectors from %s", desc, len(texts), path)
                    self._vectors.update(zip(texts, vectors, strict=True))
                    return vectors
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            step = 512
            for start in progress(range(0, len(missing), step), (len(missing) + step - 1) // step,
                                  f"{desc} ({len(missing)} texts)"):
                batch = missing[start:start + step]
                for text, vec in zip(batch, self.encoder.encode(batch), strict=True):
                    self._vectors[text] = vec
        if not texts:
            return np.zeros((0, self.encoder.dim), np.float32)
        vectors = np.stack([self._vectors[t] for t in texts])
        if self.cache_dir is not None and len(texts) >= self.disk_cache_min_texts:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{path.name}.tmp.npy"
            np.save(tmp, vectors)
            tmp.replace(path)
        return vectors

    def _digest(self, texts: Sequence[str]) -> str:
        if self._model_digest is None:
            h = hashlib.sha256()
            with (self.encoder.model_path / "model.safetensors").open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._model_digest = h.hexdigest()
        h = hashlib.sha256(self._model_digest.encode())
        for t in texts:
            h.update(t.encode())
            h.update(b"\0")
        return h.hexdigest()[:24]


# --- results -----------------------------------------------------------------------------------------

def write_result(result: Result, quick: bool, seconds: float, out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in result.rows:
        d = asdict(row)
        d["ratio"] = None if row.ratio is None else round(row.ratio, 4)
        rows.append(d)
    payload = {"name": result.name, "title": result.title, "quick": quick,
               "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "seconds": round(seconds, 2), "machine": machine(), "rows": rows,
               "notes": result.notes, "details": result.details}
    path = out_dir / f"{result.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


ORDER = ("embedding", "retrieval", "chat", "ingestion", "platform", "memory", "known_item")  # as numbered in the docs
# Run order: chat before retrieval, so the in-process baseline does not share its process with the
# three Milvus Lite instances (and the 50k-chunk corpus) that retrieval leaves behind.
RUN_ORDER = ("embedding", "chat", "known_item", "retrieval", "ingestion", "platform", "memory")


def render_summary(out_dir: Path = RESULTS_DIR) -> Path:
    """bench/results/README.md: one table per benchmark result present in out_dir."""
    results = []
    for path in sorted(out_dir.glob("*.json"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem)):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    lines = ["# Benchmark results", "",
             "Generated by `python -m bench` (see docs/benchmarks.md). Each figure sits beside a baseline "
             "measured in the same run on the same machine; *ratio* is measured / baseline.", ""]
    for r in results:
        m = r.get("machine", {})
        lines += [f"## {r['title']}", "",
                  f"`{r['name']}` · {'quick' if r.get('quick') else 'full'} run · {r.get('measured_at')} · "
                  f"{r.get('seconds')} s · {m.get('cpus')} CPUs, torch {m.get('torch')} "
                  f"({m.get('torch_threads')} threads)", "",
                  "| case | metric | measured | baseline | ratio | target | met |",
                  "|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            unit = f" {row['unit']}" if row.get("unit") else ""
            base = "—" if row.get("baseline") is None else f"{_num(row['baseline'])}{unit} ({row['baseline_name']})"
            lines.append(f"| {row['case']} | {row['metric']} | {_num(row['value'])}{unit} | {base} | "
                         f"{_num(row.get('ratio'))} | {row.get('target') or '—'} | {_num(row.get('met'))} |")
        for note in r.get("notes", []):
            lines.append(f"\n- {note}")
        lines.append("")
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

