"""Kubernetes shapes the policies read: type tokens, RBAC rules and every place a pod template lives.

Props may be plain dicts/lists (checker, preview) or pulumi_policy's read-only proxies (the real
CLI), so everything here tests for `Mapping`/`Sequence`, never `dict`/`list`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
import re
from dataclasses import dataclass, field
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
    """One PolicyRule, normalised to lower case: the API server matches case-sensitively, so an odd
    spelling grants nothing today, but it is still a grant a reviewer must not wave through."""

    index: int
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"rules[{self.index}]"

    @property
    def has_wildcard(self) -> bool:
        """A literal '*' in verbs, resources, apiGroups or nonResourceURLs: restrict-wildcard-rbac's to
        report, so the specific escalation policies skip such a rule (one defect, one finding)."""
        return "*" in self.verbs or "*" in self.resources or "*" in self.api_groups or "*" in self.non_resource_urls

    def matches_resource(self, resource: str) -> bool:
        """RBAC's resource matching: exact, '*', or '*/<subresource>' for any resource's subresource."""
        if resource in self.resources or "*" in self.resources:
            return True
        _, sep, sub = resource.partition("/")
        return bool(sep) and f"*/{sub}" in self.resources

    def grants(self, group: str, resource: str, verbs: set[str]) -> set[str]:
        """The verbs in `verbs` this rule grants on group/resource (wildcards count as a grant)."""
        if not ({group, "*"} & set(self.api_groups)) or not self.matches_resource(resource):
            return set()
        if "*" in self.verbs:
            return set(verbs)
        return verbs & set(self.verbs)

    def explicit_grants(self, group: str, resource: str, verbs: set[str]) -> set[str]:
        """`grants`, but nothing for a rule with a literal '*' (that one is restrict-wildcard-rbac's)."""
        return set() if self.has_wildcard else self.grants(group, resource, verbs)


def rules(props: Mapping[str, Any]) -> list[Rule]:
    """Every rule of a Role/ClusterRole (not only the first)."""
    out = []
    for i, raw in enumerate(as_list(props.get("rules"))):
        r = as_map(raw)
        lower = lambda key: tuple(v.strip().lower() for v in strings(r.get(key)))  # noqa: E731
        out.append(Rule(
            index=i,
            api_groups=lower("apiGroups"),
            resources=lower("resources"),
            verbs=lower("verbs"),
            resource_names=tuple(strings(r.get("resourceNames"))),
            non_resource_urls=tuple(v.strip() for v in strings(r.get("nonResourceURLs"))),
        ))
    return out


def role_rules(token: str, props: Mapping[str, Any]) -> list[Rule]:
    """The rules of a Role or ClusterRole; [] for anything else."""
    return rules(props) if is_kind(token, RBAC, "Role", "ClusterRole") else []


def labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(dig(props, "metadata", "labels"))


# --- pod templates -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Container:
    path: str                      # e.g. "spec.template.spec.containers[0]"
    name: str
    spec: Mapping[str, Any]        # the container (Tekton: step merged over stepTemplate)
    role: str = ""                 # how to name it when the path does not say (a StepAction's step)

    @property
    def label(self) -> str:
        """How messages name it: `step 'build'`, `sidecar 'proxy'`, `init container 'migrate'`, ..."""
        for marker, kind in ((".steps[", "step"), (".sidecars[", "sidecar"), (".initContainers[", "init container"),
                             (".ephemeralContainers[", "ephemeral container")):
            if marker in self.path:
                return f"{kind} {self.name!r}"
        return f"{self.role or 'container'} {self.name!r}"

    @property
    def security(self) -> Mapping[str, Any]:
        return as_map(self.spec.get("securityContext"))


@dataclass(frozen=True)
class PodTemplate:
    """Pod-level fields and the containers that will run together in one pod."""

    path: str                      # where pod-level fields are set, e.g. "spec.template.spec"
    pod: Mapping[str, Any]         # securityContext, hostNetwork/PID/IPC, volumes, serviceAccountName, ...
    containers: tuple[Container, ...]
    tekton: bool = False           # a controller builds the pod: no serviceAccountName/automount at this level
    meta: Mapping[str, Any] = field(default_factory=dict)  # the pod's metadata (annotations), if known
    # The controller that builds the pod hardens what is left unset (Tekton Triggers' EventListener with
    # its default el-security-context): only explicitly weakened fields are findings.
    hardened_defaults: bool = False

    @property
    def security(self) -> Mapping[str, Any]:
        return as_map(self.pod.get("securityContext"))


# Where the pod spec sits in each built-in workload kind (the pod's metadata is its sibling).
_POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("core", "Pod"): ("spec",),
    ("core", "PodTemplate"): ("template", "spec"),
    ("core", "ReplicationController"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("argoproj.io", "Rollout"): ("spec", "template", "spec"),
    **{(group, kind): ("spec", "template", "spec")
       for group in ("apps", "extensions") for kind in ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet")},
}
_ANALYSIS_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")


def _pod_containers(pod: Mapping[str, Any], path: str) -> tuple[Container, ...]:
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(as_list(pod.get(key))):
            c = as_map(c)
            name = c.get("name") if isinstance(c.get("name"), str) else f"{key}[{i}]"
            out.append(Container(f"{path}.{key}[{i}]", name, c))
    return tuple(out)


def _pod(path: str, pod: Mapping[str, Any], meta: Any = None, **kw: Any) -> PodTemplate:
    return PodTemplate(path, pod, _pod_containers(pod, path), meta=as_map(meta), **kw)


def _merge_env(base: Any, override: Any) -> list[Any]:
    """Env vars of `base` not redefined by `override`, then `override`'s (the later one wins)."""
    names = {as_map(e).get("name") for e in as_list(override)}
    return [e for e in as_list(base) if as_map(e).get("name") not in names] + list(as_list(override))


def _merge_step(template: Mapping[str, Any], step: Mapping[str, Any]) -> Mapping[str, Any]:
    """Tekton merges stepTemplate under each step: step fields win, securityContext and env merge."""
    if not template:
        return step
    merged: dict[str, Any] = {**template, **step}
    merged["securityContext"] = {**as_map(template.get("securityContext")), **as_map(step.get("securityContext"))}
    merged["env"] = _merge_env(template.get("env"), step.get("env"))
    merged["envFrom"] = list(as_list(template.get("envFrom"))) + list(as_list(step.get("envFrom")))
    return merged


def _task_containers(task_spec: Mapping[str, Any], path: str, pod_env: Any = None) -> tuple[Container, ...]:
    """Steps (over stepTemplate) and sidecars; a run's podTemplate.env reaches every one of them."""
    template = as_map(task_spec.get("stepTemplate"))
    out = []
    for key in ("steps", "sidecars"):
        for i, s in enumerate(as_list(task_spec.get(key))):
            s = as_map(s)
            name = s.get("name") if isinstance(s.get("name"), str) else f"{key}[{i}]"
            spec = _merge_step(template, s) if key == "steps" else s
            if as_list(pod_env):
                spec = {**spec, "env": _merge_env(pod_env, spec.get("env"))}
            out.append(Container(f"{path}.{key}[{i}]", name, spec))
    return tuple(out)


def _tekton_pod(task_spec: Mapping[str, Any], pod_template: Mapping[str, Any], path: str, task_path: str,
                meta: Any = None) -> PodTemplate:
    pod = dict(pod_template)
    pod["volumes"] = list(as_list(task_spec.get("volumes"))) + list(as_list(pod_template.get("volumes")))
    return PodTemplate(path, pod, _task_containers(task_spec, task_path, pod_template.get("env")), tekton=True,
                       meta=as_map(meta))


def _pipeline_pods(pipeline_spec: Mapping[str, Any], path: str, pod_template: Mapping[str, Any], pod_path: str,
                   meta: Any = None) -> Iterator[PodTemplate]:
    for section in ("tasks", "finally"):
        for i, task in enumerate(as_list(pipeline_spec.get(section))):
            task_spec = as_map(as_map(task).get("taskSpec"))
            if task_spec:
                task_path = f"{path}.{section}[{i}].taskSpec"
                yield _tekton_pod(task_spec, pod_template, pod_path or task_path, task_path, meta)


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
    meta = props.get("metadata")
    if gk in _POD_SPEC_PATHS:
        keys = _POD_SPEC_PATHS[gk]
        pod = as_map(dig(props, *keys))
        if not pod:  # e.g. a Rollout with workloadRef: the referenced Deployment is checked itself
            return []
        return [_pod(prefix + ".".join(keys), pod, dig(props, *keys[:-1], "metadata"))]
    if group == "argoproj.io" and kind in _ANALYSIS_KINDS:
        # Job metrics: the analysis controller runs this Job's pods in the namespace.
        out = []
        for i, metric in enumerate(as_list(spec.get("metrics"))):
            job = as_map(dig(metric, "provider", "job"))
            pod = as_map(dig(job, "spec", "template", "spec"))
            if pod:
                out.append(_pod(f"{prefix}spec.metrics[{i}].provider.job.spec.template.spec", pod,
                                dig(job, "spec", "template", "metadata")))
        return out
    if group == "argoproj.io" and kind == "Experiment":
        return [_pod(f"{prefix}spec.templates[{i}].template.spec", as_map(dig(t, "template", "spec")),
                     dig(t, "template", "metadata"))
                for i, t in enumerate(as_list(spec.get("templates"))) if as_map(dig(t, "template", "spec"))]
    if group == TEKTON and kind in ("Task", "ClusterTask"):
        return [_tekton_pod(spec, {}, prefix + "spec", prefix + "spec", meta)]
    if group == TEKTON and kind == "StepAction":
        # A StepAction is one step of some Task's pod: it must carry its own hardening.
        name = dig(props, "metadata", "name")
        step = Container(prefix + "spec", name if isinstance(name, str) else "spec", spec, role="step")
        return [PodTemplate(prefix + "spec", {}, (step,), tekton=True, meta=as_map(meta))]
    if group == TEKTON and kind == "Pipeline":
        return list(_pipeline_pods(spec, prefix + "spec", {}, "", meta))
    if group == TEKTON and kind == "TaskRun":
        pod_template, pod_path = _run_pod_template(spec)
        return [_tekton_pod(as_map(spec.get("taskSpec")), pod_template, prefix + pod_path, prefix + "spec.taskSpec",
                            meta)]
    if group == TEKTON and kind == "PipelineRun":
        pod_template, pod_path = _run_pod_template(spec)
        pods = list(_pipeline_pods(as_map(spec.get("pipelineSpec")), prefix + "spec.pipelineSpec",
                                   pod_template, prefix + pod_path, meta))
        if pod_template and not pods:  # pipelineRef: the pod template alone still sets host access/volumes
            pods.append(_tekton_pod({}, pod_template, prefix + pod_path, prefix + pod_path, meta))
        for i, trs in enumerate(as_list(spec.get("taskRunSpecs"))):
            trs = as_map(trs)
            key = "podTemplate" if "podTemplate" in trs else "taskPodTemplate"  # v1 / v1beta1
            per_task = as_map(trs.get(key))
            if per_task:
                at = f"{prefix}spec.taskRunSpecs[{i}].{key}"
                pods.append(_tekton_pod({}, per_task, at, at, meta))
        return pods
    if group == TRIGGERS and kind == "TriggerTemplate":
        out = []
        for i, item in embedded_templates(props):
            out += pod_templates(type_token(item["apiVersion"], item["kind"]), item,
                                 f"{prefix}spec.resourcetemplates[{i}].")
        return out
    if group == TRIGGERS and kind == "EventListener":
        template = as_map(dig(spec, "resources", "kubernetesResource", "spec", "template"))
        pod = as_map(template.get("spec"))
        if pod:
            return [_pod(f"{prefix}spec.resources.kubernetesResource.spec.template.spec", pod, template.get("metadata"),
                         tekton=True, hardened_defaults=True)]
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


_TT_PARAM = re.compile(r"^\$\((?:tt\.)?params\.([A-Za-z0-9_.-]+)\)$")


def trigger_parameter(value: str, props: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(param, default) when `value` is exactly `$(tt.params.x)` (or the older `$(params.x)`) of this
    TriggerTemplate; default None when the param has none (a TriggerBinding must then supply it)."""
    m = _TT_PARAM.match(value.strip())
    if not m:
        return None
    for p in as_list(dig(props, "spec", "params")):
        p = as_map(p)
        if p.get("name") == m.group(1):
            default = p.get("default")
            return m.group(1), default if isinstance(default, str) else None
    return m.group(1), None


@dataclass(frozen=True)
class TektonRun:
    path: str                   # where the run's service account is set (or should be)
    kind: str
    service_account: str | None
    namespace: str | None
    required: bool = True       # False for per-task overrides (taskRunSpecs), which may inherit the run's
    parameter: str | None = None    # the TriggerTemplate param the name came from (its default, resolved)


def _resolve(sa: Any, template: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """A run's serviceAccountName, with a TriggerTemplate param replaced by its default when it has one.
    An empty default means "no ServiceAccount", i.e. the namespace's `default`."""
    if not isinstance(sa, str):
        return None, None
    found = trigger_parameter(sa, template) if template is not None else None
    if found is None or found[1] is None:
        return sa, None
    return found[1], found[0]


def tekton_runs(token: str, props: Mapping[str, Any], prefix: str = "",
                namespace: str | None = None, template: Mapping[str, Any] | None = None) -> list[TektonRun]:
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
        runs = [TektonRun(prefix + path, kind, *_split(_resolve(sa, template), ns))]
        key = "taskServiceAccountName" if beta else "serviceAccountName"
        for i, trs in enumerate(as_list(spec.get("taskRunSpecs"))):
            per_task = as_map(trs).get(key)
            if isinstance(per_task, str):
                name, param = _resolve(per_task, template)
                runs.append(TektonRun(f"{prefix}spec.taskRunSpecs[{i}].{key}", kind, name, ns, False, param))
        return runs
    if group == TEKTON and kind == "TaskRun":
        return [TektonRun(prefix + "spec.serviceAccountName", kind,
                          *_split(_resolve(spec.get("serviceAccountName"), template), ns))]
    if group == TRIGGERS and kind == "TriggerTemplate":
        out = []
        for i, item in embedded_templates(props):
            out += tekton_runs(type_token(item["apiVersion"], item["kind"]), item,
                               f"{prefix}spec.resourcetemplates[{i}].", ns, props)
        return out
    return []


def _split(resolved: tuple[str | None, str | None], namespace: str | None) -> tuple[Any, ...]:
    name, param = resolved
    return name, namespace, True, param
