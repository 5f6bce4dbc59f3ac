"""Data shared by the agent's layers: a retrieved hit and a chat message.

Perception, decision, execution and generation all read these; the stores produce and persist
them. Keeping them here, apart from the storage code, lets every layer import them without
depending on Milvus or Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hit:
    """A retrieved chunk. `score` is the fused hybrid (reciprocal-rank) score; higher is better."""

    document_id: str
    chunk_id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    """One turn of a conversation, as kept in the session history."""

    role: str           # "user" | "assistant"
    content: str
    intent: str | None = None
    citations: list[dict[str, Any]] | None = None
    ts: float = 0.0
