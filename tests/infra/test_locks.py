"""The image's lock is the development lock's agent subset: same versions, nothing the agent lacks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", re.M)


def pins(name: str) -> dict[str, str]:
    return {k.lower().replace("_", "-"): v for k, v in PIN.findall((REPO / name).read_text())}


def test_agent_lock_matches_the_development_lock_and_covers_the_agent_extra():
    agent, full = pins("requirements-agent.lock"), pins("requirements.lock")
    drift = {k: (v, full.get(k)) for k, v in agent.items() if full.get(k) != v}
    assert not drift, f"requirements-agent.lock disagrees with requirements.lock (run make lock): {drift}"
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["agent"]
    needed = {Requirement(r).name.lower() for r in extra} - {"torch"}  # torch: installed first, outside the locks
    assert not needed - set(agent), f"not in requirements-agent.lock (run make lock): {needed - set(agent)}"
    assert "torch" not in agent  # the CPU build goes in first, outside the lock (Dockerfile, Makefile)
