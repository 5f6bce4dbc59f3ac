"""Milvus via the zilliztech Helm chart: standalone (dev/local/staging) or cluster mode (prod).

The chart is used rather than the Milvus Operator: no extra CRDs or controller to run, and the
standalone/cluster switch is one value. Its bundled etcd/MinIO/Pulsar subcharts run in a namespace
of their own so that one NetworkPolicy can say "only the agent from outside".
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.secrets import MINIO_ACCESS_KEY, MINIO_SECRET_KEY
from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, agent_peer, labels, metadata

PORT = 19530
RELEASE = "milvus"

# Pod hardening through chart values. Only values the pinned chart and its subcharts read are set;
# each comment names the template that reads it. What no value can fix is exempted per object in
# stacks/policy/<stack>.json ("Third-party (Milvus chart ...)"); docs/policies.md lists both and
# says where they were reconstructed from.

# bitnami/etcd's own default user for its image (values.yaml containerSecurityContext.runAsUser).
ETCD_UID = 1001
ETCD_SERVICE_ACCOUNT = f"{RELEASE}-etcd"
# apachepulsar/pulsar >= 2.10 runs as uid 10000, group 0 (apache/pulsar#13376).
PULSAR_UID = 10000


# MinIO credentials. The MinIO subchart reads them from the Secret named by `minio.existingSecret`
# (charts/minio/templates/{deployment,statefulset}.yaml, the `minio.secretName` helper; with it set,
# templates/secrets.yaml renders no Secret of its own). The Milvus pods do not read that value:
# templates/config.tpl writes `minio.accessKey`/`minio.secretKey` into the chart's ConfigMap in plaintext.
# Milvus 2.5 also reads both keys from these env vars, and its env source outranks its config files
# (milvus-io/milvus pkg/util/paramtable/service_param.go, pkg/config/{env_source,source,manager}.go), so
# every Milvus component gets them from the same Secret through `<component>.extraEnv`. Milvus has no
# *_FILE setting, hence env vars (exempted per object, docs/policies.md).
MILVUS_MINIO_ENV = {"MINIO_ACCESS_KEY_ID": MINIO_ACCESS_KEY, "MINIO_SECRET_ACCESS_KEY": MINIO_SECRET_KEY}
# What config.tpl writes into the ConfigMap instead of the chart default (minioadmin): not a credential,
# and never used while the env vars above are set (a Milvus without them fails to authenticate, loudly).
CONFIGMAP_PLACEHOLDERS = {"accessKey": "unused-see-env-MINIO_ACCESS_KEY_ID",
                          "secretKey": "unused-see-env-MINIO_SECRET_ACCESS_KEY"}
# Every templates/<component>-deployment.yaml renders its `extraEnv`. In cluster mode the components
# the chart leaves disabled (separate coordinators, streaming node) get it too: enabling one later
# cannot start it without the credentials.
STANDALONE_COMPONENTS = ("standalone",)
CLUSTER_COMPONENTS = ("mixCoordinator", "proxy", "queryNode", "dataNode", "indexNode", "streamingNode",
                      "rootCoordinator", "queryCoordinator", "indexCoordinator", "dataCoordinator")


# Fresh dicts per use: shared ones would come out as YAML anchors wherever the values are dumped.
def _runtime_default() -> dict[str, Any]:
    return {"type": "RuntimeDefault"}


def _no_escalation() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _etcd_values(replicas: int) -> dict[str, Any]:
    # bitnami etcd 6.3.3 templates/statefulset.yaml renders `omit .Values.podSecurityContext "enabled"`
    # and the same for containerSecurityContext, so every key here reaches the pod unchanged.
    return {
        "replicaCount": replicas,
        "podSecurityContext": {"enabled": True, "fsGroup": ETCD_UID, "seccompProfile": _runtime_default()},
        "containerSecurityContext": {"enabled": True, "runAsUser": ETCD_UID, "runAsNonRoot": True,
                                     **_no_escalation()},
        # templates/serviceaccount.yaml and the etcd.serviceAccountName helper: an account of its own
        # instead of the namespace's `default`, with no token (etcd never calls the Kubernetes API).
        "serviceAccount": {"create": True, "name": ETCD_SERVICE_ACCOUNT, "automountServiceAccountToken": False},
    }


def _pulsar_values() -> dict[str, Any]:
    # apache pulsar chart 3.3.0 lets only ZooKeeper and BookKeeper set a pod securityContext
    # (templates/{zookeeper,bookkeeper}-statefulset.yaml); fsGroup 0 + OnRootMismatch are its defaults,
    # repeated so the map is complete. The broker, proxy, autorecovery and init jobs take none.
    def pod() -> dict[str, Any]:
        return {"fsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch", "runAsNonRoot": True,
                "runAsUser": PULSAR_UID, "seccompProfile": _runtime_default()}

    return {
        "enabled": True,
        # templates/broker-cluster-role-binding.yaml: the broker's Role/RoleBinding stay namespaced (the
        # chart default since 3.2.0, pinned so no override turns them into cluster-wide grants).
        "rbac": {"limit_to_namespace": True},
        "zookeeper": {"securityContext": pod()},
        "bookkeeper": {"securityContext": pod()},
    }


def _minio_env(secret_name: str) -> list[dict[str, Any]]:
    return [{"name": env, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
            for env, key in MILVUS_MINIO_ENV.items()]


def _minio_values(mode: str, size: str, secret_name: str) -> dict[str, Any]:
    # accessKey/secretKey: ignored by the subchart once existingSecret is set; only config.tpl reads them.
    return {"mode": mode, "persistence": {"size": size}, "existingSecret": secret_name, **CONFIGMAP_PLACEHOLDERS}


def build_values(cfg: StackConfig, minio_secret: str) -> dict[str, Any]:
    """The chart values for this stack; `minio_secret` names the Secret with MinIO's keys (no values here)."""
    m = cfg.milvus
    values: dict[str, Any] = {
        "image": {"all": {"tag": versions.MILVUS_IMAGE_TAG}},
        "metrics": {"serviceMonitor": {"enabled": False}},
        "serviceAccount": {"create": True, "name": "milvus"},
        # Every templates/<component>-deployment.yaml: `securityContext` is the pod's and
        # `containerSecurityContext` (zilliztech/milvus-helm#217) every container's, unless a component
        # sets its own. No runAsUser: the v2.5 image has no USER and ships /milvus/bin root:root 0774,
        # so another uid only runs with group 0; running as root stays an exemption.
        "securityContext": {"seccompProfile": _runtime_default()},
        "containerSecurityContext": _no_escalation(),
        # The MinIO subchart (zilliztech fork 8.0.x) renders only runAsUser/runAsGroup/fsGroup (1000,
        # its defaults) and no container securityContext: nothing more to set there.
    }
    if m.mode == "standalone":
        values |= {
            "cluster": {"enabled": False},
            "standalone": {"persistence": {"persistentVolumeClaim": {"size": m.storageSize}}},
            "etcd": _etcd_values(replicas=1),
            "minio": _minio_values("standalone", m.storageSize, minio_secret),
            "pulsar": {"enabled": False},
            "pulsarv3": {"enabled": False},
        }
    else:
        values |= {
            "cluster": {"enabled": True},
            "proxy": {"replicas": m.proxyReplicas},
            "queryNode": {"replicas": m.queryNodeReplicas},
            "etcd": _etcd_values(replicas=3),
            "minio": _minio_values("distributed", m.storageSize, minio_secret),
            "pulsar": {"enabled": False},
            "pulsarv3": _pulsar_values(),
        }
    components = STANDALONE_COMPONENTS if m.mode == "standalone" else CLUSTER_COMPONENTS
    for component in components:
        values.setdefault(component, {})["extraEnv"] = _minio_env(minio_secret)
    return values


def build_network_policies(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment
    return [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata("milvus-allow-agent-and-peers", ns.milvus, labels("milvus", "network-policy", env)),
        "spec": {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {}}]},  # Milvus, etcd, MinIO, Pulsar talk to each other
                {"from": [agent_peer(ns, env)],
                 "ports": [{"protocol": "TCP", "port": PORT}]},
            ],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
    }]


class Milvus(pulumi.ComponentResource):
    """The vector store; reachable only from the agent. `minio_secret` names the Secret with MinIO's keys."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, minio_secret: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:milvus:Milvus", name, None, opts)
        self.mode = cfg.milvus.mode
        self.uri = f"http://{RELEASE}.{ns.milvus}.svc.cluster.local:{PORT}"
        self.chart = k8s.helm.v4.Chart(
            "milvus", chart=versions.MILVUS_CHART, version=versions.MILVUS_CHART_VERSION,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.MILVUS_REPO),
            name=RELEASE, namespace=ns.milvus, values=build_values(cfg, minio_secret),
            opts=pulumi.ResourceOptions(parent=self))
        self.policies = [KubeObject(m, pulumi.ResourceOptions(parent=self)) for m in build_network_policies(cfg, ns)]
        self.register_outputs({"uri": self.uri, "mode": self.mode})
