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
