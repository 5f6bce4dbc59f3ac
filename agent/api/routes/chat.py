"""POST /chat and GET /sessions/{id}: perception -> decision -> execution, with history in Redis."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Path

from agent.api.deps import CallerDep, ExecutorDep, SessionsDep, SettingsDep, enforce_limit
from agent.api.models import (
    SESSION_ID_PATTERN,
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    HitOut,
    SessionMessage,
    SessionResponse,
)
from agent.api.routing import AgentRoute
from agent.types import Message

router = APIRouter(route_class=AgentRoute, tags=["chat"])

_UNAVAILABLE = {503: {"model": ErrorResponse, "description": "Redis (sessions) is unavailable"}}


@router.post("/chat", response_model=ChatResponse, responses=_UNAVAILABLE, summary="Ask, with session memory")
async def chat(body: ChatRequest, caller: CallerDep, settings: SettingsDep, sessions: SessionsDep,
               executor: ExecutorDep) -> ChatResponse:
    enforce_limit(body.message, settings.max_message_chars, ("body", "message"))
    session_id = body.session_id or uuid.uuid4().hex
    history = await sessions.history(caller.id, session_id)      # 503 when Redis is down
    perception, outcome = await executor.respond(body.message, history)
    citations = [HitOut(**h.__dict__) for h in outcome.citations]
    await sessions.append(
        caller.id, session_id,
        Message("user", perception.text, intent=perception.intent.value),
        Message("assistant", outcome.answer, intent=perception.intent.value,
                citations=[{"document_id": c.document_id, "chunk_id": c.chunk_id} for c in citations]),
    )
    return ChatResponse(session_id=session_id, answer=outcome.answer, citations=citations,
                        intent=perception.intent.value, supported=outcome.supported,
                        tool_result=outcome.tool_result)


@router.get("/sessions/{session_id}", response_model=SessionResponse,
            responses={404: {"model": ErrorResponse}, **_UNAVAILABLE}, summary="A session's history")
async def get_session(caller: CallerDep, sessions: SessionsDep,
                      session_id: str = Path(..., pattern=SESSION_ID_PATTERN)) -> SessionResponse:
    history = await sessions.history(caller.id, session_id)
    if not history:
        raise HTTPException(404, f"session {session_id!r} not found (never created, expired, or another key's)")
    ttl = await sessions.ttl_of(caller.id, session_id)
    return SessionResponse(session_id=session_id, ttl_seconds=max(ttl, 0),
                           messages=[SessionMessage(**m.__dict__) for m in history])
