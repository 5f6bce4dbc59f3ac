"""A preview against the preview of its base: what a change does, per stack, for a code reviewer.

    python -m infra.preview --all --out build/preview --diff-against build/preview-base

writes `diff.json` (everything) and `summary.md` (short enough for a pull-request comment, one
collapsed <details> per stack) into the head preview's directory. Per stack:

- resources added, removed and changed (by URN), with a field-level diff of their inputs, their
  `dependsOn` and their parent; list items that carry a `name` (containers, env, ports, volumes) are
  matched by name, so inserting one entry is one change, not a shifted list;
- policy verdicts (violations and exemptions) that appear or disappear;
- stack outputs that change.

Secret values never appear: the preview files hold "[secret]" already, and a Secret's data here is
re-redacted whatever the files say; its keys are shown. A change of a secret value is invisible by
design (both sides read "[secret]"); a change of its inputs (length, source) is not.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from .outputs import SECRET, SECRET_DATA_FIELDS, dump_json, write_atomically

DIFF_JSON, SUMMARY_MD = "diff.json", "summary.md"
# GitHub refuses comments over 65,536 characters; stay well under with room for a header.
MAX_SUMMARY_CHARS = 60_000
MAX_VALUE_CHARS = 120
COMMENT_MARKER = "<!-- rag-platform:preview-diff -->"


class DiffError(Exception):
    """The base or head directory is not a readable preview (exit code 2)."""


# ---------------------------------------------------------------- reading previews

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DiffError(f"{path}: not a readable preview file ({exc}); re-run the preview that wrote it") from None


def read_preview(root: Path, status: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`{stack: {"status", "resources", "policy", "outputs"}}` for every stack under `root`.

    `status` overrides index.json for the stacks it names (a single-stack run knows better).
    """
    if not root.is_dir():
        raise DiffError(f"{root}: no such directory (fix: render the base first, e.g. `make preview-diff BASE=<ref>`)")
    index_path = root / "index.json"
    statuses: dict[str, str] = {}
    if index_path.is_file():
        index = _read_json(index_path)
        stacks = index.get("stacks") if isinstance(index, dict) else None
        if not isinstance(stacks, dict):
            raise DiffError(f"{index_path}: no `stacks` map; re-run the preview that wrote it")
        statuses = {str(k): str(v) for k, v in stacks.items()}
    for child in sorted(root.iterdir()):
        if (child / "resources.json").is_file():
            statuses.setdefault(child.name, "ok")
    statuses.update(status or {})
    if not statuses:
        raise DiffError(f"{root}: no stack previews in it (expected <stack>/resources.json from `python -m infra.preview`)")
    previews: dict[str, dict[str, Any]] = {}
    for stack, status in sorted(statuses.items()):
        d = root / stack
        if status == "error" or not (d / "resources.json").is_file():
            previews[stack] = {"status": "error" if status == "error" else "missing"}
            continue
        resources = _read_json(d / "resources.json")
        if not isinstance(resources, list):
            raise DiffError(f"{d / 'resources.json'}: expected a list of resources")
        previews[stack] = {
            "status": status,
            "resources": {r["urn"]: r for r in resources},
            "policy": _read_json(d / "policy.json") if (d / "policy.json").is_file() else {},
            "outputs": _read_json(d / "outputs.json") if (d / "outputs.json").is_file() else {},
        }
    return previews


# ---------------------------------------------------------------- field-level diff

def _named(items: list[Any]) -> dict[str, Any] | None:
    """A list whose items are all dicts with distinct string `name`s, keyed by name; else None."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    names = [i["name"] for i in items]
    return {i["name"]: i for i in items} if len(set(names)) == len(names) else None


def field_changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Every leaf that differs, as {"path", "change": added|removed|changed, "before", "after"}."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append({"path": sub, "change": "added", "after": after[key]})
            elif key not in after:
                out.append({"path": sub, "change": "removed", "before": before[key]})
            else:
                out += field_changes(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list):
        b_named, a_named = _named(before), _named(after)
        if b_named is not None and a_named is not None:
            return field_changes_keyed(b_named, a_named, path)
        out = []
        for i in range(max(len(before), len(after))):
            sub = f"{path}[{i}]"
            if i >= len(before):
                out.append({"path": sub, "change": "added", "after": after[i]})
            elif i >= len(after):
                out.append({"path": sub, "change": "removed", "before": before[i]})
            else:
                out += field_changes(before[i], after[i], sub)
        return out
    if before != after or type(before) is not type(after):
        return [{"path": path, "change": "changed", "before": before, "after": after}]
    return []


def field_changes_keyed(before: dict[str, Any], after: dict[str, Any], path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in sorted(set(before) | set(after)):
        sub = f"{path}[name={name}]"
        if name not in before:
            out.append({"path": sub, "change": "added", "after": after[name]})
        elif name not in after:
            out.append({"path": sub, "change": "removed", "before": before[name]})
        else:
            out += field_changes(before[name], after[name], sub)
    return out


def _redact_secret_data(resource: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Secret's data maps as keys -> "[secret]", whatever the preview file holds."""
    inputs = dict(resource.get("inputs") or {})
    if resource.get("type") == "kubernetes:core/v1:Secret":
        for key in SECRET_DATA_FIELDS:
            if key in inputs:
                value = inputs[key]
                inputs[key] = {str(k): SECRET for k in value} if isinstance(value, dict) else SECRET
    return inputs


def resource_changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Input paths as the manifest spells them; Pulumi's own fields as `@dependsOn` and `@parent`."""
    pulumi_fields = [{"@dependsOn": r.get("dependsOn", []), "@parent": r.get("parent", "")} for r in (before, after)]
    return (field_changes(_redact_secret_data(before), _redact_secret_data(after))
            + field_changes(*pulumi_fields))


def describe_resource(resource: dict[str, Any]) -> dict[str, Any]:
    inputs = resource.get("inputs") or {}
    meta = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else {}
    out = {"urn": resource["urn"], "type": resource.get("type", ""), "name": resource.get("name", "")}
    if isinstance(inputs.get("kind"), str) and meta.get("name"):
        out["kind"] = inputs["kind"]
        out["namespace"] = meta.get("namespace")
        out["objectName"] = meta["name"]
    return out


# ---------------------------------------------------------------- per stack

def _verdicts(policy: dict[str, Any], field: str) -> dict[str, dict[str, Any]]:
    out = {}
    for v in policy.get(field) or []:
        res = v.get("resource") or {}
        key = json.dumps([v.get("policy"), v.get("enforcement"), res.get("kind"), res.get("namespace"),
                          res.get("name"), v.get("message"), v.get("reason")], sort_keys=True)
        out[key] = {k: v.get(k) for k in ("policy", "enforcement", "severity", "message", "reason") if k in v} | {
            "resource": {"kind": res.get("kind"), "namespace": res.get("namespace"), "name": res.get("name")}}
    return out


def _appear_disappear(base: dict[str, Any], head: dict[str, Any], field: str) -> tuple[list, list]:
    b, h = _verdicts(base, field), _verdicts(head, field)
    return [h[k] for k in sorted(set(h) - set(b))], [b[k] for k in sorted(set(b) - set(h))]


def diff_stack(base: dict[str, Any] | None, head: dict[str, Any] | None) -> dict[str, Any]:
    status = {"base": base["status"] if base else "absent", "head": head["status"] if head else "absent"}
    result: dict[str, Any] = {"status": status, "resources": {"added": [], "removed": [], "changed": []},
                              "policy": {"appeared": [], "disappeared": [], "exemptionsAppeared": [],
                                         "exemptionsDisappeared": []},
                              "outputs": []}
    # A side that did not render says nothing about resources: never report them all as removed.
    if (base and "resources" not in base) or (head and "resources" not in head):
        result["comparable"] = False
        return result
    result["comparable"] = True
    b_res = base["resources"] if base else {}
    h_res = head["resources"] if head else {}
    res = result["resources"]
    res["added"] = [describe_resource(h_res[u]) for u in sorted(set(h_res) - set(b_res))]
    res["removed"] = [describe_resource(b_res[u]) for u in sorted(set(b_res) - set(h_res))]
    for urn in sorted(set(b_res) & set(h_res)):
        changes = resource_changes(b_res[urn], h_res[urn])
        if changes:
            res["changed"].append(describe_resource(h_res[urn]) | {"changes": changes})
    b_pol, h_pol = (base or {}).get("policy", {}), (head or {}).get("policy", {})
    pol = result["policy"]
    pol["appeared"], pol["disappeared"] = _appear_disappear(b_pol, h_pol, "violations")
    pol["exemptionsAppeared"], pol["exemptionsDisappeared"] = _appear_disappear(b_pol, h_pol, "exempted")
    result["outputs"] = field_changes((base or {}).get("outputs", {}), (head or {}).get("outputs", {}))
    return result


def _counts(d: dict[str, Any]) -> dict[str, int]:
    r, p = d["resources"], d["policy"]
    return {"added": len(r["added"]), "changed": len(r["changed"]), "removed": len(r["removed"]),
            "violationsAppeared": len(p["appeared"]), "violationsDisappeared": len(p["disappeared"]),
            "exemptionsChanged": len(p["exemptionsAppeared"]) + len(p["exemptionsDisappeared"]),
            "outputsChanged": len(d["outputs"])}


def diff_previews(base_dir: Path, head_dir: Path, stacks: list[str] | None = None,
                  head_status: dict[str, str] | None = None) -> dict[str, Any]:
    base, head = read_preview(base_dir), read_preview(head_dir, head_status)
    names = sorted(set(base) | set(head)) if stacks is None else sorted(stacks)
    per_stack = {}
    for s in names:
        d = diff_stack(base.get(s), head.get(s))
        d["counts"] = _counts(d)
        per_stack[s] = d
    totals = {k: sum(d["counts"][k] for d in per_stack.values()) for k in _counts(diff_stack(None, None))}
    changed = [s for s, d in per_stack.items() if any(d["counts"].values()) or not d["comparable"]]
    totals["summary"] = (f"{totals['added']} added, {totals['changed']} changed, {totals['removed']} removed, "
                         f"{totals['violationsAppeared']} new violation(s) in {len(changed)} of {len(per_stack)} stack(s)")
    return {"stacks": per_stack, "totals": totals}


# ---------------------------------------------------------------- Markdown

def code(text: str) -> str:
    """An inline code span that survives backticks, pipes and newlines in `text` (hostile names)."""
    text = text.replace("\r", "").replace("\n", "\u23ce")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def value_text(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "\u2026"


def resource_label(r: dict[str, Any]) -> str:
    if "kind" in r:
        where = f"{r['namespace']}/" if r.get("namespace") else ""
        return f"{code(r['kind'] + ' ' + where + r['objectName'])}"
    return f"{code(r['type'] + ' ' + r['name'])}"


def _change_line(c: dict[str, Any]) -> str:
    path = code(c["path"] or "(whole value)")
    if c["change"] == "added":
        return f"  - {path}: added {code(value_text(c['after']))}"
    if c["change"] == "removed":
        return f"  - {path}: removed (was {code(value_text(c['before']))})"
    return f"  - {path}: {code(value_text(c['before']))} \u2192 {code(value_text(c['after']))}"


def _verdict_line(v: dict[str, Any]) -> str:
    r = v["resource"]
    where = f"{r['namespace']}/" if r.get("namespace") else ""
    what = f"[{v.get('enforcement', '')}] {v.get('policy', '')}"
    text = v.get("reason") or v.get("message") or ""
    obj = f"{r.get('kind')} {where}{r.get('name')}"
    return f"- {code(what)} on {code(obj)}: {html.escape(text[:300])}"


def stack_lines(d: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if not d["comparable"]:
        st = d["status"]
        lines.append(f"Not compared: base {code(st['base'])}, head {code(st['head'])} "
                     "(a stack that did not render; see the preview log).")
        return lines
    res, pol = d["resources"], d["policy"]
    for title, items in (("Added", res["added"]), ("Removed", res["removed"])):
        if items:
            lines.append(f"**{title}**")
            lines += [f"- {resource_label(r)}" for r in items]
    if res["changed"]:
        lines.append("**Changed**")
        for r in res["changed"]:
            lines.append(f"- {resource_label(r)}")
            lines += [_change_line(c) for c in r["changes"]]
    for title, items in (("New policy violations", pol["appeared"]), ("Resolved policy violations", pol["disappeared"]),
                         ("New exemptions", pol["exemptionsAppeared"]),
                         ("Exemptions no longer used", pol["exemptionsDisappeared"])):
        if items:
            lines.append(f"**{title}**")
            lines += [_verdict_line(v) for v in items]
    if d["outputs"]:
        lines.append("**Stack outputs**")
        lines += [_change_line(c).replace("  - ", "- ", 1) for c in d["outputs"]]
    return lines


def render_summary(result: dict[str, Any], max_chars: int = MAX_SUMMARY_CHARS) -> str:
    stacks = result["stacks"]
    head = [COMMENT_MARKER, "### Stack preview", "",
            f"{result['totals']['summary']}.", "",
            "| Stack | Added | Changed | Removed | New violations | Resolved | Outputs | Rendered (base / head) |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s, d in stacks.items():
        c = d["counts"]
        cell = code(s).replace("|", "\\|")  # a pipe would end the table cell, even in a code span
        head.append(f"| {cell} | {c['added']} | {c['changed']} | {c['removed']} | {c['violationsAppeared']} | "
                    f"{c['violationsDisappeared']} | {c['outputsChanged']} | "
                    f"{d['status']['base']} / {d['status']['head']} |")
    head.append("")
    footer = ["", "<sub>Full field-level diff: `diff.json` next to this summary. Secret values are never shown.</sub>"]
    budget = max_chars - len("\n".join(head + footer)) - 200
    per_stack = max(500, budget // max(1, len(stacks)))
    body: list[str] = []
    for s, d in stacks.items():
        lines = stack_lines(d)
        if not lines:
            continue
        kept, used = [], 0
        for i, line in enumerate(lines):
            if used + len(line) + 1 > per_stack:
                kept.append(f"- \u2026 {len(lines) - i} more line(s) in `diff.json`")
                break
            kept.append(line)
            used += len(line) + 1
        c = d["counts"]
        title = (f"{c['added']} added, {c['changed']} changed, {c['removed']} removed"
                 + (f", {c['violationsAppeared']} new violation(s)" if c["violationsAppeared"] else "")
                 + (f", {c['outputsChanged']} output(s)" if c["outputsChanged"] else ""))
        if not d["comparable"]:
            title = "not compared"
        body += [f"<details><summary><b>{html.escape(s)}</b>: {title}</summary>", "", *kept, "", "</details>"]
    if not body:
        body = ["No change in any stack."]
    text = "\n".join(head + body + footer) + "\n"
    if len(text) > max_chars:  # many stacks, each at its floor: cut whole, and say so
        text = text[:max_chars - 100].rsplit("\n", 1)[0]
        if text.count("<details>") > text.count("</details>"):
            text += "\n\n</details>"
        text += "\n\n\u2026 cut to fit a comment; see `diff.json`.\n"
    return text


def write_diff(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / DIFF_JSON, out / SUMMARY_MD
    write_atomically(json_path, dump_json(result))
    write_atomically(md_path, render_summary(result))
    return json_path, md_path
