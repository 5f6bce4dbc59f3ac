"""Execution: carry out a plan from the decision layer and produce the reply.

Retrieval plans fetch passages and hand them to the generator (citations = the passages the
answer used); tool plans run a registered tool; respond plans answer chit-chat directly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from agent.decision import Action, Plan, decide
from agent.generation import DEFAULT_OPTIONS, Answer, GenerationOptions, Generator
from agent.observability import Metrics
from agent.perception import Perception, perceive
from agent.plugins import ToolError, ToolRegistry
from agent.retrieval import Retriever
from agent.types import Hit, Message

log = logging.getLogger(__name__)

CHIT_CHAT_REPLY = ("Hello! I answer questions about the documents I have indexed, with citations, "
                   "and I can do arithmetic. Ask me something.")
THANKS_REPLY = "You're welcome. Anything else about the documents?"


@dataclass
class Outcome:
    answer: str
    citations: list[Hit] = field(default_factory=list)
    supported: bool = True
    tool_result: Any = None
    finish_reason: str = "stop"  # "length": max_tokens shortened a generated answer


class Executor:
    def __init__(self, retriever: Retriever, generator: Generator, tools: ToolRegistry, metrics: Metrics,
                 top_k: int = 5) -> None:
        self.retriever = retriever
        self.generator = generator
        self.tools = tools
        self.metrics = metrics
        self.top_k = top_k

    async def run(self, plan: Plan, options: GenerationOptions = DEFAULT_OPTIONS) -> Outcome:
        """`options` apply to answers generated from the documents, not to tool or chit-chat replies."""
        if plan.action is Action.CALL_TOOL and plan.tool:
            return await self._tool(plan)
        if plan.action is Action.RESPOND:
            lowered = plan.query.lower()
            reply = THANKS_REPLY if ("thank" in lowered or "cheers" in lowered) else CHIT_CHAT_REPLY
            return Outcome(reply)
        return await self.answer(plan.query, options)

    async def respond(self, message: str, history: list[Message],
                      options: GenerationOptions = DEFAULT_OPTIONS) -> tuple[Perception, Outcome]:
        """One conversational turn through the three layers; /chat and /v1/chat/completions share it."""
        perception = perceive(message, has_history=any(m.role == "user" for m in history))
        plan = decide(perception, history, self.tools.allowed)
        outcome = await self.run(plan, options)
        self.metrics.chat_intents.labels(perception.intent.value).inc()
        return perception, outcome

    async def answer(self, query: str, options: GenerationOptions = DEFAULT_OPTIONS) -> Outcome:
        # Embed once: retrieval searches with the vector, the support check compares against it.
        vector = (await self.retriever.embed([query]))[0]
        passages = await self.retriever.search(query, self.top_k, vector=vector)
        with self.metrics.generation_duration.labels(self.generator.name).time():
            answer: Answer = await self.generator.generate(query, passages, question_vector=vector,
                                                           options=options)
        if not answer.supported:
            self.metrics.unsupported_answers.inc()
        return Outcome(answer.text, answer.citations, answer.supported, finish_reason=answer.finish_reason)

    async def _tool(self, plan: Plan) -> Outcome:
        assert plan.tool is not None
        try:
            result = await self.tools.invoke(plan.tool, plan.arguments)
        except ToolError as exc:
            return Outcome(f"I could not run {plan.tool}: {exc}", supported=False)
        if isinstance(result, dict) and "value" in result and "expression" in result:
            text = f"{result['expression']} = {result['value']}"
        else:
            text = json.dumps(result, default=str)
        return Outcome(text, tool_result=result)
