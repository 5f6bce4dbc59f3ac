"""Acceptance on the real program output: every stack's credential-free preview, through the same policy
functions twice (the preview's recorded resources, and the checker on the rendered manifests)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from policies.checker import main as check
from policies.engine import PolicyResource, check_resources, load_pack_config

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["dev", "staging", "prod", "local"]


@pytest.fixture(scope="module")
def preview(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("preview")
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2 would be a program/config error
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_stack_has_no_mandatory_and_no_unexplained_advisory_violation(preview, stack):
    report = json.loads((preview / stack / "policy.json").read_text())
    assert report["violations"] == [], json.dumps(report["violations"], indent=2)
    assert report["summary"]["unused_exemptions"] == [], "stale exemption in stacks/policy/{stack}.json"


@pytest.mark.parametrize("stack", STACKS)
def test_checker_on_rendered_manifests_agrees_with_the_preview(preview, stack):
    manifests = preview / stack / "manifests.yaml"
    out = io.StringIO()
    code = check([str(manifests), "--config", str(ROOT / "stacks" / "policy" / f"{stack}.json"),
                  "--format", "json"], stdout=out)
    from_yaml = json.loads(out.getvalue())
    assert code == 0 and from_yaml["violations"] == []
    # Same exemptions used on both paths: the two views of the stack are judged identically.
    recorded = json.loads((preview / stack / "resources.json").read_text())
    resources = [PolicyResource(r["type"], r["name"], r["inputs"]) for r in recorded]
    from_inputs = check_resources(resources, load_pack_config(ROOT / "stacks" / "policy" / f"{stack}.json"))
    as_key = lambda items: sorted((v["policy"], v["resource"]["kind"], v["resource"]["name"]) for v in items)  # noqa: E731
    assert as_key(from_yaml["exempted"]) == as_key(from_inputs.to_dict()["exempted"])


def test_without_exemptions_the_known_exceptions_are_reported(preview):
    """The exemptions are load-bearing: without them the dev stack fails (so the policies do run)."""
    out = io.StringIO()
    code = check([str(preview / "dev" / "manifests.yaml"), "--format", "json"], stdout=out)
    report = json.loads(out.getvalue())
    config = json.loads((ROOT / "stacks" / "policy" / "dev.json").read_text())
    # Vendor (thirdParty) exemptions cover objects the preview cannot render; the rest must all bite.
    exempted = {policy for policy, cfg in config.items() if isinstance(cfg, dict)
                and any(not e.get("thirdParty") for e in cfg.get("exemptions", []))}
    assert code == 1
    assert {v["policy"] for v in report["violations"]} == exempted
