"""RBAC least privilege: each policy with a failing and a passing resource, every rule read."""

from __future__ import annotations

import pytest

from policies import catalog
from policies.engine import check_resources

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
@pytest.mark.parametrize("role_name", ["cluster-admin", "admin", "edit", "system:controller:deployment-controller"])
def test_binding_a_powerful_built_in_role_fails(k8s, binding, role_name):
    b = k8s.resource(RBAC, binding, "admins", roleRef={"apiGroup": "rbac.authorization.k8s.io",
                                                        "kind": "ClusterRole", "name": role_name},
                     subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "apps"}])
    [v] = k8s.violations("restrict-binding-powerful-roles", b)
    assert role_name in v.message and v.resource.kind == binding


@pytest.mark.parametrize("ref", [{"kind": "Role", "name": "admin"}, {"kind": "ClusterRole", "name": "view"},
                                 {"kind": "ClusterRole", "name": "system:auth-delegator"}])
def test_binding_a_purpose_built_or_read_only_role_passes(k8s, ref):
    b = k8s.resource(RBAC, "RoleBinding", "readers", roleRef=ref,
                     subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "apps"}])
    assert k8s.violations("restrict-binding-powerful-roles", b) == []


@pytest.mark.parametrize("subject", [
    {"kind": "Group", "name": "system:authenticated"}, {"kind": "Group", "name": "system:unauthenticated"},
    {"kind": "Group", "name": "system:masters"}, {"kind": "Group", "name": "system:serviceaccounts:apps"},
    {"kind": "User", "name": "system:anonymous"}, {"kind": "User", "name": "system:serviceaccount:apps:default"},
])
def test_binding_built_in_subjects_fails(k8s, subject):
    b = k8s.resource(RBAC, "RoleBinding", "r", roleRef={"kind": "Role", "name": "reader"},
                     subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "apps"}, subject])
    [v] = k8s.violations("restrict-binding-system-subjects", b)
    assert v.message.startswith("subjects[1]") and subject["name"] in v.message


def test_a_service_account_spelled_as_user_that_is_not_default_passes(k8s):
    b = k8s.resource(RBAC, "RoleBinding", "r", roleRef={"kind": "Role", "name": "reader"},
                     subjects=[{"kind": "User", "name": "system:serviceaccount:apps:ci"}])
    assert k8s.violations("restrict-binding-system-subjects", b) == []


@pytest.mark.parametrize("verb", ["escalate", "bind", "impersonate"])
def test_escalate_bind_impersonate_fail(k8s, verb):
    bad = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get", verb]}
    [v] = k8s.violations("restrict-escalate-bind-impersonate", role(k8s, READ_PODS, bad))
    assert v.message.startswith(f"rules[1].verbs grants {verb}")


def test_rbac_reader_without_escalation_passes(k8s):
    ok = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get", "list"]}
    assert k8s.violations("restrict-escalate-bind-impersonate", role(k8s, READ_PODS, ok)) == []


@pytest.mark.parametrize("verbs", [["get"], ["list"], ["watch"], ["GET"]])
def test_cluster_wide_secret_read_fails(k8s, verbs):
    rule = {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": verbs}
    [v] = k8s.violations("restrict-cluster-wide-secret-read", role(k8s, READ_PODS, rule, kind="ClusterRole"))
    assert "secrets" in v.message and "Role" in v.message and v.message.startswith("rules[1]")


def test_a_wildcard_is_reported_once_by_the_wildcard_policy(k8s):
    """One defect, one finding: `*` on secrets is restrict-wildcard-rbac's, not also the secret policy's."""
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}
    r = role(k8s, rule, kind="ClusterRole")
    report = check_resources([r], policies=[p for p in catalog.POLICIES if not p.is_stack_policy])
    assert [v.policy for v in report.violations] == ["restrict-wildcard-rbac"]


def test_namespaced_secret_read_fails_unless_limited_by_resource_names(k8s):
    read = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
    [v] = k8s.violations("restrict-namespaced-secret-read", role(k8s, READ_PODS, read))
    assert v.message.startswith("rules[1] grants get, list on every secret")
    limited = {**read, "resourceNames": ["redis-password"]}
    assert k8s.violations("restrict-namespaced-secret-read", role(k8s, limited)) == []
    write = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
    assert k8s.violations("restrict-cluster-wide-secret-read", role(k8s, write, kind="ClusterRole")) == []


@pytest.mark.parametrize("resource", ["pods/exec", "pods/attach", "pods/portforward", "nodes/proxy",
                                      "services/proxy", "*/exec", "*/proxy"])
def test_exec_attach_portforward_proxy_fail(k8s, resource):
    rule = {"apiGroups": [""], "resources": [resource], "verbs": ["create"]}
    found = k8s.violations("restrict-exec-attach-portforward-proxy", role(k8s, READ_PODS, rule))
    assert found and all("create" in v.message for v in found)
    assert any(resource.split("/")[1] in v.message for v in found)


def test_pod_log_access_passes_exec_policy(k8s):
    rule = {"apiGroups": [""], "resources": ["pods/log", "pods", "pods/*"], "verbs": ["get"]}
    assert k8s.violations("restrict-exec-attach-portforward-proxy", role(k8s, rule)) == []


@pytest.mark.parametrize("rule", [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
    {"apiGroups": ["extensions"], "resources": ["daemonsets"], "verbs": ["update"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["create"]},
    {"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "verbs": ["patch"], "resourceNames": ["agent"]},
    {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns"], "verbs": ["create"]},
])
def test_pod_creation_fails(k8s, rule):
    [v] = k8s.violations("restrict-pod-creation", role(k8s, READ_PODS, rule))
    assert v.message.startswith("rules[1] grants")


def test_scaling_and_reading_workloads_passes_pod_creation(k8s):
    rule = {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "list"]}
    scale = {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]}
    assert k8s.violations("restrict-pod-creation", role(k8s, rule, scale)) == []


@pytest.mark.parametrize("rule, needle", [
    ({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
      "verbs": ["get", "update"]}, "validatingwebhookconfigurations"),
    ({"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
      "verbs": ["patch"]}, "mutatingwebhookconfigurations"),
    ({"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["create"]},
     "customresourcedefinitions"),
    ({"apiGroups": ["apiregistration.k8s.io"], "resources": ["apiservices"], "verbs": ["update"]}, "apiservices"),
])
def test_admission_and_api_extension_writes_fail(k8s, rule, needle):
    [v] = k8s.violations("restrict-admission-and-api-extension-writes", role(k8s, rule, kind="ClusterRole"))
    assert needle in v.message


@pytest.mark.parametrize("rule, needle", [
    ({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
      "verbs": ["update"]}, "certificatesigningrequests/approval"),
    ({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"]}, "signers"),
])
def test_csr_approval_fails(k8s, rule, needle):
    [v] = k8s.violations("restrict-csr-approval-and-signing", role(k8s, rule, kind="ClusterRole"))
    assert needle in v.message


def test_reading_webhook_configurations_and_crds_passes(k8s):
    rule = {"apiGroups": ["admissionregistration.k8s.io", "apiextensions.k8s.io"],
            "resources": ["validatingwebhookconfigurations", "customresourcedefinitions"],
            "verbs": ["get", "list", "watch"]}
    assert k8s.violations("restrict-admission-and-api-extension-writes", role(k8s, rule, kind="ClusterRole")) == []


def test_aws_auth_write_is_judged_by_scope_and_resource_names(k8s):
    patch = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}
    kube_system = k8s.resource(RBAC, "Role", "cm", "kube-system", rules=[patch])
    assert len(k8s.violations("restrict-aws-auth-configmap-write", kube_system)) == 1
    named = k8s.resource(RBAC, "Role", "cm", "kube-system", rules=[{**patch, "resourceNames": ["aws-auth"]}])
    assert len(k8s.violations("restrict-aws-auth-configmap-write", named)) == 1
    own = k8s.resource(RBAC, "Role", "cm", "kube-system", rules=[{**patch, "resourceNames": ["my-lock"]}])
    assert k8s.violations("restrict-aws-auth-configmap-write", own) == []
    assert k8s.violations("restrict-aws-auth-configmap-write", role(k8s, patch)) == []  # another namespace


def test_cluster_role_binding_is_advisory_and_role_binding_passes(k8s):
    subjects = [{"kind": "ServiceAccount", "name": "ci", "namespace": "ci"}]
    crb = k8s.resource(RBAC, "ClusterRoleBinding", "ci", None, roleRef={"kind": "ClusterRole", "name": "ci"},
                       subjects=subjects)
    rb = k8s.resource(RBAC, "RoleBinding", "ci", "ci", roleRef={"kind": "ClusterRole", "name": "ci"},
                      subjects=subjects)
    [v] = k8s.violations("prefer-namespaced-bindings", crb)
    assert v.enforcement == "advisory" and "RoleBinding there" in v.message and "'ci'" in v.message
    assert k8s.violations("prefer-namespaced-bindings", rb) == []
