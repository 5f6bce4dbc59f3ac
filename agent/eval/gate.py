"""Gate thresholds: from a per-environment gate file (stacks/gates/<stack>.json) and/or flags.

A gate file:
    {"description": "...", "k": 5, "thresholds": {"min_hit_at_k": 0.8, "max_latency_p95_ms": 3000}}
Flags override the file threshold by threshold. Unknown keys are errors, so a typo cannot silently
disable a check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent.eval.dataset import InputError


@dataclass(frozen=True)
class ThresholdSpec:
    name: str
    metric: str  # dotted path into the report's "metrics"
    op: str  # ">=" (a floor) or "<=" (a ceiling)
    help: str
    # The values a gate may ask for, as pydantic Field bounds (None: unbounded on that side).
    ge: float | None = None
    le: float | None = None
    gt: float | None = None


_SHARE = {"ge": 0, "le": 1}  # metrics that are shares or means of 0/1 scores
_MS = {"gt": 0}              # latencies in milliseconds

# The one place a threshold is defined: which metric it checks, in which direction, and its range.
# GateThresholds (the gate file's schema), the CLI flags and the checks are all built from it.
THRESHOLDS: tuple[ThresholdSpec, ...] = (
    ThresholdSpec("min_hit_at_k", "hit_at_k", ">=", "share of questions with a relevant document in the top k",
                  **_SHARE),
    ThresholdSpec("min_recall_at_k", "recall_at_k", ">=", "mean share of relevant documents in the top k", **_SHARE),
    ThresholdSpec("min_mrr", "mrr", ">=", "mean reciprocal rank of the first relevant document (within k)",
                  **_SHARE),
    ThresholdSpec("min_ndcg_at_k", "ndcg_at_k", ">=", "mean binary-relevance nDCG@k", **_SHARE),
    ThresholdSpec("min_answer_support", "answer_support", ">=",
                  "mean share of answer sentences backed by a cited passage", **_SHARE),
    ThresholdSpec("max_latency_p50_ms", "latency_ms.chat.p50", "<=", "/chat latency p50 in ms", **_MS),
    ThresholdSpec("max_latency_p95_ms", "latency_ms.chat.p95", "<=", "/chat latency p95 in ms", **_MS),
    ThresholdSpec("max_latency_p99_ms", "latency_ms.chat.p99", "<=", "/chat latency p99 in ms", **_MS),
    ThresholdSpec("max_retrieve_latency_p95_ms", "latency_ms.retrieve.p95", "<=", "/retrieve latency p95 in ms",
                  **_MS),
)
SPECS = {spec.name: spec for spec in THRESHOLDS}

# The "thresholds" object of a gate file: one optional, range-checked float per spec; any other
# key is an error, so a typo cannot silently disable a check.
GateThresholds = create_model(
    "GateThresholds",
    __config__=ConfigDict(extra="forbid"),
    **{spec.name: (float | None, Field(default=None, description=spec.help, ge=spec.ge, le=spec.le, gt=spec.gt))
       for spec in THRESHOLDS},
)


class GateFile(BaseModel):
    """The content of stacks/gates/<stack>.json."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    k: int = Field(default=5, ge=1, le=50)
    thresholds: GateThresholds  # type: ignore[valid-type]  # built by create_model above


def load_gate(path: Path) -> GateFile:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--gate {path}: file not found (gate files live in stacks/gates/<stack>.json)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--gate {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return GateFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise InputError(f"--gate {path}: {problems}; allowed thresholds: {', '.join(SPECS)}") from None


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    source: str  # "gate" or "flag"


def merge_thresholds(gate: GateFile | None, flags: dict[str, float | None]) -> list[Threshold]:
    """Gate-file thresholds overridden by the flags that were given, in THRESHOLDS order."""
    file_values = gate.thresholds.model_dump() if gate else {}
    try:
        GateThresholds.model_validate({k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        raise InputError(problems) from None
    out = []
    for spec in THRESHOLDS:
        if flags.get(spec.name) is not None:
            out.append(Threshold(spec.name, float(flags[spec.name]), "flag"))
        elif file_values.get(spec.name) is not None:
            out.append(Threshold(spec.name, float(file_values[spec.name]), "gate"))
    return out


def lookup(metrics: dict[str, Any], dotted: str) -> float | None:
    node: Any = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return float(node)


def check(thresholds: list[Threshold], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per threshold. A metric that was not measured (e.g. answer support with
    --no-chat) fails its threshold: a gate that asked for it must not pass without it."""
    results = []
    for threshold in thresholds:
        spec = SPECS[threshold.name]
        value = lookup(metrics, spec.metric)
        if value is None:
            passed, note = False, "metric not measured"
        else:
            passed = value >= threshold.value if spec.op == ">=" else value <= threshold.value
            note = ""
        results.append({"name": threshold.name, "metric": spec.metric, "op": spec.op,
                        "threshold": threshold.value, "value": value, "passed": passed,
                        "source": threshold.source, **({"note": note} if note else {})})
    return results
