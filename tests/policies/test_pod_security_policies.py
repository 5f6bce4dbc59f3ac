"""Restricted pod security, checked wherever a pod template lives (built-in workloads, Rollouts, Tekton)."""

from __future__ import annotations

import copy

import pytest

from policies import catalog
from policies.engine import check_resources

POD_SECURITY = [p.name for p in catalog.POLICIES if "pod-security" in p.tags]


def hardened_sc(k8s, drop=(), **overrides):
    sc = copy.deepcopy(k8s.container()["securityContext"])
    for key in drop:
        sc.pop(key)
    sc.update(overrides)
    return sc


def carriers(k8s):
    """kind -> build(container, pod_extras): an object whose only container is `container`."""

    def builtin(kind):
        return lambda c, pod: k8s.workload(kind, k8s.pod_spec(containers=[c], **pod))

    def task_spec(c, pod):
        # No stepTemplate here: the step alone decides (stepTemplate merging is tested below).
        return {"steps": [c], **({"volumes": pod["volumes"]} if "volumes" in pod else {})}

    def pipeline_run(c, pod, api="tekton.dev/v1"):
        return {"apiVersion": api, "kind": "PipelineRun", "metadata": {"generateName": "ci-"},
                "spec": {"pipelineSpec": {"tasks": [{"name": "build", "taskSpec": task_spec(c, {})}]},
                         "taskRunTemplate": {"serviceAccountName": "pipeline", "podTemplate": dict(pod)}}}

    return {
        **{kind: builtin(kind) for kind in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                                            "Job", "CronJob", "Rollout")},
        "Task": lambda c, pod: k8s.resource("tekton.dev/v1", "Task", "build", spec=task_spec(c, pod)),
        "Pipeline": lambda c, pod: k8s.resource("tekton.dev/v1", "Pipeline", "ci", spec={
            "tasks": [{"name": "lint", "taskRef": {"name": "lint"}}],
            "finally": [{"name": "report", "taskSpec": task_spec(c, pod)}]}),
        "PipelineRun": lambda c, pod: k8s.resource("tekton.dev/v1", "PipelineRun", "ci-1",
                                                   spec=pipeline_run(c, pod)["spec"]),
        "TaskRun": lambda c, pod: k8s.resource("tekton.dev/v1", "TaskRun", "t-1", spec={
            "serviceAccountName": "pipeline", "taskSpec": task_spec(c, {}), "podTemplate": dict(pod)}),
        "TriggerTemplate": lambda c, pod: k8s.resource("triggers.tekton.dev/v1beta1", "TriggerTemplate", "ci", spec={
            "resourcetemplates": [pipeline_run(c, pod)]}),
    }


ALL_KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Rollout",
             "Task", "Pipeline", "PipelineRun", "TaskRun", "TriggerTemplate"]
# Kinds where host namespaces can be set (Tekton: the run's podTemplate).
POD_LEVEL_KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Rollout",
                   "PipelineRun", "TaskRun", "TriggerTemplate"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_hardened_workload_passes_every_pod_security_policy(k8s, kind):
    obj = carriers(k8s)[kind](k8s.container(), {})
    report = check_resources([obj], policies=[catalog.get(n) for n in POD_SECURITY])
    assert report.violations == []


CONTAINER_CASES = [
    ("require-run-as-non-root", {"runAsNonRoot": False}, (), "sets runAsNonRoot: false"),
    ("require-run-as-non-root", {"runAsUser": 0}, (), "runAsUser: 0"),
    ("restrict-privilege-escalation", {}, ("allowPrivilegeEscalation",), "allowPrivilegeEscalation: false"),
    ("restrict-privilege-escalation", {"allowPrivilegeEscalation": True}, (), "allowPrivilegeEscalation: false"),
    ("require-drop-all-capabilities", {"capabilities": {"drop": ["NET_RAW"]}}, (), "drop: [ALL]"),
    ("require-drop-all-capabilities", {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}, (), "SYS_ADMIN"),
    ("require-seccomp-runtime-default", {"seccompProfile": {"type": "Unconfined"}}, (), "'Unconfined'"),
    ("restrict-privileged", {"privileged": True}, (), "privileged"),
]


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("policy, overrides, drop, needle", CONTAINER_CASES)
def test_container_security_context_violations(k8s, kind, policy, overrides, drop, needle):
    bad = k8s.container(securityContext=hardened_sc(k8s, drop, **overrides))
    found = k8s.violations(policy, carriers(k8s)[kind](bad, {}))
    assert len(found) == 1 and needle in found[0].message, found
    assert found[0].resource.kind == kind


def test_net_bind_service_is_the_one_capability_that_may_be_added(k8s):
    ok = k8s.container(securityContext=hardened_sc(k8s, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))
    assert k8s.violations("require-drop-all-capabilities", k8s.workload("Deployment", k8s.pod_spec(containers=[ok]))) == []


def test_pod_level_settings_are_inherited_and_container_overrides_pod(k8s):
    bare = k8s.container(securityContext=hardened_sc(k8s, ("runAsNonRoot", "runAsUser", "seccompProfile")))
    inherits = k8s.workload("Deployment", k8s.pod_spec(containers=[bare]))
    for policy in ("require-run-as-non-root", "require-seccomp-runtime-default"):
        assert k8s.violations(policy, inherits) == [], policy
    # Nothing at either level: both fire.
    no_pod_sc = k8s.workload("Deployment", k8s.pod_spec(containers=[bare], securityContext={}))
    assert len(k8s.violations("require-run-as-non-root", no_pod_sc)) == 1
    assert len(k8s.violations("require-seccomp-runtime-default", no_pod_sc)) == 1
    # The container's own value wins over the pod's.
    root = k8s.container(securityContext=hardened_sc(k8s, runAsNonRoot=False))
    assert len(k8s.violations("require-run-as-non-root", k8s.workload("Deployment", k8s.pod_spec(containers=[root])))) == 1
    # A forbidden pod-level value is a finding even where every container overrides it (as PSA does).
    pod_off = k8s.pod_spec(securityContext={"runAsNonRoot": False, "seccompProfile": {"type": "Unconfined"}})
    [v] = k8s.violations("require-run-as-non-root", k8s.workload("Deployment", pod_off))
    assert v.message.startswith("spec.template.spec.securityContext.runAsNonRoot is false")
    [v] = k8s.violations("require-seccomp-runtime-default", k8s.workload("Deployment", pod_off))
    assert v.message.startswith("spec.template.spec.securityContext.seccompProfile.type is 'Unconfined'")


def test_init_containers_are_checked(k8s):
    init = k8s.container("migrate", securityContext=hardened_sc(k8s, privileged=True))
    [v] = k8s.violations("restrict-privileged", k8s.workload("Job", k8s.pod_spec(initContainers=[init])))
    assert "'migrate'" in v.message and "initContainers[0]" in v.message


def test_tekton_steps_inherit_step_template_and_sidecars_are_checked(k8s):
    spec = k8s.task_spec(steps=[k8s.step("a"), k8s.step("b", securityContext={"privileged": True})])
    task = k8s.resource("tekton.dev/v1", "Task", "build", spec=spec)
    # stepTemplate hardens both steps; step b's own override makes it privileged.
    assert all(k8s.violations(p, task) == [] for p in POD_SECURITY if p != "restrict-privileged")
    [v] = k8s.violations("restrict-privileged", task)
    assert "step 'b'" in v.message and "stepTemplate" in v.message
    spec["sidecars"] = [{"name": "docker", "image": "docker:dind", "securityContext": {"privileged": True}}]
    assert {v.message.split()[1] for v in k8s.violations("restrict-privileged", task)} == {"'b'", "'docker'"}


@pytest.mark.parametrize("kind", POD_LEVEL_KINDS)
@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces_fail(k8s, kind, field):
    [v] = k8s.violations("restrict-host-namespaces", carriers(k8s)[kind](k8s.container(), {field: True}))
    assert f"{field} is true" in v.message


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_host_path_volumes_fail(k8s, kind):
    pod = {"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]}
    [v] = k8s.violations("restrict-host-path", carriers(k8s)[kind](k8s.container(), pod))
    assert "/var/run/docker.sock" in v.message


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_secret_env_vars_fail(k8s, kind):
    c = k8s.container(env=[{"name": "LOG_LEVEL", "value": "INFO"},
                           {"name": "AGENT_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "pw"}}}],
                      envFrom=[{"secretRef": {"name": "api-keys"}}, {"configMapRef": {"name": "settings"}}])
    found = k8s.violations("require-secrets-as-files", carriers(k8s)[kind](c, {}))
    assert len(found) == 2
    assert "AGENT_REDIS_PASSWORD_FILE" in found[0].message and "'api-keys'" in found[1].message


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_secrets_mounted_as_files_pass(k8s, kind):
    c = k8s.container(env=[{"name": "AGENT_REDIS_PASSWORD_FILE", "value": "/var/run/secrets/redis/password"}],
                      volumeMounts=[{"name": "redis", "mountPath": "/var/run/secrets/redis", "readOnly": True}])
    pod = {"volumes": [{"name": "redis", "secret": {"secretName": "redis"}}]}
    assert k8s.violations("require-secrets-as-files", carriers(k8s)[kind](c, pod)) == []
    assert k8s.violations("restrict-host-path", carriers(k8s)[kind](c, pod)) == []


def test_step_template_secret_env_is_inherited_by_steps(k8s):
    spec = k8s.task_spec()
    spec["stepTemplate"]["env"] = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "t"}}}]
    [v] = k8s.violations("require-secrets-as-files", k8s.resource("tekton.dev/v1", "Task", "t", spec=spec))
    assert "'TOKEN'" in v.message


def test_per_task_pod_templates_of_a_pipeline_run_are_checked(k8s):
    run = k8s.resource("tekton.dev/v1", "PipelineRun", "ci-1", spec={
        "pipelineRef": {"name": "ci"}, "taskRunTemplate": {"serviceAccountName": "pipeline"},
        "taskRunSpecs": [{"pipelineTaskName": "lint"},
                         {"pipelineTaskName": "build", "podTemplate": {"hostNetwork": True}}]})
    [v] = k8s.violations("restrict-host-namespaces", run)
    assert v.message.startswith("spec.taskRunSpecs[1].podTemplate.hostNetwork is true")
