"""Least-privilege RBAC: one check per forbidden grant or binding. Every rule of a Role is read, not only rules[0].

Rules are matched the way the API server's RBAC authorizer matches them (`*`, `*/<subresource>`), with
names lower-cased. A rule holding a literal `*` is reported by `restrict-wildcard-rbac` alone; the
specific escalation policies read the explicit grants, so one defect gives one finding.
Sources: CIS Kubernetes Benchmark 5.1.x, rbac-police's `lib/*.rego`, KubiScan, Kyverno's RBAC best practices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .k8s import RBAC, Rule, as_list, as_map, is_kind, labels, role_rules, rules
from .model import Policy

_BINDINGS = ("RoleBinding", "ClusterRoleBinding")
_READ = {"get", "list", "watch"}
_WRITE = {"create", "update", "patch", "delete", "deletecollection"}
_MODIFY = {"create", "update", "patch"}

# The labels the built-in view/edit/admin ClusterRoles aggregate: a role carrying one gives its rules to
# every holder of that built-in role.
AGGREGATE_TO_DEFAULT_ROLES = tuple(f"rbac.authorization.k8s.io/aggregate-to-{r}" for r in ("view", "edit", "admin"))


def _kind(token: str) -> str:
    return token.rsplit(":", 1)[-1]


def is_aggregated_into_default_roles(props: Mapping[str, Any]) -> bool:
    return any(labels(props).get(key) == "true" for key in AGGREGATE_TO_DEFAULT_ROLES)


def _names(granted: set[str]) -> str:
    return ", ".join(sorted(granted))


# --- category 3: wildcards and escalation verbs ----------------------------------------------------

def wildcard_rbac(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    examples = {"verbs": "[get, list, watch]", "resources": "[configmaps, pods]", "apiGroups": '["", apps]',
                "nonResourceURLs": '["/healthz", "/metrics"]'}
    for rule in role_rules(token, props):
        for field, values in (("verbs", rule.verbs), ("resources", rule.resources), ("apiGroups", rule.api_groups),
                              ("nonResourceURLs", rule.non_resource_urls)):
            if "*" in values or (field == "nonResourceURLs" and "/*" in values):
                yield (f"{rule.where}.{field} contains '*'; list the exact {field} this {_kind(token)} "
                       f"needs (e.g. {field}: {examples[field]}) instead of a wildcard.")


def escalate_bind_impersonate(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        found = sorted({"escalate", "bind", "impersonate"} & set(rule.verbs))
        if found:
            yield (f"{rule.where}.verbs grants {', '.join(found)} (lets the holder gain rights it was not "
                   f"given); remove {'these verbs' if len(found) > 1 else 'this verb'} from the rule.")


def _affects_kube_system(token: str, props: Mapping[str, Any]) -> bool:
    """A ClusterRole (bindable anywhere) or a Role in kube-system, where the cluster's own SAs live."""
    return _kind(token) == "ClusterRole" or as_map(props.get("metadata")).get("namespace") == "kube-system"


def token_issuance(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        granted = rule.explicit_grants("", "serviceaccounts/token", {"create"})
        if granted:
            yield (f"{rule.where} grants create on serviceaccounts/token (mints a token for any ServiceAccount "
                   f"in reach, with all of its rights); remove it and let pods use their own projected token.")
        if _affects_kube_system(token, props) and not rule.resource_names:
            granted = rule.explicit_grants("", "secrets", _MODIFY)
            if granted:
                where = "in any namespace" if _kind(token) == "ClusterRole" else "in kube-system"
                yield (f"{rule.where} grants {_names(granted)} on secrets {where} without resourceNames: a Secret of "
                       f"type kubernetes.io/service-account-token annotated with an admin ServiceAccount gets that "
                       f"account's token filled in; limit the rule with resourceNames or move it to a namespaced Role.")


# Kinds whose create/update/patch runs a pod with any ServiceAccount (and image) of the namespace.
POD_CREATORS: dict[str, tuple[str, ...]] = {
    "": ("pods", "replicationcontrollers"),
    "apps": ("deployments", "replicasets", "statefulsets", "daemonsets"),
    "extensions": ("deployments", "replicasets", "daemonsets"),
    "batch": ("jobs", "cronjobs"),
    "argoproj.io": ("rollouts", "analysisruns", "experiments", "workflows", "cronworkflows"),
    "tekton.dev": ("taskruns", "pipelineruns"),
}


def pod_creation(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        for group, resources in POD_CREATORS.items():
            for resource in resources:
                granted = rule.explicit_grants(group, resource, _MODIFY)
                if granted:
                    named = f" (even limited to {list(rule.resource_names)})" if rule.resource_names else ""
                    yield (f"{rule.where} grants {_names(granted)} on {resource}{named}: a pod template can name any "
                           f"ServiceAccount and image of the namespace, so the holder runs code with that account's "
                           f"rights; drop the verbs, or exempt this object with the reason it must deploy.")


_POD_ACCESS = ("pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy", "nodes/proxy")


def exec_attach_portforward_proxy(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        for resource in _POD_ACCESS:
            # `get` counts too: exec/attach/port-forward over websockets and the kubelet proxy are reached with GET.
            granted = rule.explicit_grants("", resource, {"create", "get"})
            if granted:
                spelled = resource if resource in rule.resources else f"*/{resource.split('/')[1]}"
                yield (f"{rule.where} grants {_names(granted)} on {resource} (as {spelled!r}): a shell in, a "
                       f"tunnel to, or the kubelet API of other workloads; remove it from the rule.")


def ephemeral_containers(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        granted = rule.explicit_grants("", "pods/ephemeralcontainers", {"update", "patch"})
        if granted:
            yield (f"{rule.where} grants {_names(granted)} on pods/ephemeralcontainers: adds a container of any "
                   f"image to a running pod, with its ServiceAccount and volumes; remove it (use `kubectl debug` "
                   f"through a break-glass role instead).")


def persistent_volume_write(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        granted = rule.explicit_grants("", "persistentvolumes", _MODIFY)
        if granted:
            yield (f"{rule.where} grants {_names(granted)} on persistentvolumes: a hostPath PersistentVolume "
                   f"mounts any node directory into a pod; let a StorageClass provision volumes from PVCs instead.")


def namespace_write(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        granted = rule.explicit_grants("", "namespaces", {"update", "patch"})
        if granted:
            yield (f"{rule.where} grants {_names(granted)} on namespaces: the holder can relabel "
                   f"pod-security.kubernetes.io/enforce to privileged and lift Pod Security admission; remove it.")


_API_EXTENSIONS = (
    *(("admissionregistration.k8s.io", r) for r in (
        "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
        "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings")),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "apiservices"),
)


def admission_and_api_extension_writes(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        for group, resource in _API_EXTENSIONS:
            granted = rule.explicit_grants(group, resource, _WRITE)
            if granted:
                yield (f"{rule.where} grants {_names(granted)} on {resource} ({group}): can intercept, rewrite or "
                       f"disable API requests for the whole cluster; grant at most get/list/watch.")


def csr_approval_and_signing(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        for resource in ("certificatesigningrequests/approval", "certificatesigningrequests/status"):
            granted = rule.explicit_grants("certificates.k8s.io", resource, {"update", "patch"})
            if granted:
                yield (f"{rule.where} grants {_names(granted)} on {resource} (approves or issues client "
                       f"certificates, e.g. for system:masters); remove it.")
        granted = rule.explicit_grants("certificates.k8s.io", "signers", {"approve", "sign"})
        if granted:
            yield (f"{rule.where} grants {_names(granted)} on signers (can mint cluster credentials); remove it.")


def aws_auth_configmap_write(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not _affects_kube_system(token, props):
        return
    for rule in role_rules(token, props):
        if rule.resource_names and "aws-auth" not in rule.resource_names:
            continue
        granted = rule.explicit_grants("", "configmaps", {"update", "patch"})
        if granted:
            scope = "kube-system/aws-auth" if rule.resource_names else "configmaps in kube-system, aws-auth included"
            yield (f"{rule.where} grants {_names(granted)} on {scope}: on EKS that ConfigMap maps IAM roles to "
                   f"Kubernetes groups (system:masters); limit the rule with resourceNames to the ConfigMaps it "
                   f"owns, or use a namespaced Role outside kube-system.")


def node_and_status_writes(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for rule in role_rules(token, props):
        for resource, verbs, why in (
                ("nodes", {"update", "patch", "delete"}, "relabel, taint or remove nodes to pull pods onto one you hold"),
                ("nodes/status", {"update", "patch"}, "fake node state to steer scheduling"),
                ("pods/status", {"update", "patch"}, "fake pod state (labels used by Services and NetworkPolicies)"),
                ("services/status", {"update", "patch"}, "set a LoadBalancer IP and intercept traffic (CVE-2020-8554)")):
            granted = rule.explicit_grants("", resource, verbs)
            if granted and not rule.resource_names:
                yield f"{rule.where} grants {_names(granted)} on {resource} (can {why}); remove it."


# --- category 4: secret reads ----------------------------------------------------------------------

def cluster_wide_secret_read(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, "ClusterRole") or is_aggregated_into_default_roles(props):
        return  # an aggregated role's secret read is restrict-aggregate-to-default-roles' to report
    for rule in rules(props):
        granted = rule.explicit_grants("", "secrets", _READ)
        if granted:
            yield (f"{rule.where} grants {_names(granted)} on secrets in a ClusterRole (readable in every namespace "
                   f"it is bound to cluster-wide); move the rule to a namespaced Role bound with a RoleBinding, "
                   f"limited with resourceNames.")


def namespaced_secret_read(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, "Role"):
        return
    namespace = as_map(props.get("metadata")).get("namespace")
    for rule in rules(props):
        granted = rule.explicit_grants("", "secrets", _READ)
        if granted and not rule.resource_names:
            where = " in kube-system (the control plane's own credentials)" if namespace == "kube-system" else ""
            yield (f"{rule.where} grants {_names(granted)} on every secret of the namespace{where}, ServiceAccount "
                   f"tokens and other workloads' credentials included; limit it with resourceNames to the secrets "
                   f"this account owns.")


# --- category 2: bindings --------------------------------------------------------------------------

POWERFUL_ROLES = ("cluster-admin", "admin", "edit")
# Built-in system: ClusterRoles that only read or only delegate authentication checks.
SAFE_SYSTEM_ROLES = frozenset({
    "system:auth-delegator", "system:basic-user", "system:discovery", "system:public-info-viewer",
    "system:aggregate-to-view", "system:heapster", "system:kube-dns", "system:monitoring",
    "system:service-account-issuer-discovery",
})


def binding_powerful_roles(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_BINDINGS):
        return
    ref = as_map(props.get("roleRef"))
    name = ref.get("name")
    if ref.get("kind") != "ClusterRole" or not isinstance(name, str):
        return
    if name in POWERFUL_ROLES:
        yield (f"roleRef binds the built-in {name!r} ClusterRole (write access to almost everything"
               f"{', secrets included' if name != 'edit' else ', secrets included, and pod creation'}); bind a Role "
               f"that lists only the verbs and resources these subjects use.")
    elif name.startswith("system:") and name not in SAFE_SYSTEM_ROLES:
        yield (f"roleRef binds the built-in {name!r} ClusterRole, made for a control-plane component and holding "
               f"write rights; bind a purpose-built Role with only what these subjects use.")


_DEFAULT_SA_USER = re.compile(r"^system:serviceaccount:[^:]+:default$")


def binding_system_subjects(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_BINDINGS):
        return
    for i, subject in enumerate(as_list(props.get("subjects"))):
        subject = as_map(subject)
        kind, name = subject.get("kind"), subject.get("name")
        if not isinstance(name, str):
            continue
        if kind == "Group" and name.startswith("system:"):
            yield (f"subjects[{i}] is the built-in group {name!r} (every member, anonymous callers or every "
                   f"ServiceAccount included, gets these rights); bind the dedicated ServiceAccount instead.")
        elif kind == "User" and name == "system:anonymous":
            yield f"subjects[{i}] is {name!r}: unauthenticated requests get these rights; remove the subject."
        elif kind == "User" and _DEFAULT_SA_USER.match(name):
            yield (f"subjects[{i}] is the 'default' ServiceAccount spelled as a User ({name!r}): every pod without "
                   f"its own account gets these rights; bind a dedicated ServiceAccount (kind: ServiceAccount).")


def namespaced_bindings(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, "ClusterRoleBinding"):
        return
    subjects = [as_map(s) for s in as_list(props.get("subjects"))]
    namespaces = sorted({s.get("namespace") for s in subjects if isinstance(s.get("namespace"), str)})
    where = f" in namespace {namespaces[0]!r}" if len(namespaces) == 1 else ""
    yield (f"ClusterRoleBinding grants its role in every namespace; if the subjects only work{where}, use a "
           f"RoleBinding there (it may still reference the ClusterRole). If cluster-wide rights are really "
           f"needed, add a reasoned exemption.")


# The grants that make a role an escalation path: used by the aggregation policies to judge the roles a
# selector pulls in (every one of them also stands alone as a policy below).
ESCALATION_CHECKS = (wildcard_rbac, escalate_bind_impersonate, token_issuance, pod_creation,
                     exec_attach_portforward_proxy, ephemeral_containers, persistent_volume_write, namespace_write,
                     admission_and_api_extension_writes, csr_approval_and_signing, aws_auth_configmap_write,
                     node_and_status_writes, namespaced_secret_read)


def escalation_rights(token: str, props: Mapping[str, Any]) -> list[str]:
    found = [m for check in ESCALATION_CHECKS for m in check(token, props)]
    # A ClusterRole's secret read, whatever its labels: pulled into another role it is a secret read there too.
    for rule in role_rules(token, props):
        if is_kind(token, RBAC, "ClusterRole") and rule.explicit_grants("", "secrets", _READ):
            found.append(f"{rule.where} reads secrets")
    return found


def grants_write_or_secret_read(rule: Rule) -> str | None:
    """Why a rule must not be aggregated into view/edit/admin: any write verb, or reading secrets."""
    verbs = set(rule.verbs)
    writes = sorted((verbs - _READ) if "*" not in verbs else {"*"})
    if writes:
        return f"{rule.where} grants {', '.join(writes)}"
    if rule.grants("", "secrets", _READ):
        return f"{rule.where} reads secrets"
    return None


POLICIES = (
    Policy("restrict-wildcard-rbac",
           "Roles and ClusterRoles must not use '*' in verbs, resources, apiGroups or nonResourceURLs (any rule).",
           "critical", "Replace every '*' with the explicit verbs, resources, API groups and URLs needed.",
           resource_check=wildcard_rbac, tags=("rbac",)),
    Policy("restrict-escalate-bind-impersonate",
           "Roles must not grant the escalate, bind or impersonate verbs.",
           "critical", "Remove escalate/bind/impersonate; grant the target rights directly instead.",
           resource_check=escalate_bind_impersonate, tags=("rbac",)),
    Policy("restrict-token-issuance",
           "Roles must not create ServiceAccount tokens, nor write Secrets cluster-wide or in kube-system.",
           "critical", "Remove create on serviceaccounts/token; limit secret writes with resourceNames.",
           resource_check=token_issuance, tags=("rbac", "service-accounts")),
    Policy("restrict-pod-creation",
           "Roles must not create/update/patch pods or anything that creates pods (workloads, Jobs, Rollouts, runs).",
           "high", "Drop those verbs; exempt only a deployer that must roll out, with the reason.",
           resource_check=pod_creation, tags=("rbac",)),
    Policy("restrict-exec-attach-portforward-proxy",
           "Roles must not grant create/get on pods/exec, attach, portforward, proxy, services/proxy or nodes/proxy "
           "(also through '*/exec' and the like).",
           "high", "Remove those subresources from the rules.",
           resource_check=exec_attach_portforward_proxy, tags=("rbac",)),
    Policy("restrict-ephemeral-containers",
           "Roles must not update/patch pods/ephemeralcontainers.",
           "high", "Remove pods/ephemeralcontainers; debug through a break-glass role.",
           resource_check=ephemeral_containers, tags=("rbac",)),
    Policy("restrict-persistent-volume-write",
           "Roles must not create/update/patch PersistentVolumes.",
           "high", "Provision volumes through PersistentVolumeClaims and a StorageClass.",
           resource_check=persistent_volume_write, tags=("rbac",)),
    Policy("restrict-namespace-write",
           "Roles must not update/patch Namespaces (Pod Security labels).",
           "high", "Remove update/patch on namespaces.",
           resource_check=namespace_write, tags=("rbac",)),
    Policy("restrict-admission-and-api-extension-writes",
           "Roles must not write webhook configurations, admission policies, CRDs or APIServices.",
           "high", "Grant at most get/list/watch on those objects.",
           resource_check=admission_and_api_extension_writes, tags=("rbac",)),
    Policy("restrict-csr-approval-and-signing",
           "Roles must not approve or sign CertificateSigningRequests.",
           "high", "Remove certificatesigningrequests/approval|status writes and approve/sign on signers.",
           resource_check=csr_approval_and_signing, tags=("rbac",)),
    Policy("restrict-aws-auth-configmap-write",
           "ClusterRoles and kube-system Roles must not update/patch the aws-auth ConfigMap (or all ConfigMaps).",
           "critical", "Limit ConfigMap writes with resourceNames to ConfigMaps the subject owns.",
           resource_check=aws_auth_configmap_write, tags=("rbac",)),
    Policy("restrict-node-and-status-writes",
           "Roles must not modify nodes, nodes/status, pods/status or services/status.",
           "high", "Remove those writes; they belong to the kubelet and controllers.",
           resource_check=node_and_status_writes, tags=("rbac",)),
    Policy("restrict-cluster-wide-secret-read",
           "ClusterRoles must not grant get/list/watch on secrets.",
           "high", "Read secrets through a namespaced Role + RoleBinding, limited with resourceNames.",
           resource_check=cluster_wide_secret_read, tags=("rbac", "secrets")),
    Policy("restrict-namespaced-secret-read",
           "Roles must not read secrets unless limited by resourceNames (kube-system above all).",
           "high", "Add resourceNames with only the secrets this account owns.",
           resource_check=namespaced_secret_read, tags=("rbac", "secrets")),
    Policy("restrict-binding-powerful-roles",
           "No binding may reference cluster-admin, admin, edit or a system: ClusterRole with write rights.",
           "critical", "Bind a purpose-built Role with only the rights the subjects use.",
           resource_check=binding_powerful_roles, tags=("rbac",)),
    Policy("restrict-binding-system-subjects",
           "No binding may name a system: group, system:anonymous, or a namespace's default ServiceAccount as a User.",
           "critical", "Bind the dedicated ServiceAccount (kind: ServiceAccount) that needs the rights.",
           resource_check=binding_system_subjects, tags=("rbac",)),
    Policy("prefer-namespaced-bindings",
           "Prefer RoleBindings over ClusterRoleBindings when the subjects work in one namespace.",
           "low", "Use a RoleBinding in the subjects' namespace, or exempt the binding with a reason.",
           enforcement="advisory", resource_check=namespaced_bindings, tags=("rbac",)),
)
