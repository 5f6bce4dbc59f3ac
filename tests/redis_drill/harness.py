"""Glue between the rendered manifests, the simulated cluster and the drill client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.components.redis import MASTER_NAME, SENTINEL_PORT, build_redis
from infra.config import StackConfig, parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file

from .cluster import Cluster, Pod, wait_until

REPO = Path(__file__).resolve().parents[2]
# Prod's Redis config with a shorter failover timeout and discovery (the only change): the scripts, probes
# and redis.conf the drill runs are otherwise exactly what prod renders (test_rendering_matches_prod).
# down-after stays at its floor, prod's 5 s: below it Sentinel counts stale votes against a new primary
# (infra/config.py SentinelConfig), which a loaded CI machine turned into double failovers at 1 s.
DRILL_SENTINEL = {"downAfterMilliseconds": 5000, "failoverTimeoutMilliseconds": 5000, "discoveryTimeoutSeconds": 10}


def prod_config(**sentinel: int) -> StackConfig:
    raw, secrets = load_stack_file(REPO / "stacks" / "Pulumi.prod.yaml")
    redis = json.loads(raw["rag-platform:redis"])
    redis["sentinel"] = {**redis.get("sentinel", {}), **sentinel}
    return parse_stack_config("prod", dict(raw, **{"rag-platform:redis": json.dumps(redis)}), secrets)


def drill_manifests() -> tuple[list[dict[str, Any]], StackConfig, str]:
    cfg = prod_config(**DRILL_SENTINEL)
    ns = Namespaces.for_env(cfg.environment)
    return build_redis(cfg, ns, "redis-auth"), cfg, ns.data


@dataclass
class Drill:
    """A running cluster plus the client writing through the agent's Sentinel client."""

    cluster: Cluster
    cfg: StackConfig
    client: subprocess.Popen | None = None
    events: list[tuple[str, float]] = field(default_factory=list)

    @property
    def data(self) -> list[Pod]:
        return [p for p in self.cluster.pods.values() if p.statefulset["metadata"]["name"] == "redis"]

    @property
    def sentinels(self) -> list[Pod]:
        return [p for p in self.cluster.pods.values() if p.statefulset["metadata"]["name"] == "redis-sentinel"]

    def mark(self, what: str) -> float:
        t = time.monotonic()
        self.events.append((what, t))
        return t

    # ------------------------------------------------------------------ client

    def start_client(self) -> None:
        sentinels = ",".join(f"{p.fqdn}:{SENTINEL_PORT}" for p in self.sentinels)
        argv = [sys.executable, "-m", "tests.redis_drill.client", "--sentinels", sentinels,
                "--nodes", ",".join(p.fqdn for p in self.data), "--password", self.cluster.password,
                "--min-replicas", str(self.cfg.redis.minReplicasToWrite)]
        self.client = subprocess.Popen(self.cluster.client_command(argv), cwd=REPO, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)

    def ask(self, cmd: str, timeout: float = 30) -> dict[str, Any]:
        assert self.client is not None and self.client.stdin and self.client.stdout
        self.client.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.client.stdin.flush()
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline and self.client.poll() is None:
            line = self.client.stdout.readline()
        if not line:
            raise AssertionError(f"drill client gave no answer to {cmd}: {self.client.stderr.read() if self.client.poll() is not None else ''}")
        return json.loads(line)

    def stop_client(self) -> None:
        if self.client is None:
            return
        if self.client.poll() is None:
            try:
                self.ask("stop", timeout=15)
            except (AssertionError, BrokenPipeError, OSError):
                pass
            try:
                self.client.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.client.kill()
                self.client.wait(timeout=5)
        self.client = None

    # ------------------------------------------------------------------ cluster state

    def ready(self, pods: list[Pod]) -> bool:
        """Every pod that exists (deleted ones excluded; crashed ones count as unready) is Ready."""
        return all(self.cluster.ready(p) for p in pods if p.process is not None)

    def primary(self) -> str | None:
        """The one data pod that is primary with its replicas attached, per the client's watcher."""
        roles = self.ask("status")["roles"]
        primaries = [n for n, r in roles.items() if r["role"] == "master"]
        return primaries[0] if len(primaries) == 1 else None

    def wait_healthy(self, timeout: float, what: str, since: float | None = None) -> str:
        """Every existing pod Ready, exactly one primary (a live pod), and both the roles and an
        acknowledged write observed after `since` (default: now)."""
        since = time.monotonic() if since is None else since

        def healthy() -> str | None:
            status = self.ask("status")
            if not status["last_ack"] or status["last_ack"][1] < since or status["roles_t"] < since:
                return None
            primaries = [n for n, r in status["roles"].items() if r["role"] == "master"]
            if len(primaries) != 1 or not next(p for p in self.data if p.fqdn == primaries[0]).alive:
                return None
            return primaries[0] if self.ready(self.data + self.sentinels) else None

        try:
            return wait_until(healthy, timeout, what, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None

    def kill(self, pod: Pod, what: str) -> float:
        """Delete a pod (recorded as a disruption for the lost-write window); returns the time after."""
        self.mark(f"kill {what}")
        self.cluster.delete(pod)
        return time.monotonic()

    def diagnostics(self) -> str:
        lines = []
        try:
            status = self.ask("status", timeout=5)
            lines.append(f"client: acks={status['acks']} errors={status['errors']} last={status['last_errors']}")
            lines.append(f"roles: {json.dumps(status['roles'])}")
        except Exception as exc:  # noqa: BLE001 - diagnostics are best effort
            lines.append(f"client: {exc}")
        for pod in self.cluster.pods.values():
            ok, out = self.cluster.probe(pod, "readinessProbe")
            lines.append(f"--- {pod.name} ip={pod.ip} alive={pod.alive} ready={ok} {out[:200]}")
            lines.append("\n".join(pod.log_text().splitlines()[-15:]))
        return "\n".join(lines)

    def check_writes(self) -> dict[str, Any]:
        """Every acknowledged write is on the primary, except those acknowledged within
        min-replicas-max-lag seconds before a disruption (what min-replicas-* documents as the window)."""
        result = self.ask("verify", timeout=60)
        assert "error" not in result, result
        present = set(result["present"])
        lag = self.cfg.redis.minReplicasMaxLagSeconds
        kills = [t for what, t in self.events if what.startswith("kill")]
        lost = [(seq, t) for seq, t in result["acks"] if seq not in present]
        unexplained = [(seq, t) for seq, t in lost if not any(k - lag <= t <= k for k in kills)]
        assert not unexplained, (f"{len(unexplained)} acknowledged writes lost outside the min-replicas-max-lag "
                                 f"window ({lag}s before a kill): {unexplained[:10]}\n{self.diagnostics()}")
        self.ask("resume")
        return {"acked": len(result["acks"]), "lost_in_window": len(lost)}

    def assert_no_split_brain(self) -> None:
        status = self.ask("status")
        assert not status["split_brain"], f"two primaries accepted writes at once: {status['split_brain']}"
        assert not status["two_primaries"], f"two pods were primary at once: {status['two_primaries']}"


def cold_start(drill: Drill, timeout: float = 60) -> str:
    """A new cluster, healthy, and every Sentinel knows every replica. Sentinels learn replicas only from
    the primary's INFO, every 10 s: until then none can fail over, and a restarted primary rightly starts
    as primary again. The failover scenarios start from the state prod reaches 10 s after a cold start."""
    for pod in drill.sentinels + drill.data:
        drill.cluster.start(pod)
    drill.start_client()
    primary = drill.wait_healthy(timeout, "cold start: 3 data pods + 3 Sentinels ready, one primary, writes acked")
    wait_replicas_known(drill, drill.sentinels)
    return primary


def wait_replicas_known(drill: Drill, sentinels: list[Pod]) -> None:
    replicas = len(drill.data) - 1
    wait_until(lambda: all(sentinel_replicas(drill, p) == replicas for p in sentinels), 25,
               f"every Sentinel knows the {replicas} replicas (from the primary's INFO, every 10 s)")


def sentinel_replicas(drill: Drill, pod: Pod) -> int | None:
    """How many replicas a Sentinel knows for the primary (None when it cannot say)."""
    script = (f'REDISCLI_AUTH="$(cat /run/secrets/redis/password)" redis-cli -p {SENTINEL_PORT} '
              f'SENTINEL MASTER {MASTER_NAME}')
    code, out = drill.cluster.exec(pod, ["sh", "-c", script])
    lines = [line.strip() for line in out.splitlines()]
    if code != 0 or "num-slaves" not in lines:
        return None
    return int(lines[lines.index("num-slaves") + 1])


def sentinel_view(drill: Drill, pod: Pod) -> str | None:
    """The primary a Sentinel names, asked inside its pod (None when it names none or is down)."""
    script = (f'REDISCLI_AUTH="$(cat /run/secrets/redis/password)" redis-cli -p {SENTINEL_PORT} '
              f'SENTINEL get-master-addr-by-name {MASTER_NAME}')
    code, out = drill.cluster.exec(pod, ["sh", "-c", script])
    lines = out.splitlines()
    return lines[0] if code == 0 and len(lines) == 2 else None


