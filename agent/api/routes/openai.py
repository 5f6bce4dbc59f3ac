"""POST /v1/chat/completions: the agent behind OpenAI's chat API, so existing clients work.

Stateless: the conversation comes in `messages` (no Redis session). The last user message is the
question; earlier user turns let follow-ups resolve. `stream: true` gets a single-chunk SSE stream.
`temperature` and `max_tokens` reach the generator for this request only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from agent.api.deps import ExecutorDep, SettingsDep, enforce_limit, require_caller
from agent.api.models import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionMessage,
    HitOut,
    Usage,
)
from agent.api.routing import AgentRoute
from agent.generation import GenerationOptions
from agent.execution import Outcome
from agent.perception import Intent, normalise
from agent.types import Message

BLANK_QUESTION_REPLY = "Your last user message has no text to answer; send a question."

router = APIRouter(route_class=AgentRoute, tags=["openai"], dependencies=[Depends(require_caller)])


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse, summary="OpenAI-compatible chat",
             responses={200: {"description": "`application/json`, or with `stream: true` server-sent events: "
                                             "`chat.completion.chunk` objects, then `data: [DONE]`.",
                              "content": {"text/event-stream": {"schema": {
                                  "type": "object", "required": ["data"], "description": "One server-sent event: "
                                  "`data` is a `chat.completion.chunk` as JSON, or `[DONE]`.",
                                  "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}}}}})
async def chat_completions(body: ChatCompletionRequest, settings: SettingsDep, executor: ExecutorDep):
    for i, m in enumerate(body.messages):     # the schema bounds every message, so does the server
        if isinstance(m.content, str):
            enforce_limit(m.content, settings.max_message_chars, ("body", "messages", i, "content"))
        for j, part in enumerate(m.content if isinstance(m.content, list) else []):
            if part.text is not None:
                enforce_limit(part.text, settings.max_message_chars,
                              ("body", "messages", i, "content", j, "text"))
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")   # the schema requires one
    question = body.messages[last].text()
    history = [Message(m.role, m.text(), intent=Intent.QUESTION.value if m.role == "user" else None)
               for m in body.messages[:last] if m.role in ("user", "assistant")]
    options = GenerationOptions(temperature=body.temperature, max_tokens=body.max_tokens)
    if normalise(question):
        _, outcome = await executor.respond(question, history, options)
    else:   # nothing to look up: never retrieve (or cite) for a blank question
        outcome = Outcome(BLANK_QUESTION_REPLY, supported=False)

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    prompt_tokens = sum(len(m.text().split()) for m in body.messages)
    completion_tokens = len(outcome.answer.split())
    if body.stream:
        stream = _stream(completion_id, created, body.model, outcome.answer, outcome.finish_reason)
        return StreamingResponse(stream, media_type="text/event-stream")
    return ChatCompletionResponse(
        id=completion_id, created=created, model=body.model,
        choices=[CompletionChoice(index=0, message=CompletionMessage(content=outcome.answer),
                                  finish_reason=outcome.finish_reason)],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens),
        citations=[HitOut(**h.__dict__) for h in outcome.citations],
    )


async def _stream(completion_id: str, created: int, model: str, answer: str,
                  finish_reason: str) -> AsyncIterator[str]:
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": answer},
                                                      "finish_reason": None}]}) + "\n\n"
    yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}) + "\n\n"
    yield "data: [DONE]\n\n"
