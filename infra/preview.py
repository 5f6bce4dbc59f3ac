"""Credential-free preview: run the real program under the Pulumi SDK's mock engine.

    python -m infra.preview --stack dev --out build/preview
    python -m infra.preview --all --out build/preview

For each stack it loads `stacks/Pulumi.<stack>.yaml` the way the CLI would (project-namespaced keys,
objects as JSON, `secure:` values as secrets with placeholder values), runs `infra/__main__.py`,
records every registered resource, and writes to `<out>/<stack>/`:

- resources.json  every resource: {"type","name","parent","dependsOn","inputs"} (secrets "[secret]")
- manifests.yaml  every Kubernetes object the program declares (multi-document YAML)
- policy.json     the policies/ pack run over those resources
- outputs.json    the stack outputs

Exit codes: 0 clean, 1 a mandatory policy violation, 2 a config or program error.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "rag-platform"
SECRET = "[secret]"
# Recognisable fake values: tests grep the preview output for these to prove nothing leaks.
FAKE_SECRET_PREFIX = "FAKE-SECRET-"
PLACEHOLDER_PREFIX = "PREVIEW-PLACEHOLDER-"
EXIT_OK, EXIT_POLICY, EXIT_ERROR = 0, 1, 2
# Resource types that are components or providers, not Kubernetes objects of our own.
NON_MANIFEST_TYPES = ("kubernetes:helm.sh/", "kubernetes:yaml/", "kubernetes:kustomize/")


class PreviewError(Exception):
    """The stack file or the program is broken (exit code 2)."""


# ---------------------------------------------------------------- stack files, as the CLI reads them

def stack_names(stacks_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def load_stack_file(path: Path, project: str = PROJECT) -> tuple[dict[str, str], set[str]]:
    """Flatten a stack file into the CLI's config map: `{"ns:key": "string or JSON"}` plus secret keys."""
    if not path.is_file():
        raise PreviewError(f"{path}: stack file not found (fix: create it, see docs/platform.md 'Adding a stack')")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PreviewError(f"{path}: not valid YAML: {exc}") from None
    raw = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise PreviewError(f"{path}: no `config:` mapping (fix: put every key under a top-level `config:`)")
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # The CLI would decrypt this; the preview never can, so a recognisable placeholder stands in.
            config[full] = f"{PLACEHOLDER_PREFIX}{full}"
            secret_keys.add(full)
        elif isinstance(value, (dict, list)):
            if _has_secure(value):
                secret_keys.add(full)
                value = _replace_secure(value, full)
            config[full] = json.dumps(value)
        elif isinstance(value, bool):
            config[full] = "true" if value else "false"
        elif value is None:
            config[full] = "null"
        else:
            config[full] = str(value)
    return config, secret_keys


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return f"{PLACEHOLDER_PREFIX}{key}"
        return {k: _replace_secure(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, key) for v in value]
    return value


# ---------------------------------------------------------------- the mock engine

def _mask(value: Any) -> Any:
    """Replace every secret-wrapped value by "[secret]" (the SDK marks secrets with a signature key).

    Also gives integers back: the engine protocol carries every number as a protobuf double, so
    `replicas: 3` would otherwise be recorded as `3.0` (the real engine restores ints the same way).
    """
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _name_of(urn: str) -> str:
    return urn.split("::")[-1] if urn else ""


@dataclass
class Recorded:
    type: str
    name: str
    urn: str
    parent: str
    depends_on: list[str]
    inputs: dict[str, Any]
    custom: bool

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "urn": self.urn, "parent": self.parent,
                "dependsOn": self.depends_on, "custom": self.custom, "inputs": self.inputs}


def _make_recorder():
    """A MockMonitor that also keeps what the engine would receive (with secrets still marked)."""
    from pulumi.runtime import mocks, rpc
    from pulumi.runtime.sync_await import _ensure_event_loop

    class PreviewMocks(mocks.Mocks):
        secret_outputs: list[str] = []

        def new_resource(self, args: mocks.MockResourceArgs):
            outputs = dict(args.inputs)
            if args.typ.startswith("random:"):
                # Fake, greppable secret values: any leak into output files fails the tests.
                outputs["result"] = f"{FAKE_SECRET_PREFIX}{args.name}"
            # What the engine does with `additionalSecretOutputs` (RandomPassword.result): the
            # mock monitor does not, so a generated password would otherwise come back in plaintext.
            for key in self.secret_outputs:
                if key in outputs:
                    outputs[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": outputs[key]}
            return f"{args.name}-id", outputs

        def call(self, args: mocks.MockCallArgs):
            return {}, None

    class RecordingMonitor(mocks.MockMonitor):
        def __init__(self) -> None:
            super().__init__(PreviewMocks())
            self.recorded: list[Recorded] = []

        def RegisterResource(self, request):
            if request.type != "pulumi:pulumi:Stack":
                _ensure_event_loop()
                inputs = _mask(rpc.deserialize_properties(request.object, keep_unknowns=True))
                self.recorded.append(Recorded(
                    type=request.type, name=request.name,
                    urn=self.make_urn(request.parent, request.type, request.name),
                    parent=request.parent, depends_on=sorted(set(request.dependencies)),
                    inputs=inputs, custom=bool(request.custom)))
            self.mocks.secret_outputs = list(request.additionalSecretOutputs)
            return super().RegisterResource(request)

    return RecordingMonitor()


@dataclass
class StackPreview:
    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]
    manifests: list[dict[str, Any]] = field(default_factory=list)


def run_program(stack: str, stacks_dir: Path, program_dir: Path) -> StackPreview:
    """Run the real program for one stack in this process (the mock runtime is process-global)."""
    import pulumi
    from pulumi.runtime import rpc, settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.mocks import set_mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    config, secret_keys = load_stack_file(stacks_dir / f"Pulumi.{stack}.yaml")
    set_all_config(config, sorted(secret_keys))
    monitor = _make_recorder()
    set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    def program() -> None:
        # Exactly what the Python language host does with `main: infra/`.
        runpy.run_path(str(program_dir), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    root = settings.get_root_resource()
    raw_outputs = getattr(root, "outputs", {})
    serialized = _sync_await(rpc.serialize_properties({"o": raw_outputs}, {}))
    outputs = _mask(rpc.deserialize_properties(serialized, keep_unknowns=True)).get("o", {})
    del pulumi
    preview = StackPreview(stack=stack, resources=monitor.recorded, outputs=outputs)
    preview.manifests = [r.inputs for r in preview.resources if is_manifest(r)]
    return preview


def is_manifest(r: Recorded) -> bool:
    return (r.custom and r.type.startswith("kubernetes:") and not r.type.startswith(NON_MANIFEST_TYPES)
            and "apiVersion" in r.inputs and "kind" in r.inputs)


# ---------------------------------------------------------------- policy

def run_policies(stack: str, preview: StackPreview, stacks_dir: Path) -> tuple[dict[str, Any], bool]:
    """The policies/ pack over the recorded resources. Returns (report dict, has mandatory violation)."""
    from policies.engine import PolicyResource, check_resources, load_pack_config

    pack_config = load_pack_config(stacks_dir / "policy" / f"{stack}.json")
    resources = [PolicyResource(type=r.type, name=r.name, props=r.inputs, urn=r.urn, file=None)
                 for r in preview.resources]
    report = check_resources(resources, pack_config)
    return report.to_dict(), bool(report.has_mandatory)


# ---------------------------------------------------------------- output files and summary

def write_outputs(preview: StackPreview, policy: dict[str, Any], out: Path) -> Path:
    target = out / preview.stack
    target.mkdir(parents=True, exist_ok=True)
    (target / "resources.json").write_text(
        json.dumps([r.to_json() for r in preview.resources], indent=2, sort_keys=False) + "\n")
    (target / "manifests.yaml").write_text(
        yaml.safe_dump_all(preview.manifests, sort_keys=False, default_flow_style=False))
    (target / "policy.json").write_text(json.dumps(policy, indent=2) + "\n")
    (target / "outputs.json").write_text(json.dumps(preview.outputs, indent=2) + "\n")
    return target


def kind_counts(resources: list[dict[str, Any]]) -> Counter:
    return Counter(r["type"] for r in resources)


def print_stack_summary(stack: str, resources: list[dict[str, Any]], policy: dict[str, Any], target: Path) -> None:
    counts = kind_counts(resources)
    print(f"== {stack}: {len(resources)} resources -> {target}")
    for typ, n in sorted(counts.items()):
        print(f"   {n:4d}  {typ}")
    if policy.get("status") == "unavailable":
        print(f"   policy: {policy['reason']}")
    else:
        vs = policy.get("violations", [])
        mandatory = [v for v in vs if v.get("enforcement") == "mandatory"]
        print(f"   policy: {len(vs)} violation(s), {len(mandatory)} mandatory")
        for v in vs[:20]:
            res = v.get("resource", {})
            print(f"     [{v.get('enforcement')}] {v.get('policy')}: {res.get('kind')} "
                  f"{res.get('namespace') or ''}/{res.get('name')}: {v.get('message')}")
        if len(vs) > 20:
            print(f"     ... {len(vs) - 20} more in {target / 'policy.json'}")


def print_differences(out: Path, stacks: list[str]) -> None:
    """What differs between stacks: resource counts by type, and the key settings."""
    counts = {}
    for s in stacks:
        path = out / s / "resources.json"
        if path.is_file():
            counts[s] = kind_counts(json.loads(path.read_text()))
    if len(counts) < 2:
        return
    names = list(counts)
    types = sorted(set().union(*counts.values()))
    differing = [t for t in types if len({counts[s][t] for s in names}) > 1]
    print("== differences between stacks (resource count by type)")
    width = max((len(t) for t in differing), default=10)
    print("   " + " " * width + "".join(f"{s:>9}" for s in names))
    for t in differing:
        print("   " + t.ljust(width) + "".join(f"{counts[s][t]:>9}" for s in names))


# ---------------------------------------------------------------- CLI

def preview_stack(stack: str, out: Path, stacks_dir: Path, program_dir: Path) -> int:
    try:
        preview = run_program(stack, stacks_dir, program_dir)
    except PreviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - any program failure is a preview failure with exit 2
        from infra.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"error: the program failed for stack '{stack}':\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_ERROR
    from infra.crds import check_crd_dependencies
    from policies.pack_config import PolicyConfigError

    try:
        policy, mandatory = run_policies(stack, preview, stacks_dir)
    except PolicyConfigError as exc:  # the stack's policy config file is wrong
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    target = write_outputs(preview, policy, out)
    resources = [r.to_json() for r in preview.resources]
    print_stack_summary(stack, resources, policy, target)
    problems = check_crd_dependencies(resources)
    if problems:
        print(f"error: {stack}: custom resources without a dependency on their CRD installer:\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return EXIT_ERROR
    return EXIT_POLICY if mandatory else EXIT_OK


def preview_all(out: Path, stacks_dir: Path, program_dir: Path) -> int:
    """One fresh interpreter per stack (the mock runtime is global state), two at a time."""
    stacks = stack_names(stacks_dir)
    if not stacks:
        print(f"error: no stack files in {stacks_dir}", file=sys.stderr)
        return EXIT_ERROR
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    procs: dict[str, subprocess.Popen] = {}
    codes: dict[str, int] = {}
    outputs: dict[str, tuple[str, str]] = {}
    pending = list(stacks)
    while pending or procs:
        while pending and len(procs) < max(2, os.cpu_count() or 2):
            s = pending.pop(0)
            procs[s] = subprocess.Popen(
                [sys.executable, "-m", "infra.preview", "--stack", s, "--out", str(out),
                 "--stacks-dir", str(stacks_dir), "--program", str(program_dir)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
        s, p = next(iter(procs.items()))
        stdout, stderr = p.communicate()
        outputs[s] = (stdout, stderr)
        codes[s] = p.returncode
        del procs[s]
    for s in stacks:
        stdout, stderr = outputs[s]
        sys.stdout.write(stdout)
        if stderr.strip():
            sys.stderr.write(stderr)
    print_differences(out, [s for s in stacks if codes[s] != EXIT_ERROR])
    print("== result: " + ", ".join(f"{s}={_describe(codes[s])}" for s in stacks)
          + f" ({time.monotonic() - started:.1f}s)")
    return max(codes.values())


def _describe(code: int) -> str:
    return {EXIT_OK: "ok", EXIT_POLICY: "mandatory-policy-violation", EXIT_ERROR: "error"}.get(code, f"exit {code}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.preview", description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", help="one stack name (stacks/Pulumi.<stack>.yaml)")
    which.add_argument("--all", action="store_true", help="every stack in the stacks directory")
    ap.add_argument("--out", type=Path, default=Path("build/preview"), help="output directory")
    ap.add_argument("--stacks-dir", type=Path, default=REPO_ROOT / "stacks")
    ap.add_argument("--program", type=Path, default=REPO_ROOT / "infra", help="program directory (Pulumi.yaml main)")
    args = ap.parse_args(argv)
    if args.all:
        return preview_all(args.out, args.stacks_dir, args.program)
    return preview_stack(args.stack, args.out, args.stacks_dir, args.program)


if __name__ == "__main__":
    sys.exit(main())
