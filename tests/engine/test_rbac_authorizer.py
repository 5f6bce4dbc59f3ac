"""RBAC as the authorizer sees it: every ServiceAccount a stack creates, asked of a real kube-apiserver.

Each stack's previewed Namespaces, ServiceAccounts, Roles, ClusterRoles and bindings are applied
(server-side apply) to a real API server with the RBAC authorizer, then:
- SubjectAccessReviews prove no ServiceAccount can create pods, read Secrets it is not named for,
  exec into pods, escalate or bind roles, impersonate, or mint tokens, in any of the stack's
  namespaces or cluster-wide;
- each ServiceAccount's rights per namespace (`auth can-i --list`, a SelfSubjectRulesReview, less
  what any ServiceAccount gets with no binding) equal the reviewed table in
  tests/engine/rbac_expected.json, rendered in docs/policies.md ("What the authorizer grants").
  `RAG_UPDATE_RBAC_TABLE=1` rewrites the file after a reviewed change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.apiserver import Cluster, Discovery, control_plane, server_side_apply

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["dev", "local", "prod", "staging"]
EXPECTED = Path(__file__).with_name("rbac_expected.json")
RBAC_KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
# (verb, group, resource, subresource): rights no ServiceAccount of ours may hold without a name.
FORBIDDEN = [
    ("create", "", "pods", ""),
    ("get", "", "secrets", ""),
    ("list", "", "secrets", ""),
    ("watch", "", "secrets", ""),
    ("create", "", "pods", "exec"),
    ("create", "", "pods", "attach"),
    ("escalate", "rbac.authorization.k8s.io", "roles", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("bind", "rbac.authorization.k8s.io", "roles", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("impersonate", "", "users", ""),
    ("impersonate", "", "serviceaccounts", ""),
    ("impersonate", "", "groups", ""),
    ("create", "", "serviceaccounts", "token"),
    ("create", "rbac.authorization.k8s.io", "rolebindings", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
]


@pytest.fixture(scope="module")
def previews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine-preview")
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), f"preview failed ({proc.returncode}):\n{proc.stderr}"
    return out


def _manifests(previews: Path, stack: str) -> list[dict[str, Any]]:
    return [m for m in yaml.safe_load_all((previews / stack / "manifests.yaml").read_text()) if m]


def _apply_rbac(cluster: Cluster, manifests: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[str]]:
    discovery = Discovery(cluster.client)
    namespaces = sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace")
    for m in manifests:
        if m["kind"] == "Namespace":
            res = server_side_apply(cluster.client, discovery, m)
            assert res.status_code in (200, 201), f"Namespace {m['metadata']['name']}: {res.text}"
    for kind in RBAC_KINDS:
        for m in manifests:
            if m["kind"] == kind:
                res = server_side_apply(cluster.client, discovery, m)
                assert res.status_code in (200, 201), f"{kind} {m['metadata']['name']}: {res.status_code} {res.text}"
    sas = sorted((m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests
                 if m["kind"] == "ServiceAccount")
    return sas, namespaces


def _groups(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def _rule_key(rule: dict[str, Any]) -> str:
    parts = [",".join(sorted(rule.get(k) or [])) for k in ("verbs", "apiGroups", "resources", "resourceNames")]
    return " | ".join(parts)


@pytest.fixture(scope="module", params=STACKS)
def granted(request, previews: Path, tmp_path_factory: pytest.TempPathFactory):
    stack = request.param
    manifests = _manifests(previews, stack)
    with control_plane(tmp_path_factory.mktemp(f"apiserver-{stack}")) as cluster:
        sas, namespaces = _apply_rbac(cluster, manifests)
        scopes = [*namespaces, ""]
        denials: list[str] = []
        for ns, sa in sas:
            user = f"system:serviceaccount:{ns}:{sa}"
            for scope in scopes:
                for verb, group, resource, sub in FORBIDDEN:
                    if cluster.can(user, _groups(ns), verb, resource, scope, group, sub):
                        denials.append(f"{ns}/{sa} may {verb} {group or 'core'}/{resource}"
                                       f"{'/' + sub if sub else ''} in {scope or 'the cluster'}")
        table: dict[str, dict[str, list[str]]] = {}
        for ns, sa in sas:
            rows: dict[str, list[str]] = {}
            for scope in namespaces:
                baseline = {_rule_key(r) for r in cluster.rules((ns, "rbac-probe-no-bindings"), scope)}
                extra = sorted({_rule_key(r) for r in cluster.rules((ns, sa), scope)} - baseline)
                if extra:
                    rows[scope] = extra
            table[f"{ns}/{sa}"] = rows
        yield stack, sas, denials, table


def test_no_service_account_holds_a_dangerous_right(granted) -> None:
    stack, sas, denials, _ = granted
    assert sas, f"{stack}: no ServiceAccount in the preview"
    assert not denials, f"{stack}: the authorizer grants:\n" + "\n".join(denials)


def test_granted_rights_equal_the_reviewed_table(granted) -> None:
    stack, _, _, table = granted
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    if os.environ.get("RAG_UPDATE_RBAC_TABLE") == "1":
        expected[stack] = table
        EXPECTED.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    assert stack in expected, f"{stack}: not in {EXPECTED.name}; review the rights and run with RAG_UPDATE_RBAC_TABLE=1"
    assert table == expected[stack], (
        f"{stack}: the rights the API server grants changed against {EXPECTED.name}; review them, then run "
        f"with RAG_UPDATE_RBAC_TABLE=1 and update docs/policies.md")


def test_the_check_sees_a_granted_right(tmp_path: Path) -> None:
    """The SubjectAccessReviews above can say yes: a Role that lists Secrets is seen as granting it."""
    ns = "rbac-probe"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "leaky", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "leaky", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "leaky", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leaky"},
         "subjects": [{"kind": "ServiceAccount", "name": "leaky", "namespace": ns}]},
    ]
    with control_plane(tmp_path / "apiserver") as cluster:
        _apply_rbac(cluster, objects)
        user = f"system:serviceaccount:{ns}:leaky"
        assert cluster.can(user, _groups(ns), "list", "secrets", ns)
        assert not cluster.can(user, _groups(ns), "list", "secrets", "default")
        assert not cluster.can(user, _groups(ns), "create", "pods", ns)
        rules = {_rule_key(r) for r in cluster.rules((ns, "leaky"), ns)}
        assert "list |  | secrets | " in rules
