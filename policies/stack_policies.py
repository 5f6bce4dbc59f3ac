"""Stack-level checks: they need every resource at once (who references what)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .k8s import (RBAC, as_map, event_listener_service_account, is_kind, is_parameter, pod_service_account,
                  pod_templates, tekton_runs)
from .aggregation import aggregated_roles
from .model import Policy, PolicyResource

_AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"


def _same_namespace(a: str | None, b: str | None) -> bool:
    # Manifests checked without a namespace (applied with `kubectl -n`) match any namespace.
    return a is None or b is None or a == b


def _service_account_references(r: PolicyResource) -> Iterator[tuple[str, str | None, str]]:
    """(where, namespace, name) for every ServiceAccount this resource makes pods run as."""
    for pod in pod_templates(r.type, r.props):
        sa = None if pod.tekton else pod_service_account(pod.pod)
        if sa:
            yield f"{pod.path}.serviceAccountName", r.namespace, sa
    for run in tekton_runs(r.type, r.props):
        if run.service_account:
            yield run.path, run.namespace or r.namespace, run.service_account
    listener_sa = event_listener_service_account(r.type, r.props)
    if listener_sa:
        yield "spec.serviceAccountName", r.namespace, listener_sa


def service_accounts_exist(resources: Sequence[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    declared = [(r.namespace, r.object_name) for r in resources if is_kind(r.type, "core", "ServiceAccount")]
    for r in resources:
        for where, namespace, name in _service_account_references(r):
            # 'default' always exists (restrict-default-service-account forbids it); parameters resolve later.
            if name == "default" or is_parameter(name):
                continue
            if not any(n == name and _same_namespace(ns, namespace) for ns, n in declared):
                in_ns = f" in namespace {namespace!r}" if namespace else ""
                yield r, (f"{where} names ServiceAccount {name!r}{in_ns}, which this stack does not declare; "
                          f"add that ServiceAccount to the stack (or fix the name), or pods will fail to start.")


def unbound_roles(resources: Sequence[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    refs = []
    for r in resources:
        if is_kind(r.type, RBAC, "RoleBinding", "ClusterRoleBinding"):
            ref = as_map(r.props.get("roleRef"))
            refs.append((r.kind, r.namespace, ref.get("kind"), ref.get("name")))
    for r in resources:
        if is_kind(r.type, RBAC, "Role"):
            if not any(bk == "RoleBinding" and rk == "Role" and rn == r.object_name and _same_namespace(ns, r.namespace)
                       for bk, ns, rk, rn in refs):
                yield r, (f"Role {r.object_name!r} is not referenced by any RoleBinding in its namespace; bind it "
                          f"to the ServiceAccount that needs it, or delete it.")
        elif is_kind(r.type, RBAC, "ClusterRole"):
            labels = as_map(r.metadata.get("labels"))
            if any(k.startswith(_AGGREGATE_LABEL) and v == "true" for k, v in labels.items()):
                continue  # aggregated into another ClusterRole, which is what gets bound
            if any(r in aggregated_roles(a, resources) for a in resources if is_kind(a.type, RBAC, "ClusterRole")):
                continue  # aggregated by a ClusterRole checked with it
            if not any(rk == "ClusterRole" and rn == r.object_name for _, _, rk, rn in refs):
                yield r, (f"ClusterRole {r.object_name!r} is not referenced by any RoleBinding or "
                          f"ClusterRoleBinding; bind it to the ServiceAccount that needs it, or delete it.")


POLICIES = (
    Policy("require-service-accounts-exist",
           "Every ServiceAccount a workload or Tekton run names is declared in the same stack.",
           "high", "Declare the ServiceAccount next to the workload that uses it.",
           stack_check=service_accounts_exist, tags=("service-accounts", "stack")),
    Policy("restrict-unbound-roles",
           "Every Role and ClusterRole is referenced by a binding (no dead or stray grants).",
           "medium", "Bind the role to the ServiceAccount that needs it, or delete it.",
           stack_check=unbound_roles, tags=("rbac", "stack")),
)
