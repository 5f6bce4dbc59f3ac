"""`--diff-against`: what a change does per stack, for a reviewer; `make preview-diff` on a real commit."""

from __future__ import annotations

import copy
import re
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.preview.diff import COMMENT_MARKER, MAX_SUMMARY_CHARS, diff_previews, render_summary, write_diff

from .conftest import REPO

SECRET_URN = "urn:pulumi:dev::rag-platform::kubernetes:core/v1:Secret::secret:rag-dev/agent-secrets"
STS_URN = "urn:pulumi:dev::rag-platform::kubernetes:apps/v1:StatefulSet::statefulset:rag-dev-data/redis"


def secret(keys: dict[str, str]) -> dict:
    return {"type": "kubernetes:core/v1:Secret", "name": "secret:rag-dev/agent-secrets", "urn": SECRET_URN,
            "parent": "", "dependsOn": [], "custom": True,
            "inputs": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent-secrets", "namespace": "rag-dev"},
                       "stringData": keys}}


def statefulset(containers: list[dict], replicas: int = 1) -> dict:
    return {"type": "kubernetes:apps/v1:StatefulSet", "name": "statefulset:rag-dev-data/redis", "urn": STS_URN,
            "parent": "", "dependsOn": [], "custom": True,
            "inputs": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": "redis", "namespace": "rag-dev-data"},
                       "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}}}


def violation(policy: str, name: str) -> dict:
    return {"policy": policy, "enforcement": "mandatory", "severity": "high", "message": f"{name} breaks {policy}",
            "resource": {"kind": "StatefulSet", "namespace": "rag-dev-data", "name": name, "file": None}}


def write_preview(root: Path, stacks: dict[str, dict], index: dict[str, str] | None = None) -> Path:
    for stack, content in stacks.items():
        d = root / stack
        d.mkdir(parents=True)
        (d / "resources.json").write_text(json.dumps(content["resources"]))
        (d / "policy.json").write_text(json.dumps(content.get("policy", {"violations": [], "exempted": []})))
        (d / "outputs.json").write_text(json.dumps(content.get("outputs", {})))
    if index is not None:
        (root / "index.json").write_text(json.dumps({"stacks": index}))
    return root


def test_field_level_diff_names_paths_hides_secret_values_and_matches_lists_by_name(tmp_path):
    redis = {"name": "redis", "image": "redis:7.4.9", "args": ["--appendonly", "yes"]}
    base = write_preview(tmp_path / "base", {"dev": {
        "resources": [secret({"api-keys": "[secret]", "redis-password": "[secret]"}), statefulset([redis])],
        "policy": {"violations": [violation("restrict-root", "redis")], "exempted": []},
        "outputs": {"redisUrl": "redis://redis:6379/0", "image": "a"}}})
    # Head: a sidecar inserted *before* redis, a new image, one key more, and a value that (wrongly)
    # reached a preview file in plaintext: the diff must hide it all the same.
    exporter = {"name": "exporter", "image": "exporter:1"}
    head = write_preview(tmp_path / "head", {"dev": {
        "resources": [secret({"api-keys": "[secret]", "redis-password": "hunter2-PLAINTEXT", "llm-key": "sk-PLAINTEXT"}),
                      statefulset([exporter, dict(redis, image="redis:7.4.10")], replicas=3)],
        "policy": {"violations": [violation("restrict-host-path", "redis")], "exempted": []},
        "outputs": {"redisUrl": "redis://redis:6379/0", "image": "b", "webhookUrl": "http://el"}}})

    result = diff_previews(base, head)
    dev = result["stacks"]["dev"]
    assert dev["comparable"] and not dev["resources"]["added"] and not dev["resources"]["removed"]
    changes = {r["objectName"]: {c["path"]: c for c in r["changes"]} for r in dev["resources"]["changed"]}
    assert set(changes["agent-secrets"]) == {"stringData.llm-key"}  # a new key shows, no value change does
    assert changes["agent-secrets"]["stringData.llm-key"]["after"] == "[secret]"
    sts = changes["redis"]
    assert sts["spec.replicas"]["before"] == 1 and sts["spec.replicas"]["after"] == 3
    assert sts["spec.template.spec.containers[name=redis].image"]["after"] == "redis:7.4.10"
    assert sts["spec.template.spec.containers[name=exporter]"]["change"] == "added"
    assert len(sts) == 3, sts  # matched by name: the insertion did not shift every field
    assert [v["policy"] for v in dev["policy"]["appeared"]] == ["restrict-host-path"]
    assert [v["policy"] for v in dev["policy"]["disappeared"]] == ["restrict-root"]
    assert {c["path"]: c["change"] for c in dev["outputs"]} == {"image": "changed", "webhookUrl": "added"}

    json_path, md_path = write_diff(result, tmp_path / "head")
    for path in (json_path, md_path):
        text = path.read_text()
        assert "PLAINTEXT" not in text, f"secret value in {path.name}"
    md = md_path.read_text()
    assert md.startswith(COMMENT_MARKER) and "<details><summary><b>dev</b>" in md and "</details>" in md
    assert "`spec.template.spec.containers[name=redis].image`: `\"redis:7.4.9\"` → `\"redis:7.4.10\"`" in md
    assert "restrict-host-path" in md and "llm-key" in md


def test_unchanged_previews_diff_to_nothing(tmp_path):
    stacks = {"dev": {"resources": [statefulset([{"name": "redis", "image": "r"}])]}}
    result = diff_previews(write_preview(tmp_path / "a", stacks), write_preview(tmp_path / "b", copy.deepcopy(stacks)))
    assert result["totals"]["summary"].startswith("0 added, 0 changed, 0 removed, 0 new violation(s) in 0 of 1")
    assert "No change in any stack." in render_summary(result)


def test_a_stack_that_failed_to_render_is_not_reported_as_all_removed(tmp_path):
    base = write_preview(tmp_path / "base", {"dev": {"resources": [statefulset([{"name": "redis"}])]},
                                             "prod": {"resources": [statefulset([{"name": "redis"}])]}})
    head = write_preview(tmp_path / "head", {"dev": {"resources": [statefulset([{"name": "redis"}])]}},
                         index={"dev": "ok", "prod": "error"})
    result = diff_previews(base, head)
    prod = result["stacks"]["prod"]
    assert prod["comparable"] is False and prod["status"] == {"base": "ok", "head": "error"}
    assert prod["resources"]["removed"] == []
    assert "not compared" in render_summary(result)
    # A stack removed for real (absent from the head's index) is all removed.
    head2 = write_preview(tmp_path / "head2", {"dev": {"resources": [statefulset([{"name": "redis"}])]}},
                          index={"dev": "ok"})
    assert len(diff_previews(base, head2)["stacks"]["prod"]["resources"]["removed"]) == 1


def test_hostile_names_cannot_break_out_of_the_comment_markup(tmp_path):
    evil = "x`</details><img src=x onerror=alert(1)>|`"
    base = write_preview(tmp_path / "base", {"dev": {"resources": []}})
    sts = statefulset([{"name": "redis", "image": "a\n# heading"}]) | {"urn": STS_URN + evil}
    sts["inputs"]["metadata"]["name"] = evil
    head = write_preview(tmp_path / "head", {"dev": {"resources": [sts]}})
    md = render_summary(diff_previews(base, head))
    # Outside code spans (which Markdown shows literally) no markup of the attacker's survives.
    markup = "\n".join(re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line) for line in md.splitlines())
    assert markup.count("<details>") == markup.count("</details>") == 1
    assert "<img" not in markup and "onerror" not in markup
    line = next(line for line in md.splitlines() if "onerror" in line)
    assert line.startswith("- ``") and line.endswith("``")  # inside a code span longer than any backtick run


def test_summary_fits_a_pull_request_comment_however_large_the_change(tmp_path):
    many = [statefulset([{"name": f"c{i}", "image": "x" * 300}]) | {"urn": f"{STS_URN}-{i}"} for i in range(2000)]
    stacks = {s: {"resources": copy.deepcopy(many)} for s in ("dev", "staging", "prod")}
    base = write_preview(tmp_path / "base", {s: {"resources": []} for s in stacks})
    result = diff_previews(base, write_preview(tmp_path / "head", stacks))
    md = render_summary(result)
    assert len(md) <= MAX_SUMMARY_CHARS
    assert md.count("<details>") == md.count("</details>") == 3
    assert "more line(s) in `diff.json`" in md
    assert result["totals"]["added"] == 6000  # diff.json keeps everything


def test_unreadable_base_exits_2_naming_it(tmp_path):
    head = tmp_path / "head"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(head),
                           "--diff-against", str(tmp_path / "nowhere")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "no such directory" in proc.stderr
    (tmp_path / "bad" / "dev").mkdir(parents=True)
    (tmp_path / "bad" / "dev" / "resources.json").write_text("[{truncated")
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(head),
                           "--diff-against", str(tmp_path / "bad")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "resources.json" in proc.stderr and "Traceback" not in proc.stderr


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}).stdout


@pytest.fixture(scope="module")
def repo_with_a_change(tmp_path_factory) -> Path:
    """A throwaway copy of this working tree as a git repo: HEAD~1 = as it is, HEAD = one real stack change."""
    root = tmp_path_factory.mktemp("repo") / "rag-platform"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__",
                                                                 ".pytest_cache", "*.egg-info", ".agent-data"))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    stack = root / "stacks" / "Pulumi.staging.yaml"
    text = stack.read_text()
    assert "storageSize: 5Gi" in text
    stack.write_text(text.replace("storageSize: 5Gi", "storageSize: 8Gi", 1))
    _git(root, "commit", "-qam", "staging: more Redis storage")
    return root


def test_make_preview_diff_shows_a_real_commit(repo_with_a_change):
    root = repo_with_a_change
    venv = REPO / ".venv"
    # The project's own venv: `-o` tells make not to rebuild it for this copy's newer pyproject.toml.
    stamp = venv / ".rag-platform-installed"
    proc = subprocess.run(["make", "-o", str(stamp), "preview-diff", "BASE=HEAD~1", f"VENV={venv}"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((root / "build" / "preview" / "diff.json").read_text())
    staging = result["stacks"]["staging"]
    changed = staging["resources"]["changed"]
    assert [(r["kind"], r["objectName"]) for r in changed] == [("StatefulSet", "redis")]
    assert changed[0]["changes"] == [{"path": "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
                                      "change": "changed", "before": "5Gi", "after": "8Gi"}]
    assert all(not any(d["counts"].values()) for s, d in result["stacks"].items() if s != "staging")
    md = (root / "build" / "preview" / "summary.md").read_text()
    assert "<b>staging</b>: 0 added, 1 changed, 0 removed" in md and '`"5Gi"` → `"8Gi"`' in md
    # The worktree is gone again, and registered nowhere.
    assert not (root / "build" / "preview-diff-base-src").exists()
    assert _git(root, "worktree", "list").count("\n") == 1
