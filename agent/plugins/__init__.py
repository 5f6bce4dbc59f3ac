"""Tools the agent (and callers, through POST /invoke) may run: a registry plus built-ins."""

from agent.plugins.registry import (
    Tool,
    ToolError,
    ToolNotAllowed,
    ToolNotFound,
    ToolRegistry,
    ToolTimeout,
)

__all__ = ["Tool", "ToolError", "ToolNotAllowed", "ToolNotFound", "ToolRegistry", "ToolTimeout"]
