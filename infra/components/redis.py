"""Redis for conversation state: a first-party StatefulSet (official image), auth on, AOF.

standalone: one pod. sentinel (prod): N data pods (ordinal 0 starts as primary) plus three Sentinels
that fail over automatically; the agent connects through AGENT_REDIS_SENTINEL_HOSTS.
The password reaches Redis as a mounted file that a start script copies into a config file on a
memory-backed emptyDir, so it is never in the environment or the process arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra import versions
from infra.config import StackConfig
from infra.kube import (KubeObject, agent_peer, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context, selector)

REDIS_UID = 999  # the `redis` user of the official image
PORT = 6379
SENTINEL_PORT = 26379
SENTINEL_REPLICAS = 3
MASTER_NAME = "mymaster"
PEER_LABEL = "rag-platform/redis-peer"  # shared by data pods and Sentinels for the NetworkPolicy

REDIS_CONF = """\
bind 0.0.0.0
port 6379
dir /data
appendonly yes
appendfsync everysec
auto-aof-rewrite-percentage 100
auto-aof-rewrite-min-size 64mb
save 900 1
maxmemory {maxmemory}
maxmemory-policy noeviction
protected-mode no
"""

# The password file is appended as requirepass/masterauth into a tmpfs copy of the config.
REDIS_START = """\
set -eu
PW="$(cat /run/secrets/redis/password)"
cp /etc/redis/redis.conf /tmp/redis.conf
printf 'requirepass %s\\nmasterauth %s\\n' "$PW" "$PW" >> /tmp/redis.conf
{replica_block}
exec redis-server /tmp/redis.conf
"""

# Non-zero ordinals follow whatever primary the Sentinels report (or redis-0 on first boot).
REPLICA_BLOCK = """\
SELF="$(hostname).{headless}.{ns}.svc.cluster.local"
printf 'replica-announce-ip %s\\n' "$SELF" >> /tmp/redis.conf
MASTER="$(REDISCLI_AUTH="$PW" redis-cli -h {sentinel_svc} -p {sentinel_port} sentinel get-master-addr-by-name {master} 2>/dev/null | head -n1 || true)"
if [ -z "$MASTER" ] && [ "$(hostname)" != "redis-0" ]; then MASTER="redis-0.{headless}.{ns}.svc.cluster.local"; fi
if [ -n "$MASTER" ] && [ "$MASTER" != "$SELF" ]; then
  printf 'replicaof %s {port}\\n' "$MASTER" >> /tmp/redis.conf
fi"""

# Sentinels require the same password as Redis: the agent authenticates to them with it, and
# Sentinels use it with each other (Redis >= 6.2 password-only Sentinel auth).
SENTINEL_START = """\
set -eu
PW="$(cat /run/secrets/redis/password)"
MASTER="$(REDISCLI_AUTH="$PW" redis-cli -h {sentinel_svc} -p {sentinel_port} sentinel get-master-addr-by-name {master} 2>/dev/null | head -n1 || true)"
if [ -z "$MASTER" ]; then MASTER="redis-0.{headless}.{ns}.svc.cluster.local"; fi
cat > /tmp/sentinel.conf <<CONF
port {sentinel_port}
requirepass $PW
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $(hostname).{sentinel_headless}.{ns}.svc.cluster.local
sentinel monitor {master} $MASTER {port} 2
sentinel auth-pass {master} $PW
sentinel down-after-milliseconds {master} 5000
sentinel failover-timeout {master} 60000
sentinel parallel-syncs {master} 1
CONF
exec redis-sentinel /tmp/sentinel.conf
"""

PING_PROBE = ['sh', '-c', 'REDISCLI_AUTH="$(cat /run/secrets/redis/password)" redis-cli -p 6379 ping | grep -q PONG']


@dataclass(frozen=True)
class RedisEndpoints:
    """What the agent needs to reach Redis (no credentials)."""

    url: str
    sentinel_hosts: str | None
    master_name: str


def endpoints(cfg: StackConfig, ns: Namespaces) -> RedisEndpoints:
    svc = f"redis.{ns.data}.svc.cluster.local"
    hosts = None
    if cfg.redis.mode == "sentinel":
        hosts = ",".join(f"redis-sentinel-{i}.redis-sentinel-headless.{ns.data}.svc.cluster.local:{SENTINEL_PORT}"
                         for i in range(SENTINEL_REPLICAS))
    return RedisEndpoints(url=f"redis://{svc}:{PORT}/0", sentinel_hosts=hosts, master_name=MASTER_NAME)


def _volumes(secret_name: str, extra: list[dict] | None = None) -> list[dict]:
    return [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "redis-auth", "secret": {"secretName": secret_name, "defaultMode": 0o400}},
        *(extra or []),
    ]


def _container(name: str, image: str, script: str, port: int, mounts: list[dict], resources: dict,
               probe_cmd: list[str] | None) -> dict:
    c = {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "ports": [{"name": name, "containerPort": port}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": "redis-auth", "mountPath": "/run/secrets/redis", "readOnly": True}, *mounts],
        "resources": resources,
        "securityContext": container_security_context(REDIS_UID),
        "livenessProbe": {"tcpSocket": {"port": port}, "initialDelaySeconds": 15, "periodSeconds": 10},
    }
    c["readinessProbe"] = ({"exec": {"command": probe_cmd}, "periodSeconds": 5, "timeoutSeconds": 3}
                           if probe_cmd else {"tcpSocket": {"port": port}, "periodSeconds": 5})
    return c


def build_redis(cfg: StackConfig, ns: Namespaces, secret_name: str) -> list[Manifest]:
    env, r = cfg.environment, cfg.redis
    lbl = labels("redis", "cache", env) | {PEER_LABEL: "true"}
    sel = selector("redis", env)
    sentinel = r.mode == "sentinel"
    subs = dict(headless="redis-headless", ns=ns.data, sentinel_svc="redis-sentinel", sentinel_port=SENTINEL_PORT,
                master=MASTER_NAME, port=PORT, sentinel_headless="redis-sentinel-headless")
    script = REDIS_START.format(replica_block=REPLICA_BLOCK.format(**subs) if sentinel else "")
    out: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("redis-config", ns.data, lbl),
         "data": {"redis.conf": REDIS_CONF.format(maxmemory=r.maxMemory)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-headless", ns.data, lbl),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": sel,
                  "ports": [{"name": "redis", "port": PORT, "targetPort": PORT}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis", ns.data, lbl),
         "spec": {"type": "ClusterIP", "selector": sel, "ports": [{"name": "redis", "port": PORT, "targetPort": PORT}]}},
    ]
    pvc = {"metadata": {"name": "data", "labels": lbl},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": r.storageSize}}}}
    if r.storageClass:
        pvc["spec"]["storageClassName"] = r.storageClass
    resources = {"requests": {"cpu": "100m", "memory": r.memoryLimit}, "limits": {"memory": r.memoryLimit}}
    pod_spec = {
        "serviceAccountName": "redis",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(REDIS_UID),
        "containers": [_container("redis", versions.REDIS_IMAGE, script, PORT,
                                  [{"name": "data", "mountPath": "/data"},
                                   {"name": "config", "mountPath": "/etc/redis", "readOnly": True}],
                                  resources, PING_PROBE)],
        "volumes": _volumes(secret_name, [{"name": "config", "configMap": {"name": "redis-config"}}]),
    }
    if sentinel:
        pod_spec["affinity"] = _spread(sel)
    out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata("redis", ns.data, lbl),
                "automountServiceAccountToken": False})
    out.append({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata("redis", ns.data, lbl),
        "spec": {"serviceName": "redis-headless", "replicas": r.replicas, "selector": {"matchLabels": sel},
                 "podManagementPolicy": "OrderedReady",
                 "template": {"metadata": {"labels": lbl}, "spec": pod_spec},
                 "volumeClaimTemplates": [pvc]},
    })
    if sentinel:
        slbl = labels("redis-sentinel", "cache", env) | {PEER_LABEL: "true"}
        ssel = selector("redis-sentinel", env)
        out += [
            {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-sentinel-headless", ns.data, slbl),
             "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": ssel,
                      "ports": [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": SENTINEL_PORT}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-sentinel", ns.data, slbl),
             "spec": {"selector": ssel,
                      "ports": [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": SENTINEL_PORT}]}},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata("redis-sentinel", ns.data, slbl),
             "spec": {"serviceName": "redis-sentinel-headless", "replicas": SENTINEL_REPLICAS,
                      "podManagementPolicy": "Parallel", "selector": {"matchLabels": ssel},
                      "template": {"metadata": {"labels": slbl}, "spec": {
                          "serviceAccountName": "redis", "automountServiceAccountToken": False,
                          "securityContext": pod_security_context(REDIS_UID),
                          "affinity": _spread(ssel),
                          "containers": [_container(
                              "sentinel", versions.REDIS_IMAGE, SENTINEL_START.format(**subs), SENTINEL_PORT, [],
                              {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}, None)],
                          "volumes": _volumes(secret_name)}}}},
            _pdb("redis-sentinel", ns.data, slbl, ssel),
        ]
        out.append(_pdb("redis", ns.data, lbl, sel))
    out.append(build_network_policy(cfg, ns))
    return out


def _spread(sel: dict) -> dict:
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                           "labelSelector": {"matchLabels": sel}}}]}}


def _pdb(name: str, ns: str, lbl: dict, sel: dict) -> Manifest:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(name, ns, lbl),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}}


def build_network_policy(cfg: StackConfig, ns: Namespaces) -> Manifest:
    """Only the agent (and Redis peers, for replication and Sentinel) may reach Redis."""
    peers = {"podSelector": {"matchLabels": {PEER_LABEL: "true"}}}
    agent = agent_peer(ns, cfg.environment)
    ports = [{"protocol": "TCP", "port": PORT}, {"protocol": "TCP", "port": SENTINEL_PORT}]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata("redis-allow-agent", ns.data, labels("redis", "network-policy", cfg.environment)),
        "spec": {"podSelector": {"matchLabels": {PEER_LABEL: "true"}}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [agent, peers], "ports": ports}],
                 "egress": [{"to": [peers], "ports": ports}]},
    }


class Redis(pulumi.ComponentResource):
    """Conversation-state Redis for one environment."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, secret_name: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:redis:Redis", name, None, opts)
        self.endpoints = endpoints(cfg, ns)
        self.objects = [KubeObject(m, pulumi.ResourceOptions(parent=self)) for m in
                        build_redis(cfg, ns, secret_name)]
        self.register_outputs({"url": self.endpoints.url, "sentinelHosts": self.endpoints.sentinel_hosts})
