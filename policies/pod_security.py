"""Pod Security Standards `restricted`, read wherever a pod template lives (Tekton steps included).

A container's securityContext overrides the pod's for the fields both have (runAsNonRoot,
runAsUser, seccompProfile); Tekton steps inherit from stepTemplate, runs add the podTemplate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .k8s import Container, PodTemplate, as_list, as_map, pod_templates, strings
from .model import Policy


def _effective(pod: PodTemplate, container: Container, field: str) -> Any:
    if field in container.security:
        return container.security[field]
    return pod.security.get(field)


def _where(pod: PodTemplate, container: Container) -> str:
    """Where the fix goes, in the words of the object being fixed."""
    if pod.tekton and ".steps[" in container.path:
        return f"the step's securityContext or stepTemplate.securityContext ({container.path})"
    return f"{container.path}.securityContext"


def run_as_non_root(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            if _effective(pod, c, "runAsUser") == 0:
                yield (f"{c.label} sets runAsUser: 0 (root); use a non-zero uid in {_where(pod, c)} and "
                       f"build the image to run as that user.")
            elif _effective(pod, c, "runAsNonRoot") is not True:
                yield (f"{c.label} may run as root; set runAsNonRoot: true in {_where(pod, c)} (or the pod "
                       f"securityContext) with a non-zero runAsUser.")


def privilege_escalation(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            if c.security.get("allowPrivilegeEscalation") is not False:
                yield f"{c.label} does not set allowPrivilegeEscalation: false; set it in {_where(pod, c)}."


def drop_all_capabilities(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            caps = as_map(c.security.get("capabilities"))
            if "ALL" not in strings(caps.get("drop")):
                yield f"{c.label} does not drop all capabilities; set capabilities.drop: [ALL] in {_where(pod, c)}."
            extra = sorted(set(strings(caps.get("add"))) - {"NET_BIND_SERVICE"})
            if extra:
                yield (f"{c.label} adds capabilities {', '.join(extra)}; only NET_BIND_SERVICE may be added "
                       f"(remove the rest from capabilities.add in {_where(pod, c)}).")


def seccomp_runtime_default(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            profile = as_map(_effective(pod, c, "seccompProfile")).get("type")
            if profile not in ("RuntimeDefault", "Localhost"):
                got = f"is {profile!r}" if profile else "is not set"
                yield (f"{c.label} seccomp profile {got}; set seccompProfile.type: RuntimeDefault in the pod "
                       f"securityContext or {_where(pod, c)}.")


def privileged(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            if c.security.get("privileged") is True:
                yield (f"{c.label} is privileged (full access to the node); remove privileged: true "
                       f"from {_where(pod, c)}.")


def host_namespaces(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.pod.get(field) is True:
                yield f"{pod.path}.{field} is true (shares the node's namespace); remove it."


def host_path(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for volume in as_list(pod.pod.get("volumes")):
            volume = as_map(volume)
            if "hostPath" in volume:
                path = as_map(volume.get("hostPath")).get("path")
                yield (f"volume {volume.get('name')!r} in {pod.path} mounts the node path {path!r}; use an "
                       f"emptyDir, a PersistentVolumeClaim, a ConfigMap or a projected volume instead.")


def secrets_as_files(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            for env in as_list(c.spec.get("env")):
                env = as_map(env)
                ref = as_map(as_map(env.get("valueFrom")).get("secretKeyRef"))
                if ref:
                    yield (f"{c.label} reads secret {ref.get('name')!r} into env var {env.get('name')!r}; mount "
                           f"the secret as a volume and point the app at the file (e.g. {env.get('name')}_FILE).")
            for env_from in as_list(c.spec.get("envFrom")):
                ref = as_map(as_map(env_from).get("secretRef"))
                if ref:
                    yield (f"{c.label} loads every key of secret {ref.get('name')!r} as env vars (envFrom); "
                           f"mount the secret as a volume instead.")


POLICIES = (
    Policy("require-run-as-non-root",
           "Containers must run as a non-root user (runAsNonRoot: true, runAsUser != 0).",
           "high", "Set securityContext.runAsNonRoot: true and a non-zero runAsUser.",
           resource_check=run_as_non_root, tags=("pod-security",)),
    Policy("restrict-privilege-escalation",
           "Containers must set allowPrivilegeEscalation: false.",
           "high", "Set securityContext.allowPrivilegeEscalation: false on every container.",
           resource_check=privilege_escalation, tags=("pod-security",)),
    Policy("require-drop-all-capabilities",
           "Containers must drop ALL capabilities and add none except NET_BIND_SERVICE.",
           "medium", "Set securityContext.capabilities.drop: [ALL]; add only NET_BIND_SERVICE if needed.",
           resource_check=drop_all_capabilities, tags=("pod-security",)),
    Policy("require-seccomp-runtime-default",
           "Pods/containers must use the RuntimeDefault (or a Localhost) seccomp profile.",
           "medium", "Set securityContext.seccompProfile.type: RuntimeDefault at pod level.",
           resource_check=seccomp_runtime_default, tags=("pod-security",)),
    Policy("restrict-privileged",
           "Containers must not be privileged.",
           "critical", "Remove securityContext.privileged: true.",
           resource_check=privileged, tags=("pod-security",)),
    Policy("restrict-host-namespaces",
           "Pods must not share the node's network, PID or IPC namespace.",
           "critical", "Remove hostNetwork/hostPID/hostIPC.",
           resource_check=host_namespaces, tags=("pod-security",)),
    Policy("restrict-host-path",
           "Pods must not mount hostPath volumes.",
           "high", "Use emptyDir, a PersistentVolumeClaim, a ConfigMap or a projected volume.",
           resource_check=host_path, tags=("pod-security",)),
    Policy("require-secrets-as-files",
           "Secrets reach containers as mounted files, never as environment variables.",
           "medium", "Mount the Secret as a volume and read it from a file (*_FILE settings).",
           resource_check=secrets_as_files, tags=("pod-security", "secrets")),
)
