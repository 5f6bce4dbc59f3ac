"""Least-privilege RBAC: one check per forbidden grant. Every rule of a Role is read, not only rules[0]."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .k8s import RBAC, as_list, as_map, is_kind, rules
from .model import Policy

_ROLES = ("Role", "ClusterRole")
_BINDINGS = ("RoleBinding", "ClusterRoleBinding")
_READ = {"get", "list", "watch"}
_WRITE = {"create", "update", "patch", "delete", "deletecollection"}


def _role_kind(token: str) -> str:
    return token.rsplit(":", 1)[-1]


def wildcard_rbac(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_ROLES):
        return
    examples = {"verbs": "[get, list, watch]", "resources": "[configmaps, pods]", "apiGroups": '["", apps]'}
    for rule in rules(props):
        for field, values in (("verbs", rule.verbs), ("resources", rule.resources), ("apiGroups", rule.api_groups)):
            if "*" in values:
                yield (f"{rule.where}.{field} contains '*'; list the exact {field} this {_role_kind(token)} "
                       f"needs (e.g. {field}: {examples[field]}) instead of a wildcard.")


def binding_cluster_admin(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_BINDINGS):
        return
    ref = as_map(props.get("roleRef"))
    if ref.get("kind") == "ClusterRole" and ref.get("name") == "cluster-admin":
        yield ("roleRef binds the built-in 'cluster-admin' ClusterRole; bind a Role (or ClusterRole) that "
               "lists only the verbs and resources these subjects use.")


def escalate_bind_impersonate(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_ROLES):
        return
    for rule in rules(props):
        found = sorted({"escalate", "bind", "impersonate"} & set(rule.verbs))
        if found:
            yield (f"{rule.where}.verbs grants {', '.join(found)} (lets the holder gain rights it was not "
                   f"given); remove {'these verbs' if len(found) > 1 else 'this verb'} from the rule.")


def cluster_wide_secret_read(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, "ClusterRole"):
        return
    for rule in rules(props):
        granted = rule.grants("", "secrets", _READ)
        if granted and "*" not in rule.resources:  # a wildcard is reported by restrict-wildcard-rbac
            yield (f"{rule.where} grants {', '.join(sorted(granted))} on secrets in a ClusterRole (readable in "
                   f"every namespace); move the rule to a namespaced Role bound with a RoleBinding, ideally "
                   f"limited with resourceNames.")


_EXEC_LIKE = ("pods/exec", "pods/attach", "nodes/proxy")


def exec_attach_proxy(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_ROLES):
        return
    for rule in rules(props):
        for resource in _EXEC_LIKE:
            # `get` counts too: exec/attach over websockets and the kubelet proxy are reached with GET.
            granted = rule.grants("", resource, {"create", "get"})
            if granted and "*" not in rule.resources:
                yield (f"{rule.where} grants {', '.join(sorted(granted))} on {resource} (a shell in, or the "
                       f"kubelet API of, other workloads); remove {resource} from the rule.")


_ADMISSION = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations",
              "validatingadmissionpolicies", "validatingadmissionpolicybindings",
              "mutatingadmissionpolicies", "mutatingadmissionpolicybindings")


def admission_and_csr_rights(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, *_ROLES):
        return
    for rule in rules(props):
        if "*" in rule.resources or "*" in rule.api_groups:
            continue  # reported by restrict-wildcard-rbac
        for resource in _ADMISSION:
            granted = rule.grants("admissionregistration.k8s.io", resource, _WRITE)
            if granted:
                yield (f"{rule.where} grants {', '.join(sorted(granted))} on {resource} (can intercept or "
                       f"disable admission for the whole cluster); grant at most get/list/watch.")
        granted = rule.grants("certificates.k8s.io", "certificatesigningrequests/approval", {"update", "patch"})
        if granted:
            yield (f"{rule.where} grants {', '.join(sorted(granted))} on certificatesigningrequests/approval "
                   f"(can approve client certificates for any identity); remove it.")
        granted = rule.grants("certificates.k8s.io", "signers", {"approve", "sign"})
        if granted:
            yield (f"{rule.where} grants {', '.join(sorted(granted))} on signers (can mint cluster "
                   f"credentials); remove it.")


def namespaced_bindings(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(token, RBAC, "ClusterRoleBinding"):
        return
    subjects = [as_map(s) for s in as_list(props.get("subjects"))]
    namespaces = sorted({s.get("namespace") for s in subjects if isinstance(s.get("namespace"), str)})
    where = f" in namespace {namespaces[0]!r}" if len(namespaces) == 1 else ""
    yield (f"ClusterRoleBinding grants its role in every namespace; if the subjects only work{where}, use a "
           f"RoleBinding there (it may still reference the ClusterRole). If cluster-wide rights are really "
           f"needed, add a reasoned exemption.")


POLICIES = (
    Policy("restrict-wildcard-rbac",
           "Roles and ClusterRoles must not use '*' in verbs, resources or apiGroups (in any rule).",
           "critical", "Replace every '*' with the explicit verbs, resources and API groups needed.",
           resource_check=wildcard_rbac, tags=("rbac",)),
    Policy("restrict-binding-cluster-admin",
           "No RoleBinding or ClusterRoleBinding may bind the cluster-admin ClusterRole.",
           "critical", "Bind a purpose-built Role with only the rights the subjects use.",
           resource_check=binding_cluster_admin, tags=("rbac",)),
    Policy("restrict-escalate-bind-impersonate",
           "Roles must not grant the escalate, bind or impersonate verbs.",
           "critical", "Remove escalate/bind/impersonate; grant the target rights directly instead.",
           resource_check=escalate_bind_impersonate, tags=("rbac",)),
    Policy("restrict-cluster-wide-secret-read",
           "ClusterRoles must not grant get/list/watch on secrets.",
           "high", "Read secrets through a namespaced Role + RoleBinding, limited with resourceNames.",
           resource_check=cluster_wide_secret_read, tags=("rbac", "secrets")),
    Policy("restrict-exec-attach-proxy",
           "Roles must not grant create/get on pods/exec, pods/attach or nodes/proxy.",
           "high", "Remove pods/exec, pods/attach and nodes/proxy from the rules.",
           resource_check=exec_attach_proxy, tags=("rbac",)),
    Policy("restrict-admission-and-csr-rights",
           "Roles must not modify admission webhook/policy configurations or approve/sign certificate requests.",
           "high", "Drop write verbs on admissionregistration.k8s.io objects and CSR approval/signing rights.",
           resource_check=admission_and_csr_rights, tags=("rbac",)),
    Policy("prefer-namespaced-bindings",
           "Prefer RoleBindings over ClusterRoleBindings when the subjects work in one namespace.",
           "low", "Use a RoleBinding in the subjects' namespace, or exempt the binding with a reason.",
           enforcement="advisory", resource_check=namespaced_bindings, tags=("rbac",)),
)
