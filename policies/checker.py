"""`python -m policies check PATH... [--format text|json] [--config FILE]`: the pack on plain manifests.

PATH is a YAML file, a directory (every *.yaml/*.yml below it) or `-` for stdin. Documents may be
multi-document streams and `kind: List` objects. Each object becomes a PolicyResource with its
Pulumi type token (`kubernetes:<group>/<version>:<Kind>`, core group `core`) and goes through
`policies.engine.check_resources`, exactly like the preview.

Exit codes: 0 no mandatory violation, 1 at least one, 2 unreadable input or config, or a policy that
crashed (stderr names the policy and the object).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from .engine import PolicyConfigError, PolicyCrash, PolicyResource, Report, check_resources, load_pack_config
from .k8s import type_token

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT = 0, 1, 2
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Input the checker cannot read; the message names the file (and line for YAML errors)."""


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not files:
            raise InputError(f"{path}: directory holds no *.yaml or *.yml files")
        return files
    if path.is_file():
        return [path]
    raise InputError(f"{path}: no such file or directory")


def _objects(doc: Any) -> Iterator[dict[str, Any]]:
    """The objects of one document: itself, or the items of a `kind: List` (non-objects yield {})."""
    if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _objects(item)
    else:
        yield doc if isinstance(doc, dict) else {}


def parse_stream(text: str, source: str) -> tuple[list[PolicyResource], int]:
    """(resources, skipped documents) from one YAML stream; YAML errors name the source and line."""
    resources, skipped = [], 0
    try:
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{source}{line}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise InputError(f"{source}: invalid YAML: {e}") from e
    for index, doc in enumerate(docs):
        if doc is None:
            continue  # empty document (a trailing `---`, or only comments)
        for obj in _objects(doc):
            api_version, kind = obj.get("apiVersion"), obj.get("kind")
            if not (isinstance(api_version, str) and isinstance(kind, str)):
                skipped += 1  # not a Kubernetes object (e.g. a Helm values file in the same directory)
                continue
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            name = meta.get("name") if isinstance(meta.get("name"), str) else f"{kind}#{index}"
            resources.append(PolicyResource(type=type_token(api_version, kind), name=name, props=obj, file=source))
    return resources, skipped


def load_manifests(paths: Sequence[str], stdin: TextIO | None = None) -> tuple[list[PolicyResource], int]:
    resources: list[PolicyResource] = []
    skipped = 0
    for raw in paths:
        if raw == "-":
            found, n = parse_stream((stdin or sys.stdin).read(), "<stdin>")
            resources += found
            skipped += n
            continue
        for file in _yaml_files(Path(raw)):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"{file}: cannot read: {getattr(e, 'strerror', None) or e}") from e
            found, n = parse_stream(text, str(file))
            resources += found
            skipped += n
    return resources, skipped


def format_text(report: Report, skipped: int) -> str:
    lines = []
    for v in report.violations:
        where = f"  ({v.resource.file})" if v.resource.file else ""
        lines.append(f"{v.enforcement.upper():<9} {v.severity:<8} {v.policy}  {v.resource}{where}")
        lines.append(f"    {v.message}")
    s = report.summary()
    lines.append(f"{s['violations']} violation(s): {s['mandatory']} mandatory, {s['advisory']} advisory; "
                 f"{s['exempted']} exempted; {s['resources']} object(s) checked"
                 + (f"; {skipped} document(s) without apiVersion/kind skipped" if skipped else ""))
    for e in report.unused_exemptions:
        lines.append(f"note: exemption of {e.kind} {e.name!r} from {e.policy} matched nothing; delete it if stale")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m policies check",
        description="Check Kubernetes manifests against the rag-platform policy pack.",
        epilog="Exit codes: 0 no mandatory violation, 1 at least one, 2 unreadable input or config, or a "
               "policy that crashed (the message names the policy and the object).")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="YAML file, directory (recursive *.yaml/*.yml) or - for stdin")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="policy pack config (stacks/policy/<stack>.json): levels and exemptions")
    return parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    try:
        if args.config is not None and not args.config.is_file():
            raise InputError(f"{args.config}: policy config file not found")
        config = load_pack_config(args.config)
        resources, skipped = load_manifests(args.paths, stdin)
    except (InputError, PolicyConfigError) as e:
        print(f"policies check: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        report = check_resources(resources, config)
    except PolicyCrash as e:  # a bug in a policy, or a shape it cannot read: never "no violation"
        where = f" ({e.resource.file})" if e.resource is not None and e.resource.file else ""
        print(f"policies check: error: {e}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.format == "json":
        data = report.to_dict()
        data["summary"]["skipped_documents"] = skipped
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(format_text(report, skipped) + "\n")
    return EXIT_VIOLATIONS if report.has_mandatory else EXIT_OK
