"""The adversarial corpus: every bad manifest is caught as mandatory by exactly its named policy, every
hardened one is clean, both through `python -m policies check` (a subprocess: the CLI path) and through
the CrossGuard pack's validators (pulumi_policy's analyzer servicer: Analyze per object, AnalyzeStack
over the file's objects, configured with corpus/config.json the way the engine configures it).

A bad file starts with `# expect: <policy>`; `# also: <policy> -- <why>` lines list the other findings
the file is allowed to produce, each with its justification. See docs/policies.md ("The corpus").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policies import catalog
from policies.checker import parse_stream
from policies.pack import PACK_NAME, build_policies

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CONFIG = CORPUS / "config.json"
BAD = sorted((CORPUS / "bad").rglob("*.yaml"))
GOOD = sorted((CORPUS / "good").rglob("*.yaml"))
CATEGORIES = ("1-aggregation", "2-bindings", "3-escalation", "4-secrets", "5-pod-security", "6-pod-bearing-kinds",
              "7-tokens")
# Not a check over objects (require-exemption-reason) or advisory only: no bad manifest needed.
NOT_IN_CORPUS = {"prefer-namespaced-bindings", "restrict-unbound-roles", "require-service-accounts-exist"}

_EXPECT = re.compile(r"^# expect: ([a-z0-9-]+)\s*$")
_ALSO = re.compile(r"^# also: ([a-z0-9-]+) -- \S.*$")


def header(path: Path) -> tuple[str, set[str]]:
    lines = path.read_text().splitlines()
    m = _EXPECT.match(lines[0]) if lines else None
    assert m, f"{path.relative_to(CORPUS)}: the first line must be '# expect: <policy>'"
    also = set()
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        if line.startswith("# also:"):
            a = _ALSO.match(line)
            assert a, f"{path.relative_to(CORPUS)}: write '# also: <policy> -- <why it fires too>'"
            also.add(a.group(1))
    return m.group(1), also


def _check(path: Path) -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "policies", "check", str(path), "--config", str(CONFIG),
                           "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {}
    return proc.returncode, report, proc.stderr


@pytest.fixture(scope="module")
def cli() -> dict[Path, tuple[int, dict, str]]:
    """One checker process per corpus file (stack policies see exactly that file), two at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(BAD + GOOD, pool.map(_check, BAD + GOOD)))


def _struct(data) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(data)
    return s


@pytest.fixture(scope="module")
def analyzer() -> _PolicyAnalyzerServicer:
    """What PolicyPack serves, configured from corpus/config.json as the CLI's --policy-pack-config would."""
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.MANDATORY)
    request = proto.ConfigureAnalyzerRequest()
    levels = {"mandatory": proto.MANDATORY, "advisory": proto.ADVISORY}
    for policy, value in json.loads(CONFIG.read_text()).items():
        request.policyConfig[policy].enforcementLevel = levels[catalog.get(policy).enforcement]
        request.policyConfig[policy].properties.update({"exemptions": value.get("exemptions", [])})
    servicer.Configure(request, None)
    return servicer


def pack_findings(analyzer: _PolicyAnalyzerServicer, path: Path) -> list[tuple[str, str]]:
    """(policy, enforcement) for every diagnostic the pack reports on the file's objects."""
    resources, _ = parse_stream(path.read_text(), str(path))
    urn = lambda i, r: f"urn:pulumi:corpus::rag-platform::{r.type}::{i}-{r.name}"  # noqa: E731
    diagnostics = []
    for i, r in enumerate(resources):
        request = proto.AnalyzeRequest(type=r.type, name=r.name, urn=urn(i, r), properties=_struct(r.props))
        diagnostics += analyzer.Analyze(request, None).diagnostics
    stack = proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(type=r.type, name=r.name, urn=urn(i, r), properties=_struct(r.props))
        for i, r in enumerate(resources)])
    diagnostics += analyzer.AnalyzeStack(stack, None).diagnostics
    level = {proto.MANDATORY: "mandatory", proto.ADVISORY: "advisory"}
    return [(d.policyName, level.get(d.enforcementLevel, str(d.enforcementLevel))) for d in diagnostics]


def _id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


@pytest.mark.parametrize("path", BAD, ids=_id)
def test_bad_manifest_is_caught_by_its_policy(path, cli, analyzer):
    expect, also = header(path)
    allowed = {expect} | also
    code, report, stderr = cli[path]
    assert code == 1, f"checker exit {code}, expected 1 (mandatory violation)\n{stderr}"
    found = [(v["policy"], v["enforcement"]) for v in report["violations"]]
    assert (expect, "mandatory") in found, f"checker missed {expect}: {json.dumps(report['violations'], indent=1)}"
    assert {p for p, _ in found} <= allowed, f"unjustified findings: {sorted({p for p, _ in found} - allowed)}"
    via_pack = pack_findings(analyzer, path)
    assert (expect, "mandatory") in via_pack, f"the pack missed {expect}: {via_pack}"
    assert {p for p, _ in via_pack} <= allowed, f"unjustified pack findings: {sorted({p for p, _ in via_pack} - allowed)}"


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_hardened_manifest_is_clean(path, cli, analyzer):
    code, report, stderr = cli[path]
    assert code == 0 and report["violations"] == [], json.dumps(report.get("violations"), indent=1) + stderr
    assert report["summary"]["resources"] > 0
    assert pack_findings(analyzer, path) == []


def test_corpus_size_and_coverage():
    """>= 60 bad and >= 20 good files; every category has several; every object policy has a bad case."""
    assert len(BAD) >= 60 and len(GOOD) >= 20, (len(BAD), len(GOOD))
    for category in CATEGORIES:
        files = list((CORPUS / "bad" / category).glob("*.yaml"))
        assert len(files) >= 3, f"category {category} has {len(files)} bad manifests"
    expected = {header(p)[0] for p in BAD}
    known = set(catalog.policy_names())
    assert expected <= known, f"unknown policies named: {expected - known}"
    uncovered = known - expected - NOT_IN_CORPUS
    assert not uncovered, f"policies without a bad manifest: {sorted(uncovered)}"


def test_corpus_exemptions_have_reasons_and_are_all_used(cli):
    """Good files may rely on config.json's exemptions (projected tokens); each must matter somewhere."""
    config = json.loads(CONFIG.read_text())
    exemptions = [(p, e) for p, v in config.items() for e in v.get("exemptions", [])]
    assert exemptions and all(e.get("reason") for _, e in exemptions)
    used = {(x["policy"], x["resource"]["kind"], x["resource"]["name"])
            for _, report, _ in cli.values() for x in report.get("exempted", [])}
    for policy, e in exemptions:
        assert (policy, e["kind"], e["name"]) in used, f"corpus exemption never used: {policy} {e['kind']} {e['name']}"
