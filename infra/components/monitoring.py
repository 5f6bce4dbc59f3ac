"""The Prometheus the canary analysis asks, and what makes it scrape the agent and Argo Rollouts.

mode `install`: kube-prometheus-stack (pinned in infra/versions.py) in `rag-<env>-monitoring`:
the Prometheus Operator and one Prometheus (two replicas with hard anti-affinity and a PDB under
`highAvailability`). It is the release path's evidence store, not cluster monitoring: Alertmanager,
Grafana, node-exporter, kube-state-metrics and the control-plane scrapers stay off (node-exporter
alone would need host access). A cluster that already runs a Prometheus Operator uses mode
`existing` and points the analysis at it.

Either way the stack declares two PodMonitors in the app namespace:
- `agent`: the agent pods' /metrics, with the pod label `rollouts-pod-template-hash` kept as the
  series label `rollouts_pod_template_hash` (the analysis queries select the canary by it);
- `argo-rollouts`: the controller's metrics port (8090).
NetworkPolicies on both sides let exactly those scrapes, and the controller's queries, through.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.namespaces import build_default_deny, build_namespace
from infra.components.rollouts import CONTROLLER_LABELS
from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, labels, metadata, selector

RELEASE = "prometheus-stack"
AGENT_MONITOR = "agent"
CONTROLLER_MONITOR = "argo-rollouts"
AGENT_NAME = "agent"
AGENT_PORT_NAME, AGENT_PORT = "http", 8080
CONTROLLER_PORT_NAME, CONTROLLER_PORT = "metrics", 8090
# The Pod label Argo Rollouts puts on every pod of a ReplicaSet, and the series label the analysis
# selects on. Prometheus' Kubernetes SD exposes pod labels as __meta_kubernetes_pod_label_<name>
# with every character outside [a-zA-Z0-9_] turned into `_`.
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"
HASH_SERIES_LABEL = "rollouts_pod_template_hash"
# Pods in the monitoring namespace that a NetworkPolicy peer may name (the operator labels
# every Prometheus pod it creates this way).
PROMETHEUS_PORT = 9090


def meta_label(pod_label: str) -> str:
    """The Kubernetes SD meta label for a pod label (Prometheus' sanitising rule)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() or c == "_" else "_" for c in pod_label)


def prometheus_peer(cfg: StackConfig) -> dict[str, Any]:
    """NetworkPolicy peer: the Prometheus pods, in their namespace."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.monitoring_namespace}},
            "podSelector": {"matchLabels": dict(cfg.monitoring.prometheusPodLabels)}}


def prometheus_port(cfg: StackConfig) -> int:
    """The port the analysis connects to (explicit in the URL, else the scheme's)."""
    url = urlsplit(cfg.prometheus_address)
    return url.port or (443 if url.scheme == "https" else 80)


def _monitor_labels(name: str, cfg: StackConfig) -> dict[str, str]:
    return labels(name, "monitoring", cfg.environment) | dict(cfg.monitoring.monitorLabels)


def build_monitors(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """PodMonitors for the agent (keeping the pod-template hash) and the Argo Rollouts controller."""
    interval = f"{cfg.monitoring.scrapeIntervalSeconds}s"
    agent = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": metadata(AGENT_MONITOR, ns.app, _monitor_labels(AGENT_MONITOR, cfg)),
        "spec": {
            "selector": {"matchLabels": selector(AGENT_NAME, cfg.environment)},
            "namespaceSelector": {"matchNames": [ns.app]},
            "podMetricsEndpoints": [{
                "port": AGENT_PORT_NAME, "path": "/metrics", "interval": interval,
                # Stable and canary pods differ only by this label; without it the analysis cannot
                # tell them apart and would judge the canary by the stable pods' traffic.
                "relabelings": [{"action": "replace", "sourceLabels": [meta_label(POD_TEMPLATE_HASH_LABEL)],
                                 "targetLabel": HASH_SERIES_LABEL}],
            }],
        },
    }
    controller = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": metadata(CONTROLLER_MONITOR, ns.app, _monitor_labels(CONTROLLER_MONITOR, cfg)),
        "spec": {
            "selector": {"matchLabels": dict(CONTROLLER_LABELS)},
            "namespaceSelector": {"matchNames": [ns.app]},
            "podMetricsEndpoints": [{"port": CONTROLLER_PORT_NAME, "path": "/metrics", "interval": interval}],
        },
    }
    return [agent, controller]


def build_values(cfg: StackConfig, ns: Namespaces) -> dict[str, Any]:
    """kube-prometheus-stack values: the operator and one Prometheus that selects our monitors only."""
    m = cfg.monitoring
    replicas = m.replicas or (2 if cfg.highAvailability else 1)
    ours = {"matchLabels": {"app.kubernetes.io/part-of": "rag-platform",
                            "app.kubernetes.io/instance": cfg.environment}}
    app_ns = {"matchLabels": {"kubernetes.io/metadata.name": ns.app}}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "retention": m.retention,
        "scrapeInterval": f"{m.scrapeIntervalSeconds}s",
        # Select exactly this stack's monitors (the chart's default selects by its own release label).
        "podMonitorSelectorNilUsesHelmValues": False,
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "podMonitorSelector": ours, "podMonitorNamespaceSelector": app_ns,
        "serviceMonitorSelector": ours, "serviceMonitorNamespaceSelector": app_ns,
        "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }
    if replicas > 1:
        # Two replicas on one node are one failure away from no analysis at all.
        spec["podAntiAffinity"] = "hard"
    if m.storageSize:
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": m.storageSize}}}
        if m.storageClass:
            claim["storageClassName"] = m.storageClass
        spec["storageSpec"] = {"volumeClaimTemplate": {"spec": claim}}
    off = {"enabled": False}
    return {
        "fullnameOverride": RELEASE,
        "crds": {"enabled": True},
        "defaultRules": {"create": False},
        "alertmanager": off, "grafana": off, "nodeExporter": off, "kubeStateMetrics": off,
        "kubeApiServer": off, "kubelet": off, "kubeControllerManager": off, "coreDns": off,
        "kubeEtcd": off, "kubeScheduler": off, "kubeProxy": off,
        "prometheusOperator": {
            # The admission webhook validates PrometheusRules/AlertmanagerConfigs, which we do not
            # render; without it there is no certificate-patching Job with cluster-wide rights.
            "admissionWebhooks": {"enabled": False},
            # With TLS on (the chart default) the operator pod mounts the Secret `<release>-admission`,
            # which only the webhook's Helm-hook Job (or cert-manager) creates; Pulumi's helm v4
            # Chart runs no Helm hooks, so the pod would wait for that Secret forever. Its web port
            # then serves plain HTTP, scraped only from inside the namespace.
            "tls": {"enabled": False},
            "kubeletService": {"enabled": False},
            # Watch only the monitoring namespace (its Prometheus) and the app namespace (the
            # PodMonitors): the chart's ClusterRole stays, what the operator acts on shrinks.
            "namespaces": {"releaseNamespace": True, "additional": [ns.app]},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        },
        "prometheus": {
            "prometheusSpec": spec,
            "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
        },
    }


def build_namespace_objects(cfg: StackConfig) -> list[Manifest]:
    """The monitoring namespace (install mode), locked down like every other one."""
    name = cfg.monitoring_namespace
    # Pod Security restricted, like the app namespaces: the chart gives the operator and Prometheus
    # pods non-root users, RuntimeDefault seccomp and (operator) a no-escalation, drop-ALL, read-only
    # container context; the operator sets the same on the Prometheus containers it generates.
    # The admission webhook's patch Job, the one other pod, is disabled (build_values). Read from
    # the chart's values.yaml, not admitted by a cluster here: a rejected pod shows in the events.
    return [build_namespace(name, cfg.environment, "monitoring"),
            *build_default_deny(name, cfg.environment)]


def build_network_policies(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """Install mode: what the monitoring namespace's pods may do beyond DNS."""
    env, mon = cfg.environment, cfg.monitoring_namespace
    lbl = labels("monitoring", "network-policy", env)
    prom = {"matchLabels": dict(cfg.monitoring.prometheusPodLabels)}
    app = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.app}}}
    return [
        # The operator and Prometheus' Kubernetes service discovery talk to the API server.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("monitoring-egress-apiserver", mon, lbl),
         "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]}},
        # Prometheus scrapes the agent and the Argo Rollouts controller, nothing else.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("prometheus-scrape-egress", mon, lbl),
         "spec": {"podSelector": prom, "policyTypes": ["Egress"], "egress": [
             {"to": [app | {"podSelector": {"matchLabels": selector(AGENT_NAME, env)}}],
              "ports": [{"protocol": "TCP", "port": AGENT_PORT}]},
             {"to": [app | {"podSelector": {"matchLabels": dict(CONTROLLER_LABELS)}}],
              "ports": [{"protocol": "TCP", "port": CONTROLLER_PORT}]}]}},
        # The Argo Rollouts controller runs the analysis queries.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("prometheus-query-ingress", mon, lbl),
         "spec": {"podSelector": prom, "policyTypes": ["Ingress"], "ingress": [
             {"from": [app | {"podSelector": {"matchLabels": dict(CONTROLLER_LABELS)}}],
              "ports": [{"protocol": "TCP", "port": PROMETHEUS_PORT}]}]}},
    ]


def build_scrape_policies(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """In the app namespace (both modes): Prometheus may scrape the agent and the controller, and
    the controller may query Prometheus. Additive to the agent's and the controller's own policies."""
    env = cfg.environment
    lbl = labels("monitoring", "network-policy", env)
    peer = prometheus_peer(cfg)

    def admit(name: str, pods: dict[str, str], port: int) -> Manifest:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": metadata(name, ns.app, lbl),
                "spec": {"podSelector": {"matchLabels": pods}, "policyTypes": ["Ingress"],
                         "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": port}]}]}}

    return [
        admit("prometheus-scrape-agent", selector(AGENT_NAME, env), AGENT_PORT),
        admit("prometheus-scrape-argo-rollouts", dict(CONTROLLER_LABELS), CONTROLLER_PORT),
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("argo-rollouts-query-prometheus", ns.app, lbl),
         "spec": {"podSelector": {"matchLabels": dict(CONTROLLER_LABELS)}, "policyTypes": ["Egress"],
                  "egress": [{"to": [peer], "ports": [{"protocol": "TCP", "port": prometheus_port(cfg)}]}]}},
    ]


class Monitoring(pulumi.ComponentResource):
    """Prometheus for the canary analysis (installed or existing) and the PodMonitors it scrapes."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # `crdsFromCluster` tells the preview's CRD check (infra/crds.py) that an existing install
        # owns monitoring.coreos.com, so the monitors depend on nothing in this stack.
        existing = cfg.monitoring.mode == "existing"
        super().__init__("rag-platform:monitoring:Monitoring", name,
                         {"crdsFromCluster": ["monitoring.coreos.com"]} if existing else None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.address = cfg.prometheus_address
        self.namespace = cfg.monitoring_namespace
        self.chart: k8s.helm.v4.Chart | None = None
        self.objects: list[KubeObject] = []
        if not existing:
            ns_objs = build_namespace_objects(cfg)
            namespace = KubeObject(ns_objs[0], child)
            in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
            self.objects = [namespace, *(KubeObject(m, in_ns) for m in ns_objs[1:]),
                            *(KubeObject(m, in_ns) for m in build_network_policies(cfg, ns))]
            self.chart = k8s.helm.v4.Chart(
                "kube-prometheus-stack", chart=versions.KUBE_PROMETHEUS_STACK_CHART,
                version=versions.KUBE_PROMETHEUS_STACK_CHART_VERSION,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.KUBE_PROMETHEUS_STACK_REPO),
                name=RELEASE, namespace=self.namespace, values=build_values(cfg, ns), opts=in_ns)
        self.objects += [KubeObject(m, child) for m in build_scrape_policies(cfg, ns)]
        monitor_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.chart] if self.chart else [])
        self.monitors = [KubeObject(m, monitor_opts) for m in build_monitors(cfg, ns)]
        self.register_outputs({"prometheusAddress": self.address, "namespace": self.namespace})
