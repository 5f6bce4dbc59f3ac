"""The shapes every policy shares: resources in, violations out.

Kept free of pulumi/pulumi_policy imports so the checker and the preview load in milliseconds
and importing a policy never touches the CrossGuard gRPC server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low"]
Enforcement = Literal["mandatory", "advisory", "disabled", "remediate"]


@dataclass(frozen=True)
class PolicyResource:
    """One resource as the engine records it: Pulumi type token, Pulumi name, camelCase inputs.

    `file` is where the object came from when it was read from YAML (None for Pulumi resources).
    """

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    file: str | None = None

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1] if self.type.count(":") >= 2 else self.type

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.props.get("metadata") if isinstance(self.props, Mapping) else None
        return meta if isinstance(meta, Mapping) else {}

    @property
    def object_name(self) -> str:
        """metadata.name when set (what kubectl shows), else the Pulumi resource name."""
        name = self.metadata.get("name")
        return name if isinstance(name, str) and name else self.name

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return ns if isinstance(ns, str) and ns else None


@dataclass(frozen=True)
class ResourceRef:
    kind: str
    namespace: str | None
    name: str
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "file": self.file}

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"

    @classmethod
    def of(cls, resource: PolicyResource) -> ResourceRef:
        return cls(resource.kind, resource.namespace, resource.object_name, resource.file)


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str
    severity: str
    resource: ResourceRef
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "severity": self.severity,
            "resource": self.resource.to_dict(),
            "message": self.message,
        }


# A resource check sees one resource as (type token, camelCase props) and yields one message per
# problem. A stack check sees every resource and yields (offending resource, message).
ResourceCheck = Callable[[str, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[PolicyResource, str]]]


@dataclass(frozen=True)
class Policy:
    """Metadata plus one pure check function. `remediation` is the general fix; messages are specific."""

    name: str
    description: str
    severity: Severity
    remediation: str
    enforcement: Enforcement = "mandatory"
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if (self.resource_check is None) == (self.stack_check is None):
            raise TypeError(f"policy {self.name!r} needs exactly one of resource_check or stack_check")

    @property
    def is_stack_policy(self) -> bool:
        return self.stack_check is not None
