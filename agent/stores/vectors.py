"""Chunks and their vectors in Milvus, searched densely and by BM25.

One collection holds, per chunk: the text (with Milvus's analyzer on, so a BM25 function fills a
sparse vector at insert time), the dense embedding, the document id and the metadata. Reads are
two plain searches, dense cosine and BM25 full text; the Retriever (agent/retrieval.py) fuses and
re-ranks them (agent/ranking.py), so ranking does not depend on the store. It is the same code
against Milvus Lite (a local file, the default) and a Milvus server (the cluster).

The pymilvus client is synchronous: callers in async code run these methods in a thread
(`anyio.to_thread.run_sync`) so the event loop never blocks on Milvus. Every call carries a
deadline (`timeout`, AGENT_MILVUS_TIMEOUT_SECONDS), and only a lost connection or a missed
deadline becomes `VectorStoreUnavailable` (503); anything else Milvus refuses is a bug or bad
input, raised as `VectorStoreError` or `VectorStoreRejected`, never reported as an outage.

Re-ingesting a document never deletes its old version before the new one is durable: each
write stores its chunks under a new version (in the primary key, see `row_key`), then
deletes the older versions. A crash at any point leaves the old version, the new one, or both;
readers keep one version per document, and `recover()` at start removes what a crash left.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.types import Hit

if TYPE_CHECKING:
    from agent.stores.lite_server import LiteServer

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 8192     # VARCHAR limit for a chunk (chunks are ~800 chars)
MAX_ID_CHARS = 256
# VARCHAR lengths are bytes on a Milvus server: 256 characters of UTF-8 take up to 1024.
MAX_ID_BYTES = 4 * MAX_ID_CHARS
# Primary keys are ASCII (see row_key): <32 hex>#<n>@<16 hex>.<count>.
MAX_KEY_CHARS = 128
# Most rows one query may return (Milvus's offset + limit window).
QUERY_WINDOW = 16384
# Rows per insert call: bounds one gRPC message (Milvus refuses messages over 64 MB by default).
WRITE_BATCH_ROWS = 256
_ROW_KEY = re.compile(r"^(?P<doc>[0-9a-f]{32})#(?P<n>\d+)@(?P<version>[0-9a-f]{16})\.(?P<count>\d+)$")
# A Milvus server may be shared by replicas, one of them mid-write: at start, a half-written
# version is removed only once it is older than this (Milvus Lite is one process: at once).
SERVER_RECOVERY_GRACE_S = 15 * 60
# Test-only fault hook: the crash tests set it to a step name to kill -9 the process there.
CRASH_AT_ENV = "AGENT_TEST_CRASH_AT"
# English analyzer (stemming + stop words): without stop words BM25 ranks chunks by "the" and "a".
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]},
                       {"type": "stemmer", "language": "english"}]}


class VectorStoreUnavailable(RuntimeError):
    """Milvus could not be reached in time: not connected yet, connection lost, or a deadline missed."""


class VectorStoreError(RuntimeError):
    """Milvus answered but refused the call: not an outage (a bug or a schema mismatch; logged, 500)."""


class VectorStoreRejected(ValueError):
    """The request's content does not fit the collection; `loc` names the field (a 422)."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class VectorStoreAuthError(RuntimeError):
    """Milvus refused the credentials: retrying cannot help, so startup fails at once."""


@dataclass
class ChunkRow:
    document_id: str
    chunk_id: str
    text: str
    vector: np.ndarray
    metadata: dict[str, Any]


def _raw_key(item: dict[str, Any]) -> str:
    # pymilvus names the key field in a hit by its name; older releases said "id".
    return str(item["chunk_id"] if "chunk_id" in item else item["id"])


def primary_key(item: dict[str, Any]) -> str:
    """The public chunk id of a hit or row, `<document id>#<n>`, whatever version it belongs to."""
    match = _ROW_KEY.match(_raw_key(item))
    if match is None:
        return _raw_key(item)   # written before versions: the key was the public id
    return f"{item.get('entity', item)['document_id']}#{match['n']}"


def row_key(document_id: str, index: int, version: str, count: int) -> str:
    """The primary key of chunk `index` of one version of a document: `<doc hash>#<n>@<version>.<count>`.

    ASCII whatever the id holds (pymilvus puts keys into filter expressions without escaping
    them, in `ids=` and in its query iterator), of bounded length, and it carries the version and
    the version's chunk count, which lets `recover()` tell a complete version from a cut one."""
    digest = hashlib.sha256(document_id.encode("utf-8")).hexdigest()[:32]
    return f"{digest}#{index}@{version}.{count}"


def key_version(key: str) -> tuple[str, int | None]:
    """(version, chunks in that version) of a primary key; ("", None) for rows written before versions."""
    match = _ROW_KEY.match(key)
    return (match["version"], int(match["count"])) if match else ("", None)


def new_version() -> str:
    """Fixed-width hex of the wall clock in ns: later writes sort after earlier ones, as strings."""
    return f"{time.time_ns():016x}"


def latest_version_only(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep, per document, only the hits of its newest version: while a re-ingest is between
    writing the new version and deleting the old one (or crashed there), a search sees both."""
    newest: dict[str, str] = {}
    for item in items:
        doc, (version, _) = item["entity"]["document_id"], key_version(_raw_key(item))
        if version > newest.get(doc, ""):
            newest[doc] = version
    return [i for i in items if key_version(_raw_key(i))[0] == newest.get(i["entity"]["document_id"], "")]


def quote(value: str) -> str:
    """A Milvus filter string literal holding exactly `value`, whatever it contains.

    Milvus's expression grammar (and Milvus Lite's) takes C-style escapes only for the quote, the
    backslash and \\n \\r \\t; everything else, non-ASCII included, goes in as is. (json.dumps
    wrote `\\u00e9` for "é", which neither parser accepts.) pymilvus' own `ids=` quoting does no
    escaping at all, so this module never uses it. Filter templates would avoid quoting, but
    Milvus Lite does not support them."""
    return '"' + value.translate(_ESCAPES) + '"'


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def in_filter(field: str, values: list[str]) -> str:
    return f"{field} in [{', '.join(quote(v) for v in values)}]"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from (pymilvus wraps gRPC errors in its own)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 8:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def is_auth_failure(exc: BaseException) -> bool:
    """Milvus refused the credentials: UNAUTHENTICATED / PERMISSION_DENIED anywhere in the chain."""
    import grpc

    denied = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    for cause in _causes(exc):
        code = cause.code() if isinstance(cause, grpc.RpcError) else getattr(cause, "code", None)
        if code in denied:
            return True
    return False


def is_outage(exc: BaseException) -> bool:
    """A lost connection or a missed deadline (retrying later may help); not refused credentials."""
    import grpc
    from pymilvus.client.types import Status
    from pymilvus.exceptions import (
        ConnectError,
        ConnectionNotExistException,
        MilvusException,
        MilvusUnavailableException,
    )

    if is_auth_failure(exc):
        return False
    transient = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    for cause in _causes(exc):
        if isinstance(cause, (MilvusUnavailableException, ConnectError, ConnectionNotExistException,
                              TimeoutError, ConnectionError, grpc.FutureTimeoutError)):
            return True
        if isinstance(cause, grpc.RpcError) and cause.code() in transient:
            return True
        # pymilvus re-raises a gRPC failure that outlived its retries with the gRPC status as the
        # code, a missed deadline as "Retry timeout", and a failed connect as CONNECT_FAILED.
        if isinstance(cause, MilvusException) and (
                cause.code in transient or cause.code == Status.CONNECT_FAILED
                or "Retry timeout" in (cause.message or "")):
            return True
    return False


def _drop_lite_index_sidecars(db_dir: Path, collection: str) -> bool:
    """Remove Milvus Lite's index files of `collection` (its private on-disk layout, milvus-lite 3:
    `<db>/collections/<name>/partitions/*/indexes/*.idx|.sidx`). Returns whether any were removed."""
    removed = [p for p in db_dir.glob(f"collections/{collection}/partitions/*/indexes/*")
               if p.suffix in (".idx", ".sidx")]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.warning("Milvus Lite could not load its index files (a crash while writing them?); "
                    "removed them to be rebuilt", extra={"collection": collection, "files": len(removed)})
    return bool(removed)


def _crash_point(step: str) -> None:
    """Test-only: die here, like a kill -9, when AGENT_TEST_CRASH_AT names this step."""
    if os.environ.get(CRASH_AT_ENV) == step:
        log.warning("test fault hook: killing the process", extra={"step": step})
        os.kill(os.getpid(), signal.SIGKILL)


class LiteGate:
    """Milvus Lite's calls from one process: reads side by side, a write (or collection set-up)
    alone. A waiting write holds back new reads, so a steady stream of searches cannot starve an
    ingest; every wait is bounded by the caller's deadline.

    Reads overlap because the engine serves them on its own gRPC threads in another process
    (agent/stores/lite_server.py): while one search runs there, this process parses the last
    one's rows. Writes stay exclusive as before: a search never sees a document half replaced
    by this agent's own write (a reader keeps one version per document either way)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @property
    def writing(self) -> bool:
        return self._writer

    def acquire(self, shared: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            if not shared:
                self._writers_waiting += 1
            try:
                while self._writer or (self._readers if not shared else self._writers_waiting):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                if shared:
                    self._readers += 1
                else:
                    self._writer = True
                return True
            finally:
                if not shared:
                    self._writers_waiting -= 1
                    self._cond.notify_all()  # a write that gave up lets the reads it held back go

    def release(self, shared: bool) -> None:
        with self._cond:
            if shared:
                self._readers -= 1
            else:
                self._writer = False
            self._cond.notify_all()


class VectorStore:
    """Hybrid-searchable chunk store on Milvus (Lite file or server)."""

    def __init__(self, uri: str, collection: str, dim: int, token: str | None = None,
                 timeout: float = 10.0, lite: LiteServer | None = None) -> None:
        """Connect, create or load the collection, and clean what a crash left (`recover`).

        `lite`: the Milvus Lite child serving `uri` (`VectorStore.lite`); the store then owns it,
        restarts it to repair a crash's leftovers and stops it on `close`. A `.db` path as `uri`
        runs Milvus Lite in this process instead (pymilvus's own way).

        Raises VectorStoreUnavailable (retry later), VectorStoreAuthError (bad credentials:
        retrying cannot help) or VectorStoreError."""
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.timeout = timeout
        self.lite_server = lite
        self.is_lite = lite is not None or not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        self._token = token
        self._revive_lock = threading.Lock()
        # Milvus Lite is one engine: a write runs alone, reads run together (LiteGate).
        self._lock = LiteGate() if self.is_lite else None
        self._connect()
        try:
            self._ensure_collection()
        except VectorStoreError:
            # Milvus Lite writes a segment's index sidecar in place after a flush; killed meanwhile,
            # it leaves a truncated file that fails every later load ("File is too small: 8").
            # Sidecars are derived data: without them Lite rebuilds the index from the segment.
            db_dir = lite.db_dir if lite is not None else Path(uri)
            if not self.is_lite or not _drop_lite_index_sidecars(db_dir, collection):
                raise
            if lite is not None:  # the engine keeps what it loaded: start a fresh one on the repaired files
                self._restart_lite(lite)
            self._ensure_collection()
        self.max_document_id_bytes = self._id_capacity()
        self.recover(grace_seconds=0 if self.is_lite else SERVER_RECOVERY_GRACE_S)

    def _revive_lite(self) -> None:
        """Restart the Milvus Lite child if it died under the agent (OOM-killed, killed by hand): the
        call that found it dead still fails (503, retry), the next one reaches a fresh engine on the
        same files, its collections loaded again. Nothing to do for a server or a live child."""
        lite = self.lite_server
        if lite is None or lite.running:
            return
        with self._revive_lock:
            if lite.running:  # another thread restarted it meanwhile
                return
            log.error("the Milvus Lite child died; restarting it", extra={"db": str(lite.db_dir)})
            try:
                self._restart_lite(lite)
                for name in self.client.list_collections(timeout=self.timeout):
                    self.client.load_collection(name, timeout=self.timeout)
            except Exception:  # noqa: BLE001 - the next outage tries again
                log.exception("restarting the Milvus Lite child failed")

    def _restart_lite(self, lite: LiteServer) -> None:
        """A fresh Milvus Lite child on the same files (a new port), and a client connected to it."""
        self.client.close()
        self.uri = lite.restart()
        self._connect()

    def _connect(self) -> None:
        from pymilvus import MilvusClient

        kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout}
        if self._token:
            kwargs["token"] = self._token
        with self._errors("connect"):
            self.client = MilvusClient(**kwargs)

    @classmethod
    def lite(cls, data_dir: Path, collection: str, dim: int, timeout: float = 10.0) -> VectorStore:
        """The embedded default: Milvus Lite on `<data_dir>/milvus.db`, in a child process
        (agent/stores/lite_server.py: its searches then run beside the agent's Python, not on its
        interpreter lock). The store stops the child on `close`."""
        from agent.stores.lite_server import LiteServer, LiteServerFailed

        data_dir.mkdir(parents=True, exist_ok=True)
        server = LiteServer(data_dir / "milvus.db")
        try:
            uri = server.start()
        except LiteServerFailed as exc:
            raise VectorStoreUnavailable(str(exc)) from exc
        try:
            return cls(uri, collection, dim, timeout=timeout, lite=server)
        except BaseException:
            server.stop()
            raise

    @contextmanager
    def _guard(self, shared: bool = False) -> Iterator[None]:
        """The Lite gate (waited for at most the deadline: a long write must not hang readers), and
        honest error classes for whatever the calls inside raise. `shared`: a read, which may run
        beside other reads; everything else (writes, collection set-up) runs alone."""
        with self._errors("call"):
            if self._lock is not None and not self._lock.acquire(shared, self.timeout):
                raise VectorStoreUnavailable(
                    f"Milvus Lite stayed busy for {self.timeout:g}s (AGENT_MILVUS_TIMEOUT_SECONDS)")
            try:
                yield
            finally:
                if self._lock is not None:
                    self._lock.release(shared)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (VectorStoreUnavailable, VectorStoreError, VectorStoreRejected, VectorStoreAuthError):
            raise
        except Exception as exc:
            if is_outage(exc):
                self._revive_lite()
                raise VectorStoreUnavailable(f"the vector store (Milvus) is unavailable: {exc}") from exc
            if is_auth_failure(exc):
                reason = next((c.details() for c in _causes(exc) if hasattr(c, "details")), str(exc))
                raise VectorStoreAuthError(
                    f"Milvus at {self._safe_uri} refused the credentials ({reason}); check "
                    "AGENT_MILVUS_TOKEN / AGENT_MILVUS_TOKEN_FILE (user:password)") from exc
            raise VectorStoreError(f"Milvus refused the {what}: {type(exc).__name__}: {exc}") from exc

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        with self._guard():
            if self.client.has_collection(self.collection, timeout=self.timeout):
                self.client.load_collection(self.collection, timeout=self.timeout)
                return
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=MAX_KEY_CHARS)
            schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_CHARS, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                         input_field_names=["text"], output_field_names=["sparse"]))
            index = self.client.prepare_index_params()
            index.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="COSINE")
            index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            index.add_index(field_name="document_id", index_type="INVERTED")
            self.client.create_collection(self.collection, schema=schema, index_params=index,
                                          timeout=self.timeout)
            log.info("created Milvus collection", extra={"collection": self.collection, "uri": self._safe_uri})

    @property
    def _safe_uri(self) -> str:
        return self.uri.split("@")[-1]

    def _id_capacity(self) -> int:
        """Longest document id, in UTF-8 bytes, this collection's VARCHAR fields hold (collections
        created before ids were sized in bytes are smaller than MAX_ID_BYTES)."""
        with self._guard():
            fields = {f["name"]: f.get("params", {})
                      for f in self.client.describe_collection(self.collection, timeout=self.timeout)["fields"]}
        return int(fields.get("document_id", {}).get("max_length", MAX_ID_BYTES))

    # ------------------------------------------------------------------ writes
    def replace_documents(self, document_ids: list[str], rows: list[ChunkRow]) -> int:
        """Make `rows` the chunks of `document_ids`; returns the chunks of older versions removed.

        Crash-safe order: the rows go in under a new version (and are sealed, on Lite), and only
        then are the older versions of these documents deleted. Killed before the delete, the
        documents keep their old version (readers prefer the newer one once it is complete;
        `recover()` settles it at the next start); killed after, they have the new one."""
        for i, doc_id in enumerate(document_ids):
            if len(doc_id.encode("utf-8")) > self.max_document_id_bytes:
                raise VectorStoreRejected(
                    f"document id is {len(doc_id.encode('utf-8'))} bytes in UTF-8; collection "
                    f"{self.collection!r} holds ids up to {self.max_document_id_bytes} bytes",
                    ("body", "documents", i, "id"))
        version = new_version()
        per_doc: dict[str, int] = {}
        for row in rows:
            per_doc[row.document_id] = per_doc.get(row.document_id, 0) + 1
        payload = [{"chunk_id": row_key(r.document_id, int(r.chunk_id.rpartition("#")[2]), version,
                                        per_doc[r.document_id]),
                    "document_id": r.document_id, "text": r.text, "metadata": r.metadata,
                    "dense": r.vector.tolist()} for r in rows]
        with self._guard():
            try:
                if os.environ.get(CRASH_AT_ENV) == "insert:partial":
                    self.client.upsert(self.collection, payload[:max(1, len(payload) // 2)], timeout=self.timeout)
                    _crash_point("insert:partial")
                for start in range(0, len(payload), WRITE_BATCH_ROWS):
                    self.client.upsert(self.collection, payload[start:start + WRITE_BATCH_ROWS],
                                       timeout=self.timeout)
                _crash_point("insert")
                if payload and self.is_lite:
                    # Milvus Lite searches unsealed (growing) rows without an index: hybrid search
                    # over 5k fresh chunks took 585 ms, 21 ms once sealed. A server seals on its own,
                    # and its docs advise against frequent flushes there (many tiny segments).
                    self.client.flush(self.collection, timeout=self.timeout)
                _crash_point("flush")
            except BaseException:
                # Do not leave a half-written version behind when the write failed in-process.
                self._delete_keys([p["chunk_id"] for p in payload], quiet=True)
                raise
            deleted = self._delete_versions(document_ids, keep=version)
            _crash_point("delete")
        return deleted

    def delete_document(self, document_id: str) -> int:
        with self._guard():
            return self._delete_versions([document_id], keep=None)

    def _keys_of(self, document_ids: list[str]) -> list[str]:
        keys: list[str] = []
        for start in range(0, len(document_ids), 16):   # keeps each filter and each answer small
            flt = in_filter("document_id", document_ids[start:start + 16])
            rows = self.client.query(self.collection, filter=flt, output_fields=["chunk_id"],
                                     limit=QUERY_WINDOW, timeout=self.timeout)
            if len(rows) >= QUERY_WINDOW:   # many versions left behind: page through them all
                rows = self._query_all(flt)
            keys += [_raw_key(e) for e in rows]
        return keys

    def _query_all(self, flt: str) -> list[dict[str, Any]]:
        """Every row matching `flt` (keys and document ids only), page by page. (The iterator puts
        the last key it saw into its next filter unescaped, which is safe only because keys are
        ASCII hex, see row_key; rows from before versions had ids without quotes or backslashes.)"""
        rows: list[dict[str, Any]] = []
        iterator = self.client.query_iterator(self.collection, batch_size=4096, filter=flt,
                                              output_fields=["chunk_id", "document_id"], timeout=self.timeout)
        try:
            while batch := iterator.next():
                rows += batch
        finally:
            iterator.close()
        return rows

    def _delete_versions(self, document_ids: list[str], keep: str | None) -> int:
        """Delete the chunks of `document_ids` whose version is older than `keep` (None: all).

        Never newer ones: two writers of the same id race to the newest version, not to nothing."""
        if not document_ids:
            return 0
        doomed = [k for k in self._keys_of(document_ids) if keep is None or key_version(k)[0] < keep]
        self._delete_keys(doomed)
        return len(doomed)

    def _delete_keys(self, keys: list[str], quiet: bool = False) -> None:
        try:
            for start in range(0, len(keys), 256):
                self.client.delete(self.collection, filter=in_filter("chunk_id", keys[start:start + 256]),
                                   timeout=self.timeout)
        except Exception:
            if not quiet:
                raise
            log.warning("could not remove a failed write's rows; recover() will", exc_info=True)

    def recover(self, grace_seconds: float = 0) -> dict[str, int]:
        """Settle what a crash mid-write left: per document keep the newest complete version,
        delete older versions and half-written ones (those older than `grace_seconds`, so that
        another replica's write in progress is left alone). Returns what it deleted."""
        with self._guard():
            rows = self._query_all("")
        versions: dict[str, dict[str, list[str]]] = {}
        for row in rows:
            key = _raw_key(row)
            versions.setdefault(row["document_id"], {}).setdefault(key_version(key)[0], []).append(key)
        horizon = f"{time.time_ns() - int(grace_seconds * 1e9):016x}"
        doomed: list[str] = []
        stale = partial = 0
        for by_version in versions.values():
            complete = [v for v, keys in by_version.items()
                        if key_version(keys[0])[1] in (None, len(keys))]
            newest = max(complete, default=None)
            for version, keys in by_version.items():
                if newest is not None and version < newest:
                    doomed += keys
                    stale += 1
                elif version not in complete and version < horizon:
                    doomed += keys
                    partial += 1
        if doomed:
            with self._guard():
                self._delete_keys(doomed)
                if self.is_lite:
                    self.client.flush(self.collection, timeout=self.timeout)
            log.warning("removed what an interrupted write left", extra={
                "collection": self.collection, "old_versions": stale, "partial_versions": partial,
                "chunks": len(doomed)})
        return {"old_versions": stale, "partial_versions": partial, "chunks": len(doomed)}

    # ------------------------------------------------------------------ reads
    # Two plain searches; fusing them (and any re-ranking) is the Retriever's job (agent/retrieval.py),
    # so the ranking is the same whichever store holds the chunks.
    def search_dense(self, vector: np.ndarray, limit: int) -> list[Hit]:
        """Chunks by cosine similarity to `vector` (ANN index), best first; `score` is the cosine."""
        return self._search([vector.tolist()], "dense", "COSINE", limit)

    def search_bm25(self, query: str, limit: int) -> list[Hit]:
        """Chunks by BM25 over their analysed text (Milvus full-text search), best first."""
        return self._search([query], "sparse", "BM25", limit)

    def _search(self, data: list, field: str, metric: str, limit: int) -> list[Hit]:
        with self._guard(shared=True):
            result = self.client.search(self.collection, data=data, anns_field=field,
                                        search_params={"metric_type": metric}, limit=limit,
                                        output_fields=["document_id", "text", "metadata"], timeout=self.timeout)
        return [Hit(document_id=item["entity"]["document_id"], chunk_id=primary_key(item),
                    score=float(item["distance"]), text=item["entity"]["text"],
                    metadata=item["entity"].get("metadata") or {})
                for item in latest_version_only(result[0] if result else [])]

    def count_chunks(self) -> int:
        with self._guard(shared=True):
            stats = self.client.query(self.collection, filter="", output_fields=["count(*)"], timeout=self.timeout)
        return int(stats[0]["count(*)"]) if stats else 0

    def ping(self) -> dict[str, Any]:
        """Readiness probe: the collection exists and answers a count."""
        if self._lock is not None and self._lock.writing:
            # Milvus Lite is one engine behind the gate: a long write holding it is work, not an outage.
            return {"collection": self.collection, "mode": "lite", "busy": True}
        return {"collection": self.collection, "chunks": self.count_chunks(),
                "mode": "lite" if self.is_lite else "server"}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing is best effort on shutdown
            log.debug("milvus close failed", exc_info=True)
        if self.lite_server is not None:
            self.lite_server.stop()
