"""`python -m policies check`: YAML files, directories, stdin, JSON schema, exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from policies.checker import main, parse_stream

ROOT = Path(__file__).resolve().parents[2]

HARDENED = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: apps}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: ghcr.io/acme/web:1.0.0
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
---
# only a comment: an empty document
"""

WILDCARD_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: everything, namespace: apps}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get]}
- {apiGroups: [""], resources: [configmaps], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: everything, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: everything}
subjects: [{kind: ServiceAccount, name: web, namespace: apps}]
"""

ADVISORY_ONLY = """
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: pod-reader}
  rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: pod-reader}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
  subjects: [{kind: ServiceAccount, name: web, namespace: apps}]
"""


def run(*args, stdin_text: str | None = None):
    out = io.StringIO()
    code = main(list(args), stdin=io.StringIO(stdin_text or ""), stdout=out)
    return code, out.getvalue()


def test_type_tokens_core_group_and_list_items():
    resources, skipped = parse_stream(HARDENED + "---\n" + ADVISORY_ONLY + "---\n[1, 2]\n---\nfoo: bar\n", "x.yaml")
    assert [r.type for r in resources] == [
        "kubernetes:core/v1:ServiceAccount", "kubernetes:apps/v1:Deployment",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"]
    assert skipped == 2 and all(r.file == "x.yaml" for r in resources)


def test_clean_multi_document_file_exits_0(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(HARDENED)
    code, out = run(str(path))
    assert code == 0, out
    assert "0 violation(s)" in out and "2 object(s) checked" in out


def test_mandatory_violation_exits_1_and_names_the_rule(tmp_path):
    path = tmp_path / "rbac.yml"
    path.write_text(WILDCARD_ROLE)
    code, out = run(str(path))
    assert code == 1
    assert "MANDATORY critical restrict-wildcard-rbac  Role/apps/everything" in out
    assert "rules[1].verbs contains '*'" in out and str(path) in out


def test_advisory_only_exits_0(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text(ADVISORY_ONLY)
    code, out = run(str(path), "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert [v["policy"] for v in report["violations"]] == ["prefer-namespaced-bindings"]
    assert report["summary"]["advisory"] == 1 and report["summary"]["mandatory"] == 0


def test_directories_are_read_recursively_and_json_follows_the_schema(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "app.yaml").write_text(HARDENED)
    (tmp_path / "a" / "b" / "rbac.yml").write_text(WILDCARD_ROLE)
    (tmp_path / "a" / "notes.txt").write_text("not: [yaml")  # ignored: not *.yaml/*.yml
    code, out = run(str(tmp_path), "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert set(report) >= {"violations", "summary"}
    for v in report["violations"]:
        assert set(v) == {"policy", "enforcement", "severity", "resource", "message"}
        assert set(v["resource"]) == {"kind", "namespace", "name", "file"}
        assert v["enforcement"] in ("mandatory", "advisory")
        assert v["severity"] in ("critical", "high", "medium", "low")
    [v] = report["violations"]
    assert v["resource"] == {"kind": "Role", "namespace": "apps", "name": "everything",
                             "file": str(tmp_path / "a" / "b" / "rbac.yml")}
    s = report["summary"]
    assert (s["resources"], s["violations"], s["mandatory"], s["by_policy"]) == (4, 1, 1, {"restrict-wildcard-rbac": 1})


def test_stdin_dash_is_read(tmp_path):
    code, out = run("-", "--format", "json", stdin_text=WILDCARD_ROLE)
    assert code == 1 and json.loads(out)["violations"][0]["resource"]["file"] == "<stdin>"


def test_config_exemption_applies_in_the_checker(tmp_path):
    path = tmp_path / "rbac.yaml"
    path.write_text(WILDCARD_ROLE)
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"restrict-wildcard-rbac": {"exemptions": [
        {"kind": "Role", "name": "everything", "namespace": "apps", "reason": "fixture: configmap controller"}]}}))
    code, out = run(str(path), "--config", str(config), "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["exempted"] == 1


def test_bad_yaml_exits_2_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a, b\n")
    code, _ = run(str(path))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:" in err and "invalid YAML" in err
    line = int(err.split(f"{path}:")[1].split(":")[0])
    assert line in (5, 6)  # the unterminated flow sequence opened on line 5


@pytest.mark.parametrize("args, needle", [
    (["missing.yaml"], "missing.yaml: no such file or directory"),
    (["EMPTY_DIR"], "holds no *.yaml or *.yml files"),
    (["OK", "--config", "nope.json"], "nope.json: policy config file not found"),
])
def test_unreadable_input_exits_2(tmp_path, capsys, args, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY_DIR").mkdir()
    (tmp_path / "OK").write_text(HARDENED)
    code, _ = run(*args)
    assert code == 2 and needle in capsys.readouterr().err


def test_non_utf8_file_exits_2(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: \xff\xfe\n")
    assert run(str(path))[0] == 2 and "latin1.yaml: cannot read" in capsys.readouterr().err


def test_module_entry_point_runs_the_checker():
    """`python -m policies check -` goes through policies/__main__.py's dispatch, not the pack server."""
    proc = subprocess.run([sys.executable, "-m", "policies", "check", "-", "--format", "json"],
                          input=WILDCARD_ROLE, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["mandatory"] == 1


def test_helm_template_style_output_is_accepted():
    # `helm template` emits `# Source:` comments and leading `---`.
    stream = "---\n# Source: chart/templates/sa.yaml\n" + yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}})
    resources, skipped = parse_stream(stream, "<stdin>")
    assert [r.name for r in resources] == ["x"] and skipped == 0
