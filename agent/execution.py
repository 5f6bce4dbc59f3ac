"""Execution: carry out a plan from the decision layer and produce the reply.

Retrieval plans fetch passages and hand them to the generator (citations = the passages the
answer used); tool plans run a registered tool; respond plans answer chit-chat directly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from agent.decision import Action, Plan
from agent.generation import Answer, Generator
from agent.observability import Metrics
from agent.plugins import ToolError, ToolRegistry
from agent.retrieval import Retriever
from agent.stores.vectors import Hit

log = logging.getLogger(__name__)

CHIT_CHAT_REPLY = ("Hello! I answer questions about the documents I have indexed, with citations, "
                   "and I can do arithmetic. Ask me something.")
THANKS_REPLY = "You're welcome. Anything else about the documents?"


@dataclass
class Outcome:
    answer: str
    citations: list[Hit] = field(default_factory=list)
    supported: bool = True
    tool: str | None = None
    tool_result: Any = None


class Executor:
    def __init__(self, retriever: Retriever, generator: Generator, tools: ToolRegistry, metrics: Metrics,
                 top_k: int = 5) -> None:
        self.retriever = retriever
        self.generator = generator
        self.tools = tools
        self.metrics = metrics
        self.top_k = top_k

    async def run(self, plan: Plan) -> Outcome:
        if plan.action is Action.CALL_TOOL and plan.tool:
            return await self._tool(plan)
        if plan.action is Action.RESPOND:
            lowered = plan.query.lower()
            reply = THANKS_REPLY if ("thank" in lowered or "cheers" in lowered) else CHIT_CHAT_REPLY
            return Outcome(reply)
        return await self.answer(plan.query)

    async def answer(self, query: str, top_k: int | None = None) -> Outcome:
        passages = await self.retriever.search(query, top_k or self.top_k)
        with self.metrics.generation_duration.labels(self.generator.name).time():
            answer: Answer = await self.generator.generate(query, passages)
        if not answer.supported:
            self.metrics.unsupported_answers.inc()
        return Outcome(answer.text, answer.citations, answer.supported)

    async def _tool(self, plan: Plan) -> Outcome:
        assert plan.tool is not None
        try:
            result = await self.tools.invoke(plan.tool, plan.arguments)
        except ToolError as exc:
            self.metrics.tool_calls.labels(plan.tool, "refused").inc()
            return Outcome(f"I could not run {plan.tool}: {exc}", supported=False, tool=plan.tool)
        self.metrics.tool_calls.labels(plan.tool, "ok").inc()
        if isinstance(result, dict) and "value" in result and "expression" in result:
            text = f"{result['expression']} = {result['value']}"
        else:
            text = json.dumps(result, default=str)
        return Outcome(text, tool=plan.tool, tool_result=result)
