"""Redis for conversation state: a first-party StatefulSet (official image), auth on, AOF.

standalone: one pod. sentinel (prod): N data pods plus three Sentinels that fail over automatically;
the agent connects through AGENT_REDIS_SENTINEL_HOSTS.

First-party start scripts rather than an operator or chart: the decision "may this pod start as
primary?" is the one that loses data, and here it is short, readable shell that the failover drill
(tests/redis_drill) runs for real, as rendered, scenario by scenario. The rules the scripts follow:

- A data pod asks every Sentinel and acts only on an address a quorum of them names; errors are
  logged and retried, never written into the config; without a quorum it exits non-zero.
- A data pod the Sentinels still name as primary has restarted before they failed over: it stays
  down so they promote a replica, then follows it. Only on a cold start (no Sentinel has ever seen a
  replica or a failover) does it start as primary. If no failover comes, it starts as a replica
  that accepts no writes and leaves the choice to the Sentinels.
- The primary refuses writes without `minReplicasToWrite` replicas that acknowledged within
  `minReplicasMaxLagSeconds` (NOREPLICAS), so an isolated old primary cannot take writes that a
  failover would then discard.
- Sentinels keep their state (id, epochs, primary, peers) on a PVC and start from it; only a first
  start discovers the primary (peers, then data pods, then the initial primary redis-0).
- A replica the Sentinels never saw (they learn replicas from the primary's INFO every 10 s) follows
  the primary a quorum names once its link has been down past the Sentinels' own deadline.

The password reaches Redis as a mounted file that the start scripts copy into a config file; it is
never in the environment or the process arguments. Data pods keep that copy on a memory-backed
emptyDir. A Sentinel rewrites its config file itself (state + auth-pass), so its copy lives on its
PVC (mode 0600, owned by the Redis uid): the PVC holds no more than the data volumes already do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulumi

from infra import versions
from infra.config import StackConfig
from infra.kube import (KubeObject, agent_peer, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context, selector)

# checkov CKV_K8S_40 wants a uid >= 10000. The official image's `redis` user (999) only matters to its
# entrypoint, which our start scripts replace; fsGroup makes the volumes writable for this uid.
REDIS_UID = 10001
PORT = 6379
SENTINEL_PORT = 26379
SENTINEL_REPLICAS = 3
SENTINEL_QUORUM = SENTINEL_REPLICAS // 2 + 1
MASTER_NAME = "mymaster"
PEER_LABEL = "rag-platform/redis-peer"  # shared by data pods and Sentinels for the NetworkPolicy
PASSWORD_FILE = "/run/secrets/redis/password"
# How long a data pod may stay down waiting for a failover, and AOF loading, bound its startup probe.
AOF_LOAD_ALLOWANCE_SECONDS = 600

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

# Sentinel mode only: a primary without enough fresh replicas refuses writes (standalone has none).
# A full sync starts 1 s after a replica asks (default 5 s, to batch replicas): with writes gated on a
# replica, that is how long a fresh or restarted replica keeps the primary refusing writes.
REPLICATION_CONF = """\
min-replicas-to-write {to_write}
min-replicas-max-lag {max_lag}
replica-serve-stale-data yes
replica-read-only yes
repl-diskless-sync-delay 1
"""

# The password file is appended as requirepass/masterauth into a tmpfs copy of the config.
STANDALONE_START = f"""\
set -eu
PW="$(cat {PASSWORD_FILE})"
cp /etc/redis/redis.conf /tmp/redis.conf
printf 'requirepass %s\\nmasterauth %s\\n' "$PW" "$PW" >> /tmp/redis.conf
exec redis-server /tmp/redis.conf
"""

# A data pod of the Sentinel topology (dash, like the image's /bin/sh). Everything it needs comes from
# the container env (build_redis): POD_NAME, REDIS_DOMAIN, SENTINEL_HOSTS, MASTER_NAME, SENTINEL_QUORUM,
# DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, DISCOVERY_TIMEOUT_SECONDS, STAY_DOWN_SECONDS, STUCK_REPLICA_SECONDS.
SENTINEL_DATA_START = f"""\
set -eu
log() {{ echo "redis-start: $*" >&2; }}
PW="$(cat {PASSWORD_FILE})"
SELF="$POD_NAME.$REDIS_DOMAIN"
cp /etc/redis/redis.conf /tmp/redis.conf
printf 'requirepass %s\\nmasterauth %s\\nreplica-announce-ip %s\\n' "$PW" "$PW" "$SELF" >> /tmp/redis.conf

# One Sentinel's view: "<host>:<port> <known replicas> <config epoch>", or a logged error and status 1.
# redis-cli exits 0 on error replies (NOAUTH, ...), so the reply's shape is what is checked.
ask() {{
  out="$(REDISCLI_AUTH="$PW" timeout 2 redis-cli -h "$1" -p {SENTINEL_PORT} SENTINEL MASTER "$MASTER_NAME" 2>&1)" \\
    || {{ log "sentinel $1: unreachable or timed out: $(printf '%s' "$out" | tr -d '\\r' | tr '\\n' ' ' | cut -c1-200)"; return 1; }}
  out="$(printf '%s\\n' "$out" | tr -d '\\r')"
  field() {{ printf '%s\\n' "$out" | sed -n "/^$1\\$/{{n;p;q;}}"; }}
  host="$(field ip)"; port="$(field port)"; replicas="$(field num-slaves)"; epoch="$(field config-epoch)"
  if printf '%s\\n' "$host" | grep -Eqx '[A-Za-z0-9][A-Za-z0-9.-]*' && printf '%s %s %s\\n' "$port" "$replicas" "$epoch" \\
      | grep -Eqx '[0-9]+ [0-9]+ [0-9]+'; then
    echo "$host:$port $replicas $epoch"
    return 0
  fi
  log "sentinel $1: no primary in its answer: $(printf '%s' "$out" | tr '\\n' ' ' | cut -c1-200)"
  return 1
}}

# Ask every Sentinel once. PRIMARY: the address a quorum names (or empty); COLD=1 when every Sentinel
# that answered has never seen a replica or a failover (a new cluster: nobody has data to lose).
ask_all() {{
  votes=""; COLD=1; PRIMARY=""
  for s in $SENTINEL_HOSTS; do
    if view="$(ask "$s")"; then
      set -- $view
      votes="$votes$1
"
      [ "$2" = 0 ] && [ "$3" = 0 ] || COLD=0
    fi
  done
  PRIMARY="$(printf '%s' "$votes" | sort | uniq -c | while read -r n addr; do
    [ "$n" -ge "$SENTINEL_QUORUM" ] && echo "$addr"; done | head -n1)"
}}

deadline=$(( $(date +%s) + DISCOVERY_TIMEOUT_SECONDS ))
while ask_all; [ -z "$PRIMARY" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "no $SENTINEL_QUORUM Sentinels agreed on a primary within ${{DISCOVERY_TIMEOUT_SECONDS}}s; not guessing a role, exiting"
    exit 1
  fi
  sleep 1
done

REPLICAOF=""
if [ "$PRIMARY" != "$SELF:{PORT}" ]; then
  REPLICAOF="$PRIMARY"
elif [ "$COLD" = 1 ]; then
  log "cold start: the Sentinels name this pod and have never seen a replica or a failover; starting as primary"
else
  # This pod was the primary and restarted before the Sentinels failed over. Starting as primary now
  # would race the promotion of a replica (two primaries). Stay down, so they see it down and promote.
  wait_s=$STAY_DOWN_SECONDS
  log "the Sentinels still name this pod primary; staying down up to ${{wait_s}}s so they promote a replica"
  until=$(( $(date +%s) + wait_s ))
  while [ "$(date +%s)" -lt "$until" ]; do
    sleep 1
    ask_all
    if [ -n "$PRIMARY" ] && [ "$PRIMARY" != "$SELF:{PORT}" ]; then REPLICAOF="$PRIMARY"; break; fi
  done
  if [ -z "$REPLICAOF" ]; then
    # No failover (no replica could be promoted yet). A replica of nothing serves no writes; the
    # Sentinels see a primary that reports itself a replica, fail over when a replica is eligible,
    # and reconfigure this pod.
    log "no failover within ${{wait_s}}s; starting as a replica that accepts no writes until the Sentinels decide"
    REPLICAOF="127.0.0.1:1"
  fi
fi
if [ -n "$REPLICAOF" ]; then
  log "starting as a replica of $REPLICAOF"
  printf 'replicaof %s %s\\n' "${{REPLICAOF%:*}}" "${{REPLICAOF##*:}}" >> /tmp/redis.conf
fi

# Sentinels reconfigure only the replicas they have seen in the primary's INFO (polled every 10 s): a
# replica that joined just before the primary died would follow the dead one for ever. Once its link has
# been down longer than the Sentinels' own deadline, do for it what they would: follow the primary a
# quorum of them names (never this pod, never while they still name the old one).
stuck_s=$STUCK_REPLICA_SECONDS
(
  down=0
  while sleep 5; do
    info="$(REDISCLI_AUTH="$PW" timeout 3 redis-cli -p {PORT} INFO replication 2>/dev/null | tr -d '\\r')" || continue
    case "$info" in *master_link_status:down*) down=$((down + 5)) ;; *) down=0; continue ;; esac
    [ "$down" -ge "$stuck_s" ] || continue
    current="$(printf '%s\\n' "$info" | sed -n 's/^master_host://p'):$(printf '%s\\n' "$info" | sed -n 's/^master_port://p')"
    ask_all
    if [ -n "$PRIMARY" ] && [ "$PRIMARY" != "$SELF:{PORT}" ] && [ "$PRIMARY" != "$current" ]; then
      log "replica of $current with its link down for ${{down}}s; the Sentinels name $PRIMARY: following it"
      REDISCLI_AUTH="$PW" timeout 3 redis-cli -p {PORT} REPLICAOF "${{PRIMARY%:*}}" "${{PRIMARY##*:}}" >/dev/null || true
      down=0
    fi
  done
) &
exec redis-server /tmp/redis.conf
"""

# A Sentinel. Env: POD_NAME, SENTINEL_DOMAIN, SENTINEL_HOSTS, REDIS_HOSTS, INITIAL_PRIMARY, MASTER_NAME,
# SENTINEL_QUORUM, DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS. Sentinels require the Redis password: the agent
# authenticates to them with it, and they use it with each other (sentinel-pass).
SENTINEL_START = f"""\
set -eu
log() {{ echo "sentinel-start: $*" >&2; }}
PW="$(cat {PASSWORD_FILE})"
SELF="$POD_NAME.$SENTINEL_DOMAIN"
CONF=/data/sentinel.conf
umask 077  # the config holds the password, and Sentinel rewrites it at every state change: keep it 0600
PRIMARY=""
if [ -s "$CONF" ]; then
  PRIMARY="$(sed -n "s/^sentinel monitor $MASTER_NAME \\([A-Za-z0-9.-]*\\) \\([0-9]*\\) [0-9]*\\$/\\1 \\2/p" "$CONF" | head -n1)"
  [ -z "$PRIMARY" ] || log "starting from the state in $CONF (primary $PRIMARY)"
fi
if [ -z "$PRIMARY" ]; then
  # First start (empty volume): a peer that has state knows the primary; else a data pod that is one.
  for attempt in 1 2; do
    for s in $SENTINEL_HOSTS; do
      [ "$s" != "$SELF" ] || continue
      out="$(REDISCLI_AUTH="$PW" timeout 2 redis-cli -h "$s" -p {SENTINEL_PORT} SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>&1 | tr -d '\\r' | tr '\\n' ' ')" || true
      if printf '%s\\n' "$out" | grep -Eqx '[A-Za-z0-9][A-Za-z0-9.-]* [0-9]+ '; then PRIMARY="${{out% }}"; break 2; fi
      log "peer $s: no primary: $(printf '%s' "$out" | cut -c1-200)"
    done
    for d in $REDIS_HOSTS; do
      out="$(REDISCLI_AUTH="$PW" timeout 2 redis-cli -h "$d" -p {PORT} ROLE 2>&1 | tr -d '\\r' | head -n1)" || true
      if [ "$out" = master ]; then PRIMARY="$d {PORT}"; break 2; fi
    done
    sleep 1
  done
  if [ -z "$PRIMARY" ]; then
    PRIMARY="$INITIAL_PRIMARY {PORT}"
    log "no peer or data pod named a primary: a new cluster, monitoring $INITIAL_PRIMARY"
  fi
fi
# Settings from the manifest first (resolve-hostnames before any hostname), then only the state lines
# Sentinel wrote last time (id, epochs, known replicas and peers). Everything else it rewrote (e.g. a
# hashed old password) is dropped, so a rotated password takes effect.
{{
  echo "port {SENTINEL_PORT}"
  echo "dir /data"
  printf 'requirepass %s\\n' "$PW"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  printf 'sentinel announce-ip %s\\n' "$SELF"
  printf 'sentinel sentinel-pass %s\\n' "$PW"
  printf 'sentinel monitor %s %s %s\\n' "$MASTER_NAME" "$PRIMARY" "$SENTINEL_QUORUM"
  printf 'sentinel auth-pass %s %s\\n' "$MASTER_NAME" "$PW"
  printf 'sentinel down-after-milliseconds %s %s\\n' "$MASTER_NAME" "$DOWN_AFTER_MS"
  printf 'sentinel failover-timeout %s %s\\n' "$MASTER_NAME" "$FAILOVER_TIMEOUT_MS"
  printf 'sentinel parallel-syncs %s 1\\n' "$MASTER_NAME"
  if [ -s "$CONF" ]; then
    grep -Ex "sentinel (myid [0-9a-f]{{40}}|current-epoch [0-9]+|(config|leader)-epoch $MASTER_NAME [0-9]+|known-replica $MASTER_NAME [A-Za-z0-9.-]+ [0-9]+|known-sentinel $MASTER_NAME [A-Za-z0-9.-]+ [0-9]+ [0-9a-f]{{40}})" "$CONF" || true
  fi
}} > "$CONF.new"
mv "$CONF.new" "$CONF"
exec redis-sentinel "$CONF"
"""

_AUTH = f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})"'
# Alive: answers at all (LOADING while reading the AOF and MASTERDOWN count as alive).
LIVENESS_PROBE = (f'out="$({_AUTH} timeout 4 redis-cli -p {PORT} PING 2>&1)"; '
                  'case "$out" in PONG*|LOADING*|MASTERDOWN*) exit 0;; esac; echo "$out"; exit 1')
# Ready: a primary, or a replica whose link to its primary is up (replicating, not merely running).
DATA_READINESS_PROBE = (f'out="$({_AUTH} timeout 4 redis-cli -p {PORT} INFO replication 2>&1 | tr -d \'\\r\')" || exit 1; '
                        'printf \'%s\\n\' "$out" | grep -qx "role:master" && exit 0; '
                        'printf \'%s\\n\' "$out" | grep -qx "master_link_status:up" && exit 0; '
                        'echo "not replicating: $(printf \'%s\' "$out" | grep -E "^(role|master_host|master_link_status):" | tr \'\\n\' \' \')"; exit 1')
SENTINEL_LIVENESS_PROBE = (f'out="$({_AUTH} timeout 4 redis-cli -p {SENTINEL_PORT} PING 2>&1)"; '
                           'case "$out" in PONG*) exit 0;; esac; echo "$out"; exit 1')
# Ready: knows a primary and enough peers to reach a quorum and authorize a failover (CKQUORUM).
SENTINEL_READINESS_PROBE = (
    f'q="$({_AUTH} timeout 4 redis-cli -p {SENTINEL_PORT} SENTINEL CKQUORUM {MASTER_NAME} 2>&1)"; '
    'case "$q" in OK*) ;; *) echo "$q"; exit 1;; esac; '
    f'm="$({_AUTH} timeout 4 redis-cli -p {SENTINEL_PORT} SENTINEL get-master-addr-by-name {MASTER_NAME} 2>&1 | head -n1 | tr -d \'\\r\')"; '
    'printf \'%s\\n\' "$m" | grep -Eqx "[A-Za-z0-9][A-Za-z0-9.-]*" || { echo "no primary: $m"; exit 1; }')

CPU_LIMIT_SKIP = ("CKV_K8S_11=No CPU limit on purpose: CFS throttling stalls Redis/Sentinel replies past "
                  "down-after-milliseconds and causes needless failovers; the CPU request reserves what they need")


@dataclass(frozen=True)
class RedisEndpoints:
    """What the agent needs to reach Redis (no credentials)."""

    url: str
    sentinel_hosts: str | None
    master_name: str


def _domains(ns: Namespaces) -> tuple[str, str]:
    return f"redis-headless.{ns.data}.svc.cluster.local", f"redis-sentinel-headless.{ns.data}.svc.cluster.local"


def _sentinel_hosts(ns: Namespaces) -> list[str]:
    return [f"redis-sentinel-{i}.{_domains(ns)[1]}" for i in range(SENTINEL_REPLICAS)]


def endpoints(cfg: StackConfig, ns: Namespaces) -> RedisEndpoints:
    svc = f"redis.{ns.data}.svc.cluster.local"
    hosts = None
    if cfg.redis.mode == "sentinel":
        hosts = ",".join(f"{h}:{SENTINEL_PORT}" for h in _sentinel_hosts(ns))
    return RedisEndpoints(url=f"redis://{svc}:{PORT}/0", sentinel_hosts=hosts, master_name=MASTER_NAME)


def _env(values: dict[str, str | int]) -> list[dict]:
    pod_name = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    return [pod_name] + [{"name": k, "value": str(v)} for k, v in values.items()]


def _sentinel_env(cfg: StackConfig, ns: Namespaces) -> dict[str, str | int]:
    s = cfg.redis.sentinel
    return {"SENTINEL_HOSTS": " ".join(_sentinel_hosts(ns)), "MASTER_NAME": MASTER_NAME,
            "SENTINEL_QUORUM": SENTINEL_QUORUM, "DOWN_AFTER_MS": s.downAfterMilliseconds,
            "FAILOVER_TIMEOUT_MS": s.failoverTimeoutMilliseconds}


# Sentinel drops a connection attempt to a dead address only after 15 s (sentinel.c,
# sentinel_min_link_reconnect_period): a pod back under a new IP is invisible to it until then.
SENTINEL_LINK_RECONNECT_SECONDS = 15


def stay_down_seconds(cfg: StackConfig) -> int:
    """How long a restarted primary stays down for the Sentinels to fail over. When every data pod died,
    their first attempts abort (no replica up) and are retried every 2 x failover-timeout; replicas that
    came back under new addresses are visible to them after up to 15 s. Cover that plus one more retry."""
    s = cfg.redis.sentinel
    return (2 * s.downAfterMilliseconds + 3 * s.failoverTimeoutMilliseconds) // 1000 + SENTINEL_LINK_RECONNECT_SECONDS


def stuck_replica_seconds(cfg: StackConfig) -> int:
    """After this long with its link down, a replica follows the quorum's primary itself."""
    s = cfg.redis.sentinel
    return (s.downAfterMilliseconds + 2 * s.failoverTimeoutMilliseconds) // 1000


def _probe(cmd: str, period: int, timeout: int = 5, failures: int = 3) -> dict:
    return {"exec": {"command": ["sh", "-c", cmd]}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def _container(name: str, script: str, port: int, mounts: list[dict], resources: dict, env: list[dict],
               liveness: str, readiness: str, startup_seconds: int) -> dict:
    image, pull_policy, _ = versions.image_ref(versions.REDIS_IMAGE)
    return {
        "name": name, "image": image, "imagePullPolicy": pull_policy,
        "command": ["sh", "-c", script],
        **({"env": env} if env else {}),
        "ports": [{"name": name, "containerPort": port}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": "redis-auth", "mountPath": "/run/secrets/redis", "readOnly": True}, *mounts],
        "resources": resources,
        "securityContext": container_security_context(REDIS_UID),
        # Liveness starts only after the startup probe passed: discovery, a deliberate wait for a failover
        # and AOF loading are not "dead".
        "startupProbe": _probe(liveness, 5, failures=math.ceil(startup_seconds / 5)),
        "livenessProbe": _probe(liveness, 10, failures=3),
        "readinessProbe": _probe(readiness, 5, failures=2),
    }


def _volumes(secret_name: str, extra: list[dict] | None = None) -> list[dict]:
    return [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "redis-auth", "secret": {"secretName": secret_name, "defaultMode": 0o400}},
        *(extra or []),
    ]


def _pvc(name: str, size: str, storage_class: str | None, lbl: dict) -> dict:
    pvc = {"metadata": {"name": name, "labels": lbl},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}
    if storage_class:
        pvc["spec"]["storageClassName"] = storage_class
    return pvc


def _pod_spec(containers: list[dict], volumes: list[dict], affinity: dict | None) -> dict:
    spec = {"serviceAccountName": "redis", "automountServiceAccountToken": False,
            # No REDIS_PORT=tcp://... service-link variables next to the scripts' own env.
            "enableServiceLinks": False,
            "securityContext": pod_security_context(REDIS_UID), "containers": containers, "volumes": volumes}
    if affinity:
        spec["affinity"] = affinity
    return spec


def _statefulset(name: str, ns: str, lbl: dict, sel: dict, service: str, replicas: int, pod_spec: dict,
                 pvc: dict) -> Manifest:
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(name, ns, lbl, annotations={"checkov.io/skip1": CPU_LIMIT_SKIP,
                                                         **versions.image_ref(versions.REDIS_IMAGE)[2]}),
        "spec": {"serviceName": service, "replicas": replicas, "selector": {"matchLabels": sel},
                 # Parallel where there are peers: a data pod's readiness means "replicating", which needs
                 # its peers running. A single pod keeps the default (the field is immutable: no replacement).
                 "podManagementPolicy": "Parallel" if replicas > 1 else "OrderedReady",
                 "template": {"metadata": {"labels": lbl}, "spec": pod_spec},
                 "volumeClaimTemplates": [pvc]},
    }


def build_redis(cfg: StackConfig, ns: Namespaces, secret_name: str) -> list[Manifest]:
    env, r = cfg.environment, cfg.redis
    lbl = labels("redis", "cache", env) | {PEER_LABEL: "true"}
    sel = selector("redis", env)
    sentinel = r.mode == "sentinel"
    data_domain, sentinel_domain = _domains(ns)
    conf = REDIS_CONF.format(maxmemory=r.maxMemory)
    if sentinel:
        conf += REPLICATION_CONF.format(to_write=r.minReplicasToWrite, max_lag=r.minReplicasMaxLagSeconds)
    out: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("redis-config", ns.data, lbl),
         "data": {"redis.conf": conf}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-headless", ns.data, lbl),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": sel,
                  "ports": [{"name": "redis", "port": PORT, "targetPort": PORT}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis", ns.data, lbl),
         "spec": {"type": "ClusterIP", "selector": sel, "ports": [{"name": "redis", "port": PORT, "targetPort": PORT}]}},
    ]
    resources = {"requests": {"cpu": "100m", "memory": r.memoryLimit}, "limits": {"memory": r.memoryLimit}}
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "config", "mountPath": "/etc/redis", "readOnly": True}]
    if sentinel:
        data_env = _env({"REDIS_DOMAIN": data_domain, **_sentinel_env(cfg, ns),
                         "DISCOVERY_TIMEOUT_SECONDS": r.sentinel.discoveryTimeoutSeconds,
                         "STAY_DOWN_SECONDS": stay_down_seconds(cfg),
                         "STUCK_REPLICA_SECONDS": stuck_replica_seconds(cfg)})
        startup = r.sentinel.discoveryTimeoutSeconds + stay_down_seconds(cfg) + AOF_LOAD_ALLOWANCE_SECONDS
        container = _container("redis", SENTINEL_DATA_START, PORT, mounts, resources, data_env,
                               LIVENESS_PROBE, DATA_READINESS_PROBE, startup)
    else:
        container = _container("redis", STANDALONE_START, PORT, mounts, resources, [],
                               LIVENESS_PROBE, DATA_READINESS_PROBE, AOF_LOAD_ALLOWANCE_SECONDS)
    pod_spec = _pod_spec([container], _volumes(secret_name, [{"name": "config", "configMap": {"name": "redis-config"}}]),
                         _spread(sel) if sentinel else None)
    out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata("redis", ns.data, lbl),
                "automountServiceAccountToken": False})
    out.append(_statefulset("redis", ns.data, lbl, sel, "redis-headless", r.replicas, pod_spec,
                            _pvc("data", r.storageSize, r.storageClass, lbl)))
    if sentinel:
        slbl = labels("redis-sentinel", "cache", env) | {PEER_LABEL: "true"}
        ssel = selector("redis-sentinel", env)
        sentinel_env = _env({"SENTINEL_DOMAIN": sentinel_domain, **_sentinel_env(cfg, ns),
                             "REDIS_HOSTS": " ".join(f"redis-{i}.{data_domain}" for i in range(r.replicas)),
                             "INITIAL_PRIMARY": f"redis-0.{data_domain}"})
        sentinel_container = _container(
            "sentinel", SENTINEL_START, SENTINEL_PORT, [{"name": "data", "mountPath": "/data"}],
            {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}, sentinel_env,
            SENTINEL_LIVENESS_PROBE, SENTINEL_READINESS_PROBE, 60)
        out += [
            {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-sentinel-headless", ns.data, slbl),
             "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": ssel,
                      "ports": [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": SENTINEL_PORT}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": metadata("redis-sentinel", ns.data, slbl),
             "spec": {"selector": ssel,
                      "ports": [{"name": "sentinel", "port": SENTINEL_PORT, "targetPort": SENTINEL_PORT}]}},
            _statefulset("redis-sentinel", ns.data, slbl, ssel, "redis-sentinel-headless", SENTINEL_REPLICAS,
                         _pod_spec([sentinel_container], _volumes(secret_name), _spread(ssel)),
                         _pvc("data", r.sentinel.storageSize, r.storageClass, slbl)),
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
