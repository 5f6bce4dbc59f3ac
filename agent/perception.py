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
# Whitespace as both Python and JavaScript (JSON Schema) regexes see it, spelled out: `\s` differs
# between them (U+FEFF, U+0085, U+001C-U+001F). A message needs one character outside this set;
# the API schema's `pattern` uses the same class, so schema and server agree on "blank".
BLANK_CHARS = ("\\t\\n\\v\\f\\r \\x00-\\x1f\\x7f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029"
               "\\u202f\\u205f\\u3000\\ufeff")
VISIBLE_TEXT_PATTERN = f"[^{BLANK_CHARS}]"
_BLANK = re.compile(f"[{BLANK_CHARS}]+")
_CHIT_CHAT = re.compile(
    r"^(hi|hello|hey|hiya|yo|good (morning|afternoon|evening)|thanks?( you)?|thank you( very much)?|"
    r"cheers|ok(ay)?|cool|great|bye|goodbye|see you|how are you( doing)?|who are you|what can you do)"
    r"[\s!.?,]*$", re.IGNORECASE)
# Arithmetic is recognised by a tokenizer and a three-state scan, not by one regex: a nested
# quantifier over "digits, dots and spaces" backtracked exponentially on "1+1 +1 ... x" (a
# 100-character message froze the event loop). Each token pattern below is a single, unambiguous
# step, so the scan is linear in the message length.
_ARITH_TOKEN = re.compile(r"\s*(?:(?P<num>\d[\d.]*)|(?P<op>\*\*|//|[-+*/%^])|(?P<open>\()|(?P<close>\)))")
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
    return _BLANK.sub(" ", re.sub(r"\s+", " ", text)).strip()


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
    if not _is_arithmetic(stripped):
        return None
    return stripped.replace("^", "**").strip()


def _is_arithmetic(text: str) -> bool:
    """Numbers joined by at least one binary operator; signs and parentheses around the operands.

    Shape only (the calculator parses and bounds the expression): operand := ("(" | sign)* number
    ")"*, expression := operand (operator operand)+.
    """
    pos, end = 0, len(text)
    expect_operand = True   # before a number: "(", a sign or the number; after one: ")" or an operator
    operators = 0
    while pos < end:
        token = _ARITH_TOKEN.match(text, pos)
        if token is None:
            if text[pos:].isspace():
                break
            return False
        pos = token.end()
        kind = token.lastgroup
        if expect_operand:
            if kind == "num":
                expect_operand = False
            elif kind == "close" or (kind == "op" and token["op"] not in "+-"):
                return False
        elif kind == "op":
            operators += 1
            expect_operand = True
        elif kind != "close":
            return False
    return operators > 0 and not expect_operand


def _is_follow_up(text: str) -> bool:
    words = text.split()
    if _FOLLOW_UP_START.match(text):
        return True
    # Short messages that point back at something ("is it persistent?") need the context.
    return len(words) <= 8 and bool(_REFERS_BACK.search(text))
