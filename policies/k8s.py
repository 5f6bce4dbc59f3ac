"""Kubernetes shapes the policies read: type tokens, RBAC rules and every place a pod template lives.

Props may be plain dicts/lists (checker, preview) or pulumi_policy's read-only proxies (the real
CLI), so everything here tests for `Mapping`/`Sequence`, never `dict`/`list`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_EMPTY: Mapping[str, Any] = {}


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def as_list(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    return ()


def dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = as_map(value).get(key)
    return value


def strings(value: Any) -> list[str]:
    return [v for v in as_list(value) if isinstance(v, str)]


# --- type tokens -------------------------------------------------------------------------------

def type_token(api_version: str, kind: str) -> str:
    """`apps/v1` + `Deployment` -> `kubernetes:apps/v1:Deployment`; the core group is spelled `core`."""
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{kind}"


def parse_type(token: str) -> tuple[str, str, str] | None:
    """`kubernetes:rbac.authorization.k8s.io/v1:Role` -> (group, version, kind); None for non-Kubernetes."""
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1]:
        return None
    group, _, version = parts[1].rpartition("/")
    return group, version, parts[2]


def group_kind(token: str) -> tuple[str, str] | None:
    parsed = parse_type(token)
    return (parsed[0], parsed[2]) if parsed else None


RBAC = "rbac.authorization.k8s.io"
TEKTON = "tekton.dev"
TRIGGERS = "triggers.tekton.dev"


def is_kind(token: str, group: str, *kinds: str) -> bool:
    gk = group_kind(token)
    return gk is not None and gk[0] == group and gk[1] in kinds


# --- service accounts ----------------------------------------------------------------------------

def pod_service_account(pod: Mapping[str, Any]) -> str | None:
    """The ServiceAccount a pod spec names, if any (serviceAccount is the deprecated alias)."""
    sa = pod.get("serviceAccountName") or pod.get("serviceAccount")
    return sa if isinstance(sa, str) and sa else None


def event_listener_service_account(token: str, props: Mapping[str, Any]) -> str | None:
    """The ServiceAccount of a Tekton Triggers EventListener, if this is one and it names one."""
    if not is_kind(token, TRIGGERS, "EventListener"):
        return None
    sa = dig(props, "spec", "serviceAccountName")
    return sa if isinstance(sa, str) and sa else None


# --- RBAC ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    index: int
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"rules[{self.index}]"

    def grants(self, group: str, resource: str, verbs: set[str]) -> set[str]:
        """The verbs in `verbs` this rule grants on group/resource (wildcards count as a grant)."""
        if not ({group, "*"} & set(self.api_groups)):
            return set()
        if not ({resource, "*"} & set(self.resources)):
            return set()
        if "*" in self.verbs:
            return set(verbs)
        return verbs & set(self.verbs)


def rules(props: Mapping[str, Any]) -> list[Rule]:
    """Every rule of a Role/ClusterRole (not only the first)."""
    out = []
    for i, raw in enumerate(as_list(props.get("rules"))):
        r = as_map(raw)
        out.append(Rule(
            index=i,
            api_groups=tuple(strings(r.get("apiGroups"))),
            resources=tuple(strings(r.get("resources"))),
            verbs=tuple(v.lower() for v in strings(r.get("verbs"))),
        ))
    return out


# --- pod templates -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Container:
    path: str                      # e.g. "spec.template.spec.containers[0]"
    name: str
    spec: Mapping[str, Any]        # the container (Tekton: step merged over stepTemplate)

    @property
    def label(self) -> str:
        """How messages name it: `step 'build'`, `sidecar 'proxy'` or `container 'app'`."""
        kind = "step" if ".steps[" in self.path else "sidecar" if ".sidecars[" in self.path else "container"
        return f"{kind} {self.name!r}"

    @property
    def security(self) -> Mapping[str, Any]:
        return as_map(self.spec.get("securityContext"))


@dataclass(frozen=True)
class PodTemplate:
    """Pod-level fields and the containers that will run together in one pod."""

    path: str                      # where pod-level fields are set, e.g. "spec.template.spec"
    pod: Mapping[str, Any]         # securityContext, hostNetwork/PID/IPC, volumes, serviceAccountName, ...
    containers: tuple[Container, ...]
    tekton: bool = False           # Tekton builds the pod: no serviceAccountName/automount at this level

    @property
    def security(self) -> Mapping[str, Any]:
        return as_map(self.pod.get("securityContext"))


# Where the pod spec sits in each built-in workload kind.
_POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("core", "Pod"): ("spec",),
    ("core", "PodTemplate"): ("template", "spec"),
    ("core", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("argoproj.io", "Rollout"): ("spec", "template", "spec"),
}

def _pod_containers(pod: Mapping[str, Any], path: str) -> tuple[Container, ...]:
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(as_list(pod.get(key))):
            c = as_map(c)
            name = c.get("name") if isinstance(c.get("name"), str) else f"{key}[{i}]"
            out.append(Container(f"{path}.{key}[{i}]", name, c))
    return tuple(out)


def _merge_step(template: Mapping[str, Any], step: Mapping[str, Any]) -> Mapping[str, Any]:
    """Tekton merges stepTemplate under each step: step fields win, securityContext and env merge."""
    if not template:
        return step
    merged: dict[str, Any] = {**template, **step}
    merged["securityContext"] = {**as_map(template.get("securityContext")), **as_map(step.get("securityContext"))}
    step_env = {as_map(e).get("name") for e in as_list(step.get("env"))}
    merged["env"] = [e for e in as_list(template.get("env")) if as_map(e).get("name") not in step_env]
    merged["env"] += list(as_list(step.get("env")))
    merged["envFrom"] = list(as_list(template.get("envFrom"))) + list(as_list(step.get("envFrom")))
    return merged


def _task_containers(task_spec: Mapping[str, Any], path: str) -> tuple[Container, ...]:
    template = as_map(task_spec.get("stepTemplate"))
    out = []
    for key in ("steps", "sidecars"):
        for i, s in enumerate(as_list(task_spec.get(key))):
            s = as_map(s)
            name = s.get("name") if isinstance(s.get("name"), str) else f"{key}[{i}]"
            spec = _merge_step(template, s) if key == "steps" else s
            out.append(Container(f"{path}.{key}[{i}]", name, spec))
    return tuple(out)


def _tekton_pod(task_spec: Mapping[str, Any], pod_template: Mapping[str, Any]) -> dict[str, Any]:
    pod = dict(pod_template)
    pod["volumes"] = list(as_list(task_spec.get("volumes"))) + list(as_list(pod_template.get("volumes")))
    return pod


def _pipeline_pods(pipeline_spec: Mapping[str, Any], path: str,
                   pod_template: Mapping[str, Any], pod_path: str) -> Iterator[PodTemplate]:
    for section in ("tasks", "finally"):
        for i, task in enumerate(as_list(pipeline_spec.get(section))):
            task_spec = as_map(as_map(task).get("taskSpec"))
            if task_spec:
                yield PodTemplate(pod_path or f"{path}.{section}[{i}].taskSpec",
                                  _tekton_pod(task_spec, pod_template),
                                  _task_containers(task_spec, f"{path}.{section}[{i}].taskSpec"), tekton=True)


def _run_pod_template(spec: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    # tekton.dev/v1 moved the PipelineRun pod template under taskRunTemplate; v1beta1 and TaskRun keep spec.podTemplate.
    v1 = as_map(dig(spec, "taskRunTemplate", "podTemplate"))
    if v1:
        return v1, "spec.taskRunTemplate.podTemplate"
    return as_map(spec.get("podTemplate")), "spec.podTemplate"


def pod_templates(token: str, props: Mapping[str, Any], prefix: str = "") -> list[PodTemplate]:
    """Every pod the object will create, wherever its template lives (TriggerTemplates recurse)."""
    gk = group_kind(token)
    if gk is None:
        return []
    group, kind = gk
    spec = as_map(props.get("spec"))
    if gk in _POD_SPEC_PATHS:
        keys = _POD_SPEC_PATHS[gk]
        pod = as_map(dig(props, *keys))
        if not pod:  # e.g. a Rollout with workloadRef: the referenced Deployment is checked itself
            return []
        path = prefix + ".".join(keys)
        return [PodTemplate(path, pod, _pod_containers(pod, path))]
    if group == TEKTON and kind in ("Task", "ClusterTask"):
        return [PodTemplate(prefix + "spec", _tekton_pod(spec, {}), _task_containers(spec, prefix + "spec"),
                            tekton=True)]
    if group == TEKTON and kind == "Pipeline":
        return list(_pipeline_pods(spec, prefix + "spec", {}, ""))
    if group == TEKTON and kind == "TaskRun":
        pod_template, pod_path = _run_pod_template(spec)
        task_spec = as_map(spec.get("taskSpec"))
        return [PodTemplate(prefix + pod_path, _tekton_pod(task_spec, pod_template),
                            _task_containers(task_spec, prefix + "spec.taskSpec"), tekton=True)]
    if group == TEKTON and kind == "PipelineRun":
        pod_template, pod_path = _run_pod_template(spec)
        pods = list(_pipeline_pods(as_map(spec.get("pipelineSpec")), prefix + "spec.pipelineSpec",
                                   pod_template, prefix + pod_path))
        if pod_template and not pods:  # pipelineRef: the pod template alone still sets host access/volumes
            pods.append(PodTemplate(prefix + pod_path, _tekton_pod({}, pod_template), (), tekton=True))
        for i, trs in enumerate(as_list(spec.get("taskRunSpecs"))):
            trs = as_map(trs)
            field = "podTemplate" if "podTemplate" in trs else "taskPodTemplate"  # v1 / v1beta1
            per_task = as_map(trs.get(field))
            if per_task:
                pods.append(PodTemplate(f"{prefix}spec.taskRunSpecs[{i}].{field}", _tekton_pod({}, per_task), (),
                                        tekton=True))
        return pods
    if group == TRIGGERS and kind == "TriggerTemplate":
        out = []
        for i, item in embedded_templates(props):
            out += pod_templates(type_token(item["apiVersion"], item["kind"]), item,
                                 f"{prefix}spec.resourcetemplates[{i}].")
        return out
    return []


def embedded_templates(props: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The objects a TriggerTemplate creates (only those with a readable apiVersion and kind)."""
    for i, item in enumerate(as_list(dig(props, "spec", "resourcetemplates"))):
        item = as_map(item)
        if isinstance(item.get("apiVersion"), str) and isinstance(item.get("kind"), str):
            yield i, item


def is_parameter(value: str) -> bool:
    """Tekton substitutes `$(params.x)` / `$(tt.params.x)` at run time; such values can't be judged here."""
    return "$(" in value


@dataclass(frozen=True)
class TektonRun:
    path: str                   # where the run's service account is set (or should be)
    kind: str
    service_account: str | None
    namespace: str | None
    required: bool = True       # False for per-task overrides (taskRunSpecs), which may inherit the run's


def tekton_runs(token: str, props: Mapping[str, Any], prefix: str = "",
                namespace: str | None = None) -> list[TektonRun]:
    """PipelineRuns/TaskRuns declared directly or inside a TriggerTemplate, with their ServiceAccount."""
    gk = group_kind(token)
    if gk is None:
        return []
    group, kind = gk
    ns = as_map(props.get("metadata")).get("namespace") or namespace
    spec = as_map(props.get("spec"))
    if group == TEKTON and kind == "PipelineRun":
        # tekton.dev/v1 moved it to spec.taskRunTemplate.serviceAccountName; v1beta1 has spec.serviceAccountName.
        beta = parse_type(token)[1].startswith("v1beta")
        if beta:
            path, sa = "spec.serviceAccountName", spec.get("serviceAccountName")
        else:
            path, sa = "spec.taskRunTemplate.serviceAccountName", dig(spec, "taskRunTemplate", "serviceAccountName")
        runs = [TektonRun(prefix + path, kind, sa if isinstance(sa, str) else None, ns)]
        field = "taskServiceAccountName" if beta else "serviceAccountName"
        for i, trs in enumerate(as_list(spec.get("taskRunSpecs"))):
            per_task = as_map(trs).get(field)
            if isinstance(per_task, str):
                runs.append(TektonRun(f"{prefix}spec.taskRunSpecs[{i}].{field}", kind, per_task, ns, required=False))
        return runs
    if group == TEKTON and kind == "TaskRun":
        sa = spec.get("serviceAccountName")
        return [TektonRun(prefix + "spec.serviceAccountName", kind, sa if isinstance(sa, str) else None, ns)]
    if group == TRIGGERS and kind == "TriggerTemplate":
        out = []
        for i, item in embedded_templates(props):
            out += tekton_runs(type_token(item["apiVersion"], item["kind"]), item,
                               f"{prefix}spec.resourcetemplates[{i}].", ns)
        return out
    return []
