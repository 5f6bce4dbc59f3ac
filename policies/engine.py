"""Run every policy over a list of resources: the single code path of the preview, the checker and tests.

    from policies.engine import PolicyResource, check_resources, load_pack_config
    report = check_resources(resources, load_pack_config(Path("stacks/policy/dev.json")))
    report.has_mandatory, report.to_dict()

Resources whose type is not a Kubernetes kind some policy knows (components, charts, providers,
random passwords) simply produce no violation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalog
from .catalog import EXEMPTION_REASON_POLICY, policy_names
from .model import Policy, PolicyResource, ResourceRef, Violation
from .pack_config import Exemption, PackConfig, PolicyConfigError, parse_pack_config
from .pack_config import load_pack_config as _load

__all__ = ["PolicyResource", "Violation", "Report", "PolicyCrash", "PackConfig", "PolicyConfigError", "check_resources",
           "load_pack_config", "parse_pack_config"]

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_ENFORCEMENT_RANK = {"mandatory": 0, "advisory": 1}


def load_pack_config(path: Path | str | None) -> PackConfig:
    """`stacks/policy/<stack>.json` (the `--policy-pack-config` file); None or missing -> defaults."""
    return _load(path, policy_names())


@dataclass
class Report:
    violations: list[Violation]
    exempted: list[tuple[Violation, Exemption]] = field(default_factory=list)
    unused_exemptions: list[Exemption] = field(default_factory=list)
    resources_checked: int = 0
    # thirdParty exemptions that matched nothing: expected where vendor objects are not rendered.
    unmatched_third_party: list[Exemption] = field(default_factory=list)

    @property
    def has_mandatory(self) -> bool:
        return any(v.enforcement == "mandatory" for v in self.violations)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement != "mandatory"]

    def summary(self) -> dict[str, Any]:
        return {
            "resources": self.resources_checked,
            "violations": len(self.violations),
            "mandatory": len(self.mandatory),
            "advisory": len(self.advisory),
            "exempted": len(self.exempted),
            "by_policy": dict(sorted(Counter(v.policy for v in self.violations).items())),
            "by_severity": dict(sorted(Counter(v.severity for v in self.violations).items(),
                                       key=lambda kv: _SEVERITY_RANK.get(kv[0], 9))),
            # Exemptions that matched nothing: stale entries to delete (not a failure).
            "unused_exemptions": [e.to_dict() for e in self.unused_exemptions],
            "third_party_exemptions_not_seen": len(self.unmatched_third_party),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "violations": [v.to_dict() for v in self.violations],
            "summary": self.summary(),
            "exempted": [{**v.to_dict(), "reason": e.reason} for v, e in self.exempted],
        }


class PolicyCrash(RuntimeError):
    """A policy raised on a resource: a bug or an unexpected shape. Names the policy and the object.

    `python -m policies check` turns it into exit code 2; the preview treats it as a program error."""

    def __init__(self, policy: str, resource: PolicyResource | None, cause: BaseException):
        self.policy, self.resource, self.cause = policy, resource, cause
        what = f"{ResourceRef.of(resource)} ({resource.type})" if resource is not None else "the stack's resources"
        super().__init__(f"policy {policy} crashed on {what}: {type(cause).__name__}: {cause}")


def _findings(policy: Policy, resources: Sequence[PolicyResource]) -> Iterable[tuple[PolicyResource, str]]:
    if policy.stack_check is not None:
        try:
            found = list(policy.stack_check(resources))
        except Exception as e:  # a bug or an odd shape: say which policy, don't hide it
            raise PolicyCrash(policy.name, None, e) from e
        yield from found
        return
    assert policy.resource_check is not None
    for resource in resources:
        if not isinstance(resource.props, Mapping):
            continue
        try:
            messages = list(policy.resource_check(resource.type, resource.props))
        except Exception as e:  # a bug or an odd shape: say which policy and object, don't hide it
            raise PolicyCrash(policy.name, resource, e) from e
        # A Pipeline's tasks share one podTemplate: the same finding once per object is enough.
        for message in dict.fromkeys(messages):
            yield resource, message


def check_resources(resources: Iterable[PolicyResource], config: PackConfig | None = None,
                    policies: Sequence[Policy] | None = None) -> Report:
    """Every policy over every resource, with the config's enforcement levels and exemptions applied."""
    resources = list(resources)
    config = config or PackConfig()
    policies = catalog.POLICIES if policies is None else policies  # read at call time (tests swap it)
    violations: list[Violation] = []
    exempted: list[tuple[Violation, Exemption]] = []
    used: set[int] = set()
    for policy in policies:
        level = config.enforcement(policy.name, policy.enforcement)
        if level == "disabled":
            continue
        level = "mandatory" if level == "remediate" else level  # nothing here remediates; same as the CLI
        for resource, message in _findings(policy, resources):
            ref = ResourceRef.of(resource)
            violation = Violation(policy.name, level, policy.severity, ref, message)
            exemption = config.exemption_for(policy.name, ref, resource.name)
            if exemption is None:
                violations.append(violation)
            else:
                exempted.append((violation, exemption))
                used.add(id(exemption))
    for exemption in config.unreasoned():
        violations.append(Violation(
            EXEMPTION_REASON_POLICY, "mandatory", "high",
            ResourceRef(exemption.kind, exemption.namespace, exemption.name, config.source),
            f"the exemption of {exemption.kind} {exemption.name!r} from {exemption.policy} has no reason, so it "
            f"is not applied; add \"reason\": \"<why this object needs it>\" or delete the exemption."))
    unused = [e for e in config.all_exemptions() if e.reason and id(e) not in used]
    unseen_third_party = [e for e in unused if e.third_party]
    unused = [e for e in unused if not e.third_party]
    violations.sort(key=lambda v: (_ENFORCEMENT_RANK.get(v.enforcement, 9), _SEVERITY_RANK.get(v.severity, 9),
                                   v.policy, v.resource.kind, v.resource.namespace or "", v.resource.name))
    return Report(violations, exempted, unused, len(resources), unseen_third_party)
