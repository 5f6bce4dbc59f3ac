"""Milvus Lite in a child process: the embedded default's search engine off the agent's GIL.

Milvus Lite 3 is pure Python: a gRPC server over numpy, faiss and parquet. Started the way
pymilvus starts it for a `.db` path (in a thread of the calling process), every search it serves
runs on the agent's own interpreter lock, and on /chat that was more than half of the lock's time
(bench/results: the four searches per answer, their result rows built and parsed on both sides of
an in-process gRPC channel). So the agent runs it here, in a process of its own, as a Milvus
server runs in the cluster: the agent's Python and the engine's then use two cores.

- The child binds 127.0.0.1 on a free port and prints it; the store connects as to any server.
- It stops, closing the database cleanly, on SIGTERM (`LiteServer.stop`) or when its stdin reaches
  EOF: the agent holds the other end of that pipe, so the kernel closes it when the agent dies,
  kill -9 included, and no engine is left holding the data dir's lock.
- Milvus Lite takes an advisory lock on the data dir (`<db>/LOCK`); a child that finds it held (a
  previous child still closing) waits for it, bounded; still held after that, another live engine
  uses the data dir (another agent), and `start` raises `DataDirInUse`, as the embedded Redis does.

Run as `python -m agent.stores.lite_server DB_DIR LOCK_WAIT_SECONDS` (by `LiteServer` only).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.stores.embedded_redis import DataDirInUse

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0   # a large data dir loads its segments and indexes before the port is printed
STOP_TIMEOUT_S = 15.0
LOCK_WAIT_S = 10.0       # the child's wait for a previous engine on the same data dir to let go
EXIT_LOCKED = 3          # the child's exit code when the lock stayed held
READY_PREFIX = "port "
WORKERS = 8            # gRPC threads in the child (Milvus Lite's default is 10)


class LiteServerFailed(RuntimeError):
    """The Milvus Lite child did not start (its stderr tail is in the message)."""


@dataclass
class LiteServer:
    """One Milvus Lite child for one data dir (`<data dir>/milvus.db`); `start()` returns its URI."""

    db_dir: Path
    lock_wait_s: float = LOCK_WAIT_S
    process: subprocess.Popen | None = None
    port: int | None = None
    _stderr: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        if self.port is None:
            raise LiteServerFailed("the Milvus Lite child is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> str:
        self.db_dir.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.stores.lite_server", str(self.db_dir), str(self.lock_wait_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, close_fds=True)
        threading.Thread(target=self._drain_stderr, args=(self.process,), daemon=True,
                         name="milvus-lite-stderr").start()
        ready = _read_line(self.process, START_TIMEOUT_S)
        if ready is None or not ready.startswith(READY_PREFIX):
            try:
                locked = self.process.wait(timeout=STOP_TIMEOUT_S) == EXIT_LOCKED
            except subprocess.TimeoutExpired:
                locked = False
            self.stop()
            if locked:
                raise DataDirInUse(f"the data dir {self.db_dir.parent} is in use: another process runs Milvus Lite "
                                   f"on {self.db_dir} (its LOCK stayed held for {self.lock_wait_s:g}s); give each "
                                   "agent its own AGENT_DATA_DIR")
            tail = "".join(self._stderr[-20:]).strip()
            raise LiteServerFailed(f"Milvus Lite on {self.db_dir} did not start within {START_TIMEOUT_S:g}s"
                                   f"{': ' + tail if tail else ''}")
        self.port = int(ready[len(READY_PREFIX):])
        log.info("Milvus Lite started in a child process",
                 extra={"pid": self.process.pid, "port": self.port, "db": str(self.db_dir)})
        return self.uri

    def _drain_stderr(self, process: subprocess.Popen) -> None:
        # Drained so a chatty child never blocks on a full pipe; the tail explains a failed start.
        assert process.stderr is not None
        for line in process.stderr:
            self._stderr.append(line)
            del self._stderr[:-50]

    def stop(self) -> None:
        """Close the database cleanly (SIGTERM), or kill the child if it does not exit in time."""
        process, self.process, self.port = self.process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("Milvus Lite child ignored SIGTERM; killing it", extra={"pid": process.pid})
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def restart(self) -> str:
        self.stop()
        return self.start()


def _read_line(process: subprocess.Popen, timeout: float) -> str | None:
    """The child's first stdout line, or None if it exits or stays silent for `timeout`."""
    assert process.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0].strip() if line and line[0] else None


# ---------------------------------------------------------------------------------- the child
def _serve(db_dir: str, workers: int, lock_wait_s: float):
    """(gRPC server, database, port) on 127.0.0.1, waiting (bounded) while another process still
    holds the data dir's lock; None if it is still held after `lock_wait_s`."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread
    from milvus_lite.exceptions import DataDirLockedError

    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            return start_server_in_thread(db_dir, host="127.0.0.1", port=0, max_workers=workers)
        except DataDirLockedError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m agent.stores.lite_server DB_DIR LOCK_WAIT_SECONDS "
              "(started by agent.stores.lite_server.LiteServer)", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    served = _serve(argv[0], WORKERS, float(argv[1]))
    if served is None:
        print(f"{argv[0]}: the data dir's LOCK is held by another process", file=sys.stderr)
        return EXIT_LOCKED
    server, db, port = served
    # EOF on stdin: the agent is gone (closed or killed).
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True, name="parent-watch").start()
    print(f"{READY_PREFIX}{port}", flush=True)
    while not stop.wait(1.0):
        pass
    server.stop(grace=2).wait(STOP_TIMEOUT_S / 2)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
