"""Pack config: enforcement levels as the CLI applies them, exemptions with (and without) reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.engine import PolicyConfigError, check_resources, load_pack_config

RBAC = "rbac.authorization.k8s.io/v1"
SECRET_READ = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
ROOT = Path(__file__).resolve().parents[2]


def secret_reader(k8s, name="tekton-triggers-eventlistener-clusterroles"):
    return k8s.resource(RBAC, "ClusterRole", name, None, rules=[SECRET_READ])


def write(tmp_path, data) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    return path


def test_reasoned_exemption_moves_the_violation_to_exempted(k8s, tmp_path):
    cfg = load_pack_config(write(tmp_path, {"restrict-cluster-wide-secret-read": {"exemptions": [
        {"kind": "ClusterRole", "name": "tekton-triggers-eventlistener-clusterroles", "namespace": None,
         "reason": "EventListeners read webhook secrets in any namespace they serve"}]}}))
    report = check_resources([secret_reader(k8s)], cfg)
    assert [v.policy for v in report.violations if v.policy == "restrict-cluster-wide-secret-read"] == []
    [(violation, exemption)] = [(v, e) for v, e in report.exempted if v.policy == "restrict-cluster-wide-secret-read"]
    assert exemption.reason.startswith("EventListeners")
    assert report.to_dict()["exempted"][0]["reason"] == exemption.reason


def test_exemption_matches_the_pulumi_resource_name_too(k8s, tmp_path):
    cfg = load_pack_config(write(tmp_path, {"restrict-cluster-wide-secret-read": {"exemptions": [
        {"kind": "ClusterRole", "name": "pulumi-reader", "reason": "test"}]}}))
    report = check_resources([secret_reader(k8s, "reader")], cfg)  # builder names the Pulumi resource pulumi-<name>
    assert not any(v.policy == "restrict-cluster-wide-secret-read" for v in report.violations)


def test_exemption_is_specific_to_policy_kind_name_and_namespace(k8s, tmp_path):
    cfg = load_pack_config(write(tmp_path, {
        "restrict-wildcard-rbac": {"exemptions": [
            {"kind": "ClusterRole", "name": "tekton-triggers-eventlistener-clusterroles", "reason": "other policy"}]},
        "restrict-cluster-wide-secret-read": {"exemptions": [
            {"kind": "Role", "name": "tekton-triggers-eventlistener-clusterroles", "reason": "wrong kind"}]},
        "require-secrets-as-files": {"exemptions": [
            {"kind": "Deployment", "name": "app", "namespace": "other", "reason": "wrong namespace"}]},
    }))
    c = k8s.container(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
    report = check_resources([secret_reader(k8s), k8s.workload("Deployment", k8s.pod_spec(containers=[c]))], cfg)
    assert {"restrict-cluster-wide-secret-read", "require-secrets-as-files"} <= {v.policy for v in report.violations}
    assert report.exempted == []
    assert len(report.summary()["unused_exemptions"]) == 3


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_exemption_without_reason_is_not_applied_and_is_a_mandatory_violation(k8s, tmp_path, reason):
    entry = {"kind": "ClusterRole", "name": "tekton-triggers-eventlistener-clusterroles"}
    if reason is not None:
        entry["reason"] = reason
    path = write(tmp_path, {"restrict-cluster-wide-secret-read": {"exemptions": [entry]}})
    report = check_resources([secret_reader(k8s)], load_pack_config(path))
    policies = [v.policy for v in report.violations]
    assert "restrict-cluster-wide-secret-read" in policies
    [meta] = [v for v in report.violations if v.policy == "require-exemption-reason"]
    assert meta.enforcement == "mandatory" and meta.resource.file == str(path)
    assert "add \"reason\"" in meta.message and report.has_mandatory


def test_enforcement_levels_follow_the_cli(k8s, tmp_path):
    crb = k8s.resource(RBAC, "ClusterRoleBinding", "ci", None, roleRef={"kind": "ClusterRole", "name": "view"})
    default = check_resources([crb]).violations
    assert [v.enforcement for v in default if v.policy == "prefer-namespaced-bindings"] == ["advisory"]
    # "all" applies first, per-policy levels win (the CLI's order).
    escalated = check_resources([crb], load_pack_config(write(tmp_path, {"all": "mandatory"}))).violations
    assert [v.enforcement for v in escalated if v.policy == "prefer-namespaced-bindings"] == ["mandatory"]
    cfg = load_pack_config(write(tmp_path, {"all": "advisory", "prefer-namespaced-bindings": {"enforcementLevel": "disabled"},
                                            "restrict-cluster-wide-secret-read": "remediate"}))
    report = check_resources([crb, secret_reader(k8s)], cfg)
    assert not any(v.policy == "prefer-namespaced-bindings" for v in report.violations)
    levels = {v.policy: v.enforcement for v in report.violations}
    assert levels["restrict-cluster-wide-secret-read"] == "mandatory" and levels["restrict-unbound-roles"] == "advisory"


@pytest.mark.parametrize("data, needle", [
    ([], "top level must be a JSON object"),
    ({"restrict-wildcard-rbc": "advisory"}, "'restrict-wildcard-rbc' is not a policy of this pack"),
    ({"restrict-wildcard-rbac": "warn"}, "'warn' is not an enforcement level"),
    ({"restrict-wildcard-rbac": {"exemption": []}}, "unknown key(s) exemption"),
    ({"restrict-wildcard-rbac": {"exemptions": {"kind": "Role"}}}, "must be an object with kind"),
    ({"restrict-wildcard-rbac": {"exemptions": [{"name": "x", "reason": "r"}]}}, "exemptions[0].kind must be"),
    ({"restrict-wildcard-rbac": {"exemptions": [{"kind": "Role", "name": "x", "why": "r"}]}}, "unknown key(s) why"),
])
def test_bad_config_names_the_file_and_the_field(tmp_path, data, needle):
    path = write(tmp_path, data)
    with pytest.raises(PolicyConfigError) as err:
        load_pack_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{\n  "all": "mandatory",\n  oops\n}')
    with pytest.raises(PolicyConfigError, match=r"policy\.json:3: invalid JSON"):
        load_pack_config(path)


def test_none_or_missing_config_means_defaults(tmp_path):
    assert load_pack_config(None).levels == {}
    assert load_pack_config(tmp_path / "absent.json").exemptions == {}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "local"])
def test_project_stack_configs_load_and_every_exemption_has_a_reason(stack):
    path = ROOT / "stacks" / "policy" / f"{stack}.json"
    cfg = load_pack_config(path)
    assert cfg.source == str(path)  # the file exists (a missing file would silently mean defaults)
    assert cfg.unreasoned() == []
    assert all(len(e.reason) >= 20 for e in cfg.all_exemptions()), "reasons explain, not just label"


def test_third_party_exemptions_apply_but_are_not_called_stale_when_unseen(k8s, tmp_path):
    cfg = load_pack_config(write(tmp_path, {"restrict-cluster-wide-secret-read": {"exemptions": [
        {"kind": "ClusterRole", "name": "tekton-triggers-eventlistener-clusterroles", "thirdParty": True,
         "reason": "vendor role, rendered only by the real engine"},
        {"kind": "ClusterRole", "name": "vendor-role-not-rendered-here", "thirdParty": True, "reason": "vendor"},
        {"kind": "ClusterRole", "name": "our-own-deleted-role", "reason": "stale"}]}}))
    report = check_resources([secret_reader(k8s)], cfg)
    assert [e.name for _, e in report.exempted] == ["tekton-triggers-eventlistener-clusterroles"]
    summary = report.summary()
    # An ordinary exemption that matches nothing is still reported as stale; a vendor one is counted.
    assert [e["name"] for e in summary["unused_exemptions"]] == ["our-own-deleted-role"]
    assert summary["third_party_exemptions_not_seen"] == 1


def test_third_party_must_be_a_boolean(tmp_path):
    with pytest.raises(PolicyConfigError, match=r"exemptions\[0\]\.thirdParty must be true or false"):
        load_pack_config(write(tmp_path, {"restrict-host-path": {"exemptions": [
            {"kind": "DaemonSet", "name": "x", "reason": "r", "thirdParty": "yes"}]}}))
