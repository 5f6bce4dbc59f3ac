"""Argo Rollouts, installed namespaced: the controller only watches the agent's namespace.

`clusterInstall: false` gives the controller a Role in the app namespace instead of cluster-wide
rights; the CRDs (cluster-scoped by nature) still come with the chart, so every Rollout and
AnalysisTemplate depends on this chart.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, container_security_context, labels, metadata

CONTROLLER_LABELS = {"app.kubernetes.io/name": "argo-rollouts", "app.kubernetes.io/component": "rollouts-controller"}


def build_values(cfg: StackConfig) -> dict[str, Any]:
    ha = cfg.highAvailability
    return {
        "clusterInstall": False,
        "installCRDs": True,
        "keepCRDs": True,
        "dashboard": {"enabled": False},
        "notifications": {"secret": {"create": False}},
        "controller": {
            "replicas": 2 if ha else 1,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "metrics": {"enabled": True},
        },
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containerSecurityContext": container_security_context(),
    }


def build_network_policies(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """The controller talks to the API server (patching ReplicaSets, Ingresses).

    Its Prometheus queries and the scrape of its metrics port are allowed in infra/components/monitoring.py.
    """
    return [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata("argo-rollouts-controller-egress", ns.app,
                             labels("argo-rollouts", "network-policy", cfg.environment)),
        "spec": {
            "podSelector": {"matchLabels": CONTROLLER_LABELS},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}],
        },
    }]


class ArgoRollouts(pulumi.ComponentResource):
    """The Argo Rollouts controller for this environment (its CRDs included)."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:rollouts:ArgoRollouts", name, None, opts)
        self.namespace = ns.app
        self.chart = k8s.helm.v4.Chart(
            "argo-rollouts", chart=versions.ARGO_ROLLOUTS_CHART, version=versions.ARGO_ROLLOUTS_CHART_VERSION,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.ARGO_ROLLOUTS_REPO),
            name="argo-rollouts", namespace=ns.app, values=build_values(cfg),
            opts=pulumi.ResourceOptions(parent=self))
        self.policies = [KubeObject(m, pulumi.ResourceOptions(parent=self))
                         for m in build_network_policies(cfg, ns)]
        self.register_outputs({"namespace": self.namespace})
