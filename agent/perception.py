"""Perception: normalise what the user typed and recognise what they want.

Intents: `question` (look it up), `tool_call` (arithmetic the calculator can do), `follow_up`
(refers back to the conversation, e.g. "and what about its TTL?") and `chit_chat` (greetings,
thanks). Rules, not a model: cheap, predictable and easy to extend.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Intent(StrEnum):
    QUESTION = "question"
    TOOL_CALL = "tool_call"
    FOLLOW_UP = "follow_up"
    CHIT_CHAT = "chit_chat"


@dataclass
class Perception:
    text: str                      # normalised message
    intent: Intent
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHIT_CHAT = re.compile(
    r"^(hi|hello|hey|hiya|yo|good (morning|afternoon|evening)|thanks?( you)?|thank you( very much)?|"
    r"cheers|ok(ay)?|cool|great|bye|goodbye|see you|how are you( doing)?|who are you|what can you do)"
    r"[\s!.?,]*$", re.IGNORECASE)
# An arithmetic expression: numbers, operators, parentheses; at least one binary operator.
_ARITH = re.compile(r"(?<![\w.])[-+(\s]*\d[\d.\s]*(?:(?:\*\*|[-+*/%^]|//)[\s(]*[-+]?\s*\d[\d.\s]*\)*\s*)+")
_CALC_PREFIX = re.compile(r"^(please\s+)?(calculate|compute|evaluate|what\s+is|what's|whats|how\s+much\s+is)\b",
                          re.IGNORECASE)
_FOLLOW_UP_START = re.compile(
    r"^(and|also|but|so|then|what about|how about|and what about|why( is that| not)?|how so|"
    r"tell me more|more|go on|can you elaborate|elaborate|explain( that| it)?( more)?|what else)\b", re.IGNORECASE)
_REFERS_BACK = re.compile(r"\b(it|its|it's|that|this|those|these|they|them|their|there|he|she|the same)\b",
                          re.IGNORECASE)


def normalise(message: str) -> str:
    text = unicodedata.normalize("NFKC", message)
    text = _CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def perceive(message: str, has_history: bool = False) -> Perception:
    text = normalise(message)
    if _CHIT_CHAT.match(text):
        return Perception(text, Intent.CHIT_CHAT)
    expression = _arithmetic(text)
    if expression is not None:
        return Perception(text, Intent.TOOL_CALL, tool="calculator", arguments={"expression": expression})
    if has_history and _is_follow_up(text):
        return Perception(text, Intent.FOLLOW_UP)
    return Perception(text, Intent.QUESTION)


def _arithmetic(text: str) -> str | None:
    stripped = _CALC_PREFIX.sub("", text).strip(" ?!.=")
    match = _ARITH.fullmatch(stripped)
    if match is None:
        return None
    return stripped.replace("^", "**").strip()


def _is_follow_up(text: str) -> bool:
    words = text.split()
    if _FOLLOW_UP_START.match(text):
        return True
    # Short messages that point back at something ("is it persistent?") need the context.
    return len(words) <= 8 and bool(_REFERS_BACK.search(text))
