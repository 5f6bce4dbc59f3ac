"""What a preview writes: redacted, sorted, byte-identical files, and the policy pack's verdict.

Per stack, `<out>/<stack>/`:
- resources.json  every resource {"type","name","urn","parent","dependsOn","custom","inputs"}, sorted by URN
- manifests.yaml  every Kubernetes object the program declares, in URN order
- policy.json     the policies/ pack over those resources, with `stacks/policy/<stack>.json`
- outputs.json    the stack outputs

Keys are sorted everywhere and nothing depends on time, paths or thread scheduling, so the same
commit gives the same bytes. Secret values are "[secret]"; a Kubernetes Secret keeps its keys
(`stringData: {password: "[secret]"}`), so the manifest still validates and a reviewer sees which
keys it carries.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .engine import Recorded, StackPreview

SECRET = "[secret]"
SECRET_DATA_FIELDS = ("data", "stringData")
FILES = ("resources.json", "manifests.yaml", "policy.json", "outputs.json")


# ---------------------------------------------------------------- redaction

def redact(value: Any) -> Any:
    """Replace every secret-marked value by "[secret]".

    Also gives integers back: the engine protocol carries every number as a protobuf double, so
    `replicas: 3` would otherwise be recorded as `3.0` (the real engine restores ints the same way).
    """
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_kube_secret(r: Recorded) -> bool:
    return r.type == "kubernetes:core/v1:Secret"


def _secret_keys_only(value: Any) -> Any:
    """A Secret's data map with every value hidden, whether the map or its values were marked secret."""
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {str(k): SECRET for k in value}
    return SECRET


def redacted_inputs(r: Recorded) -> dict[str, Any]:
    inputs = redact(r.inputs)
    if _is_kube_secret(r):
        # Whatever was or was not marked secret: a Secret's values never reach a preview file.
        for key in SECRET_DATA_FIELDS:
            if key in r.inputs:
                inputs[key] = _secret_keys_only(r.inputs[key])
    return inputs


def resource_json(r: Recorded) -> dict[str, Any]:
    return {"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent,
            "dependsOn": list(r.depends_on), "custom": r.custom, "inputs": redacted_inputs(r)}


# ---------------------------------------------------------------- policy

def run_policies(stack: str, resources: list[dict[str, Any]], stacks_dir: Path,
                 policies: Sequence[Any] | None = None) -> tuple[dict[str, Any], bool]:
    """The policies/ pack over the redacted resources. Returns (report dict, has mandatory violation).

    `policies` defaults to the whole pack (policies.catalog.POLICIES, read at call time). Raises
    PolicyConfigError (the stack's policy file is wrong) or PolicyCrash (a policy raised; it names
    the policy and the object).
    """
    from policies import catalog
    from policies.engine import PolicyResource, check_resources, load_pack_config

    pack_config = load_pack_config(stacks_dir / "policy" / f"{stack}.json")
    policy_resources = [PolicyResource(type=r["type"], name=r["name"], props=r["inputs"], urn=r["urn"], file=None)
                        for r in resources]
    report = check_resources(policy_resources, pack_config,
                             policies=catalog.POLICIES if policies is None else tuple(policies))
    return report.to_dict(), bool(report.has_mandatory)


# ---------------------------------------------------------------- files

def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def dump_yaml_all(documents: list[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=True, default_flow_style=False)


def write_atomically(path: Path, text: str) -> None:
    """Readers (and a diff run after a crash) see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(preview: StackPreview, resources: list[dict[str, Any]], policy: dict[str, Any], out: Path) -> Path:
    target = out / preview.stack
    target.mkdir(parents=True, exist_ok=True)
    manifests = [resource_json(r)["inputs"] for r in preview.manifests]
    write_atomically(target / "resources.json", dump_json(resources))
    write_atomically(target / "manifests.yaml", dump_yaml_all(manifests))
    write_atomically(target / "policy.json", dump_json(policy))
    write_atomically(target / "outputs.json", dump_json(redact(preview.outputs)))
    return target


# ---------------------------------------------------------------- console summary

def kind_counts(resources: list[dict[str, Any]]) -> Counter:
    return Counter(r["type"] for r in resources)


def print_stack_summary(stack: str, resources: list[dict[str, Any]], policy: dict[str, Any], target: Path) -> None:
    counts = kind_counts(resources)
    print(f"== {stack}: {len(resources)} resources -> {target}")
    for typ, n in sorted(counts.items()):
        print(f"   {n:4d}  {typ}")
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
    """What differs between stacks: resource counts by type."""
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
