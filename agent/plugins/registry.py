"""Plugin registry: named tools with pydantic argument schemas, an allow-list and timeouts.

A tool is a function of one validated pydantic model. The registry refuses tools that are not
registered (404) or not on the allow-list (403), arguments that fail the schema (422), and runs
that exceed the timeout (504). Tools get no shell and no network: the built-ins are pure
computation or a query to the agent's own vector store.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError


class ToolError(Exception):
    """A tool refused its input or failed; the message is safe to show the caller."""

    status_code = 400


class ToolNotFound(ToolError):
    status_code = 404


class ToolNotAllowed(ToolError):
    status_code = 403


class ToolTimeout(ToolError):
    status_code = 504


class ToolArgumentsInvalid(ToolError):
    status_code = 422

    def __init__(self, tool: str, error: ValidationError) -> None:
        self.errors = [{"loc": ["arguments", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                       for e in error.errors(include_url=False, include_context=False, include_input=False)]
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or "arguments" for e in self.errors)
        super().__init__(f"invalid arguments for tool {tool!r}: {fields}")


ToolFunc = Callable[[Any], Any] | Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    func: ToolFunc
    timeout_seconds: float | None = None   # None -> registry default


class ToolRegistry:
    def __init__(self, allowed: frozenset[str] | set[str], default_timeout: float = 5.0,
                 calls: Any = None) -> None:
        # `calls`: a Counter labelled (tool, outcome). Counted here, once, whoever invokes the tool.
        self.calls = calls
        self._tools: dict[str, Tool] = {}
        self.allowed = frozenset(allowed)
        self.default_timeout = default_timeout

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolNotFound(f"unknown tool {name!r}; GET /tools lists the available ones")
        if name not in self.allowed:
            raise ToolNotAllowed(f"tool {name!r} is not allowed here; add it to AGENT_TOOLS_ALLOWED to enable it")
        return tool

    def available(self) -> list[Tool]:
        """Registered tools on the allow-list, sorted by name."""
        return [self._tools[n] for n in sorted(self._tools) if n in self.allowed]

    async def invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            result = await self._invoke(name, arguments)
        except ToolError as exc:
            self._count(name, type(exc).__name__)
            raise
        self._count(name, "ok")
        return result

    def _count(self, name: str, outcome: str) -> None:
        if self.calls is not None:
            # Only allowed names become label values: callers cannot grow the label set at will.
            self.calls.labels(name if name in self.allowed else "other", outcome).inc()

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> Any:
        tool = self.get(name)
        try:
            args = tool.arguments.model_validate(arguments)
        except ValidationError as exc:
            raise ToolArgumentsInvalid(name, exc) from exc
        timeout = tool.timeout_seconds or self.default_timeout
        try:
            if inspect.iscoroutinefunction(tool.func):
                return await asyncio.wait_for(tool.func(args), timeout)
            # Sync tools run in a worker thread; the thread is abandoned on timeout, which is
            # why built-in tools also bound their own work (see calculator limits).
            return await asyncio.wait_for(anyio.to_thread.run_sync(tool.func, args, abandon_on_cancel=True),
                                          timeout)
        except TimeoutError as exc:
            raise ToolTimeout(f"tool {name!r} did not finish within {timeout:g}s") from exc
