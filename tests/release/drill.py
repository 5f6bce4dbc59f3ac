"""The canary drill's real parts: agent processes, a slow OpenAI-compatible stub, Prometheus, load.

Everything listens on 127.0.0.1, every wait has a deadline, every process a test starts is stopped.
The scrape configuration is generated from the rendered PodMonitor: each agent process becomes a
static target carrying the meta labels Kubernetes service discovery would give its pod
(`__meta_kubernetes_pod_label_rollouts_pod_template_hash`, namespace, pod name), and the
PodMonitor's own `relabelings` (plus the namespace/pod mapping the Prometheus Operator adds to
every PodMonitor job) run in the real Prometheus as `relabel_configs`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from infra.components.cicd import PROMETHEUS_BINARY_ENV
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
# Compressed from the PodMonitor's interval so the drill fits in well under two minutes; the
# analysis windows (>= 60s) are taken from the template unchanged.
SCRAPE_INTERVAL_S = 1


def prometheus_binary() -> str:
    """The Prometheus the drill runs; missing is a failure with the fix, never a skip."""
    explicit = os.environ.get(PROMETHEUS_BINARY_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"{PROMETHEUS_BINARY_ENV}={explicit} is not an executable Prometheus binary")
        return explicit
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError("the canary drill needs a real Prometheus: `apt-get install prometheus` (make test does "
                           f"this as root), or set {PROMETHEUS_BINARY_ENV} to a prometheus binary (the Tekton "
                           "unit-tests step copies one from the pinned Prometheus image)")
    return found


def wait_until(check, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll `check()` until it returns a truthy value; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f}s" + (f" (last error: {last_error})" if last_error else ""))


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ------------------------------------------------------------------------------------ the agents

@dataclass
class AgentProcess:
    """One real agent (`python -m agent serve`) standing for one pod of a ReplicaSet."""

    name: str
    pod_template_hash: str
    port: int
    workdir: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pod_name(self) -> str:
        return f"agent-{self.pod_template_hash}-{self.name}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        env |= {"AGENT_DATA_DIR": str(self.workdir / self.name), "AGENT_RATE_LIMIT_PER_MINUTE": "0",
                "AGENT_LOG_LEVEL": "WARNING", "AGENT_EMBEDDING_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
                # Four agents share two cores with the rest of the suite: one torch thread each.
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **self.env}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"agent {self.name} exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class SlowGenerator:
    """A local OpenAI-compatible endpoint that answers /v1/chat/completions after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's API)
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                stub.calls += 1
                time.sleep(stub.delay)
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Redis [1]."},
                                                "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> SlowGenerator:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------------------ Prometheus

def scrape_config(pod_monitor: dict[str, Any], agents: list[AgentProcess]) -> dict[str, Any]:
    """prometheus.yml for the agents, shaped by the rendered PodMonitor (see the module docstring)."""
    ns = pod_monitor["metadata"]["namespace"]
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    relabel = [
        # What the Prometheus Operator generates for every PodMonitor endpoint (the part the
        # analysis reads): the namespace and pod labels from the pod's metadata.
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    for rule in endpoint.get("relabelings", []):
        relabel.append({
            "action": rule.get("action", "replace").lower(),
            "source_labels": rule["sourceLabels"],
            "target_label": rule["targetLabel"],
            **({"regex": rule["regex"]} if "regex" in rule else {}),
            **({"replacement": rule["replacement"]} if "replacement" in rule else {}),
        })
    pod_label = "__meta_kubernetes_pod_label_"
    targets = [{
        "targets": [f"127.0.0.1:{a.port}"],
        "labels": {"__meta_kubernetes_namespace": ns, "__meta_kubernetes_pod_name": a.pod_name,
                   pod_label + "rollouts_pod_template_hash": a.pod_template_hash,
                   **{pod_label + k.replace(".", "_").replace("/", "_").replace("-", "_"): v
                      for k, v in pod_monitor["spec"]["selector"]["matchLabels"].items()}},
    } for a in agents]
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
                   "evaluation_interval": "15s"},
        "scrape_configs": [{
            "job_name": f"podMonitor/{ns}/{pod_monitor['metadata']['name']}/0",
            "metrics_path": endpoint.get("path", "/metrics"),
            "static_configs": targets,
            "relabel_configs": relabel,
        }],
    }


@dataclass
class Prometheus:
    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any]) -> None:
        conf = self.workdir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(config, sort_keys=False))
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={conf}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 30, f"Prometheus on {self.url}")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{(self.workdir / 'prometheus.log').read_text()[-3000:]}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def query(self, promql: str) -> dict[str, Any]:
        """GET /api/v1/query at now, as Argo's provider does; returns the `data` object."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {body.get('error')}")
        return body["data"]

    def targets_up(self, n: int) -> bool:
        active = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return len(active) == n and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# ------------------------------------------------------------------------------------ load

@dataclass
class Load:
    """A bounded burst of /chat requests: `requests` in total, `concurrency` at a time, paced."""

    agent: AgentProcess
    requests: int
    concurrency: int
    gap_s: float = 0.0
    timeout_s: float = 20.0
    statuses: list[int] = field(default_factory=list)

    def run(self, message: str) -> None:
        def one(_: int) -> int:
            try:
                r = httpx.post(f"{self.agent.url}/chat", json={"message": message}, timeout=self.timeout_s)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            if self.gap_s:
                time.sleep(self.gap_s)
            return status

        with ThreadPoolExecutor(self.concurrency) as pool:
            self.statuses = list(pool.map(one, range(self.requests)))


@contextmanager
def started(*things: Any) -> Iterator[None]:
    """Stop everything started here, whatever happens in between."""
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.stop()
