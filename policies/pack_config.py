"""Per-stack policy-pack config: enforcement overrides and reasoned exemptions.

One format for everything: it is the `--policy-pack-config` file the Pulumi CLI reads, and the
file the checker (`--config`) and the preview (`stacks/policy/<stack>.json`) load.

    {
      "prefer-namespaced-bindings": "advisory",                 # a level, or an object:
      "restrict-cluster-wide-secret-read": {
        "enforcementLevel": "mandatory",                        # optional
        "exemptions": [
          {"kind": "ClusterRole", "name": "tekton-triggers-el", "namespace": null,
           "reason": "why this object genuinely needs the right"}
        ]
      }
    }

`"all": "<level>"` sets every policy's level first (as the CLI does); per-policy levels win.
An exemption matches a resource by kind, by name (metadata.name or the Pulumi resource name) and,
when `namespace` is a string, by namespace. An exemption without a reason is not applied and is
reported as a violation of `require-exemption-reason`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import ResourceRef

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_POLICY_KEYS = {"enforcementLevel", "exemptions"}
_EXEMPTION_KEYS = {"kind", "name", "namespace", "reason", "thirdParty"}

# JSON schema of one policy's config, handed to the CLI so `--policy-pack-config` is validated
# before any resource is analysed (the CLI injects `enforcementLevel` itself).
EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Objects this policy does not apply to, each with the reason it is acceptable.",
    "items": {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "minLength": 1, "description": "Kubernetes kind, e.g. ClusterRole"},
            "name": {"type": "string", "minLength": 1, "description": "metadata.name or Pulumi resource name"},
            "namespace": {"type": ["string", "null"], "description": "null or absent: any namespace"},
            "reason": {"type": "string", "minLength": 1, "description": "why the exemption is acceptable"},
            "thirdParty": {"type": "boolean", "description": "the object comes from a vendor release manifest "
                           "or chart; only the real engine sees it, so the preview does not call it unused"},
        },
        "required": ["kind", "name", "reason"],
        "additionalProperties": False,
    },
}


class PolicyConfigError(ValueError):
    """The pack config is unusable; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Exemption:
    policy: str
    kind: str
    name: str
    namespace: str | None
    reason: str
    # A child of a vendor chart or release manifest: the real engine shows it to the pack, the
    # credential-free preview cannot, so not matching anything there is expected, not stale.
    third_party: bool = False

    def matches(self, ref: ResourceRef, pulumi_name: str = "") -> bool:
        return (self.kind == ref.kind
                and self.name in (ref.name, pulumi_name)
                and (self.namespace is None or self.namespace == ref.namespace))

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "kind": self.kind, "name": self.name,
                "namespace": self.namespace, "reason": self.reason, "thirdParty": self.third_party}


@dataclass(frozen=True)
class PackConfig:
    source: str | None = None
    all_level: str | None = None
    levels: Mapping[str, str] = field(default_factory=dict)
    exemptions: Mapping[str, tuple[Exemption, ...]] = field(default_factory=dict)

    def enforcement(self, policy: str, default: str) -> str:
        return self.levels.get(policy) or self.all_level or default

    def exemption_for(self, policy: str, ref: ResourceRef, pulumi_name: str = "") -> Exemption | None:
        """The reasoned exemption that covers this resource, if any (unreasoned ones never apply)."""
        return first_match(self.exemptions.get(policy, ()), ref, pulumi_name)

    def unreasoned(self) -> list[Exemption]:
        return [e for items in self.exemptions.values() for e in items if not e.reason]

    def all_exemptions(self) -> list[Exemption]:
        return [e for items in self.exemptions.values() for e in items]


def first_match(exemptions: Iterable[Exemption], ref: ResourceRef, pulumi_name: str = "") -> Exemption | None:
    """The first reasoned exemption covering this resource (unreasoned ones never apply)."""
    return next((e for e in exemptions if e.reason and e.matches(ref, pulumi_name)), None)


def parse_exemptions(policy: str, raw: Any, where: str) -> tuple[Exemption, ...]:
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise PolicyConfigError(f"{where}: {policy}.exemptions must be a list of "
                                f"{{kind, name, namespace, reason}} objects")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: {policy}.exemptions[{i}]"
        if not isinstance(item, Mapping):
            raise PolicyConfigError(f"{at} must be an object with kind, name, namespace and reason")
        unknown = sorted(set(item) - _EXEMPTION_KEYS)
        if unknown:
            raise PolicyConfigError(f"{at} has unknown key(s) {', '.join(unknown)}; allowed: "
                                    f"{', '.join(sorted(_EXEMPTION_KEYS))}")
        for key in ("kind", "name"):
            if not isinstance(item.get(key), str) or not item.get(key):
                raise PolicyConfigError(f"{at}.{key} must be a non-empty string (e.g. "
                                        f"{'ClusterRole' if key == 'kind' else 'the object name'})")
        namespace = item.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise PolicyConfigError(f"{at}.namespace must be a string or null")
        third_party = item.get("thirdParty", False)
        if not isinstance(third_party, bool):
            raise PolicyConfigError(f"{at}.thirdParty must be true or false")
        reason = item.get("reason")
        reason = reason.strip() if isinstance(reason, str) else ""
        out.append(Exemption(policy, item["kind"], item["name"], namespace or None, reason, third_party))
    return tuple(out)


def _level(value: Any, at: str) -> str:
    if value not in LEVELS:
        raise PolicyConfigError(f"{at}: {value!r} is not an enforcement level; use one of {', '.join(LEVELS)}")
    return value


def parse_pack_config(data: Any, source: str | None = None, known_policies: Iterable[str] | None = None) -> PackConfig:
    where = source or "policy pack config"
    if not isinstance(data, Mapping):
        raise PolicyConfigError(f"{where}: the top level must be a JSON object keyed by policy name")
    known = set(known_policies) if known_policies is not None else None
    all_level = None
    levels: dict[str, str] = {}
    exemptions: dict[str, tuple[Exemption, ...]] = {}
    for key, value in data.items():
        if key == "all":
            all_level = _level(value, f"{where}: all")
            continue
        if known is not None and key not in known:
            raise PolicyConfigError(f"{where}: {key!r} is not a policy of this pack; known policies: "
                                    f"{', '.join(sorted(known))}")
        if isinstance(value, str):
            levels[key] = _level(value, f"{where}: {key}")
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - _POLICY_KEYS)
            if unknown:
                raise PolicyConfigError(f"{where}: {key} has unknown key(s) {', '.join(unknown)}; allowed: "
                                        f"{', '.join(sorted(_POLICY_KEYS))}")
            if "enforcementLevel" in value:
                levels[key] = _level(value["enforcementLevel"], f"{where}: {key}.enforcementLevel")
            exemptions[key] = parse_exemptions(key, value.get("exemptions"), where)
        else:
            raise PolicyConfigError(f"{where}: {key} must be an enforcement level or an object with "
                                    f"enforcementLevel/exemptions")
    return PackConfig(source, all_level, levels, exemptions)


def load_pack_config(path: Path | str | None, known_policies: Iterable[str]) -> PackConfig:
    """Read a `--policy-pack-config` file; None or a missing file gives the pack's defaults."""
    if path is None:
        return PackConfig()
    path = Path(path)
    if not path.exists():
        return PackConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyConfigError(f"{path}: cannot read policy config: {e.strerror}") from e
    if not text.strip():  # the CLI accepts an empty file too
        return PackConfig(str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    return parse_pack_config(data, str(path), known_policies)
