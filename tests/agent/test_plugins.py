"""Plugin registry refusals and the safe calculator."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from agent.api import create_app
from agent.config import Settings
from agent.plugins import Tool, ToolError, ToolRegistry
from agent.plugins.calculator import calculator_tool, evaluate

from .conftest import API_KEY, AUTH


class SleepArgs(BaseModel):
    seconds: float = Field(..., ge=0, le=60)


async def _sleep(args: SleepArgs) -> dict:
    await asyncio.sleep(args.seconds)
    return {"slept": args.seconds}


def _blocking_sleep(args: SleepArgs) -> dict:
    time.sleep(args.seconds)
    return {"slept": args.seconds}


SLEEP = Tool("sleep", "Sleep (test tool).", SleepArgs, _sleep, timeout_seconds=0.3)
BLOCKING = Tool("blocking_sleep", "Blocking sleep (test tool).", SleepArgs, _blocking_sleep, timeout_seconds=0.3)


@pytest.fixture(scope="module")
def client(tmp_path_factory, redis_url, encoder):
    settings = Settings(data_dir=tmp_path_factory.mktemp("plugins"), redis_url=redis_url, api_keys=API_KEY,
                        rate_limit_per_minute=100_000, tools_allowed="calculator,sleep,blocking_sleep")
    with TestClient(create_app(settings, encoder=encoder, extra_tools=[SLEEP, BLOCKING])) as c:
        yield c


def invoke(client: TestClient, tool: str, arguments: dict):
    return client.post("/invoke", headers=AUTH, json={"tool": tool, "arguments": arguments})


def test_allow_list_hides_and_refuses_tools(client: TestClient) -> None:
    assert {t["name"] for t in client.get("/tools", headers=AUTH).json()["tools"]} == {
        "calculator", "sleep", "blocking_sleep"}
    refused = invoke(client, "retrieve", {"query": "x"})      # registered, not allow-listed
    assert refused.status_code == 403
    assert "AGENT_TOOLS_ALLOWED" in refused.json()["detail"]
    assert invoke(client, "shell", {"cmd": "ls"}).status_code == 404


def test_bad_arguments_are_422_naming_the_field(client: TestClient) -> None:
    response = invoke(client, "calculator", {"expr": "1+1"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["arguments", "expression"]
    response = invoke(client, "sleep", {"seconds": "soon"})
    assert response.status_code == 422
    assert "seconds" in response.json()["detail"]


@pytest.mark.parametrize("tool", ["sleep", "blocking_sleep"])
def test_timeouts_are_enforced(client: TestClient, tool: str) -> None:
    start = time.monotonic()
    response = invoke(client, tool, {"seconds": 2})
    assert response.status_code == 504
    assert "did not finish within 0.3s" in response.json()["detail"]
    assert time.monotonic() - start < 1.5
    assert invoke(client, tool, {"seconds": 0}).json()["result"] == {"slept": 0}


@pytest.mark.parametrize("expression", [
    "__import__('os').system('id')", "open('/etc/passwd').read()", "x + 1", "(1).__class__",
    "[1, 2]", "lambda: 1", "'a' * 3", "1 if 1 else 2", "2 ** 100000", "9 ** 9 ** 9", "1 / 0", "1 +",
])
def test_calculator_rejects_anything_but_bounded_arithmetic(client: TestClient, expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)
    response = invoke(client, "calculator", {"expression": expression})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 % 3", 2), ("2 ^ 10", 1024),
    ("-(2.5 * 4)", -10), ("10 ** -2", 0.01),
])
def test_calculator_computes(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


def test_registry_rejects_duplicate_names() -> None:
    registry = ToolRegistry({"calculator"})
    registry.register(calculator_tool)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(calculator_tool)


def test_chat_does_not_call_a_tool_that_is_not_allowed(make_settings, encoder) -> None:
    with TestClient(create_app(make_settings(tools_allowed="retrieve"), encoder=encoder)) as client:
        body = client.post("/chat", headers=AUTH, json={"message": "what is 6 * 7?"}).json()
        assert body["intent"] == "tool_call"
        assert body["tool_result"] is None
        assert "42" not in body["answer"]


def _tool_count(client: TestClient, tool: str, outcome: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("agent_tool_invocations_total{") and f'tool="{tool}"' in line \
                and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_tool_calls_are_counted_once_the_same_way_from_invoke_and_chat(client):
    ok, bad = _tool_count(client, "calculator", "ok"), _tool_count(client, "calculator", "ToolArgumentsInvalid")
    other = _tool_count(client, "other", "ToolNotAllowed")
    refused = _tool_count(client, "calculator", "ToolError")
    assert invoke(client, "calculator", {"expression": "2+3"}).status_code == 200
    assert invoke(client, "calculator", {"expression": "1/0"}).status_code == 400
    assert "could not run calculator" in client.post("/chat", json={"message": "calculate 1/0"}, headers=AUTH).json()["answer"]
    assert client.post("/chat", json={"message": "calculate 6*7"}, headers=AUTH).json()["answer"].endswith("42")
    assert invoke(client, "calculator", {"nope": 1}).status_code == 422
    assert invoke(client, "retrieve", {"query": "x"}).status_code == 403   # registered, not allow-listed
    assert _tool_count(client, "calculator", "ok") == ok + 2
    assert _tool_count(client, "calculator", "ToolArgumentsInvalid") == bad + 1
    assert _tool_count(client, "other", "ToolNotAllowed") == other + 1   # label set stays bounded
    assert _tool_count(client, "calculator", "ToolError") == refused + 2   # /invoke and /chat alike
