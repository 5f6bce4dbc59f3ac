"""The registry the app starts with: every built-in tool, filtered by AGENT_TOOLS_ALLOWED."""

from __future__ import annotations

from typing import Any

from agent.config import Settings
from agent.plugins.calculator import calculator_tool
from agent.plugins.registry import ToolRegistry
from agent.plugins.retrieval import retrieval_tool
from agent.retrieval import Retriever


def builtin_registry(settings: Settings, retriever: Retriever, calls: Any = None) -> ToolRegistry:
    registry = ToolRegistry(settings.allowed_tools, default_timeout=settings.tool_timeout_seconds, calls=calls)
    registry.register(calculator_tool)
    registry.register(retrieval_tool(retriever))
    return registry
