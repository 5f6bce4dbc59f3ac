"""Pod Security Standards `restricted` (baseline included), read wherever a pod template lives.

One policy per PSS control, with the allowed values of the Kubernetes PSS page. A container's
securityContext overrides the pod's for the fields both have (runAsNonRoot, runAsUser, seccompProfile,
seLinuxOptions, appArmorProfile); a value the pod sets that PSS forbids is a finding even where every
container overrides it, as Pod Security admission does. Tekton steps inherit from stepTemplate, runs add
the podTemplate. Pods an EventListener's controller builds are hardened by it where fields are unset, so
there only explicitly weakened fields count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .k8s import Container, PodTemplate, as_list, as_map, dig, is_kind, pod_templates, strings
from .model import Policy

_SECCOMP_OK = ("RuntimeDefault", "Localhost")


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
        if pod.security.get("runAsUser") == 0:
            yield (f"{pod.path}.securityContext.runAsUser is 0 (root); use a non-zero uid and build the image to "
                   f"run as that user.")
        if pod.security.get("runAsNonRoot") is False:
            yield f"{pod.path}.securityContext.runAsNonRoot is false; set it to true."
        for c in pod.containers:
            if c.security.get("runAsUser") == 0:
                yield (f"{c.label} sets runAsUser: 0 (root); use a non-zero uid in {_where(pod, c)} and "
                       f"build the image to run as that user.")
            elif c.security.get("runAsNonRoot") is False:
                yield f"{c.label} sets runAsNonRoot: false; set it to true in {_where(pod, c)}."
            elif (_effective(pod, c, "runAsNonRoot") is not True and not pod.hardened_defaults
                  and pod.security.get("runAsNonRoot") is not False):
                yield (f"{c.label} may run as root; set runAsNonRoot: true in {_where(pod, c)} (or the pod "
                       f"securityContext) with a non-zero runAsUser.")


def privilege_escalation(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            value = c.security.get("allowPrivilegeEscalation")
            if value is True or (value is not False and not pod.hardened_defaults):
                yield f"{c.label} does not set allowPrivilegeEscalation: false; set it in {_where(pod, c)}."


def drop_all_capabilities(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            caps = as_map(c.security.get("capabilities"))
            drops = strings(caps.get("drop"))
            if "ALL" not in drops and not (pod.hardened_defaults and "drop" not in caps):
                spelled = " (PSS requires the exact, upper-case 'ALL')" if "all" in {d.lower() for d in drops} else ""
                yield (f"{c.label} does not drop all capabilities{spelled}; set capabilities.drop: [ALL] in "
                       f"{_where(pod, c)}.")
            extra = sorted(set(strings(caps.get("add"))) - {"NET_BIND_SERVICE"})
            if extra:
                yield (f"{c.label} adds capabilities {', '.join(extra)}; only NET_BIND_SERVICE (spelled exactly so) "
                       f"may be added; remove the rest from capabilities.add in {_where(pod, c)}.")


def seccomp_runtime_default(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        pod_type = as_map(pod.security.get("seccompProfile")).get("type")
        if "seccompProfile" in pod.security and pod_type not in _SECCOMP_OK:
            yield (f"{pod.path}.securityContext.seccompProfile.type is {pod_type!r}; set RuntimeDefault (or "
                   f"Localhost with a reviewed profile).")
        for c in pod.containers:
            if "seccompProfile" in c.security:
                profile = as_map(c.security["seccompProfile"]).get("type")
            elif "seccompProfile" in pod.security or pod.hardened_defaults:
                continue  # the pod's own value is judged above
            else:
                profile = None
            if profile not in _SECCOMP_OK:
                got = f"is {profile!r}" if profile else "is not set"
                yield (f"{c.label} seccomp profile {got}; set seccompProfile.type: RuntimeDefault in the pod "
                       f"securityContext or {_where(pod, c)}.")


def privileged(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            if c.security.get("privileged") is True:
                yield (f"{c.label} is privileged (full access to the node); remove privileged: true "
                       f"from {_where(pod, c)}.")


def host_process(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        if dig(pod.security, "windowsOptions", "hostProcess") is True:
            yield f"{pod.path}.securityContext.windowsOptions.hostProcess is true (a Windows host process); remove it."
        for c in pod.containers:
            if dig(c.security, "windowsOptions", "hostProcess") is True:
                yield f"{c.label} sets windowsOptions.hostProcess: true (a Windows host process); remove it."


def host_namespaces(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.pod.get(field) is True:
                yield f"{pod.path}.{field} is true (shares the node's namespace); remove it."


def host_ports(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            for port in as_list(c.spec.get("ports")):
                host_port = as_map(port).get("hostPort")
                if host_port not in (None, 0, "0", ""):
                    yield (f"{c.label} binds hostPort {host_port} on the node; remove hostPort and expose the "
                           f"containerPort through a Service.")


def _apparmor_ok(profile_type: Any) -> bool:
    return profile_type in (None, "RuntimeDefault", "Localhost")


_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def apparmor(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        profile = as_map(pod.security.get("appArmorProfile")).get("type")
        if not _apparmor_ok(profile):
            yield (f"{pod.path}.securityContext.appArmorProfile.type is {profile!r}; use RuntimeDefault or a "
                   f"Localhost profile, or leave it unset.")
        for c in pod.containers:
            profile = as_map(c.security.get("appArmorProfile")).get("type")
            if not _apparmor_ok(profile):
                yield f"{c.label} sets appArmorProfile.type {profile!r}; use RuntimeDefault or Localhost, or unset it."
        for key, value in as_map(pod.meta.get("annotations")).items():
            if isinstance(key, str) and key.startswith(_APPARMOR_ANNOTATION):
                if not (value == "runtime/default" or (isinstance(value, str) and value.startswith("localhost/"))):
                    yield (f"annotation {key}: {value!r} on the pod template runs that container without the "
                           f"default AppArmor profile; use runtime/default or localhost/<profile>, or remove it.")


_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


def _selinux_problems(options: Any) -> list[str]:
    options = as_map(options)
    out = []
    if options.get("type") not in (None, *_SELINUX_TYPES):
        out.append(f"type {options.get('type')!r}")
    for field in ("user", "role"):
        if options.get(field) not in (None, ""):
            out.append(f"{field} {options.get(field)!r}")
    return out


def selinux(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    allowed = ", ".join(t for t in _SELINUX_TYPES if t)
    for pod in pod_templates(token, props):
        problems = _selinux_problems(pod.security.get("seLinuxOptions"))
        if problems:
            yield (f"{pod.path}.securityContext.seLinuxOptions sets {', '.join(problems)}; only the type may be set, "
                   f"to one of {allowed}; no custom user or role.")
        for c in pod.containers:
            problems = _selinux_problems(c.security.get("seLinuxOptions"))
            if problems:
                yield (f"{c.label} seLinuxOptions sets {', '.join(problems)}; only the type may be set, to one of "
                       f"{allowed}; no custom user or role.")


def proc_mount(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            value = c.security.get("procMount")
            if value not in (None, "Default"):
                yield (f"{c.label} sets procMount: {value!r} (an unmasked /proc exposes the host's kernel "
                       f"settings); remove it or set Default.")


# The PSS baseline's safe set (namespaced, isolated per pod).
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})


def unsafe_sysctls(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for i, sysctl in enumerate(as_list(pod.security.get("sysctls"))):
            name = as_map(sysctl).get("name")
            if name not in SAFE_SYSCTLS:
                yield (f"{pod.path}.securityContext.sysctls[{i}] sets {name!r}, outside the safe set "
                       f"({', '.join(sorted(SAFE_SYSCTLS))}); tune it on the node instead.")


# The restricted profile's volume allow-list; hostPath has its own policy.
ALLOWED_VOLUME_TYPES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                  "persistentVolumeClaim", "projected", "secret"})


def volume_types(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for volume in as_list(pod.pod.get("volumes")):
            volume = as_map(volume)
            kinds = sorted(k for k in volume if k != "name" and k != "hostPath" and k not in ALLOWED_VOLUME_TYPES)
            if kinds:
                yield (f"volume {volume.get('name')!r} in {pod.path} is of type {', '.join(kinds)}, outside the "
                       f"restricted allow-list ({', '.join(sorted(ALLOWED_VOLUME_TYPES))}); use a "
                       f"PersistentVolumeClaim (or an init container that clones into an emptyDir).")


def host_path(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for volume in as_list(pod.pod.get("volumes")):
            volume = as_map(volume)
            if "hostPath" in volume:
                path = as_map(volume.get("hostPath")).get("path")
                yield (f"volume {volume.get('name')!r} in {pod.path} mounts the node path {path!r}; use an "
                       f"emptyDir, a PersistentVolumeClaim, a ConfigMap or a projected volume instead.")
    if is_kind(token, "core", "PersistentVolume") and "hostPath" in as_map(props.get("spec")):
        path = dig(props, "spec", "hostPath", "path")
        yield (f"spec.hostPath mounts the node path {path!r} into whichever pod claims this volume; use a "
               f"StorageClass-provisioned volume instead.")


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def probe_host(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        for c in pod.containers:
            handlers = [(p, c.spec.get(p)) for p in _PROBES]
            handlers += [(f"lifecycle.{h}", dig(c.spec, "lifecycle", h)) for h in ("postStart", "preStop")]
            for where, handler in handlers:
                for action in ("httpGet", "tcpSocket"):
                    host = dig(handler, action, "host")
                    if host not in (None, ""):
                        yield (f"{c.label} {where}.{action}.host is {host!r}: the kubelet sends that request from "
                               f"the node to any address; remove host (the pod's own IP is used).")


def _secret_env(env: Any) -> Mapping[str, Any]:
    return as_map(as_map(as_map(env).get("valueFrom")).get("secretKeyRef"))


def secrets_as_files(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        # A Tekton podTemplate's env reaches every step: reported once, where it is set (also with a taskRef).
        pod_env = list(as_list(pod.pod.get("env"))) if pod.tekton else []
        for i, env in enumerate(pod_env):
            ref = _secret_env(env)
            if ref:
                name = as_map(env).get("name")
                yield (f"{pod.path}.env[{i}] reads secret {ref.get('name')!r} into env var {name!r} for every step; "
                       f"mount the secret as a volume and point the tool at the file (e.g. {name}_FILE).")
        for c in pod.containers:
            for env in as_list(c.spec.get("env")):
                ref = _secret_env(env)
                if ref and env not in pod_env:
                    env = as_map(env)
                    yield (f"{c.label} reads secret {ref.get('name')!r} into env var {env.get('name')!r}; mount "
                           f"the secret as a volume and point the app at the file (e.g. {env.get('name')}_FILE).")
            for env_from in as_list(c.spec.get("envFrom")):
                ref = as_map(as_map(env_from).get("secretRef"))
                if ref:
                    yield (f"{c.label} loads every key of secret {ref.get('name')!r} as env vars (envFrom); "
                           f"mount the secret as a volume instead.")


_ENFORCE = "pod-security.kubernetes.io/enforce"


def restricted_namespace(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, "core", "Namespace"):
        return
    level = as_map(dig(props, "metadata", "labels")).get(_ENFORCE)
    if level != "restricted":
        got = f"is {level!r}" if level is not None else "is not set (the cluster default, usually privileged, applies)"
        yield (f"label {_ENFORCE} {got}; set it to restricted, or exempt this Namespace with the reason its pods "
               f"need more (and keep audit/warn at restricted).")


def _pss(name: str, description: str, severity: str, remediation: str, check) -> Policy:
    return Policy(name, description, severity, remediation, resource_check=check, tags=("pod-security",))


POLICIES = (
    _pss("require-run-as-non-root", "Containers must run as a non-root user (runAsNonRoot: true, runAsUser != 0).",
         "high", "Set securityContext.runAsNonRoot: true and a non-zero runAsUser.", run_as_non_root),
    _pss("restrict-privilege-escalation", "Containers must set allowPrivilegeEscalation: false.",
         "high", "Set securityContext.allowPrivilegeEscalation: false on every container.", privilege_escalation),
    _pss("require-drop-all-capabilities", "Containers must drop ALL capabilities and add none except NET_BIND_SERVICE.",
         "medium", "Set securityContext.capabilities.drop: [ALL]; add only NET_BIND_SERVICE if needed.",
         drop_all_capabilities),
    _pss("require-seccomp-runtime-default", "Pods/containers must use the RuntimeDefault (or a Localhost) seccomp profile.",
         "medium", "Set securityContext.seccompProfile.type: RuntimeDefault at pod level.", seccomp_runtime_default),
    _pss("restrict-privileged", "Containers must not be privileged.",
         "critical", "Remove securityContext.privileged: true.", privileged),
    _pss("restrict-host-process", "Pods and containers must not be Windows HostProcess containers.",
         "critical", "Remove windowsOptions.hostProcess: true.", host_process),
    _pss("restrict-host-namespaces", "Pods must not share the node's network, PID or IPC namespace.",
         "critical", "Remove hostNetwork/hostPID/hostIPC.", host_namespaces),
    _pss("restrict-host-ports", "Containers must not bind host ports.",
         "high", "Remove hostPort; expose the port through a Service.", host_ports),
    _pss("restrict-host-path", "Pods must not mount hostPath volumes, and no PersistentVolume may be a hostPath.",
         "high", "Use emptyDir, a PersistentVolumeClaim, a ConfigMap or a projected volume.", host_path),
    _pss("restrict-volume-types", "Pod volumes must be of a type in the restricted allow-list (no gitRepo, nfs, ...).",
         "high", "Use PVCs, emptyDir, ConfigMap, Secret, projected, downwardAPI, CSI or ephemeral volumes.",
         volume_types),
    _pss("restrict-apparmor-unconfined", "AppArmor must stay RuntimeDefault or Localhost (field and annotation).",
         "high", "Remove Unconfined AppArmor settings.", apparmor),
    _pss("restrict-selinux-options", "SELinux options: only an allowed type; no custom user or role.",
         "high", "Remove seLinuxOptions.user/role; use container_t (or another allowed type).", selinux),
    _pss("restrict-unmasked-proc-mount", "Containers must keep the default (masked) /proc mount.",
         "high", "Remove procMount: Unmasked.", proc_mount),
    _pss("restrict-unsafe-sysctls", "Pods may set only the safe, namespaced sysctls.",
         "high", "Remove other sysctls; tune them on the node.", unsafe_sysctls),
    _pss("restrict-probe-host", "Probes and lifecycle hooks must not target another host.",
         "medium", "Remove httpGet.host/tcpSocket.host from probes and hooks.", probe_host),
    _pss("require-restricted-namespace", "Namespaces must enforce the restricted Pod Security level.",
         "high", "Label the Namespace pod-security.kubernetes.io/enforce: restricted, or exempt it with a reason.",
         restricted_namespace),
    Policy("require-secrets-as-files",
           "Secrets reach containers as mounted files, never as environment variables.",
           "medium", "Mount the Secret as a volume and read it from a file (*_FILE settings).",
           resource_check=secrets_as_files, tags=("pod-security", "secrets")),
)
