"""Fixtures for the infra tests: the real preview of every stack, run once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACKS = ["dev", "local", "prod", "staging"]


class StackOutput:
    def __init__(self, root: Path, stack: str) -> None:
        self.dir = root / stack
        self.resources = json.loads((self.dir / "resources.json").read_text())
        self.manifests = [m for m in yaml.safe_load_all((self.dir / "manifests.yaml").read_text()) if m]
        self.policy = json.loads((self.dir / "policy.json").read_text())
        self.outputs = json.loads((self.dir / "outputs.json").read_text())

    def objects(self, kind: str) -> list[dict]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, name: str) -> dict:
        found = [m for m in self.objects(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def of_type(self, prefix: str) -> list[dict]:
        return [r for r in self.resources if r["type"].startswith(prefix)]


@pytest.fixture(scope="session")
def preview_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("preview")
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    return proc, out


@pytest.fixture(scope="session")
def stacks(preview_run) -> dict[str, StackOutput]:
    proc, out = preview_run
    assert proc.returncode in (0, 1), f"preview failed ({proc.returncode}):\n{proc.stderr}"
    return {s: StackOutput(out, s) for s in STACKS}
