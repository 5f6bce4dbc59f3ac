"""`python -m agent.eval`: the evaluation quality gate.

Exit codes: 0 every threshold passed, 1 a threshold failed, 2 bad input (dataset, corpus, gate file,
flags) or the agent unreachable / not answering properly. The message on stderr says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from agent.eval import gate as g
from agent.eval.client import AgentError, AgentUnreachable, in_process_client, remote_client
from agent.eval.dataset import InputError, load_corpus, load_dataset, unknown_relevant_ids
from agent.eval.report import build_report, write_report
from agent.eval.runner import aggregate, ingest, run
from agent.observability import JsonFormatter

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
log = logging.getLogger("agent.eval")


def _setup_logging(interactive: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s") if interactive else JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if interactive else logging.INFO)
    log.propagate = False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent.eval",
        description="Evaluate the agent on a question set and gate on thresholds "
                    "(exit 0 passed, 1 a threshold failed, 2 bad input or agent unreachable).")
    p.add_argument("--dataset", type=Path, required=True,
                   help='JSONL, one {"question", "relevant_document_ids": [...], "reference_answer"?} per line')
    p.add_argument("--corpus", type=Path, action="append", default=[],
                   help="ingest first: JSONL {id, text} or a markdown/text file or directory (repeatable)")
    p.add_argument("--url", help="base URL of a running agent; default: the agent in-process on embedded stores")
    p.add_argument("--api-key", help="Bearer key for --url (default: $AGENT_EVAL_API_KEY)")
    p.add_argument("--gate", type=Path, help="gate file with k and thresholds, e.g. stacks/gates/dev.json")
    p.add_argument("--k", type=int, help="retrieval depth for the @k metrics (default: the gate file's k, else 5)")
    p.add_argument("--no-chat", action="store_true",
                   help="retrieval metrics only: skip /chat (answer support and chat latency not measured)")
    p.add_argument("--report", type=Path, required=True, help="report JSON path; the Markdown summary goes beside it")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar (auto: when stderr is a terminal)")
    for spec in g.THRESHOLDS:
        p.add_argument("--" + spec.name.replace("_", "-"), type=float, dest=spec.name, metavar="X",
                       help=f"{spec.op} X: {spec.help} (overrides the gate file)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    interactive = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    _setup_logging(interactive)
    try:
        return _run(args, interactive)
    except InputError as exc:
        print(f"agent.eval: bad input: {exc}", file=sys.stderr)
    except AgentUnreachable as exc:
        print(f"agent.eval: agent unreachable: {exc}", file=sys.stderr)
    except AgentError as exc:
        print(f"agent.eval: agent error: {exc}", file=sys.stderr)
    except Exception:  # noqa: BLE001 - a crash must not look like exit 1 ("quality dropped")
        print(f"agent.eval: could not evaluate, unexpected error:\n{traceback.format_exc()}", file=sys.stderr)
    return EXIT_ERROR


def _run(args: argparse.Namespace, interactive: bool) -> int:
    # Everything that can be checked without the agent is checked first, so bad input costs seconds.
    if args.report.suffix.lower() == ".md":
        raise InputError(f"--report {args.report}: give the JSON path; the Markdown summary is written beside it")
    try:
        args.report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--report {args.report}: cannot create its directory ({exc.strerror})") from None
    if args.api_key and not args.url:
        raise InputError("--api-key is only used with --url (the in-process agent needs none)")
    items = load_dataset(args.dataset)
    gate_file = g.load_gate(args.gate) if args.gate else None
    k = args.k if args.k is not None else (gate_file.k if gate_file else 5)
    if not 1 <= k <= 50:
        raise InputError(f"--k {k}: must be between 1 and 50 (the agent's top_k bound)")
    thresholds = g.merge_thresholds(gate_file, {spec.name: getattr(args, spec.name) for spec in g.THRESHOLDS})
    docs = load_corpus(args.corpus) if args.corpus else []
    if docs:
        unknown = unknown_relevant_ids(items, {d.id for d in docs})
        if unknown:
            listed = "; ".join(f"line {line}: {doc_id!r}" for line, doc_id in unknown[:10])
            raise InputError(f"{args.dataset}: relevant_document_ids not in the corpus ({len(unknown)}): {listed}"
                             " — fix the ids or the docs (markdown ids are <path>#<heading-slug>)")
    if not args.url and not docs:
        raise InputError("the in-process agent starts empty: give --corpus (or --url for a running agent)")

    if args.url:
        api_key = args.api_key or os.environ.get("AGENT_EVAL_API_KEY")
        opened = remote_client(args.url, api_key)
    else:
        opened = in_process_client()
    started = time.perf_counter()
    log.info("evaluation started", extra={"questions": len(items), "documents": len(docs), "k": k,
                                          "target": args.url or "in-process"})
    with opened as client:
        ingested = ingest(client, docs, interactive) if docs else None
        results = run(client, items, k, chat=not args.no_chat, show_progress=interactive)

    metrics = aggregate(results)
    checks = g.check(thresholds, metrics)
    report = build_report(metrics=metrics, checks=checks, results=results, k=k, context={
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": str(args.dataset), "corpus": [str(c) for c in args.corpus], "ingested": ingested,
        "gate": str(args.gate) if args.gate else None, "target": args.url or "in-process agent",
        "seconds": round(time.perf_counter() - started, 3),
    })
    md_path = write_report(report, args.report)
    failed = [c for c in checks if not c["passed"]]
    summary = (f"hit@{k}={metrics['hit_at_k']:.3f} recall@{k}={metrics['recall_at_k']:.3f} "
               f"mrr={metrics['mrr']:.3f} ndcg@{k}={metrics['ndcg_at_k']:.3f} "
               f"support={'-' if metrics['answer_support'] is None else format(metrics['answer_support'], '.3f')}")
    if failed:
        names = ", ".join(f"{c['name']} ({c['metric']}={c['value']} {c['op']} {c['threshold']} required)"
                          for c in failed)
        print(f"agent.eval: FAILED {len(failed)}/{len(checks)} thresholds: {names}; {summary}; "
              f"report {args.report} and {md_path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"agent.eval: passed {len(checks)} thresholds; {summary}; report {args.report} and {md_path}",
          file=sys.stderr)
    return EXIT_PASSED
