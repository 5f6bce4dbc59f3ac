"""The CrossGuard adapter: the same policy functions, wrapped as pulumi_policy policies.

Building the `Policy` objects is side-effect free; `serve()` is the only thing that constructs
`PolicyPack`, whose constructor starts the analyzer gRPC server, prints its port and blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .catalog import POLICIES
from .engine import PolicyCrash
from .model import Policy, PolicyResource, ResourceRef
from .pack_config import EXEMPTIONS_SCHEMA, Exemption, first_match, parse_exemptions

PACK_NAME = "rag-platform-least-privilege"
PACK_DESCRIPTION = ("Least-privilege RBAC and service accounts, and Pod Security Standards `restricted`, "
                    "for every rag-platform stack.")


def _exemptions(policy: Policy, config: Mapping[str, Any]) -> tuple[Exemption, ...]:
    """This policy's exemptions from its `--policy-pack-config` entry (the CLI hands each policy its own)."""
    return parse_exemptions(policy.name, config.get("exemptions"), "--policy-pack-config")


def _resource_validator(policy: Policy):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = PolicyResource(args.resource_type, args.name, args.props, args.urn)
        try:
            findings = list(dict.fromkeys(policy.resource_check(args.resource_type, args.props)))
        except Exception as e:  # the engine shows this error: name the policy and the object
            raise PolicyCrash(policy.name, resource, e) from e
        if not findings:
            return
        if first_match(_exemptions(policy, args.get_config()), ResourceRef.of(resource), resource.name) is None:
            for message in findings:
                report_violation(message, None)
    return validate


def _stack_validator(policy: Policy):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [PolicyResource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        exemptions = _exemptions(policy, args.get_config())
        try:
            findings = list(policy.stack_check(resources))
        except Exception as e:
            raise PolicyCrash(policy.name, None, e) from e
        for resource, message in findings:
            if first_match(exemptions, ResourceRef.of(resource), resource.name) is None:
                report_violation(message, resource.urn or None)
    return validate


def build_policies(policies: Sequence[Policy] | None = None) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """One pulumi_policy policy per catalog entry; every one accepts `exemptions` in its config."""
    out: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for policy in POLICIES if policies is None else policies:
        common = dict(
            name=policy.name,
            description=policy.description,
            enforcement_level=EnforcementLevel(policy.enforcement),
            config_schema=PolicyConfigSchema(properties={"exemptions": EXEMPTIONS_SCHEMA}),
            severity=Severity(policy.severity),
            tags=list(policy.tags),
            remediation_steps=policy.remediation,
        )
        if policy.is_stack_policy:
            out.append(StackValidationPolicy(validate=_stack_validator(policy), **common))
        else:
            out.append(ResourceValidationPolicy(validate=_resource_validator(policy), **common))
    return out


def pack_arguments() -> dict[str, Any]:
    return dict(name=PACK_NAME, description=PACK_DESCRIPTION, policies=build_policies(),
                enforcement_level=EnforcementLevel.MANDATORY)


def serve() -> None:
    """Start the analyzer for the Pulumi CLI. Blocks until the CLI stops the process."""
    PolicyPack(**pack_arguments())
