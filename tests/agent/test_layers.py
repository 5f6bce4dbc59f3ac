"""Chunking, perception and decision: pure functions, no services."""

from __future__ import annotations

import pytest

from agent.chunking import with_title
from agent.decision import Action, decide
from agent.perception import Intent, perceive
from agent.types import Message


def test_chunks_are_indexed_under_their_document_title() -> None:
    assert with_title("Install guide — Upgrading", "Stop the old pods first.") == (
        "Install guide — Upgrading\nStop the old pods first.")
    assert with_title("  Install\n guide ", "body") == "Install guide\nbody"  # one line, always
    assert with_title("Install guide", "Install guide\n\nThe first chunk.") == "Install guide\n\nThe first chunk."
    assert with_title(None, "body") == with_title("  ", "body") == "body"


@pytest.mark.parametrize(("message", "history", "intent"), [
    ("Hello!", False, Intent.CHIT_CHAT),
    ("thanks", True, Intent.CHIT_CHAT),
    ("What is 17 * 3?", False, Intent.TOOL_CALL),
    ("calculate (2+3)^2", False, Intent.TOOL_CALL),
    ("How are sessions stored in Redis?", False, Intent.QUESTION),
    ("and what about its TTL?", True, Intent.FOLLOW_UP),
    ("and what about its TTL?", False, Intent.QUESTION),             # nothing to follow up on
    ("Is it persistent?", True, Intent.FOLLOW_UP),
    ("What changed in the 2024 release?", False, Intent.QUESTION),
])
def test_perception_intents(message: str, history: bool, intent: Intent) -> None:
    assert perceive(message, has_history=history).intent is intent


def test_perception_normalises() -> None:
    assert perceive("  Ｈｅｌｌｏ\x00   there\n\n? ").text == "Hello there ?"


def test_decision_rules() -> None:
    history = [Message("user", "How do penguins incubate eggs?", intent="question"),
               Message("assistant", "On their feet [1].")]
    follow = decide(perceive("and for how long?", True), history, frozenset())
    assert follow.action is Action.RETRIEVE
    assert follow.query == "How do penguins incubate eggs? and for how long?"
    calc = decide(perceive("what is 2+2"), [], frozenset({"calculator"}))
    assert (calc.action, calc.tool, calc.arguments) == (Action.CALL_TOOL, "calculator", {"expression": "2+2"})
    assert decide(perceive("what is 2+2"), [], frozenset()).action is Action.RETRIEVE
    assert decide(perceive("hi"), [], frozenset()).action is Action.RESPOND
