"""The route class every router uses: JSON bodies are checked before FastAPI validates them.

Python's JSON decoder accepts what no UTF-8 dependency can store or send: a lone surrogate
(`"\\ud800"`) reached Redis or gRPC and became a 500. A body that is not UTF-8, or nested
deeper than the decoder's recursion limit, became FastAPI's undocumented 400. Here every JSON
body is decoded once, and each of those is a 422 whose `loc` names the field, like any other
validation error. The decoded body is cached on the request, so FastAPI does not parse it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def _error(loc: tuple[Any, ...], msg: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": kind}])


def check_json(data: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise a 422 naming the first string (key or value) with a lone surrogate, or the first
    value nested deeper than `max_depth`. Iterative: a hostile body cannot exhaust the stack."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ("body",))]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise _error(loc, "String contains a lone UTF-16 surrogate, which is not valid Unicode "
                                  "(send the character itself, or a surrogate pair)", "string_unicode")
        elif isinstance(value, (dict, list)):
            if len(loc) > max_depth:
                raise _error(loc, f"JSON nested deeper than {max_depth} levels", "json_too_deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise _error((*loc, key.encode("utf-8", "backslashreplace").decode("ascii")),
                                 "Object key contains a lone UTF-16 surrogate", "string_unicode")
                stack.append((item, (*loc, key)))


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return True     # FastAPI parses a body without a content type as JSON too
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class AgentRoute(APIRoute):
    """APIRoute that decodes and checks a JSON body first (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            body = await request.body()
            if body and _is_json(request):
                try:
                    data = json.loads(body)
                except json.JSONDecodeError:
                    pass        # FastAPI answers it: 422 json_invalid with the position
                except UnicodeDecodeError as exc:
                    raise _error(("body", exc.start), "Body is not valid UTF-8 JSON", "json_invalid") from exc
                except RecursionError as exc:
                    raise _error(("body",), f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                                 "json_too_deep") from exc
                else:
                    check_json(data)
                    request._json = data  # starlette's cache: FastAPI's request.json() reuses it
            return await handler(request)

        return checked
