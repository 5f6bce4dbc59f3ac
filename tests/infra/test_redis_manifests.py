"""Prod's Redis manifests: what the failover drill (tests/redis_drill) relies on, checked statically.

The drill runs these scripts and probes for real; here: the settings it cannot observe (volumes,
pod management, hardening, checkov annotations) and the config errors."""

from __future__ import annotations

import json

import pytest

from infra.config import ConfigError, parse_stack_config
from infra.preview import load_stack_file

from .conftest import REPO


def test_prod_sentinel_topology(stacks):
    prod = stacks["prod"]
    data, sentinel = prod.one("StatefulSet", "redis"), prod.one("StatefulSet", "redis-sentinel")
    for sts in (data, sentinel):
        spec = sts["spec"]
        # Readiness means replicating, which needs the peers running: no OrderedReady deadlock.
        assert spec["podManagementPolicy"] == "Parallel"
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] >= 10000 and pod["securityContext"]["fsGroup"] == \
            pod["securityContext"]["runAsUser"]
        assert pod["enableServiceLinks"] is False
        c = pod["containers"][0]
        assert c["imagePullPolicy"] == "Always" or "@sha256:" in c["image"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert all(c[p]["exec"]["command"][:2] == ["sh", "-c"] for p in ("readinessProbe", "livenessProbe", "startupProbe"))
        assert "resources" in c and "cpu" not in c["resources"].get("limits", {})
        assert sts["metadata"]["annotations"]["checkov.io/skip1"].startswith("CKV_K8S_11=")
        # The Sentinel's state lives on its PVC at /data, not on a memory-backed emptyDir.
        claim = spec["volumeClaimTemplates"][0]
        assert claim["metadata"]["name"] == "data"
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert "/data/sentinel.conf" in sentinel["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    conf = prod.one("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert "min-replicas-to-write 1\n" in conf and "min-replicas-max-lag 5\n" in conf


def test_standalone_has_no_replication_guard(stacks):
    for name in ("dev", "local", "staging"):
        conf = stacks[name].one("ConfigMap", "redis-config")["data"]["redis.conf"]
        assert "min-replicas" not in conf  # a lone primary would refuse every write


def test_startup_budget_covers_discovery_and_a_deliberate_wait(stacks):
    from infra.components.redis import AOF_LOAD_ALLOWANCE_SECONDS, stay_down_seconds

    cfg = parse_stack_config("prod", *load_stack_file(REPO / "stacks" / "Pulumi.prod.yaml"))
    c = stacks["prod"].one("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
    assert budget >= cfg.redis.sentinel.discoveryTimeoutSeconds + stay_down_seconds(cfg) + AOF_LOAD_ALLOWANCE_SECONDS


@pytest.mark.parametrize(("redis", "expected"), [
    ({"mode": "sentinel", "replicas": 3, "minReplicasToWrite": 3}, "minReplicasToWrite (3) must be <= replicas - 1"),
    ({"mode": "sentinel", "replicas": 3, "sentinel": {"downAfterMilliseconds": 10}}, "rag-platform:redis.sentinel.downAfterMilliseconds"),
    # Below 5 s Sentinel counts stale votes against a just-promoted primary (the drill's double failover).
    ({"mode": "sentinel", "replicas": 3, "sentinel": {"downAfterMilliseconds": 4999}}, "at least 5000: below that Sentinel"),
    ({"mode": "sentinel", "replicas": 3, "sentinel": {"quorum": 1}}, "rag-platform:redis.sentinel.quorum"),
])
def test_redis_config_errors(redis, expected):
    raw, secrets = load_stack_file(REPO / "stacks" / "Pulumi.prod.yaml")
    with pytest.raises(ConfigError) as err:
        parse_stack_config("prod", dict(raw, **{"rag-platform:redis": json.dumps(redis)}), secrets)
    assert expected in str(err.value) and "fix:" in str(err.value)
