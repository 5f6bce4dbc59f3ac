"""Service accounts: explicit, never `default`, tokens only on request, no legacy token Secrets, Tekton runs."""

from __future__ import annotations

import pytest

WORKLOADS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Rollout"]


@pytest.mark.parametrize("kind", WORKLOADS)
def test_workload_without_service_account_fails(k8s, kind):
    [v] = k8s.violations("require-explicit-service-account", k8s.workload(kind, k8s.pod_spec(sa=None)))
    assert "serviceAccountName is not set" in v.message and v.resource.kind == kind


@pytest.mark.parametrize("kind", WORKLOADS)
def test_workload_with_service_account_passes(k8s, kind):
    assert k8s.violations("require-explicit-service-account", k8s.workload(kind)) == []


def test_cronjob_path_points_at_the_job_template(k8s):
    [v] = k8s.violations("require-explicit-service-account", k8s.workload("CronJob", k8s.pod_spec(sa=None)))
    assert v.message.startswith("spec.jobTemplate.spec.template.spec.serviceAccountName")


def test_event_listener_needs_its_own_service_account(k8s):
    el = k8s.resource("triggers.tekton.dev/v1beta1", "EventListener", "github", spec={"triggers": []})
    [v] = k8s.violations("require-explicit-service-account", el)
    assert "EventListener" in v.message
    el.props["spec"]["serviceAccountName"] = "tekton-triggers"
    assert k8s.violations("require-explicit-service-account", el) == []


def test_default_service_account_in_a_workload_fails(k8s):
    [v] = k8s.violations("restrict-default-service-account", k8s.workload("Deployment", k8s.pod_spec(sa="default")))
    assert "'default'" in v.message
    assert k8s.violations("restrict-default-service-account", k8s.workload("Deployment")) == []


def test_default_service_account_as_binding_subject_fails(k8s):
    binding = k8s.resource("rbac.authorization.k8s.io/v1", "RoleBinding", "r", roleRef={"kind": "Role", "name": "r"},
                           subjects=[{"kind": "ServiceAccount", "name": "app", "namespace": "apps"},
                                     {"kind": "ServiceAccount", "name": "default", "namespace": "apps"}])
    [v] = k8s.violations("restrict-default-service-account", binding)
    assert v.message.startswith("subjects[1]")
    binding.props["subjects"].pop()
    assert k8s.violations("restrict-default-service-account", binding) == []


def test_default_service_account_object_must_not_mount_tokens(k8s):
    sa = k8s.resource("v1", "ServiceAccount", "default")
    [v] = k8s.violations("restrict-default-service-account", sa)
    assert "automountServiceAccountToken: false" in v.message
    sa.props["automountServiceAccountToken"] = False
    assert k8s.violations("restrict-default-service-account", sa) == []


@pytest.mark.parametrize("kind", WORKLOADS)
def test_token_automount_must_be_declared(k8s, kind):
    spec = k8s.pod_spec()
    del spec["automountServiceAccountToken"]
    [v] = k8s.violations("restrict-token-automount", k8s.workload(kind, spec))
    assert "automountServiceAccountToken is not set" in v.message


@pytest.mark.parametrize("value", [False, True])
def test_declared_token_automount_passes(k8s, value):
    # true is the declaration that the pod calls the Kubernetes API.
    assert k8s.violations("restrict-token-automount",
                          k8s.workload("Deployment", k8s.pod_spec(automountServiceAccountToken=value))) == []


def test_legacy_service_account_token_secret_fails(k8s):
    legacy = k8s.resource("v1", "Secret", "ci-token", type="kubernetes.io/service-account-token",
                          metadata={"name": "ci-token", "annotations": {"kubernetes.io/service-account.name": "ci"}})
    [v] = k8s.violations("restrict-legacy-token-secrets", legacy)
    assert "projected" in v.message
    opaque = k8s.resource("v1", "Secret", "redis", type="Opaque", stringData={"password": "[secret]"})
    assert k8s.violations("restrict-legacy-token-secrets", opaque) == []


def pipeline_run(k8s, sa=None, api="tekton.dev/v1"):
    spec = {"pipelineRef": {"name": "release"}}
    if sa is not None:
        spec.update({"taskRunTemplate": {"serviceAccountName": sa}} if api == "tekton.dev/v1"
                    else {"serviceAccountName": sa})
    return {"apiVersion": api, "kind": "PipelineRun", "metadata": {"generateName": "release-"}, "spec": spec}


@pytest.mark.parametrize("sa, expected", [(None, "is not set"), ("default", "is 'default'")])
def test_pipeline_run_needs_a_dedicated_service_account(k8s, sa, expected):
    run = k8s.resource("tekton.dev/v1", "PipelineRun", "release-1", spec=pipeline_run(k8s, sa)["spec"])
    [v] = k8s.violations("require-tekton-run-service-account", run)
    assert v.message.startswith("spec.taskRunTemplate.serviceAccountName") and expected in v.message


def test_pipeline_run_with_service_account_passes_v1_and_v1beta1(k8s):
    v1 = k8s.resource("tekton.dev/v1", "PipelineRun", "a", spec=pipeline_run(k8s, "pipeline")["spec"])
    beta = k8s.resource("tekton.dev/v1beta1", "PipelineRun", "b",
                        spec=pipeline_run(k8s, "pipeline", "tekton.dev/v1beta1")["spec"])
    assert k8s.violations("require-tekton-run-service-account", v1, beta) == []


def test_task_run_needs_a_service_account(k8s):
    run = k8s.resource("tekton.dev/v1", "TaskRun", "t", spec={"taskRef": {"name": "lint"}})
    [v] = k8s.violations("require-tekton-run-service-account", run)
    assert v.message.startswith("spec.serviceAccountName")
    run.props["spec"]["serviceAccountName"] = "pipeline"
    assert k8s.violations("require-tekton-run-service-account", run) == []


def test_pipeline_runs_inside_trigger_templates_are_checked(k8s):
    tt = k8s.resource("triggers.tekton.dev/v1beta1", "TriggerTemplate", "release", spec={
        "params": [{"name": "revision"}],
        "resourcetemplates": [pipeline_run(k8s, "pipeline"), pipeline_run(k8s, None)],
    })
    [v] = k8s.violations("require-tekton-run-service-account", tt)
    assert v.message.startswith("spec.resourcetemplates[1].spec.taskRunTemplate.serviceAccountName")
    assert v.resource.kind == "TriggerTemplate"
    tt.props["spec"]["resourcetemplates"][1] = pipeline_run(k8s, "$(tt.params.serviceAccount)")
    assert k8s.violations("require-tekton-run-service-account", tt) == []


def test_non_kubernetes_resources_are_ignored(k8s):
    from policies.engine import PolicyResource, check_resources

    others = [PolicyResource("rag-platform:infra:Redis", "redis", {"spec": {"template": {}}}),
              PolicyResource("kubernetes:helm.sh/v4:Chart", "milvus", {"values": {"serviceAccount": "default"}}),
              PolicyResource("random:index/randomPassword:RandomPassword", "pw", {"length": 32}),
              PolicyResource("pulumi:providers:kubernetes", "k8s", {"context": "dev"})]
    report = check_resources(others)
    assert report.violations == [] and report.resources_checked == 4


def test_per_task_service_account_overrides_are_checked(k8s):
    spec = {"pipelineRef": {"name": "release"}, "taskRunTemplate": {"serviceAccountName": "pipeline-runner"},
            "taskRunSpecs": [{"pipelineTaskName": "lint"},
                             {"pipelineTaskName": "deploy", "serviceAccountName": "default"}]}
    run = k8s.resource("tekton.dev/v1", "PipelineRun", "release-1", "ci", spec=spec)
    [v] = k8s.violations("require-tekton-run-service-account", run)
    assert v.message.startswith("spec.taskRunSpecs[1].serviceAccountName is 'default'")
    spec["taskRunSpecs"][1]["serviceAccountName"] = "pipeline-deployer"
    assert k8s.violations("require-tekton-run-service-account", run) == []
    # ... and the per-task account must exist like the run's.
    [missing] = k8s.violations("require-service-accounts-exist", run, k8s.service_account("pipeline-runner", "ci"))
    assert "'pipeline-deployer'" in missing.message
