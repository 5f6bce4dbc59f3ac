"""Decision: pick what to do with a perceived message, using session state and simple rules.

- a tool call the allow-list permits -> run the tool;
- chit-chat -> answer directly, no retrieval;
- a follow-up -> retrieve with the previous question folded into the query;
- anything else -> retrieve and answer from the passages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.perception import Intent, Perception
from agent.types import Message


class Action(StrEnum):
    RETRIEVE = "retrieve"
    CALL_TOOL = "call_tool"
    RESPOND = "respond"


@dataclass
class Plan:
    action: Action
    query: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def decide(perception: Perception, history: list[Message], allowed_tools: frozenset[str]) -> Plan:
    if perception.intent is Intent.TOOL_CALL and perception.tool:
        if perception.tool in allowed_tools:
            return Plan(Action.CALL_TOOL, perception.text, perception.tool, perception.arguments)
        # The tool is not allowed here: fall back to answering from the documents.
        return Plan(Action.RETRIEVE, perception.text)
    if perception.intent is Intent.CHIT_CHAT:
        return Plan(Action.RESPOND, perception.text)
    if perception.intent is Intent.FOLLOW_UP:
        previous = last_user_question(history)
        if previous:
            return Plan(Action.RETRIEVE, f"{previous} {perception.text}")
    return Plan(Action.RETRIEVE, perception.text)


def last_user_question(history: list[Message]) -> str | None:
    for message in reversed(history):
        if message.role == "user" and message.intent in (Intent.QUESTION, Intent.FOLLOW_UP, None):
            return message.content
    return None
