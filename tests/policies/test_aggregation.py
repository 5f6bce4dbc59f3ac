"""Label-selector semantics behind restrict-rbac-aggregation, and resolution across objects."""

from __future__ import annotations

import pytest

from policies.aggregation import selector_matches

RBAC = "rbac.authorization.k8s.io/v1"
BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}


@pytest.mark.parametrize("selector, labels, expected", [
    ({}, {}, True),                                                          # empty selects everything
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),  # absent key passes NotIn
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, BOOTSTRAP, True),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"}, False),  # invalid: nothing
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
])
def test_selector_semantics(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def _aggregator(k8s, selector, name="agg"):
    return k8s.resource(RBAC, "ClusterRole", name, None, aggregationRule={"clusterRoleSelectors": [selector]}, rules=[])


def test_a_selected_role_with_escalation_rights_is_reported_on_the_aggregator(k8s):
    label = {"tools.example.com/ci": "true"}
    escalating = k8s.resource(RBAC, "ClusterRole", "tools-create-pods", None, rules=[
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    escalating.props["metadata"]["labels"] = label
    agg = _aggregator(k8s, {"matchLabels": label})
    [v] = k8s.violations("restrict-rbac-aggregation", agg, escalating)
    assert v.resource.name == "agg" and "'tools-create-pods'" in v.message
    # Not selected (another label value): nothing to report.
    other = _aggregator(k8s, {"matchLabels": {"tools.example.com/ci": "false"}})
    assert k8s.violations("restrict-rbac-aggregation", other, escalating) == []


def test_an_aggregated_role_counts_as_used(k8s):
    label = {"tools.example.com/ci": "true"}
    reader = k8s.resource(RBAC, "ClusterRole", "tools-read", None, rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    reader.props["metadata"]["labels"] = label
    agg = _aggregator(k8s, {"matchLabels": label})
    unbound = k8s.violations("restrict-unbound-roles", agg, reader)
    assert [v.resource.name for v in unbound] == ["agg"]  # the aggregator itself is what must be bound


def test_trigger_template_parameter_default_names_the_service_account(k8s):
    template = k8s.resource("triggers.tekton.dev/v1beta1", "TriggerTemplate", "tt", "ci", spec={
        "params": [{"name": "runner", "default": "ci-runner"}],
        "resourcetemplates": [{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                               "spec": {"taskRunTemplate": {"serviceAccountName": "$(tt.params.runner)"}}}]})
    [v] = k8s.violations("require-service-accounts-exist", template)
    assert "'ci-runner'" in v.message
    assert k8s.violations("require-service-accounts-exist", template, k8s.service_account("ci-runner", "ci")) == []
    assert k8s.violations("require-tekton-run-service-account", template) == []
