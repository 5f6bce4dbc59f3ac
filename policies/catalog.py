"""Every policy of the pack, in report order. Add a policy to its module's POLICIES and it is live
in the CrossGuard pack, the checker and the preview at once."""

from __future__ import annotations

from . import aggregation, pod_security, rbac, service_accounts, stack_policies
from .model import Policy

POLICIES: tuple[Policy, ...] = (
    rbac.POLICIES + aggregation.POLICIES + service_accounts.POLICIES + pod_security.POLICIES + stack_policies.POLICIES
)

# Not a check over resources but over the config itself: an exemption must say why.
EXEMPTION_REASON_POLICY = "require-exemption-reason"


def policy_names() -> list[str]:
    return [p.name for p in POLICIES]


def get(name: str) -> Policy:
    for policy in POLICIES:
        if policy.name == name:
            return policy
    raise KeyError(f"unknown policy {name!r}; known: {', '.join(policy_names())}")
