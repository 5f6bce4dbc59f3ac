"""ClusterRole aggregation, resolved across every object checked together (stack policies).

The controller-manager copies into a ClusterRole with an `aggregationRule` the rules of every ClusterRole
its selectors match, in the whole cluster. So a selector is judged twice: against the labels the
built-in roles carry (they exist in every cluster, whether or not they are in the manifests) and
against the ClusterRoles checked with it. And a ClusterRole labelled
`rbac.authorization.k8s.io/aggregate-to-{view,edit,admin}: "true"` gives its rules to every holder
of those built-in roles.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .k8s import RBAC, as_list, as_map, is_kind, labels, rules, strings
from .model import Policy, PolicyResource
from .rbac import AGGREGATE_TO_DEFAULT_ROLES, escalation_rights, grants_write_or_secret_read

_BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}
# Labels of roles every cluster has: the bootstrap roles (cluster-admin, system:*), the built-in
# aggregate-to-* roles, and anything a vendor aggregated into admin/edit/view.
BUILT_IN_LABEL_SETS: tuple[tuple[str, Mapping[str, str]], ...] = (
    ("the bootstrap roles (cluster-admin and every system: role)", _BOOTSTRAP),
    *((f"system:aggregate-to-{r} and every role aggregated into {r}",
       {**_BOOTSTRAP, f"rbac.authorization.k8s.io/aggregate-to-{r}": "true"}) for r in ("admin", "edit", "view")),
    *((f"every role aggregated into {r}", {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true"})
      for r in ("admin", "edit", "view")),
)


def selector_matches(selector: Any, object_labels: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; an empty selector matches
    everything; an invalid expression matches nothing (the controller rejects the selector)."""
    selector = as_map(selector)
    for key, value in as_map(selector.get("matchLabels")).items():
        if object_labels.get(key) != value:
            return False
    for expr in as_list(selector.get("matchExpressions")):
        expr = as_map(expr)
        key, op, values = expr.get("key"), expr.get("operator"), strings(expr.get("values"))
        present = key in object_labels
        if op == "In" and not (present and object_labels[key] in values):
            return False
        if op == "NotIn" and present and object_labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _selectors(r: PolicyResource) -> list[tuple[int, Any]]:
    if not is_kind(r.type, RBAC, "ClusterRole"):
        return []
    rule = as_map(r.props.get("aggregationRule"))
    return list(enumerate(as_list(rule.get("clusterRoleSelectors"))))


def _cluster_roles(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    return [r for r in resources if is_kind(r.type, RBAC, "ClusterRole")]


def aggregated_roles(aggregator: PolicyResource, resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """The ClusterRoles among `resources` that `aggregator`'s selectors pull in."""
    out = []
    for role in _cluster_roles(resources):
        if role is not aggregator and any(selector_matches(s, labels(role.props)) for _, s in _selectors(aggregator)):
            out.append(role)
    return out


def rbac_aggregation(resources: Sequence[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    roles = _cluster_roles(resources)
    for r in roles:
        for i, selector in _selectors(r):
            where = f"aggregationRule.clusterRoleSelectors[{i}]"
            built_in = [what for what, lbls in BUILT_IN_LABEL_SETS if selector_matches(selector, lbls)]
            if built_in:
                yield r, (f"{where} matches {built_in[0]}, which exist in every cluster: this ClusterRole "
                          f"collects their rights (up to cluster-admin); select only a label your own roles carry, "
                          f"e.g. matchLabels: {{example.com/aggregate-to-{r.object_name}: \"true\"}}.")
                continue
            for other in roles:
                if other is r or not selector_matches(selector, labels(other.props)):
                    continue
                reasons = escalation_rights(other.type, other.props)
                if reasons:
                    yield r, (f"{where} pulls in ClusterRole {other.object_name!r}, which escalates "
                              f"({reasons[0].split(';')[0]}); whoever is bound to {r.object_name!r} gets it. "
                              f"Narrow the selector or remove the right from {other.object_name!r}.")


def aggregate_to_default_roles(resources: Sequence[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    for r in _cluster_roles(resources):
        targets = [k.rsplit("-", 1)[-1] for k in AGGREGATE_TO_DEFAULT_ROLES if labels(r.props).get(k) == "true"]
        if not targets:
            continue
        holders = "/".join(targets)
        sources = [("", r)] + [(f"ClusterRole {o.object_name!r} (aggregated into this one) ", o)
                               for o in aggregated_roles(r, resources)]
        for prefix, source in sources:
            for rule in rules(source.props):
                reason = grants_write_or_secret_read(rule)
                if reason:
                    yield r, (f"{prefix}{reason}, and the role is labelled aggregate-to-{holders}: every subject "
                              f"bound to the built-in {holders} role gets it, in every namespace. Keep only "
                              f"get/list/watch on non-secret resources here, and grant the rest with a role of its own.")


POLICIES = (
    Policy("restrict-rbac-aggregation",
           "A ClusterRole's aggregationRule must not select built-in roles or roles with escalation rights.",
           "critical", "Select only a label your own, least-privilege ClusterRoles carry.",
           stack_check=rbac_aggregation, tags=("rbac", "stack")),
    Policy("restrict-aggregate-to-default-roles",
           "ClusterRoles labelled aggregate-to-view/edit/admin must be read-only and must not read secrets.",
           "critical", "Drop write verbs and secret reads, or drop the aggregate-to-* label.",
           stack_check=aggregate_to_default_roles, tags=("rbac", "stack")),
)
