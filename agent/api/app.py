"""The app factory: `create_app(settings)` builds the app; its lifespan creates and closes resources.

Nothing is created at import time. The lifespan loads the encoder, opens Milvus and Redis, builds
the tool registry and the executor, and releases them on shutdown. Every resource is registered
on one `AsyncExitStack` as soon as it exists, so a start that fails half-way releases what it
had already created. Routes receive single resources through the `Annotated` deps in
`agent.api.deps`; middleware and error handlers live in their own modules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress

import anyio
import httpx
from fastapi import FastAPI

from agent import __version__
from agent.api.deps import Resources
from agent.api.errors import install_error_handlers
from agent.api.middleware import BodyLimitMiddleware, ObservabilityMiddleware, RateLimitHeadersMiddleware
from agent.api.routes import chat, docs, documents, health, openai, retrieve, tools
from agent.api.schema import install_openapi
from agent.config import Settings
from agent.embeddings import Encoder
from agent.execution import Executor
from agent.generation import ExtractiveGenerator, Generator, OpenAIGenerator, SupportScorer
from agent.observability import Metrics, configure_logging
from agent.plugins import Tool
from agent.plugins.builtins import builtin_registry
from agent.chunking import Chunker
from agent.ranking import Ranking
from agent.retrieval import Retriever
from agent.runtime import release_free_memory
from agent.stores.embedded_redis import DataDirInUse
from agent.stores.sessions import RateLimiter, SessionStore, connect_redis
from agent.stores.vectors import VectorStore, VectorStoreAuthError, VectorStoreUnavailable

log = logging.getLogger("agent.api")

MILVUS_BACKOFF_FIRST_S = 1.0
MILVUS_BACKOFF_MAX_S = 30.0
# How long the start waits for Milvus before it serves anyway (not ready) and keeps trying behind.
MILVUS_START_WAIT_S = 30.0

# Exit codes of `python -m agent serve` beyond uvicorn's own (docs/agent.md lists them all).
EXIT_DATA_DIR_IN_USE = 3  # uvicorn's start-failed code, as for the embedded Redis of a data dir in use
EXIT_MILVUS_AUTH = 4
EXIT_MILVUS_UNREACHABLE = 5


class StartupFailed(RuntimeError):
    """The agent cannot run with this configuration; `exit_code` says why (see docs/agent.md)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def create_app(settings: Settings | None = None, *, encoder: Encoder | None = None,
               extra_tools: Sequence[Tool] = (), on_fatal: Callable[[StartupFailed], None] | None = None) -> FastAPI:
    """Build the agent app.

    `encoder` lets a caller share one loaded model between apps (tests, benchmarks);
    `extra_tools` registers more plugins (still subject to AGENT_TOOLS_ALLOWED); `on_fatal` is
    called when a dependency fails for good after the start (the server stops; in-process callers
    get a not-ready app).
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            enc = encoder or await anyio.to_thread.run_sync(
                lambda: Encoder.load(settings.embedding_model_path, settings.embedding_device,
                                     settings.embedding_batch_size))
            retriever = Retriever(enc, None, metrics,
                                  Chunker.for_encoder(enc, settings.chunk_size_tokens, settings.chunk_overlap_tokens),
                                  Ranking(phrase_min_coverage=settings.phrase_min_coverage),
                                  sentence_vectors=settings.sentence_vectors != "off")
            stack.push_async_callback(_close_store, retriever)
            redis = connect_redis(settings)
            stack.push_async_callback(redis.close)
            scorer = SupportScorer(enc, settings.answer_min_score,
                                   retriever.stored_sentence_vectors if settings.sentence_vectors == "stored" else None)
            generator: Generator
            if settings.generator == "openai":
                headers = {}
                key = settings.secret("generator_api_key")
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                http_client = await stack.enter_async_context(httpx.AsyncClient(
                    base_url=settings.generator_base_url.rstrip("/") + "/", headers=headers,
                    timeout=settings.generator_timeout_seconds))
                generator = OpenAIGenerator(http_client, settings.generator_model, scorer,
                                            settings.generator_max_tokens)
            else:
                generator = ExtractiveGenerator(scorer)
            registry = builtin_registry(settings, retriever, calls=metrics.tool_calls)
            for tool in extra_tools:
                registry.register(tool)
            app.state.resources = Resources(
                settings=settings, metrics=metrics, encoder=enc, retriever=retriever, redis=redis,
                sessions=SessionStore(redis.client, settings.session_ttl_seconds, settings.session_max_messages,
                                      settings.redis_timeout_seconds),
                limiter=RateLimiter(redis.client, settings.rate_limit_per_minute,
                                    settings.rate_limit_timeout_seconds, settings.rate_limit_retry_seconds),
                tools=registry,
                executor=Executor(retriever, generator, registry, metrics),
                api_keys=[k.encode() for k in settings.api_key_list],
            )
            if settings.memory_trim_seconds > 0:
                trimmer = asyncio.create_task(_release_memory_every(settings.memory_trim_seconds))
                stack.push_async_callback(_cancel, trimmer)
            connector = asyncio.create_task(_connect_milvus(settings, retriever, enc.dim, metrics))
            stack.push_async_callback(_cancel, connector)
            # Usually quick (Lite, or a healthy server); if not, keep starting and retry behind.
            await asyncio.wait({connector}, timeout=MILVUS_START_WAIT_S)
            if connector.done() and connector.exception() is not None:
                # Refused credentials, or out of attempts: fail the start, with the exit code.
                app.state.startup_error = connector.exception()
                raise app.state.startup_error
            else:
                connector.add_done_callback(lambda task: _report_fatal(task, on_fatal))
            if not settings.api_key_list:
                log.warning("no API keys configured (AGENT_API_KEYS / AGENT_API_KEYS_FILE): auth is disabled")
            log.info("agent started", extra={"version": __version__, "redis": redis.description,
                                             "milvus": settings.milvus_uri or "lite", "generator": generator.name,
                                             "device": str(enc.device), "tools": sorted(registry.allowed)})
            yield
        log.info("agent stopped")

    public_docs = settings.docs_access == "public"
    app = FastAPI(title="rag-platform agent", version=__version__, lifespan=lifespan,
                  description="Retrieval-augmented agent: documents, hybrid retrieval, cited chat, tools.",
                  openapi_url="/openapi.json" if public_docs else None,
                  docs_url="/docs" if public_docs else None, redoc_url="/redoc" if public_docs else None)
    for module in (health, documents, retrieve, chat, tools, openai):
        app.include_router(module.router)
    install_openapi(app, settings)
    if settings.docs_access == "auth":
        app.include_router(docs.router)
    install_error_handlers(app, metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _release_memory_every(seconds: float) -> None:
    """Give freed heap pages back to the kernel now and then (agent.runtime): RSS follows the
    working set after a burst instead of staying at its peak."""
    while True:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(release_free_memory)


async def _close_store(retriever: Retriever) -> None:
    if retriever.store is not None:
        await anyio.to_thread.run_sync(retriever.store.close)


def _report_fatal(task: asyncio.Task, on_fatal: Callable[[StartupFailed], None] | None) -> None:
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    log.critical("giving up on Milvus", extra={"error": str(exc)})
    if on_fatal is not None and isinstance(exc, StartupFailed):
        on_fatal(exc)


async def _connect_milvus(settings: Settings, retriever: Retriever, dim: int, metrics: Metrics) -> None:
    """Open the vector store with bounded retries: an outage at start is retried with backoff
    (AGENT_MILVUS_CONNECT_ATTEMPTS), refused credentials are not retried at all."""
    delay = MILVUS_BACKOFF_FIRST_S
    for attempt in range(1, settings.milvus_connect_attempts + 1):
        try:
            if settings.milvus_uri:
                store = await anyio.to_thread.run_sync(lambda: VectorStore(
                    settings.milvus_uri, settings.milvus_collection, dim, settings.secret("milvus_token"),
                    timeout=settings.milvus_timeout_seconds))
            else:
                store = await anyio.to_thread.run_sync(lambda: VectorStore.lite(
                    settings.data_dir, settings.milvus_collection, dim, timeout=settings.milvus_timeout_seconds))
            retriever.store = store
            return
        except VectorStoreAuthError as exc:
            raise StartupFailed(str(exc), EXIT_MILVUS_AUTH) from exc
        except DataDirInUse as exc:  # another agent's Milvus Lite: retrying would only wait for it
            raise StartupFailed(str(exc), EXIT_DATA_DIR_IN_USE) from exc
        except VectorStoreUnavailable as exc:  # keep serving; /readyz reports not ready meanwhile
            metrics.dependency_errors.labels("milvus").inc()
            if attempt == settings.milvus_connect_attempts:
                raise StartupFailed(f"Milvus unreachable after {attempt} attempts (AGENT_MILVUS_CONNECT_ATTEMPTS): "
                                    f"{exc}", EXIT_MILVUS_UNREACHABLE) from exc
            log.error("Milvus unavailable, retrying", extra={"error": str(exc), "attempt": attempt,
                                                             "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MILVUS_BACKOFF_MAX_S)
