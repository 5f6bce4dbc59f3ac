"""Request and response models: the OpenAPI schema generated from these is the API contract.

Hard bounds here keep absurd input out before any work is done; the tighter, configurable limits
(AGENT_MAX_MESSAGE_CHARS, AGENT_MAX_TOP_K, ...) are checked in the routes with the same 422 shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

from agent.perception import VISIBLE_TEXT_PATTERN

# Any printable text: quotes, backslashes and non-ASCII are escaped where ids meet Milvus filter
# expressions (agent.stores.vectors.quote). Control characters are refused: the store uses one to
# separate a chunk id from its version.
DOCUMENT_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


# Metadata is stored in Milvus's JSON field, and JSON has no NaN or Infinity (Python's decoder
# accepts both). Numbers are bounded by +-2**53, where every integer is exact as a double: so a
# validator comparing in doubles and one comparing exactly agree on every input, and the schema
# and the server can say the same thing. Integers are judged by the integer branch only (a
# float branch that took them would round 2**53 + 1 down into range).
MAX_METADATA_NUMBER = 2**53


def _integers_elsewhere(value: Any) -> Any:
    if isinstance(value, int):
        raise ValueError(f"integers must lie within +-{MAX_METADATA_NUMBER}")
    return value


MetadataValue = TypeAliasType("MetadataValue", Union[  # noqa: UP007 (a string forward reference needs Union)
    None, bool, Annotated[int, Field(ge=-MAX_METADATA_NUMBER, le=MAX_METADATA_NUMBER)],
    Annotated[float, Field(ge=-MAX_METADATA_NUMBER, le=MAX_METADATA_NUMBER, allow_inf_nan=False),
              BeforeValidator(_integers_elsewhere)],
    str, list["MetadataValue"], dict[str, "MetadataValue"]])


# Request bodies are validated strictly: no "5" for 5 or "true" for true, which the schema
# (JSON types) does not allow either.
STRICT = ConfigDict(strict=True)


def _json_integer(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("Input should be a valid integer")
    return value


# JSON Schema integers: 5 or 5.0 (an integral number), never "5", true or 5.5. (Bounds go in the
# Field before the validator, or they drop out of the generated schema.)
TopK = Annotated[int, Field(strict=False, ge=1, le=1000), BeforeValidator(_json_integer)]
TokenLimit = Annotated[int, Field(strict=False, ge=1), BeforeValidator(_json_integer)]


class DocumentIn(BaseModel):
    """One document to index. Re-sending an id replaces that document's chunks."""

    model_config = STRICT
    id: str = Field(..., pattern=DOCUMENT_ID_PATTERN, description="Stable id; re-ingest replaces.")
    text: str = Field(..., min_length=1, max_length=5_000_000)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, description="Returned with every hit.")
    title: str | None = Field(None, max_length=512, description=(
        "The document's topic, e.g. 'Install guide — Upgrading'. Indexed as the first line of every "
        "chunk (and returned with it), so a chunk from deep in the document is found by its topic."))


class DocumentsRequest(BaseModel):
    model_config = STRICT
    documents: list[DocumentIn] = Field(..., min_length=1, max_length=10_000, description=(
        "An id sent more than once in one request is written once, with its last occurrence, "
        "as if the documents had been sent one after the other."))

    def latest_by_id(self) -> list[DocumentIn]:
        """One document per id, the last occurrence, in the order of first appearance."""
        return list({doc.id: doc for doc in self.documents}.values())


class DocumentsResponse(BaseModel):
    documents: int = Field(..., description="Documents written.")
    chunks: int = Field(..., description="Chunks written.")
    replaced_chunks: int = Field(..., description="Chunks of earlier versions of these ids removed.")


class DeleteDocumentResponse(BaseModel):
    document_id: str
    deleted_chunks: int


class RetrieveRequest(BaseModel):
    model_config = STRICT
    query: str = Field(..., min_length=1, max_length=100_000)
    top_k: TopK = Field(5, description="Hits to return (at most AGENT_MAX_TOP_K).")


class HitOut(BaseModel):
    """A retrieved chunk. `score` is the fused hybrid (reciprocal-rank) score; higher is better."""

    document_id: str
    chunk_id: str
    score: float
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class RetrieveResponse(BaseModel):
    hits: list[HitOut]


class ChatRequest(BaseModel):
    model_config = STRICT
    message: str = Field(..., min_length=1, max_length=100_000, pattern=VISIBLE_TEXT_PATTERN,
                         description="At least one character that is not blank (whitespace or control).")
    session_id: str | None = Field(None, pattern=SESSION_ID_PATTERN,
                                   description="Omit to start a new session; the response carries its id.")


class ChatResponse(BaseModel):
    session_id: str
    answer: str
    citations: list[HitOut] = Field(..., description="The chunks the answer used; [n] in the answer is citations[n-1].")
    intent: Literal["question", "tool_call", "follow_up", "chit_chat"]
    supported: bool = Field(..., description="False when the documents did not support an answer.")
    tool_result: Any = None


class SessionMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    intent: str | None = None
    citations: list[dict[str, Any]] | None = None
    ts: float


class SessionResponse(BaseModel):
    session_id: str
    messages: list[SessionMessage]
    ttl_seconds: int = Field(..., description="Seconds until the session expires (renewed on every turn).")


class InvokeRequest(BaseModel):
    model_config = STRICT
    tool: str = Field(..., min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)


class InvokeResponse(BaseModel):
    tool: str
    result: Any


class ToolInfo(BaseModel):
    name: str
    description: str
    arguments_schema: dict[str, Any]


class ToolsResponse(BaseModel):
    tools: list[ToolInfo]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    ok: bool
    detail: Any = None


class ReadyResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]


class ErrorResponse(BaseModel):
    detail: Any


# ---------------------------------------------------------------- OpenAI-compatible
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat completions request the agent uses; other fields are ignored.

    `temperature` and `max_tokens` apply to answers generated from the documents (not to tool or
    chit-chat replies); what each generator does with them is in docs/agent.md.
    """

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"not": {
        "required": ["max_tokens", "max_completion_tokens"],
        "properties": {"max_tokens": {"type": "integer"}, "max_completion_tokens": {"type": "integer"}}}})
    model: str = "rag-agent"
    messages: list[ChatMessage] = Field(
        ..., min_length=1, max_length=200,
        description="The conversation; at least one message has role `user` (the last one is the question).",
        json_schema_extra={"contains": {"type": "object", "required": ["role"],
                                        "properties": {"role": {"const": "user"}}}})

    @field_validator("messages")
    @classmethod
    def _has_user_message(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("messages must contain at least one message with role 'user' (the question)")
        return messages
    stream: bool = False
    temperature: float | None = Field(
        None, ge=0, le=2,
        description="Sampling temperature sent to the openai generator (default 0). "
                    "The extractive generator does not sample and ignores it.")
    max_tokens: TokenLimit | None = Field(
        None,
        description="Upper bound on the answer's length. openai generator: model tokens, capped at "
                    "AGENT_GENERATOR_MAX_TOKENS (also the default). Extractive generator: words, "
                    "citation marks included, in whole sentences; the best sentence is always kept.")
    max_completion_tokens: TokenLimit | None = Field(
        None, description="OpenAI's newer name for max_tokens; send one of the two.")

    @model_validator(mode="after")
    def _one_token_limit(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None:
                raise ValueError("max_tokens and max_completion_tokens are the same bound; send one of them")
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: CompletionMessage
    finish_reason: Literal["stop", "length"] = Field(
        "stop", description="`length` when max_tokens shortened the answer.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[HitOut] = Field(default_factory=list, description="Extension: the chunks the answer used.")
