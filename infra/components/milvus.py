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
from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, agent_peer, labels, metadata

PORT = 19530
RELEASE = "milvus"


def build_values(cfg: StackConfig) -> dict[str, Any]:
    m = cfg.milvus
    values: dict[str, Any] = {
        "image": {"all": {"tag": versions.MILVUS_IMAGE_TAG}},
        "metrics": {"serviceMonitor": {"enabled": False}},
        "serviceAccount": {"create": True, "name": "milvus"},
    }
    if m.mode == "standalone":
        values |= {
            "cluster": {"enabled": False},
            "standalone": {"persistence": {"persistentVolumeClaim": {"size": m.storageSize}}},
            "etcd": {"replicaCount": 1},
            "minio": {"mode": "standalone", "persistence": {"size": m.storageSize}},
            "pulsar": {"enabled": False},
            "pulsarv3": {"enabled": False},
        }
    else:
        values |= {
            "cluster": {"enabled": True},
            "proxy": {"replicas": m.proxyReplicas},
            "queryNode": {"replicas": m.queryNodeReplicas},
            "etcd": {"replicaCount": 3},
            "minio": {"mode": "distributed", "persistence": {"size": m.storageSize}},
            "pulsar": {"enabled": False},
            "pulsarv3": {"enabled": True},
        }
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
    """The vector store; reachable only from the agent."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:milvus:Milvus", name, None, opts)
        self.mode = cfg.milvus.mode
        self.uri = f"http://{RELEASE}.{ns.milvus}.svc.cluster.local:{PORT}"
        self.chart = k8s.helm.v4.Chart(
            "milvus", chart=versions.MILVUS_CHART, version=versions.MILVUS_CHART_VERSION,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.MILVUS_REPO),
            name=RELEASE, namespace=ns.milvus, values=build_values(cfg),
            opts=pulumi.ResourceOptions(parent=self))
        self.policies = [KubeObject(m, pulumi.ResourceOptions(parent=self)) for m in build_network_policies(cfg, ns)]
        self.register_outputs({"uri": self.uri, "mode": self.mode})
