"""The OpenAPI schema as the server enforces it: configured limits and every documented status.

The request models carry hard ceilings; the limits an operator configures (AGENT_MAX_*) are
checked in the routes. Here the generated schema is rewritten with the configured values, so
`/openapi.json` says exactly what this server accepts, and each route lists the statuses it can
answer with (401, 413, 429, 503, ...), so a client (or schemathesis) can rely on the schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from agent.config import Settings

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
# Statuses every protected route can answer, whatever it does.
_PROTECTED = {
    "401": "Missing or invalid API key (`WWW-Authenticate: Bearer`).",
    "413": "Body larger than AGENT_MAX_BODY_BYTES.",
    "429": "Over AGENT_RATE_LIMIT_PER_MINUTE; `Retry-After` says when to retry.",
    "500": "Internal error, logged with the request id given in `detail`.",
}
# Statuses by dependency: who may answer 503 (unreachable or too slow; `Retry-After`).
_UNAVAILABLE = "A dependency (Redis or Milvus) could not be reached in time; retry after `Retry-After` seconds."
_OPEN = {"/healthz", "/readyz", "/metrics"}


def _set(schema: dict[str, Any], model: str, field: str, **bounds: Any) -> None:
    prop = schema["components"]["schemas"][model]["properties"][field]
    target = next((alt for alt in prop.get("anyOf", []) if alt.get("type") in ("string", "array")), prop)
    target.update(bounds)


def configured_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    m = settings.max_message_chars
    _set(schema, "ChatRequest", "message", maxLength=m)
    _set(schema, "RetrieveRequest", "query", maxLength=m)
    _set(schema, "RetrieveRequest", "top_k", maximum=settings.max_top_k)
    _set(schema, "DocumentIn", "text", maxLength=settings.max_document_chars)
    _set(schema, "DocumentsRequest", "documents", maxItems=settings.max_documents_per_request)
    _set(schema, "ChatMessage", "content", maxLength=m)
    _set(schema, "ContentPart", "text", maxLength=m)
    meta = schema["components"]["schemas"]["DocumentIn"]["properties"]["metadata"]
    meta["description"] = (f"{meta.get('description', '')} At most {settings.max_metadata_bytes} bytes as "
                           f"compact UTF-8 JSON, nested at most {settings.max_metadata_depth} levels.").strip()
    for path, operations in schema["paths"].items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            if path not in _OPEN:
                for status, description in _PROTECTED.items():
                    responses.setdefault(status, {"description": description, **_ERROR})
                responses.setdefault("503", {"description": _UNAVAILABLE, **_ERROR})
            if "requestBody" in op:
                responses.setdefault("422", {"description": "Validation Error"})
                responses["422"]["description"] = (
                    "Invalid request: malformed or non-UTF-8 JSON, a lone surrogate, a field out of range or "
                    "over a configured limit. `detail[].loc` and `message` name the field.")
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = configured_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
