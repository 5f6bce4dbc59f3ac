"""Stack policies see every resource: named ServiceAccounts exist, every Role is bound."""

from __future__ import annotations

RBAC = "rbac.authorization.k8s.io/v1"


def test_workload_naming_a_missing_service_account_fails(k8s):
    app = k8s.workload("Deployment", k8s.pod_spec(sa="agent"))
    [v] = k8s.violations("require-service-accounts-exist", app)
    assert "'agent'" in v.message and "'apps'" in v.message and v.resource.name == "app"
    assert k8s.violations("require-service-accounts-exist", app, k8s.service_account("agent")) == []


def test_service_account_must_be_in_the_workloads_namespace(k8s):
    app = k8s.workload("Deployment", k8s.pod_spec(sa="agent"))
    assert len(k8s.violations("require-service-accounts-exist", app, k8s.service_account("agent", "other"))) == 1


def test_tekton_runs_event_listeners_and_trigger_templates_reference_service_accounts(k8s):
    run = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"generateName": "ci-"},
           "spec": {"pipelineRef": {"name": "ci"}, "taskRunTemplate": {"serviceAccountName": "pipeline"}}}
    tt = k8s.resource("triggers.tekton.dev/v1beta1", "TriggerTemplate", "ci", "ci", spec={"resourcetemplates": [run]})
    el = k8s.resource("triggers.tekton.dev/v1beta1", "EventListener", "github", "ci",
                      spec={"serviceAccountName": "triggers"})
    found = k8s.violations("require-service-accounts-exist", tt, el)
    assert sorted(v.resource.kind for v in found) == ["EventListener", "TriggerTemplate"]
    assert any(v.message.startswith("spec.resourcetemplates[0].spec.taskRunTemplate.serviceAccountName names "
                                    "ServiceAccount 'pipeline' in namespace 'ci'") for v in found)
    declared = [k8s.service_account("pipeline", "ci"), k8s.service_account("triggers", "ci")]
    assert k8s.violations("require-service-accounts-exist", tt, el, *declared) == []


def test_default_and_parameterised_names_are_not_missing_service_accounts(k8s):
    run = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"generateName": "ci-"},
           "spec": {"taskRunTemplate": {"serviceAccountName": "$(tt.params.sa)"}}}
    tt = k8s.resource("triggers.tekton.dev/v1beta1", "TriggerTemplate", "ci", spec={"resourcetemplates": [run]})
    app = k8s.workload("Deployment", k8s.pod_spec(sa="default"))
    assert k8s.violations("require-service-accounts-exist", tt, app) == []


def test_unbound_role_fails_and_bound_role_passes(k8s):
    role = k8s.resource(RBAC, "Role", "reader", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    [v] = k8s.violations("restrict-unbound-roles", role)
    assert "not referenced by any RoleBinding" in v.message
    elsewhere = k8s.resource(RBAC, "RoleBinding", "reader", "other", roleRef={"kind": "Role", "name": "reader"})
    assert len(k8s.violations("restrict-unbound-roles", role, elsewhere)) == 1  # Roles bind in their namespace
    binding = k8s.resource(RBAC, "RoleBinding", "reader", roleRef={"kind": "Role", "name": "reader"},
                           subjects=[{"kind": "ServiceAccount", "name": "app", "namespace": "apps"}])
    assert k8s.violations("restrict-unbound-roles", role, binding) == []


def test_cluster_roles_are_bound_by_either_binding_kind_or_aggregated(k8s):
    cr = k8s.resource(RBAC, "ClusterRole", "viewer", None, rules=[])
    assert len(k8s.violations("restrict-unbound-roles", cr)) == 1
    rb = k8s.resource(RBAC, "RoleBinding", "viewer", roleRef={"kind": "ClusterRole", "name": "viewer"})
    assert k8s.violations("restrict-unbound-roles", cr, rb) == []
    aggregated = k8s.resource(RBAC, "ClusterRole", "rollouts-view", None, rules=[],
                              metadata={"name": "rollouts-view",
                                        "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}})
    assert k8s.violations("restrict-unbound-roles", aggregated) == []


def test_stack_violation_can_be_exempted(k8s):
    from policies.pack_config import parse_pack_config

    cr = k8s.resource(RBAC, "ClusterRole", "tekton-triggers-eventlistener-roles", None, rules=[])
    config = parse_pack_config({"restrict-unbound-roles": {"exemptions": [
        {"kind": "ClusterRole", "name": "tekton-triggers-eventlistener-roles", "namespace": None,
         "reason": "bound by the Triggers release manifest, outside this stack"}]}})
    from policies.engine import check_resources

    report = check_resources([cr], config)
    assert report.violations == [] and len(report.exempted) == 1
