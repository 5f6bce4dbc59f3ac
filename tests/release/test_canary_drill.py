"""The canary drill: the rendered analysis, run by Argo's rules against a real Prometheus.

Four real agent processes on loopback stand for the pods of a rollout: the stable ReplicaSet and
three canaries (healthy; Milvus unreachable, so it answers 503; its generator a stub that sleeps).
Prometheus (Debian's, or the binary the Tekton step copies from the pinned image) scrapes them with
the labels the rendered PodMonitor gives real pods. The queries and conditions come from the dev
stack's AnalysisTemplate in the preview's manifests.yaml, `{{args.canary-hash}}` substituted as
Argo does, and the measurements are judged with Argo's semantics (tests/release/argo.py).

Phase 1, before any load: every canary is probed and scraped (the broken one's readiness probe
answers 503) and the healthy one serves fewer requests than `canary.minRequests`: every verdict is
Inconclusive, never Successful. Phase 2, a bounded load: healthy -> Successful, broken -> Failed
on the error rate, slow -> Failed on p95 latency, and a canary hash nobody scraped -> Inconclusive.
"""

from __future__ import annotations

import subprocess
import threading
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.config import parse_stack_config
from infra.preview import load_stack_file

from . import argo
from .drill import (REPO, SCRAPE_INTERVAL_S, AgentProcess, Load, Prometheus, SlowGenerator, free_port,
                    prometheus_binary, scrape_config, started, wait_until)

STACK = "dev"  # the stack whose template the drill runs: CI/CD on, p95 2.0s, error rate 1%
SLOW_SECONDS = 3.0
DOC = {"id": "state", "text": "Conversation state lives in Redis, with a TTL per session. "
                              "Documents and their embeddings live in Milvus."}
QUESTION = "Where does conversation state live?"


@dataclass
class Verdict:
    phase: str
    metrics: dict[str, list[str]]   # metric -> the phase of each measurement
    values: dict[str, Any]          # metric -> the last `result` the condition saw


@dataclass
class Drill:
    template: dict[str, Any]
    rollout: dict[str, Any]
    min_requests: int
    before_load: dict[str, Verdict] = field(default_factory=dict)
    after_load: dict[str, Verdict] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def rendered(tmp: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", STACK, "--out", str(tmp)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [m for m in yaml.safe_load_all((tmp / STACK / "manifests.yaml").read_text()) if m]


def one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def analyse(prom: Prometheus, template: dict[str, Any], args: dict[str, str]) -> Verdict:
    """Measure every metric as the analysis controller would, with the interval compressed."""
    metrics = [argo.resolve_args(m, args) for m in template["spec"]["metrics"]]
    results = [argo.MetricResult(m) for m in metrics]
    values: dict[str, Any] = {}
    # Enough measurements for failureLimit/inconclusiveLimit to be crossed; bounded.
    rounds = max(int(m.get("failureLimit", 0)) + int(m.get("inconclusiveLimit", 0)) for m in metrics) + 2
    for _ in range(rounds):
        for r in results:
            if r.phase(False) not in (argo.RUNNING, argo.PENDING):
                continue
            try:
                result = argo.prometheus_result(prom.query(r.metric["provider"]["prometheus"]["query"]))
                values[r.metric["name"]] = result
                phase = argo.evaluate_result(result, r.metric.get("successCondition", ""),
                                             r.metric.get("failureCondition", ""))
            except (RuntimeError, httpx.HTTPError, argo.ExprError):
                phase = argo.ERROR
            r.record(phase)
        if argo.run_phase(results, terminated=False) != argo.RUNNING:
            break
        time.sleep(0.3)
    phase = argo.run_phase(results, terminated=False)
    if phase == argo.RUNNING:
        # Background analysis never ends by itself: the Rollout reaching 100% terminates it.
        phase = argo.run_phase(results, terminated=True)
    return Verdict(phase, {r.metric["name"]: r.measurements for r in results}, values)


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Drill:
    started_at = time.monotonic()
    binary = prometheus_binary()  # fails (never skips) with the fix when there is none
    work = tmp_path_factory.mktemp("canary-drill")
    manifests = rendered(work / "preview")
    template = one(manifests, "AnalysisTemplate", "agent-canary-health")
    rollout = one(manifests, "Rollout", "agent")
    pod_monitor = one(manifests, "PodMonitor", "agent")
    raw, secret_keys = load_stack_file(REPO / "stacks" / f"Pulumi.{STACK}.yaml")
    cfg = parse_stack_config(STACK, raw, secret_keys)
    d = Drill(template, rollout, cfg.canary.minRequests)

    with SlowGenerator(SLOW_SECONDS) as stub:
        closed_port = free_port()  # nothing listens here: an unreachable Milvus
        agents = {
            "stable": AgentProcess("stable", "5f7c9d8b6a", free_port(), work, {"AGENT_REDIS_URL": redis_url}),
            "healthy": AgentProcess("healthy", "7d4b8c9f55", free_port(), work, {"AGENT_REDIS_URL": redis_url}),
            "broken": AgentProcess("broken", "6c9f7b5d44", free_port(), work, {
                "AGENT_REDIS_URL": redis_url, "AGENT_MILVUS_URI": f"http://127.0.0.1:{closed_port}"}),
            "slow": AgentProcess("slow", "84b6d7c9f8", free_port(), work, {
                "AGENT_REDIS_URL": redis_url, "AGENT_GENERATOR": "openai", "AGENT_GENERATOR_BASE_URL": stub.base_url,
                "AGENT_GENERATOR_TIMEOUT_SECONDS": "30"}),
        }
        prom = Prometheus(binary, work)
        with started(*agents.values(), prom):
            for a in agents.values():
                a.start()
            for a in agents.values():
                wait_until(a.healthy, 150, f"agent {a.name} on {a.url}", interval=0.5)
            d.facts["agents_up_s"] = round(time.monotonic() - started_at, 1)
            for name in ("stable", "healthy", "slow"):
                r = httpx.post(f"{agents[name].url}/documents", json={"documents": [DOC]}, timeout=60)
                assert r.status_code == 200, (name, r.text)
            prom.start(scrape_config(pod_monitor, list(agents.values())))
            wait_until(lambda: prom.targets_up(len(agents)), 30, "every agent scraped")

            # Phase 1: what the kubelet does anyway (probes), and a trickle below minRequests.
            for _ in range(3):
                for a in agents.values():
                    httpx.get(f"{a.url}/healthz", timeout=5)
                    httpx.get(f"{a.url}/readyz", timeout=10)
            Load(agents["healthy"], requests=3, concurrency=1).run(QUESTION)
            time.sleep(3 * SCRAPE_INTERVAL_S)
            for name in ("healthy", "broken", "slow"):
                d.before_load[name] = analyse(prom, template, {"canary-hash": agents[name].pod_template_hash})
            # What the filter leaves out is really there: the broken canary's 503 readiness probes.
            probes = prom.query('sum(agent_http_requests_total{route="/readyz",status="503",'
                                f'rollouts_pod_template_hash="{agents["broken"].pod_template_hash}"}})')
            d.facts["broken_probe_503s"] = argo.prometheus_result(probes)
            d.facts["hashes"] = sorted(s["metric"].get("rollouts_pod_template_hash", "")
                                       for s in prom.query("up")["result"])

            # Phase 2: bounded load, paced so the first scrape of a new series loses little.
            loads = [Load(agents["stable"], 40, 2, gap_s=0.1), Load(agents["healthy"], 40, 2, gap_s=0.1),
                     Load(agents["broken"], 40, 2, gap_s=0.2), Load(agents["slow"], 24, 12)]
            threads = [threading.Thread(target=load.run, args=(QUESTION,)) for load in loads]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=90)
            assert not any(t.is_alive() for t in threads), "load generator did not finish in 90s"
            d.facts["statuses"] = {load.agent.name: sorted(set(load.statuses)) for load in loads}
            d.facts["stub_calls"] = stub.calls
            time.sleep(3 * SCRAPE_INTERVAL_S)
            for name in ("healthy", "broken", "slow"):
                d.after_load[name] = analyse(prom, template, {"canary-hash": agents[name].pod_template_hash})
            # A canary Prometheus never scraped (no PodMonitor match, a NetworkPolicy in the way).
            d.after_load["unscraped"] = analyse(prom, template, {"canary-hash": "9a8b7c6d5e"})
    d.facts["total_s"] = round(time.monotonic() - started_at, 1)
    return d


def test_the_template_is_the_one_the_rollout_runs(drill):
    analysis = drill.rollout["spec"]["strategy"]["canary"]["analysis"]
    assert analysis["templates"] == [{"templateName": drill.template["metadata"]["name"]}]
    assert analysis["args"] == [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]
    assert [a["name"] for a in drill.template["spec"]["args"]] == ["canary-hash"]


def test_prometheus_sees_each_pod_under_its_template_hash(drill):
    assert drill.facts["hashes"] == sorted(["5f7c9d8b6a", "7d4b8c9f55", "6c9f7b5d44", "84b6d7c9f8"])


@pytest.mark.parametrize("canary", ["healthy", "broken", "slow"])
def test_without_enough_canary_traffic_the_verdict_is_inconclusive_never_success(drill, canary):
    verdict = drill.before_load[canary]
    assert verdict.phase == argo.INCONCLUSIVE, verdict
    # No evidence is an empty result, not a number that happens to pass.
    assert all(value == [] for value in verdict.values.values()), verdict.values


def test_a_canary_prometheus_never_scraped_is_inconclusive_never_success(drill):
    verdict = drill.after_load["unscraped"]
    assert verdict.phase == argo.INCONCLUSIVE and all(v == [] for v in verdict.values.values()), verdict


def test_probes_and_scrapes_do_not_count_as_canary_traffic(drill):
    # The broken canary's readiness probe answered 503 and Prometheus has it; the analysis ignores it.
    assert drill.facts["broken_probe_503s"] and drill.facts["broken_probe_503s"][0] >= 3
    assert drill.before_load["broken"].phase == argo.INCONCLUSIVE


def test_healthy_canary_is_promoted(drill):
    assert drill.facts["statuses"]["healthy"] == [200]
    verdict = drill.after_load["healthy"]
    assert verdict.phase == argo.SUCCESSFUL, verdict
    assert all(set(ms) == {argo.SUCCESSFUL} for ms in verdict.metrics.values()), verdict


def test_canary_with_a_broken_dependency_fails_on_its_error_rate(drill):
    assert drill.facts["statuses"]["broken"] == [503]
    verdict = drill.after_load["broken"]
    assert verdict.phase == argo.FAILED, verdict
    assert verdict.metrics["error-rate"][-1] == argo.FAILED and verdict.values["error-rate"][0] > 0.5


def test_canary_with_a_slow_generator_fails_on_latency(drill):
    assert drill.facts["statuses"]["slow"] == [200] and drill.facts["stub_calls"] >= 24
    verdict = drill.after_load["slow"]
    assert verdict.phase == argo.FAILED, verdict
    assert verdict.metrics["p95-latency"][-1] == argo.FAILED and verdict.values["p95-latency"][0] > SLOW_SECONDS
    assert argo.FAILED not in verdict.metrics["error-rate"], "the slow canary fails on latency, not errors"


def test_the_drill_stays_inside_its_budget(drill):
    # Two minutes on an idle machine; the margin absorbs a shared, loaded CI core.
    assert drill.facts["total_s"] < 180, drill.facts
