"""Metrics (Prometheus, one registry per app) and structured JSON logs with request ids.

The canary analysis queries `agent_http_requests_total{route,method,status}` and
`agent_http_request_duration_seconds{route,method}`; `route` is the route template
("/documents/{document_id}"), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the agent exports, registered in a private registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("agent_http_requests_total", "HTTP requests by route template.",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("agent_http_request_duration_seconds", "HTTP request latency.",
                                       ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.retrieval_duration = Histogram("agent_retrieval_duration_seconds",
                                            "Hybrid search (the query encoding is timed apart).", buckets=_LATENCY_BUCKETS,
                                            registry=r)
        self.generation_duration = Histogram("agent_generation_duration_seconds", "Answer generation.",
                                             ["backend"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ingestion_duration = Histogram("agent_ingestion_duration_seconds",
                                            "Chunk + embed + write one ingestion request.",
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.embedding_duration = Histogram("agent_embedding_duration_seconds", "One encoder call.",
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.ingested_chunks = Counter("agent_ingested_chunks_total", "Chunks written to the vector store.",
                                       registry=r)
        self.tool_calls = Counter("agent_tool_invocations_total", "Tool runs by outcome.",
                                  ["tool", "outcome"], registry=r)
        self.chat_intents = Counter("agent_chat_intents_total", "Chat turns by recognised intent.",
                                    ["intent"], registry=r)
        self.unsupported_answers = Counter("agent_unsupported_answers_total",
                                           "Answers declined because no passage supported them.", registry=r)
        self.dependency_errors = Counter("agent_dependency_errors_total", "Failed calls to Redis/Milvus.",
                                         ["dependency"], registry=r)
        self.rate_limited = Counter("agent_rate_limited_total", "Requests refused with 429.", registry=r)
        self.ready = Gauge("agent_ready", "1 when Redis, Milvus and the model all answer.", registry=r)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id and `extra` fields."""

    converter = time.gmtime

    _STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
        "message", "asctime", "taskName", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str) -> None:
    """JSON logs on stderr for the agent and uvicorn; idempotent (tests create many apps)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("agent", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # Our access log below replaces uvicorn's, which would log raw paths without request ids.
    logging.getLogger("uvicorn.access").disabled = True


def new_request_id(incoming: str | None) -> str:
    if incoming and len(incoming) <= 128 and incoming.isprintable():
        return incoming
    return uuid.uuid4().hex
