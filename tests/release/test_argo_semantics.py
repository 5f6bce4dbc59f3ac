"""The drill's Argo evaluator against behaviour read in argo-rollouts and expr (tests/release/argo.py).

Each case is what the upstream code does for that input; the conditions at the bottom are the ones
every stack renders, so a change to them that would pass blind fails here in milliseconds.
"""

from __future__ import annotations

import math

import pytest

from infra.components.agent import build_analysis_template
from infra.config import parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file

from . import argo
from .drill import REPO

NAN = math.nan


@pytest.mark.parametrize(("expr", "result", "expected"), [
    ("len(result) > 0 && result[0] <= 0.01", [0.0], True),
    ("len(result) > 0 && result[0] <= 0.01", [0.02], False),
    ("len(result) > 0 && result[0] <= 0.01", [], False),            # short-circuit: result[0] never runs
    ("len(result) > 0 && result[0] <= 0.01", [NAN], False),         # NaN compares false, as in Go
    ("len(result) > 0 && result[0] > 0.01", [NAN], False),
    ("result[0] >= 10", [10.0], True),                               # float vs int literal
    ("result[-1] == 3", [1.0, 2.0, 3.0], True),                      # expr's negative index
    ("isNaN(result[0]) || result[0] < 1", [NAN], True),
    ("!(result[0] > 1) and not false", [0.5], True),
    ("result < 1 || result > 2", 1.5, False),                        # a scalar result
    ("asInt(result[0]) == 2", [2.9], True),
    ("(1 + 2) * 3 == 9 && 7 / 2 == 3.5", [], True),
    ("len(result) == 0 || isNaN(result[0]) || result[0] <= 0.01", [], True),
])
def test_conditions_evaluate_like_expr(expr, result, expected):
    assert argo.evaluate_condition(expr, result) is expected


@pytest.mark.parametrize(("expr", "result"), [
    ("result[0] <= 0.01", []),                 # index out of range: a run-time error
    ("result[1] > 0", [1.0]),
    ("resutl[0] > 0", [1.0]),                  # unknown name: a compile error
    ("median(result) > 0", [1.0]),             # unknown function
    ("result[0]", [1.0]),                      # not a bool
    ("result[0] && true", [1.0]),              # && needs bools
    ("len(result) > ", [1.0]),                 # syntax
    ("result[0] <= 0.01 ; true", [1.0]),       # no statements
])
def test_bad_expressions_are_errors(expr, result):
    with pytest.raises(argo.ExprError):
        argo.evaluate_condition(expr, result)


@pytest.mark.parametrize(("success", "failure", "result", "phase"), [
    ("result[0] < 1", "result[0] >= 1", [0.5], argo.SUCCESSFUL),
    ("result[0] < 1", "result[0] >= 1", [2.0], argo.FAILED),
    ("result[0] < 1", "result[0] > 3", [2.0], argo.INCONCLUSIVE),     # neither
    ("result[0] < 1", "", [2.0], argo.FAILED),                        # success only: not success = failed
    ("", "result[0] > 3", [2.0], argo.SUCCESSFUL),                    # failure only: not failed = success
    ("", "", [], argo.SUCCESSFUL),
    ("result[0] < 1", "", [], argo.ERROR),                            # evaluation error
])
def test_measurement_phase_follows_evaluate_result(success, failure, result, phase):
    assert argo.evaluate_result(result, success, failure) == phase


def test_prometheus_results_become_what_argo_passes_to_conditions():
    assert argo.prometheus_result({"resultType": "vector", "result": []}) == []
    vector = {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}, {"metric": {}, "value": [1, "NaN"]}]}
    got = argo.prometheus_result(vector)
    assert got[0] == 0.25 and math.isnan(got[1])
    assert argo.prometheus_result({"resultType": "scalar", "result": [1, "3"]}) == 3.0
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}]}
    assert argo.prometheus_result(matrix) == [1.0, 2.0]
    with pytest.raises(argo.ExprError):
        argo.prometheus_result({"resultType": "string", "result": [1, "x"]})


def test_args_resolve_like_fasttemplate_and_unresolved_is_an_error():
    metric = {"provider": {"prometheus": {"query": 'up{hash="{{args.canary-hash}}",x="{{ args.canary-hash }}"}'}}}
    out = argo.resolve_args(metric, {"canary-hash": "abc"})
    assert out["provider"]["prometheus"]["query"] == 'up{hash="abc",x="abc"}'
    # A quote in a value is escaped, so it cannot break out of the JSON (ResolveQuotedArgs).
    assert argo.resolve_args(metric, {"canary-hash": 'a"b'})["provider"]["prometheus"]["query"].startswith('up{hash="a"b"')
    with pytest.raises(argo.ExprError, match="failed to resolve"):
        argo.resolve_args(metric, {"other": "x"})


def _result(metric: dict, phases: list[str]) -> argo.MetricResult:
    r = argo.MetricResult(metric)
    for p in phases:
        r.record(p)
    return r


def test_limits_and_run_phase_follow_the_analysis_controller():
    m = {"name": "m", "failureLimit": 1, "inconclusiveLimit": 0}
    assert _result(m, [argo.FAILED]).phase(False) == argo.RUNNING          # failed (1) > failureLimit (1)? no
    assert _result(m, [argo.FAILED, argo.FAILED]).phase(False) == argo.FAILED
    assert _result(m, [argo.INCONCLUSIVE]).phase(False) == argo.INCONCLUSIVE
    assert _result(m, [argo.ERROR] * 4).phase(False) == argo.RUNNING       # consecutiveErrorLimit 4
    assert _result(m, [argo.ERROR] * 5).phase(False) == argo.ERROR
    assert _result(m, [argo.ERROR] * 4 + [argo.SUCCESSFUL, argo.ERROR]).phase(False) == argo.RUNNING
    ok = _result(m, [argo.SUCCESSFUL])
    assert argo.run_phase([ok], terminated=False) == argo.RUNNING
    assert argo.run_phase([ok], terminated=True) == argo.SUCCESSFUL         # the Rollout reached 100%
    # One inconclusive metric ends the run; the other, still running, counts as successful.
    assert argo.run_phase([ok, _result(m, [argo.INCONCLUSIVE])], terminated=False) == argo.INCONCLUSIVE
    assert argo.run_phase([_result(m, [argo.FAILED] * 2), _result(m, [argo.INCONCLUSIVE])], False) == argo.FAILED


@pytest.mark.parametrize("stack", ["dev", "local", "staging", "prod"])
def test_every_stack_needs_evidence_to_pass(stack):
    """The rendered conditions: no data and NaN pause the Rollout; only a measured good value passes."""
    raw, secrets = load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")
    cfg = parse_stack_config(stack, raw, secrets)
    template = build_analysis_template(cfg, Namespaces.for_env(stack))
    for metric in template["spec"]["metrics"]:
        success, failure = metric["successCondition"], metric["failureCondition"]
        threshold = float(success.rsplit("<=", 1)[1])
        assert argo.evaluate_result([], success, failure) == argo.INCONCLUSIVE
        assert argo.evaluate_result([NAN], success, failure) == argo.INCONCLUSIVE
        assert argo.evaluate_result([threshold / 2], success, failure) == argo.SUCCESSFUL
        assert argo.evaluate_result([threshold * 2], success, failure) == argo.FAILED
        assert int(metric["inconclusiveLimit"]) == cfg.canary.inconclusiveLimit
        # The first measurement waits for a full window, and the pauses leave room for two.
        assert metric["initialDelay"] == f"{cfg.canary.window_seconds}s"
        assert sum(cfg.canary.pauseSeconds) >= cfg.canary.window_seconds + cfg.canary.analysisIntervalSeconds
        query = metric["provider"]["prometheus"]["query"]
        assert f">= {cfg.canary.minRequests})" in query and 'route!~"/healthz|/readyz|/metrics"' in query


def test_the_old_conditions_passed_blind():
    """Why the conditions changed: the previous template promoted a canary nobody measured."""
    old = "len(result) == 0 || isNaN(result[0]) || result[0] <= 0.01"
    assert argo.evaluate_result([], old, "") == argo.SUCCESSFUL
    assert argo.evaluate_result([NAN], old, "") == argo.SUCCESSFUL
