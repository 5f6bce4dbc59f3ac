"""The preview tool itself: byte-identical output, Secrets that validate, crashing policies named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, STACKS


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_previews_of_one_commit_are_byte_identical(preview_run, tmp_path):
    """A second, separate process (its own hash seed, its own thread scheduling) writes the same bytes."""
    first_proc, first = preview_run
    assert first_proc.returncode in (0, 1), first_proc.stderr
    second = tmp_path / "second"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(second)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == first_proc.returncode, proc.stderr
    a, b = files_of(first), files_of(second)
    assert sorted(a) == sorted(b)
    assert {f"{s}/{name}" for s in STACKS for name in ("resources.json", "manifests.yaml", "policy.json",
                                                          "outputs.json")} <= set(a)
    differing = [name for name in a if a[name] != b[name]]
    assert not differing, f"not byte-identical: {differing}"


@pytest.mark.parametrize("name", STACKS)
def test_resources_and_manifests_are_sorted_by_urn(stacks, name):
    s = stacks[name]
    urns = [r["urn"] for r in s.resources]
    assert urns == sorted(urns) and len(set(urns)) == len(urns)
    by_identity = {(r["inputs"].get("kind"), r["inputs"].get("metadata", {}).get("namespace"),
                    r["inputs"].get("metadata", {}).get("name")): r["urn"] for r in s.resources
                   if "apiVersion" in r["inputs"] and "kind" in r["inputs"] and r["custom"]}
    manifest_urns = [by_identity[(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])]
                     for m in s.manifests]
    assert manifest_urns == sorted(manifest_urns)
    text = (s.dir / "manifests.yaml").read_text()
    first = next(yaml.safe_load_all(text))
    assert list(first) == sorted(first)  # keys in a stable (sorted) order


CRASHING_POLICY = '''
import sys
import policies.catalog as catalog
from policies.model import Policy

def resource_check(type_, props):
    if props.get("kind") == "StatefulSet" and props["metadata"]["name"] == "redis":
        raise KeyError("spec.template.spec.hostUsers")  # a policy bug, met on one object
    return []

def stack_check(resources):
    raise ValueError("cannot index an empty list")

check = {"resource": dict(resource_check=resource_check), "stack": dict(stack_check=stack_check)}[sys.argv[1]]
catalog.POLICIES = catalog.POLICIES + (Policy("buggy-policy", "a policy with a bug", "low", "fix the policy", **check),)
from infra.preview.cli import main
sys.exit(main(["--stack", "dev", "--out", sys.argv[2]]))
'''


@pytest.mark.parametrize("kind", ["resource", "stack"])
def test_a_crashing_policy_exits_2_naming_the_policy_and_the_object(tmp_path, kind):
    """Exit 1 means "mandatory violation"; a policy bug is never one, and says where it struck."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", CRASHING_POLICY, kind, str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "policy buggy-policy crashed on" in proc.stderr
    if kind == "resource":
        assert "StatefulSet/rag-dev-data/redis" in proc.stderr and "hostUsers" in proc.stderr
    else:
        assert "the stack's resources" in proc.stderr and "cannot index an empty list" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "dev" / "policy.json").exists()  # no half-judged preview left behind
