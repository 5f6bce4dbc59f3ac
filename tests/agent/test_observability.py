"""Structured JSON logs carry the request id and event fields."""

from __future__ import annotations

import json
import logging

from agent.observability import JsonFormatter, request_id_var


def test_json_log_lines_have_request_id_and_extra_fields() -> None:
    record = logging.LogRecord("agent.api", logging.INFO, __file__, 1, "request %s", ("done",), None)
    record.route = "/documents/{document_id}"
    record.status = 200
    token = request_id_var.set("req-42")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    doc = json.loads(line)
    assert doc["message"] == "request done"
    assert doc["level"] == "info"
    assert doc["request_id"] == "req-42"
    assert doc["route"] == "/documents/{document_id}" and doc["status"] == 200
    assert doc["ts"].endswith("Z")


def test_malloc_tuning_reaches_glibc() -> None:
    # The agent's images and this machine run glibc: a silent no-op here would hide a memory fix.
    from agent.runtime import cap_malloc_arenas, release_free_memory

    assert cap_malloc_arenas(8) is True
    assert cap_malloc_arenas(0) is False            # 0 keeps glibc's default
    junk = [bytearray(200_000) for _ in range(200)]   # ~40 MB under the mmap threshold: heap pages
    del junk
    assert isinstance(release_free_memory(), bool)
