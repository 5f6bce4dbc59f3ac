"""RBAC least privilege: each policy with a failing and a passing resource, every rule read."""

from __future__ import annotations

import pytest

RBAC = "rbac.authorization.k8s.io/v1"
READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def role(k8s, *rules, kind="Role", name="reader"):
    return k8s.resource(RBAC, kind, name, None if kind == "ClusterRole" else "apps", rules=list(rules))


@pytest.mark.parametrize("field", ["verbs", "resources", "apiGroups"])
def test_wildcard_in_any_rule_is_reported(k8s, field):
    bad = {**READ_PODS, field: ["*"]}
    # The wildcard sits in the third rule: a checker that reads rules[0] only would miss it.
    found = k8s.violations("restrict-wildcard-rbac", role(k8s, READ_PODS, READ_PODS, bad, kind="ClusterRole"))
    assert len(found) == 1
    assert found[0].message.startswith(f"rules[2].{field} contains '*'")
    assert found[0].enforcement == "mandatory" and found[0].severity == "critical"
    assert found[0].resource.kind == "ClusterRole" and found[0].resource.name == "reader"


def test_explicit_rules_pass_wildcard_policy(k8s):
    assert k8s.violations("restrict-wildcard-rbac", role(k8s, READ_PODS, READ_PODS)) == []


@pytest.mark.parametrize("binding", ["RoleBinding", "ClusterRoleBinding"])
def test_cluster_admin_binding_fails(k8s, binding):
    b = k8s.resource(RBAC, binding, "admins", roleRef={"apiGroup": "rbac.authorization.k8s.io",
                                                        "kind": "ClusterRole", "name": "cluster-admin"},
                     subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "apps"}])
    [v] = k8s.violations("restrict-binding-cluster-admin", b)
    assert "cluster-admin" in v.message and v.resource.kind == binding


def test_binding_of_a_purpose_built_role_passes(k8s):
    b = k8s.resource(RBAC, "RoleBinding", "readers", roleRef={"kind": "Role", "name": "reader"},
                     subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "apps"}])
    assert k8s.violations("restrict-binding-cluster-admin", b) == []


@pytest.mark.parametrize("verb", ["escalate", "bind", "impersonate"])
def test_escalate_bind_impersonate_fail(k8s, verb):
    bad = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get", verb]}
    [v] = k8s.violations("restrict-escalate-bind-impersonate", role(k8s, READ_PODS, bad))
    assert v.message.startswith(f"rules[1].verbs grants {verb}")


def test_rbac_reader_without_escalation_passes(k8s):
    ok = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get", "list"]}
    assert k8s.violations("restrict-escalate-bind-impersonate", role(k8s, READ_PODS, ok)) == []


@pytest.mark.parametrize("verbs", [["get"], ["list"], ["watch"], ["*"]])
def test_cluster_wide_secret_read_fails(k8s, verbs):
    rule = {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": verbs}
    [v] = k8s.violations("restrict-cluster-wide-secret-read", role(k8s, READ_PODS, rule, kind="ClusterRole"))
    assert "secrets" in v.message and "Role" in v.message and v.message.startswith("rules[1]")


def test_secret_read_in_a_namespaced_role_or_secret_write_only_passes(k8s):
    read = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["redis-password"]}
    write = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
    assert k8s.violations("restrict-cluster-wide-secret-read", role(k8s, read, kind="Role")) == []
    assert k8s.violations("restrict-cluster-wide-secret-read", role(k8s, write, kind="ClusterRole")) == []


@pytest.mark.parametrize("resource", ["pods/exec", "pods/attach", "nodes/proxy"])
def test_exec_attach_proxy_fail(k8s, resource):
    rule = {"apiGroups": [""], "resources": [resource], "verbs": ["create"]}
    [v] = k8s.violations("restrict-exec-attach-proxy", role(k8s, READ_PODS, rule))
    assert resource in v.message and "create" in v.message


def test_pod_log_access_passes_exec_policy(k8s):
    rule = {"apiGroups": [""], "resources": ["pods/log", "pods"], "verbs": ["get", "create"]}
    assert k8s.violations("restrict-exec-attach-proxy", role(k8s, rule)) == []


@pytest.mark.parametrize("rule, needle", [
    ({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
      "verbs": ["get", "update"]}, "validatingwebhookconfigurations"),
    ({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
      "verbs": ["patch"]}, "mutatingwebhookconfigurations"),
    ({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
      "verbs": ["update"]}, "certificatesigningrequests/approval"),
    ({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"]}, "signers"),
])
def test_admission_and_csr_rights_fail(k8s, rule, needle):
    [v] = k8s.violations("restrict-admission-and-csr-rights", role(k8s, rule, kind="ClusterRole"))
    assert needle in v.message


def test_reading_webhook_configurations_passes(k8s):
    rule = {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
            "verbs": ["get", "list", "watch"]}
    assert k8s.violations("restrict-admission-and-csr-rights", role(k8s, rule, kind="ClusterRole")) == []


def test_cluster_role_binding_is_advisory_and_role_binding_passes(k8s):
    subjects = [{"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}]
    crb = k8s.resource(RBAC, "ClusterRoleBinding", "ci", None, roleRef={"kind": "ClusterRole", "name": "ci"},
                       subjects=subjects)
    rb = k8s.resource(RBAC, "RoleBinding", "ci", "ci", roleRef={"kind": "ClusterRole", "name": "ci"},
                      subjects=subjects)
    [v] = k8s.violations("prefer-namespaced-bindings", crb)
    assert v.enforcement == "advisory" and "RoleBinding there" in v.message and "'ci'" in v.message
    assert k8s.violations("prefer-namespaced-bindings", rb) == []
