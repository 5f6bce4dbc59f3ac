"""Every step of the release pipeline's Tasks, run (or, where it cannot run here, checked) with its
params, workspaces and results substituted the way Tekton does.

- fetch-source: the clone script against a local git repository, at a commit that is not HEAD.
- unit-tests: the Prometheus-copy step for real; `make test` itself is this very suite, so its
  step is checked (script, working directory, the binary it is handed) and dry-run with `make -n`.
- evaluation-gate: the real script on this repo's golden set with the dev gate, and with a gate
  that does not exist (the step must fail).
- build-push: kaniko cannot run here (no container runtime, it needs root and a registry): its
  substituted arguments, Dockerfile, context and docker-config mount are checked instead.
- deploy-rollout: the JSON patch it sends, applied (RFC 6902) to the Rollout the stack renders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.components import cicd
from infra.components.agent import build_manifests
from infra.components.secrets import SecretNames
from infra.config import parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file

from .drill import REPO, prometheus_binary

STACK = "dev"
FLOORS = "prod-quality-floors"  # a gate file the workspace fixture writes
# Tekton's variable references; a shell's own `$(command)` is left alone.
TEKTON_VAR = re.compile(r"\$\((params|workspaces|results|context|tasks|steps)\.([^)]+)\)")
COVERED = {("fetch-source", "clone"), ("unit-tests", "prometheus-binary"), ("unit-tests", "make-test"),
           ("evaluation-gate", "evaluate"), ("build-push", "kaniko"), ("deploy-rollout", "patch-image")}


def stack_cfg(stack: str = STACK):
    raw, secrets = load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")
    return parse_stack_config(stack, raw, secrets)


def tasks(stack: str = STACK) -> dict[str, dict[str, Any]]:
    return {t["metadata"]["name"]: t for t in cicd.build_tasks(stack_cfg(stack), Namespaces.for_env(stack))}


def step(task: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in task["spec"]["steps"] if s["name"] == name)


def substitute(text: str, task: dict[str, Any], values: dict[str, str]) -> str:
    """Tekton's substitution: params (with the Task's defaults), workspace paths, result paths.
    A reference nothing provides is an error, as Tekton's validation makes it."""
    given = {f"params.{p['name']}": p["default"] for p in task["spec"].get("params", []) if "default" in p}
    given |= values

    def sub(match: re.Match[str]) -> str:
        key = f"{match.group(1)}.{match.group(2)}"
        if key not in given:
            raise AssertionError(f"unresolved Tekton variable $({key}) in task {task['metadata']['name']}")
        return given[key]

    return TEKTON_VAR.sub(sub, text)


def run_script(task: dict[str, Any], name: str, values: dict[str, str], *, mounts: dict[str, str],
               env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one step's script with /bin/sh, its env and workingDir substituted, volumes mapped to local dirs."""
    s = step(task, name)

    def local(text: str) -> str:
        text = substitute(text, task, values)
        for mount, path in mounts.items():
            text = text.replace(mount, path)
        return text

    script = local(s["script"])
    assert script.startswith("#!/bin/sh\n"), "steps run their script with the image's /bin/sh"
    step_env = {e["name"]: local(e["value"]) for e in s.get("env", [])}
    cwd = local(s["workingDir"]) if "workingDir" in s else None
    return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **step_env, **(env or {})})


def test_every_step_of_every_task_is_exercised_here():
    for stack in ("dev", "staging", "prod"):
        steps = {(name, s["name"]) for name, t in tasks(stack).items() for s in t["spec"]["steps"]}
        assert steps == COVERED, f"{stack}: a step without a test here: {steps ^ COVERED}"


# ------------------------------------------------------------------------------------ fetch-source

@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A repository with two commits; the pipeline must check out the pushed one, not HEAD."""
    repo = tmp_path_factory.mktemp("upstream")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("first\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "README.md").write_text("second\n")
    subprocess.run([*git, "commit", "-q", "-am", "second"], check=True)
    # GitHub serves any reachable commit by SHA (the TriggerBinding passes body.after).
    subprocess.run([*git, "config", "uploadpack.allowReachableSHA1InWant", "true"], check=True)
    return repo, first, "main"


def fetch(upstream_url: str, revision: str, tmp: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    task = tasks()["fetch-source"]
    src, result, home = tmp / "source", tmp / "commit", tmp / "home"
    src.mkdir()
    home.mkdir()
    proc = run_script(task, "clone", {"params.url": upstream_url, "params.revision": revision,
                                      "workspaces.source.path": str(src), "results.commit.path": str(result)},
                      mounts={"/tekton/home": str(home)})
    return proc, src, result


def test_fetch_source_checks_out_the_pushed_commit(upstream, tmp_path):
    repo, first, _ = upstream
    proc, src, result = fetch(str(repo), first, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (src / "README.md").read_text() == "first\n"
    assert result.read_text() == first  # the commit result tags the image


def test_fetch_source_fails_on_a_revision_that_does_not_exist(upstream, tmp_path):
    repo, _, _ = upstream
    proc, _, result = fetch(str(repo), "0" * 40, tmp_path)
    assert proc.returncode != 0 and not result.exists()


# ------------------------------------------------------------------------------------ unit-tests

def test_unit_tests_step_gets_a_working_prometheus_for_the_drill(tmp_path):
    task = tasks()["unit-tests"]
    copy, make = step(task, "prometheus-binary"), step(task, "make-test")
    # Both steps mount the same volume: what the first copies, the second is pointed at.
    assert copy["volumeMounts"] == make["volumeMounts"] == [{"name": "ci-tools", "mountPath": cicd.CI_TOOLS}]
    assert task["spec"]["volumes"] == [{"name": "ci-tools", "emptyDir": {}}]
    assert copy["image"].startswith("quay.io/prometheus/prometheus:v") and "distroless" not in copy["image"]
    # Run the copy step with a `prometheus` on PATH, as the image has one in /bin.
    tools = tmp_path / "ci-tools"
    tools.mkdir()
    binary = Path(prometheus_binary())
    proc = run_script(task, "prometheus-binary", {}, mounts={cicd.CI_TOOLS: str(tools)},
                      env={"PATH": f"{binary.parent}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    assert "prometheus, version" in proc.stdout + proc.stderr
    copied = tools / "prometheus"
    assert os.access(copied, os.X_OK)
    env = {e["name"]: e["value"] for e in make["env"]}
    assert env[cicd.PROMETHEUS_BINARY_ENV] == f"{cicd.CI_TOOLS}/prometheus"
    # Without a prometheus anywhere, the copy step fails instead of handing on nothing.
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_script(task, "prometheus-binary", {}, mounts={cicd.CI_TOOLS: str(empty)}, env={"PATH": "/nonexistent"})
    assert proc.returncode != 0 and not (empty / "prometheus").exists()


def test_unit_tests_step_runs_make_test_in_the_workspace(tmp_path):
    """Running `make test` here would start this suite inside itself: check the step, dry-run make."""
    task = tasks()["unit-tests"]
    make = step(task, "make-test")
    assert make["script"] == f"#!/bin/sh\nset -eu\nmake test PYTEST_ARGS='{cicd.UNIT_TESTS_PYTEST_ARGS}'\n"
    assert substitute(make["workingDir"], task, {"workspaces.source.path": "/ws"}) == "/ws"
    assert make["securityContext"]["runAsNonRoot"] is True  # no apt: hence the copied Prometheus
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "-m pytest" in dry.stdout


def test_unit_tests_step_leaves_out_the_root_only_redis_drill_and_nothing_else():
    """The step is non-root: the namespace-building Redis drill cannot run there. Every other test
    directory, the canary drill's included, must still be collected with the step's arguments."""
    args = cicd.UNIT_TESTS_PYTEST_ARGS.split()
    assert args == ["--ignore=tests/redis_drill"]
    dirs = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = {line.split("/")[1] for line in proc.stdout.splitlines() if line.startswith("tests/")}
    assert collected == dirs - {"redis_drill"}, (collected, dirs)


def test_the_drill_takes_the_binary_the_step_hands_it(tmp_path, monkeypatch):
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv(cicd.PROMETHEUS_BINARY_ENV, str(fake))
    with pytest.raises(RuntimeError, match="not an executable"):
        prometheus_binary()
    fake.chmod(0o755)
    assert prometheus_binary() == str(fake)
    monkeypatch.delenv(cicd.PROMETHEUS_BINARY_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(RuntimeError, match="apt-get install prometheus"):
        prometheus_binary()


# ------------------------------------------------------------------------------------ evaluation-gate

@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What fetch-source leaves: the repo's files the gate reads, and this checkout's virtualenv
    (linked, its install stamp newer than pyproject.toml, so the step's `make venv` is a no-op)."""
    ws = tmp_path_factory.mktemp("workspace")
    for name in (p for p in REPO.iterdir() if p.is_file()):  # Makefile, pyproject.toml, the locks, README
        shutil.copy2(name, ws / name.name)
    for name in ("agent", "stacks/gates"):
        shutil.copytree(REPO / name, ws / name, ignore=shutil.ignore_patterns("__pycache__", ".agent-data"))
    (ws / ".venv").symlink_to(REPO / ".venv")
    # prod's quality floors without its latency ceilings (those judge a CI pod, not this machine).
    prod = json.loads((REPO / "stacks" / "gates" / "prod.json").read_text())
    prod["thresholds"] = {k: v for k, v in prod["thresholds"].items() if not k.startswith("max_latency")
                          and k != "max_retrieve_latency_p95_ms"}
    (ws / "stacks" / "gates" / f"{FLOORS}.json").write_text(json.dumps(prod))
    return ws


def gate(workspace: Path, environment: str, tmp: Path, timeout: float) -> tuple[subprocess.CompletedProcess, Path]:
    task = tasks()["evaluation-gate"]
    result = tmp / "report-result"
    proc = run_script(task, "evaluate", {"params.environment": environment, "workspaces.source.path": str(workspace),
                                         "results.report.path": str(result)},
                      mounts={"/tekton/home": str(tmp)}, env={"AGENT_LOG_LEVEL": "WARNING"}, timeout=timeout)
    return proc, result


def test_evaluation_gate_fails_the_step_for_a_gate_that_does_not_exist(workspace, tmp_path):
    proc, result = gate(workspace, "no-such-stack", tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no-such-stack" in proc.stderr and not result.exists()


def test_evaluation_gate_passes_on_the_golden_set_at_prods_quality_floors(workspace, tmp_path):
    """The real step script, the frozen golden corpus, and prod's floors: a retrieval change that
    would sink prod's gate fails here, in review, rather than in the pipeline."""
    floors = json.loads((workspace / "stacks" / "gates" / f"{FLOORS}.json").read_text())["thresholds"]
    assert {"min_hit_at_k", "min_mrr", "min_ndcg_at_k", "min_answer_support"} <= set(floors)
    proc, result = gate(workspace, FLOORS, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report_path = workspace / result.read_text()
    report = json.loads(report_path.read_text())
    assert report_path.name == "eval-report.json" and report
    assert "passed" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------ build-push

@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_build_push_arguments_resolve_to_the_repo_and_the_mounted_docker_config(stack):
    """kaniko cannot run here (no container runtime; it needs root and a registry to push to)."""
    cfg = stack_cfg(stack)
    task = tasks(stack)["build-push"]
    kaniko = step(task, "kaniko")
    image = f"{cfg.push_repository}:{'a' * 40}"
    values = {"params.image": image, "workspaces.source.path": str(REPO), "results.IMAGE_DIGEST.path": "/tmp/digest"}
    args = dict(a.removeprefix("--").partition("=")[::2] for a in (substitute(x, task, values) for x in kaniko["args"]))
    assert Path(args["context"]) == REPO and Path(args["dockerfile"]).is_file()  # the repo's Dockerfile
    assert args["destination"] == image and args["digest-file"] == "/tmp/digest"
    mount = next(w for w in task["spec"]["workspaces"] if w["name"] == "docker-config")
    assert {e["name"]: e["value"] for e in kaniko["env"]}["DOCKER_CONFIG"] == mount["mountPath"] == "/kaniko/.docker"
    # kaniko reads $DOCKER_CONFIG/config.json: the bound Secret or ConfigMap must hold that key.
    binding = cicd.docker_config_workspace(cfg, SecretNames())
    if "secret" in binding:
        # PlatformSecrets stores registryDockerConfig under config.json (tests/infra/test_components.py).
        assert binding == {"secret": {"secretName": SecretNames().registry}} and cfg.registryDockerConfig
    else:
        (cm,) = cicd.build_registry_config(cfg, Namespaces.for_env(stack))
        assert binding == {"configMap": {"name": cm["metadata"]["name"]}}
        assert json.loads(cm["data"]["config.json"])["credHelpers"]


# ------------------------------------------------------------------------------------ deploy-rollout

def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 for the ops the step sends (replace, test): the target path must exist."""
    doc = json.loads(json.dumps(doc))
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target, key = None, None
        node = doc
        for part in parts:
            target = node
            key = int(part) if isinstance(node, list) else part
            if isinstance(node, list):
                assert 0 <= key < len(node), f"{op['path']}: no such element"
            else:
                assert isinstance(node, dict) and key in node, f"{op['path']}: no such member"
            node = node[key]
        assert target is not None, "the whole document is never patched here"
        if op["op"] == "replace":
            target[key] = op["value"]
        elif op["op"] == "test":
            assert target[key] == op["value"], f"test failed at {op['path']}"
        else:
            raise AssertionError(f"unexpected op {op['op']}")
    return doc


def test_deploy_patch_changes_only_the_agent_image_of_the_rendered_rollout():
    cfg, ns = stack_cfg(), Namespaces.for_env(STACK)
    task = tasks()["deploy-rollout"]
    patch_step = step(task, "patch-image")
    digest_ref = f"{cfg.push_repository}@sha256:{'b' * 64}"
    args = [substitute(a, task, {"params.image": digest_ref, "params.namespace": ns.app}) for a in patch_step["args"]]
    assert patch_step["command"] == ["kubectl"]
    assert args[:4] == [f"--namespace={ns.app}", "patch", "rollout", "agent"] and "--type=json" in args
    ops = json.loads(next(a for a in args if a.startswith("--patch=")).removeprefix("--patch="))
    rollout = build_manifests(cfg, ns, "agent-secrets", {})["custom"][-1]
    assert rollout["kind"] == "Rollout" and rollout["metadata"]["name"] == "agent"
    patched = json_patch(rollout, ops)
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert containers[0]["name"] == "agent" and containers[0]["image"] == digest_ref
    containers[0]["image"] = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert patched == rollout  # nothing else changed: Argo canaries exactly the new image
    # The pipeline hands deploy the digest kaniko reported, under the repository it pushed to.
    pipeline = cicd.build_pipeline(cfg, ns)
    deploy = next(t for t in pipeline["spec"]["tasks"] if t["name"] == "deploy")
    params = {p["name"]: p["value"] for p in deploy["params"]}
    assert params["image"] == "$(params.image-repository)@$(tasks.build-push.results.IMAGE_DIGEST)"
    # The deployer may do exactly this: patch (and get) the Rollout named agent.
    role = next(m for m in cicd.build_rbac(cfg, ns) if m["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "resourceNames": ["agent"],
                              "verbs": ["get", "patch"]}]


def test_a_patch_against_a_path_the_rollout_lacks_fails():
    with pytest.raises(AssertionError, match="no such"):
        json_patch({"spec": {"template": {"spec": {"containers": []}}}},
                   [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "x"}])
