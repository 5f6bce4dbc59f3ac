"""The CrossGuard pack: built without serving, driven through pulumi_policy's real analyzer code path,
and started the way the Pulumi CLI starts it (`python -m pulumi.policy <engine> .` in policies/)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies import catalog
from policies.engine import PolicyCrash
from policies.model import Policy
from policies.pack import PACK_NAME, build_policies
from policies.pack_config import EXEMPTIONS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"


def struct(data) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(data)
    return s


def wildcard_role(name="x"):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                      {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]}


def analyze_request(props, name="x", type_=ROLE):
    return proto.AnalyzeRequest(type=type_, name=name, urn=f"urn:pulumi:dev::rag-platform::{type_}::{name}",
                                properties=struct(props))


@pytest.fixture
def analyzer():
    """pulumi_policy's own servicer (what PolicyPack serves), without the gRPC transport."""
    return _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.MANDATORY)


def test_importing_the_entry_point_does_not_serve():
    import policies.__main__ as entry  # would block forever if it built the PolicyPack on import

    assert callable(entry.main)


def test_every_catalog_policy_is_in_the_pack_with_metadata():
    built = {p.name: p for p in build_policies()}
    assert list(built) == catalog.policy_names()
    for policy in catalog.POLICIES:
        p = built[policy.name]
        assert isinstance(p, StackValidationPolicy if policy.is_stack_policy else ResourceValidationPolicy)
        assert p.severity.value == policy.severity and p.enforcement_level.value == policy.enforcement
        assert p.remediation_steps and p.description
        assert "exemptions" in p.config_schema.properties
    assert built["prefer-namespaced-bindings"].enforcement_level == EnforcementLevel.ADVISORY


def test_analyzer_info_advertises_config_support(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    assert info.name == PACK_NAME and info.supportsConfig
    assert len(info.policies) == len(catalog.POLICIES)


def test_resource_violation_through_pulumi_policy(analyzer):
    response = analyzer.Analyze(analyze_request(wildcard_role()), None)
    [d] = response.diagnostics
    assert d.policyName == "restrict-wildcard-rbac" and d.policyPackName == PACK_NAME
    assert d.enforcementLevel == proto.MANDATORY
    assert "rules[1].apiGroups contains '*'" in d.message
    ok = wildcard_role()
    ok["rules"].pop()
    assert list(analyzer.Analyze(analyze_request(ok), None).diagnostics) == []


def configure(analyzer, policy, properties, level=proto.MANDATORY):
    request = proto.ConfigureAnalyzerRequest()
    request.policyConfig[policy].enforcementLevel = level
    request.policyConfig[policy].properties.update(properties)
    analyzer.Configure(request, None)


def test_exemption_from_policy_pack_config_is_honoured(analyzer):
    configure(analyzer, "restrict-wildcard-rbac",
              {"exemptions": [{"kind": "ClusterRole", "name": "x", "namespace": None, "reason": "fixture"}]})
    assert list(analyzer.Analyze(analyze_request(wildcard_role()), None).diagnostics) == []
    other = analyzer.Analyze(analyze_request(wildcard_role("y"), name="y"), None)
    assert [d.policyName for d in other.diagnostics] == ["restrict-wildcard-rbac"]


def test_unreasoned_exemption_is_not_honoured_by_the_pack(analyzer):
    configure(analyzer, "restrict-wildcard-rbac", {"exemptions": [{"kind": "ClusterRole", "name": "x"}]})
    assert [d.policyName for d in analyzer.Analyze(analyze_request(wildcard_role()), None).diagnostics] == [
        "restrict-wildcard-rbac"]


def test_stack_policy_through_pulumi_policy(analyzer):
    role = wildcard_role("reader")
    role["rules"].pop()
    request = proto.AnalyzeStackRequest(resources=[proto.AnalyzerResource(
        type=ROLE, name="reader", urn=f"urn:pulumi:dev::rag-platform::{ROLE}::reader", properties=struct(role))])
    response = analyzer.AnalyzeStack(request, None)
    [d] = response.diagnostics
    assert d.policyName == "restrict-unbound-roles" and d.urn.endswith("::reader")
    assert "ClusterRole 'reader' is not referenced" in d.message


def test_a_crashing_policy_names_itself_and_the_object_through_the_pack():
    def boom(token, props):
        raise KeyError("rules")

    crashing = Policy("crashing-fixture", "raises", "high", "fix it", resource_check=boom)
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies([crashing]), EnforcementLevel.MANDATORY)
    with pytest.raises(PolicyCrash, match=r"policy crashing-fixture crashed on ClusterRole/x \(kubernetes:rbac"):
        servicer.Analyze(analyze_request(wildcard_role()), None)


def test_stack_config_files_satisfy_the_packs_config_schema():
    """The CLI validates --policy-pack-config against each policy's schema; mirror its checks here."""
    item = EXEMPTIONS_SCHEMA["items"]
    for path in sorted((ROOT / "stacks" / "policy").glob("*.json")):
        data = json.loads(path.read_text())
        for policy, value in data.items():
            if isinstance(value, str):
                assert value in ("advisory", "mandatory", "remediate", "disabled"), (path, policy)
                continue
            assert policy in catalog.policy_names(), (path, policy)
            for exemption in value.get("exemptions", []):
                assert set(exemption) <= set(item["properties"]), (path, exemption)
                assert all(isinstance(exemption.get(k), str) and exemption[k] for k in item["required"]), exemption


# `python -m pulumi.policy <engine> .`, as the CLI's pulumi-analyzer-policy-python shim runs it, but in a
# venv like the one requirements.txt builds: without this project's editable install, so the test
# proves policies/__main__.py makes `policies.*` importable on its own.
_LAUNCH_AS_CLI = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "Editable" not in repr(h)]
sys.path_importer_cache.clear()
for name in [m for m in sys.modules if m == "policies" or m.startswith("policies.")]:
    del sys.modules[name]
sys.argv[0] = "pulumi.policy"
runpy.run_module("pulumi.policy", run_name="__main__", alter_sys=True)
"""


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The process's first stdout line, or '' once `timeout` seconds pass (a test never hangs on it)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def _serve_and_call(argv: list[str]) -> None:
    """Start the pack with `argv` in policies/ (as the engine does), call it over gRPC, stop it."""
    import grpc
    from pulumi.runtime.proto import analyzer_pb2_grpc

    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    proc = subprocess.Popen(argv, cwd=ROOT / "policies", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        port = _first_line(proc, timeout=60)
        assert port.isdigit(), (port, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == PACK_NAME and len(info.policies) == len(catalog.POLICIES)
            response = stub.Analyze(analyze_request(wildcard_role()), timeout=10)
            assert [d.policyName for d in response.diagnostics] == ["restrict-wildcard-rbac"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_cli_launch_path_serves_the_pack_over_grpc():
    """Start the pack exactly as the Pulumi CLI does (without this project's editable install) and call it."""
    _serve_and_call([sys.executable, "-u", "-c", _LAUNCH_AS_CLI, "127.0.0.1:1", "."])


def test_the_engine_command_line_serves_the_pack():
    """The shim's literal command: `python -u -m pulumi.policy <engine-address> .` in the pack directory."""
    _serve_and_call([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."])
