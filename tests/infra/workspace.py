"""Helpers for tests that need a checkout of this repository or run a Tekton step's script here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache", "*.egg-info", ".agent-data")
OLD = 978_307_200  # 2001-01-01: older than any venv stamp, so `make venv` on a copy reuses REPO's .venv


def copy_worktree(dest: Path) -> Path:
    """This working tree (uncommitted changes included), without .git, .venv or build output."""
    shutil.copytree(REPO, dest, ignore=IGNORE)
    for path in dest.rglob("*"):
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return dest


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


VARIABLE = re.compile(r"\$\((params|workspaces|results)\.([-\w]+)(?:\.(path))?\)")


def run_step(step: dict, *, params: dict[str, str] | None = None, workspaces: dict[str, Path] | None = None,
             results: dict[str, Path] | None = None, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a Tekton step's `script` as Tekton would: its env with $(params/workspaces/results) substituted.

    Any variable the test did not provide fails the test (a step must not need what a test cannot see).
    """
    params, workspaces, results = params or {}, workspaces or {}, results or {}

    def substitute(text: str) -> str:
        def one(m: re.Match) -> str:
            kind, name = m.group(1), m.group(2)
            table = {"params": params, "workspaces": workspaces, "results": results}[kind]
            assert name in table, f"step {step['name']} needs $({kind}.{name}...) and the test did not give it"
            return str(table[name])
        return VARIABLE.sub(one, text)

    script = step["script"]
    assert not VARIABLE.search(script), "scripts take inputs from env vars, never pasted into the code"
    step_env = {e["name"]: substitute(e["value"]) for e in step.get("env", [])}
    full_env = {**os.environ, **step_env, **(env or {})}
    interpreter = [sys.executable] if script.startswith("#!/usr/bin/env python3") else ["/bin/sh"]
    return subprocess.run([*interpreter, "-c", script],
                          env=full_env, capture_output=True, text=True, timeout=timeout)
