"""Stack files read the way the Pulumi CLI reads them, for the preview's mock engine.

`stacks/Pulumi.<stack>.yaml` becomes the CLI's flat config map: project-namespaced keys, objects and
lists as JSON strings, and `secure:` values (which only the CLI can decrypt) as recognisable
placeholders, marked secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT = "rag-platform"
# Recognisable fake values: tests grep the preview output for these to prove nothing leaks.
PLACEHOLDER_PREFIX = "PREVIEW-PLACEHOLDER-"


class PreviewError(Exception):
    """The stack file or the program is broken (exit code 2)."""


def stack_names(stacks_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def load_stack_file(path: Path, project: str = PROJECT) -> tuple[dict[str, str], set[str]]:
    """Flatten a stack file into the CLI's config map: `{"ns:key": "string or JSON"}` plus secret keys."""
    if not path.is_file():
        raise PreviewError(f"{path}: stack file not found (fix: create it, see docs/platform.md 'Adding a stack')")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PreviewError(f"{path}: not valid YAML: {exc}") from None
    raw = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise PreviewError(f"{path}: no `config:` mapping (fix: put every key under a top-level `config:`)")
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # The CLI would decrypt this; the preview never can, so a recognisable placeholder stands in.
            config[full] = f"{PLACEHOLDER_PREFIX}{full}"
            secret_keys.add(full)
        elif isinstance(value, (dict, list)):
            if _has_secure(value):
                secret_keys.add(full)
                value = _replace_secure(value, full)
            config[full] = json.dumps(value)
        elif isinstance(value, bool):
            config[full] = "true" if value else "false"
        elif value is None:
            config[full] = "null"
        else:
            config[full] = str(value)
    return config, secret_keys


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return f"{PLACEHOLDER_PREFIX}{key}"
        return {k: _replace_secure(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, key) for v in value]
    return value
