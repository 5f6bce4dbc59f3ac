"""Schema == server: schemathesis drives a real agent process from its own /openapi.json.

Every operation gets generated requests, valid ones (the server must accept them) and invalid
ones (the server must refuse them with a documented 4xx), and every response must match the
schema: 0 server errors, 0 schema violations. Bounded and deterministic: a fixed number of
examples per operation and a derandomized generator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import AUTH, CORPUS, AgentProcess

EXAMPLES = 20


def rejects_invalid_data(ctx, response, case):
    """negative_data_rejection, with 413 (body over AGENT_MAX_BODY_BYTES, documented) as a refusal too."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, rejects_invalid_data, positive_data_acceptance]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("schema")
    proc = AgentProcess(tmp / "data", {"AGENT_REDIS_URL": redis_url}, tmp / "agent.log")
    proc.start()
    try:
        with proc.client() as client:
            assert client.post("/documents", json={"documents": [
                {"id": doc_id, "text": text} for doc_id, text in CORPUS.items()]}).status_code == 200
        yield proc
    finally:
        proc.stop()


def _operations(url: str) -> list:
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


# schemathesis's pytest plugin (`from_fixture`) does not run under pytest 9, so each operation's
# strategy is driven by Hypothesis directly: the same generation and the same checks.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_server_does_what_its_schema_says(api_server: AgentProcess, mode: GenerationMode) -> None:
    operations = _operations(api_server.url)
    assert {op.label for op in operations} >= {"POST /chat", "POST /documents", "POST /retrieve",
                                               "POST /v1/chat/completions", "GET /readyz"}
    failures: list[str] = []
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(base_url=api_server.url, headers=AUTH, checks=CHECKS, timeout=60)

        try:
            run()
        except Unsatisfiable:
            # No parameters and no body: there is no invalid request to make. Anything else must run.
            if mode is GenerationMode.POSITIVE or operation.body or any(True for _ in operation.iter_parameters()):
                failures.append(f"{operation.label}: no {mode} request could be generated")
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
