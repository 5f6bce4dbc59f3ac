"""The gate's report: JSON (for machines and the pipeline's artifacts) and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.eval.runner import QuestionResult

REPORT_VERSION = 1


def build_report(*, metrics: dict[str, Any], checks: list[dict[str, Any]], results: list[QuestionResult],
                 k: int, context: dict[str, Any]) -> dict[str, Any]:
    misses = [r.as_dict() for r in results if r.recall < 1.0]
    unsupported = [r.as_dict() for r in results if r.support is not None and r.support < 1.0]
    return {
        "version": REPORT_VERSION,
        **context,
        "k": k,
        "passed": all(c["passed"] for c in checks),
        "metrics": metrics,
        "thresholds": checks,
        "misses": [{key: q[key] for key in ("line", "question", "relevant_document_ids",
                                             "retrieved_document_ids", "first_relevant_rank", "recall")}
                   for q in misses],
        "unsupported_answers": [{key: q[key] for key in ("line", "question", "answer_support",
                                                          "unsupported_sentences")} for q in unsupported],
        "questions": [r.as_dict() for r in results],
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    lines = [
        f"# Evaluation report: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        f"- dataset: `{report.get('dataset')}` ({metrics['questions']} questions), k = {report['k']}",
        f"- agent: {report.get('target')}",
    ]
    if report.get("corpus"):
        ingested = report.get("ingested") or {}
        lines.append(f"- corpus: {', '.join(f'`{c}`' for c in report['corpus'])} "
                     f"({ingested.get('documents', '?')} documents, {ingested.get('chunks', '?')} chunks)")
    if report.get("gate"):
        lines.append(f"- gate: `{report['gate']}`")
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    for name in ("hit_at_k", "recall_at_k", "mrr", "ndcg_at_k", "answer_support", "answered", "abstained"):
        lines.append(f"| {name} | {_fmt(metrics.get(name))} |")
    for route in ("retrieve", "chat"):
        lat = metrics["latency_ms"].get(route)
        if lat:
            lines.append(f"| {route} latency ms p50 / p95 / p99 | "
                         f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} |")
    lines += ["", "## Thresholds", ""]
    if report["thresholds"]:
        lines += ["| threshold | required | measured | result | from |", "|---|---|---|---|---|"]
        for c in report["thresholds"]:
            lines.append(f"| {c['name']} | {c['op']} {_fmt(c['threshold'])} | {_fmt(c['value'])} | "
                         f"{'pass' if c['passed'] else '**FAIL**'} | {c['source']} |")
    else:
        lines.append("No thresholds were given (use --gate or --min-*/--max-* flags): nothing to fail.")
    lines += ["", f"## Misses ({len(report['misses'])})", ""]
    if report["misses"]:
        lines += ["| line | question | relevant | retrieved (top k) | first rank |", "|---|---|---|---|---|"]
        for miss in report["misses"]:
            lines.append(f"| {miss['line']} | {_cell(miss['question'])} | "
                         f"{_cell(', '.join(miss['relevant_document_ids']), 120)} | "
                         f"{_cell(', '.join(miss['retrieved_document_ids']), 160)} | "
                         f"{_fmt(miss['first_relevant_rank'])} |")
    else:
        lines.append("Every relevant document was retrieved in the top k.")
    if report["unsupported_answers"]:
        lines += ["", f"## Answers with unsupported sentences ({len(report['unsupported_answers'])})", "",
                  "| line | question | support | first unsupported sentence |", "|---|---|---|---|"]
        for row in report["unsupported_answers"]:
            first = row["unsupported_sentences"][0] if row["unsupported_sentences"] else ""
            lines.append(f"| {row['line']} | {_cell(row['question'])} | {_fmt(row['answer_support'])} | "
                         f"{_cell(first)} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write OUT.json and OUT.md beside it; returns the Markdown path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = path.with_suffix(".md")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return md_path
