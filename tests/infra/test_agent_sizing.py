"""Every stack's agent memory is sized from the memory benchmark, not guessed.

bench/memory.py drives /chat at concurrency 32 and records the agent's RSS plateau and peak in
bench/results/memory.json. A re-run that finds a higher peak fails this test until the stacks follow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import parse_stack_config
from infra.gpu_capacity import memory_mi
from infra.preview import load_stack_file

ROOT = Path(__file__).resolve().parents[2]
HEADROOM = 1.4  # over the measured peak: larger bodies, a busier collection, GC timing
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def measured() -> dict[str, float]:
    result = json.loads((ROOT / "bench" / "results" / "memory.json").read_text())
    assert not result["quick"], "size pods from a full memory benchmark run, not --quick"
    details = result["details"]
    return {"plateau": details["plateau_mb"], "peak": details["peak_mb"]}


@pytest.mark.parametrize("stack", STACKS)
def test_agent_memory_follows_the_benchmark(stack: str) -> None:
    raw, secret_keys = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    res = parse_stack_config(stack, raw, secret_keys).agent.resources
    rss = measured()
    assert memory_mi(res.memoryRequest) >= rss["plateau"], f"{stack}: request below the RSS plateau {rss}"
    assert memory_mi(res.memoryLimit) >= HEADROOM * rss["peak"], f"{stack}: limit without {HEADROOM}x headroom over {rss}"
    # Far above the figure is waste that the scheduler reserves on every replica.
    assert memory_mi(res.memoryRequest) <= 2 * rss["plateau"], f"{stack}: request far above what the agent uses {rss}"
