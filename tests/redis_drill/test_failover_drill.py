"""Failover drill: prod's rendered Redis StatefulSets (3 data pods, 3 Sentinels) run for real.

Each test starts a fresh simulated cluster (tests/redis_drill/cluster.py: one network namespace per
pod, the pod's hostname and DNS, its volumes, its uid, the rendered start script and probes) and
the agent's own Sentinel client writing and recording acknowledged writes throughout. Every test
checks that no two primaries accepted writes at once, that no acknowledged write was lost outside
the min-replicas-max-lag window before a kill, and that the cluster heals without intervention:
every pod Ready (replicas replicating, Sentinels knowing a primary and a quorum), one primary, and
new writes acknowledged.

Sentinel timings are prod's config with failover-timeout 5 s and discovery 10 s (harness.py); every
other byte of the scripts, probes and redis.conf is what prod renders (test_rendering_matches_prod).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.components.redis import build_redis
from infra.kube import Namespaces

from .cluster import Cluster, wait_until
from .harness import (DRILL_SENTINEL, Drill, cold_start, drill_manifests, prod_config, sentinel_view,
                      wait_replicas_known)

PASSWORD = "drillPassw0rd4Redis"
HEAL = 90  # seconds a scenario may take to heal on its own


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Drill]:
    manifests, cfg, namespace = drill_manifests()
    cluster = Cluster(manifests, namespace, PASSWORD, tmp_path / "cluster")
    d = Drill(cluster, cfg)
    try:
        yield d
    finally:
        d.stop_client()
        cluster.cleanup()


def by_fqdn(drill: Drill, fqdn: str):
    return next(p for p in drill.data if p.fqdn == fqdn)


def finish(drill: Drill) -> None:
    drill.assert_no_split_brain()
    drill.check_writes()


def test_rendering_matches_prod() -> None:
    """The drill runs prod's scripts, probes and redis.conf; only the Sentinel timings in the env differ."""
    timing_env = {"DOWN_AFTER_MS", "FAILOVER_TIMEOUT_MS", "DISCOVERY_TIMEOUT_SECONDS", "STAY_DOWN_SECONDS",
                  "STUCK_REPLICA_SECONDS"}
    ns = Namespaces.for_env("prod")
    prod = build_redis(prod_config(), ns, "redis-auth")
    drill, _, _ = drill_manifests()

    def strip(manifests):
        out = []
        for m in manifests:
            if m["kind"] == "StatefulSet":
                for c in m["spec"]["template"]["spec"]["containers"]:
                    c = dict(c, env=[e for e in c["env"] if e["name"] not in timing_env])
                    c.pop("startupProbe")  # its budget is derived from the same timings
                    out.append((m["metadata"]["name"], c))
            else:
                out.append(m)
        return out

    assert strip(prod) == strip(drill)
    assert DRILL_SENTINEL["failoverTimeoutMilliseconds"] < prod_config().redis.sentinel.failoverTimeoutMilliseconds


def test_cold_start_and_probes(drill: Drill) -> None:
    # Sentinels alone: running, but not Ready (no primary reachable, no peers met).
    for pod in drill.sentinels:
        drill.cluster.start(pod)
    time.sleep(2)
    assert not any(drill.cluster.ready(p) for p in drill.sentinels)
    for pod in drill.data:
        drill.cluster.start(pod)
    drill.start_client()
    primary = drill.wait_healthy(HEAL, "cold start")
    assert primary == drill.data[0].fqdn  # redis-0 on a new cluster
    assert "cold start" in drill.data[0].log_text()
    for pod in drill.data + drill.sentinels:
        assert drill.cluster.probe(pod, "livenessProbe")[0], pod.name
    wait_replicas_known(drill, drill.sentinels)  # else no Sentinel can fail over (see cold_start)
    # Readiness means replicating: a replica whose primary is gone is not Ready, at once.
    t = drill.kill(drill.data[0], "primary")
    not_ready = wait_until(lambda: [p.name for p in drill.data[1:] if not drill.cluster.ready(p)], 5,
                           "a replica without its primary turns unready")
    assert not_ready and time.monotonic() - t < 5
    drill.wait_healthy(HEAL, "failover after the primary was killed", since=t)
    finish(drill)


def test_kill_primary_then_restart_it_after_the_failover(drill: Drill) -> None:
    old = by_fqdn(drill, cold_start(drill))
    time.sleep(1)
    t = drill.kill(old, "primary")
    new = drill.wait_healthy(HEAL, "failover to a replica", since=t)
    assert new != old.fqdn
    drill.cluster.start(old)  # after the failover: it must come back as a replica of the new primary
    assert drill.wait_healthy(HEAL, "old primary rejoins as a replica") == new
    assert "starting as a replica of " + new in old.log_text()
    finish(drill)


DOWN_AFTER = DRILL_SENTINEL["downAfterMilliseconds"] / 1000


@pytest.mark.parametrize("delay", [0.2, DOWN_AFTER + 0.5], ids=["before-detection", "during-failover"])
def test_restart_old_primary_while_failing_over(drill: Drill, delay: float) -> None:
    """The split brain of the issue: the restarted primary must not start as primary while the
    Sentinels may promote another (0.2 s: before they notice; down-after + 0.5 s: while they fail over)."""
    old = by_fqdn(drill, cold_start(drill))
    time.sleep(1)
    t = drill.kill(old, "primary")
    time.sleep(delay)
    drill.cluster.start(old)
    new = drill.wait_healthy(HEAL, "one primary after the old one restarted mid-failover", since=t)
    assert new != old.fqdn, "the Sentinels promote a replica; the old primary follows it"
    drill.assert_no_split_brain()
    restarted = old.logs[-1].read_text()  # this incarnation's start script and server
    assert "staying down" in restarted and "starting as primary" not in restarted
    finish(drill)


def test_kill_all_data_pods_at_once(drill: Drill) -> None:
    cold_start(drill)
    time.sleep(1)
    for pod in drill.data:
        t = drill.kill(pod, "data pod")
    time.sleep(1)
    for pod in drill.data:
        drill.cluster.start(pod)
    drill.wait_healthy(HEAL, "all data pods back, one primary", since=t)
    finish(drill)


def test_restart_all_sentinels_after_a_failover(drill: Drill) -> None:
    old = by_fqdn(drill, cold_start(drill))
    t = drill.kill(old, "primary")
    new = drill.wait_healthy(HEAL, "first failover", since=t)
    drill.cluster.start(old)
    drill.wait_healthy(HEAL, "old primary rejoins")
    ids = {p.name: _sentinel_id(p) for p in drill.sentinels}
    for pod in drill.sentinels:
        drill.cluster.delete(pod)
    for pod in drill.sentinels:
        drill.cluster.start(pod)  # new addresses, same volumes
    assert drill.wait_healthy(HEAL, "Sentinels restarted from their state") == new
    assert {p.name: _sentinel_id(p) for p in drill.sentinels} == ids, "Sentinel ids survive a restart"
    for pod in drill.sentinels:
        assert "starting from the state in /data/sentinel.conf" in pod.log_text()
    # And they still fail over.
    t = drill.kill(by_fqdn(drill, new), "primary again")
    assert drill.wait_healthy(HEAL, "second failover after the Sentinel restart", since=t) != new
    finish(drill)


def _sentinel_id(pod) -> str:
    conf = (pod.dir / "pvc-data" / "sentinel.conf").read_text()
    return re.search(r"^sentinel myid ([0-9a-f]{40})$", conf, re.M).group(1)


def test_wrong_password(drill: Drill) -> None:
    primary = cold_start(drill)
    replica = next(p for p in drill.data if p.fqdn != primary)
    sentinel = drill.sentinels[2]
    for pod in (replica, sentinel):
        drill.cluster.delete(pod)
        pod.password_override = "not-the-password"
        drill.cluster.start(pod)
    # The data pod gives up after its discovery timeout, says why, and wrote no error into a config.
    wait_until(lambda: replica.process.poll() is not None, DRILL_SENTINEL["discoveryTimeoutSeconds"] + 15,
               "the data pod with a wrong password exits")
    assert replica.process.returncode != 0
    log = replica.log_text()
    assert re.search(r"WRONGPASS|NOAUTH", log) and "not guessing a role" in log
    run = replica.dir / f"run-{replica.incarnation}"
    conf = run / "empty-tmp" / "redis.conf"
    assert not conf.exists() or "replicaof" not in conf.read_text()
    # The Sentinel cannot authenticate to anyone: never Ready, never the cause of a failover.
    time.sleep(2)
    assert not drill.cluster.ready(sentinel)
    assert drill.primary() == primary
    drill.assert_no_split_brain()
    # Fixed password: both rejoin without anything else changing.
    for pod in (replica, sentinel):
        drill.cluster.delete(pod)
        pod.password_override = None
        drill.cluster.start(pod)
    assert drill.wait_healthy(HEAL, "pods with the right password rejoin") == primary
    finish(drill)


def test_sentinel_unreachable_at_start(drill: Drill) -> None:
    cut = drill.sentinels[2]
    drill.cluster.set_link(cut, up=False)
    for pod in drill.sentinels + drill.data:
        drill.cluster.start(pod)
    drill.start_client()
    # Two Sentinels are a quorum: the cluster starts, the cut-off Sentinel is not Ready.
    others = [p for p in drill.cluster.pods.values() if p is not cut]

    def up_without_it():
        status = drill.ask("status")
        return status["last_ack"] and all(drill.cluster.ready(p) for p in others)

    wait_until(up_without_it, HEAL, "cold start with one Sentinel unreachable")
    assert not drill.cluster.ready(cut)
    wait_replicas_known(drill, [p for p in drill.sentinels if p is not cut])
    old = by_fqdn(drill, drill.primary())
    t = drill.kill(old, "primary")
    wait_until(lambda: drill.primary() not in (None, old.fqdn), HEAL, "failover with two Sentinels")
    drill.cluster.start(old)
    drill.cluster.set_link(cut, up=True)
    new = drill.wait_healthy(HEAL, "the cut-off Sentinel joins and learns the new primary", since=t)
    assert new != old.fqdn
    assert {sentinel_view(drill, p) for p in drill.sentinels} == {new}
    finish(drill)
