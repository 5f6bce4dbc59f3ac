"""The RAG agent: an Argo `Rollout` with canary analysis, and everything around it.

Canary: setWeight 5 -> pause -> 20 -> pause -> 100, with background analysis from the first step.
The AnalysisTemplate queries Prometheus for the agent's own metrics
(`agent_http_requests_total`, `agent_http_request_duration_seconds`) on the canary pods only,
and fails on a 5xx ratio above `canary.maxErrorRate` or a p95 above `canary.p95ThresholdSeconds`;
a failed analysis aborts the rollout, which sends all traffic back to the stable ReplicaSet.

A 5% step is only exact with a traffic router or >= 20 pods. With `trafficRouter: nginx` the
ingress splits traffic by weight; with `none` Argo scales ReplicaSets, so config validation
demands >= 20 replicas or an explicit `approximateWeights: true` (dev, local).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi

from infra.components.redis import RedisEndpoints
from infra.components.rollouts import ArgoRollouts
from infra.components.secrets import SecretNames
from infra.config import StackConfig
from infra.kube import (KubeObject, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context, selector)

NAME = "agent"
PORT = 8080
UID = 10001
SECRETS_DIR = "/var/run/secrets/agent"
DATA_DIR = "/var/lib/agent"
ANALYSIS = "agent-canary-health"


@dataclass(frozen=True)
class GeneratorEndpoint:
    """An OpenAI-compatible endpoint the agent uses as its generator."""

    base_url: str
    model: str


def build_env(cfg: StackConfig, ns: Namespaces, redis: RedisEndpoints, milvus_uri: str,
              generator: GeneratorEndpoint | None) -> dict[str, str]:
    """The AGENT_* contract. Secrets are *_FILE paths into the mounted Secret, never values."""
    a = cfg.agent
    env = {
        "AGENT_API_KEYS_FILE": f"{SECRETS_DIR}/api-keys",
        "AGENT_REDIS_URL": redis.url,
        "AGENT_REDIS_PASSWORD_FILE": f"{SECRETS_DIR}/redis-password",
        "AGENT_MILVUS_URI": milvus_uri,
        "AGENT_MILVUS_COLLECTION": a.milvusCollection,
        "AGENT_DATA_DIR": DATA_DIR,
        "AGENT_TOOLS_ALLOWED": ",".join(a.toolsAllowed),
        "AGENT_RATE_LIMIT_PER_MINUTE": str(a.rateLimitPerMinute),
        "AGENT_LOG_LEVEL": a.logLevel,
        "AGENT_EMBEDDING_DEVICE": "cpu",
        "AGENT_GENERATOR": "extractive",
        "AGENT_DOCS_ACCESS": a.apiDocs,
        "AGENT_READYZ_DETAILS": a.readyzDetails,
    }
    if redis.sentinel_hosts:
        env["AGENT_REDIS_SENTINEL_HOSTS"] = redis.sentinel_hosts
        env["AGENT_REDIS_SENTINEL_MASTER"] = redis.master_name
    if generator is not None:
        env |= {"AGENT_GENERATOR": "openai", "AGENT_GENERATOR_BASE_URL": generator.base_url,
                "AGENT_GENERATOR_MODEL": generator.model,
                # Every generator has a key: the model server's generated one, or llmApiKey
                # (config validation requires it for an external generator).
                "AGENT_GENERATOR_API_KEY_FILE": f"{SECRETS_DIR}/generator-api-key"}
    return env


def build_pod_template(cfg: StackConfig, secret_name: str, config_hash_source: dict[str, str]) -> dict:
    env, a = cfg.environment, cfg.agent
    lbl = labels(NAME, "api", env)
    http = {"path": "/healthz", "port": "http"}
    return {
        "metadata": {
            "labels": lbl,
            "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics",
                # A ConfigMap change changes the pod template, hence a new (canaried) revision.
                "rag-platform/config-hash": hashlib.sha256(
                    json.dumps(config_hash_source, sort_keys=True).encode()).hexdigest()[:16],
            },
        },
        "spec": {
            "serviceAccountName": NAME,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(UID),
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(NAME, env)}}],
            "containers": [{
                "name": NAME,
                "image": cfg.image.ref,
                "imagePullPolicy": cfg.image.pullPolicy,
                "command": ["python", "-m", "agent"],
                "args": ["serve", "--host", "0.0.0.0", "--port", str(PORT)],
                "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                "envFrom": [{"configMapRef": {"name": f"{NAME}-config"}}],
                "volumeMounts": [
                    {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                    {"name": "data", "mountPath": DATA_DIR},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
                "resources": {
                    "requests": {"cpu": a.resources.cpuRequest, "memory": a.resources.memoryRequest},
                    "limits": {"cpu": a.resources.cpuLimit, "memory": a.resources.memoryLimit},
                },
                # The embedding model loads at start: a generous startup probe, then tight checks.
                "startupProbe": {"httpGet": http, "periodSeconds": 5, "failureThreshold": 60},
                "livenessProbe": {"httpGet": http, "periodSeconds": 10, "failureThreshold": 3},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5,
                                   "failureThreshold": 3},
                "securityContext": container_security_context(UID),
            }],
            "volumes": [
                {"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
                {"name": "data", "emptyDir": {"sizeLimit": "2Gi"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            ],
        },
    }


def build_canary_strategy(cfg: StackConfig) -> dict:
    c = cfg.canary
    strategy: dict = {
        "canaryService": f"{NAME}-canary",
        "stableService": f"{NAME}-stable",
        "analysis": {
            "templates": [{"templateName": ANALYSIS}],
            "startingStep": 1,  # from the first pause: the 5% canary already has traffic
            "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
        },
        "steps": [
            {"setWeight": 5}, {"pause": {"duration": f"{c.pauseSeconds[0]}s"}},
            {"setWeight": 20}, {"pause": {"duration": f"{c.pauseSeconds[1]}s"}},
            {"setWeight": 100},
        ],
    }
    if c.trafficRouter == "nginx":
        strategy["trafficRouting"] = {"nginx": {"stableIngress": NAME}}
        # Only read with traffic routing: keep the aborted canary's pods while the router shifts back.
        strategy["abortScaleDownDelaySeconds"] = 30
    return strategy


# Requests the kubelet and Prometheus make on their own: they reach every pod, canary or not, so
# they prove nothing about the canary and must never count as its traffic.
OPERATIONAL_ROUTES = ("/healthz", "/readyz", "/metrics")


def analysis_queries(cfg: StackConfig, ns: Namespaces) -> dict[str, str]:
    """PromQL per metric; `{{args.canary-hash}}` is filled in by Argo Rollouts.

    Each query returns its value only when the canary served at least `canary.minRequests`
    requests in the window (`and on() ... >= N`), and an empty vector otherwise: no evidence.
    """
    c = cfg.canary
    window = f"{c.window_seconds}s"
    ops = "|".join(OPERATIONAL_ROUTES)
    match = (f'namespace="{ns.app}",rollouts_pod_template_hash="{{{{args.canary-hash}}}}",'
             f'route!~"{ops}"')
    requests = f"sum(increase(agent_http_requests_total{{{match}}}[{window}]))"
    evidence = f" and on() ({requests} >= {c.minRequests})"
    error_rate = (
        f'((sum(rate(agent_http_requests_total{{{match},status=~"5.."}}[{window}])) or vector(0))'
        f" / sum(rate(agent_http_requests_total{{{match}}}[{window}])))" + evidence)
    p95 = (f"histogram_quantile(0.95, sum by (le) "
           f"(rate(agent_http_request_duration_seconds_bucket{{{match}}}[{window}])))" + evidence)
    return {"error-rate": error_rate, "p95-latency": p95}


def _conditions(threshold: float) -> dict[str, str]:
    # Argo evaluates both: success true -> Successful, failure true -> Failed, neither ->
    # Inconclusive. An empty result (too little traffic, or no samples) and NaN satisfy neither,
    # so they pause the Rollout for a person; `len(result) > 0` first, because `result[0]` on an
    # empty result is an evaluation error (Argo's Error phase), not a verdict.
    return {"successCondition": f"len(result) > 0 && result[0] <= {threshold}",
            "failureCondition": f"len(result) > 0 && result[0] > {threshold}"}


def build_analysis_template(cfg: StackConfig, ns: Namespaces) -> Manifest:
    c = cfg.canary
    queries = analysis_queries(cfg, ns)
    common = {
        "interval": f"{c.analysisIntervalSeconds}s",
        # The first measurement waits for one full window of canary traffic.
        "initialDelay": f"{c.initial_delay_seconds}s",
        "failureLimit": c.failureLimit,
        "inconclusiveLimit": c.inconclusiveLimit,
    }

    def metric(name: str, threshold: float) -> dict:
        return {"name": name, **common, **_conditions(threshold),
                "provider": {"prometheus": {"address": cfg.prometheus_address, "query": queries[name]}}}

    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": metadata(ANALYSIS, ns.app, labels(ANALYSIS, "canary-analysis", cfg.environment)),
        "spec": {
            "args": [{"name": "canary-hash"}],
            "metrics": [metric("error-rate", c.maxErrorRate), metric("p95-latency", c.p95ThresholdSeconds)],
        },
    }


def build_manifests(cfg: StackConfig, ns: Namespaces, secret_name: str, env_vars: dict[str, str]) -> dict[str, list[Manifest]]:
    """Plain Kubernetes objects and the Argo custom resources, separately (the latter need the CRDs)."""
    env, a = cfg.environment, cfg.agent
    lbl = labels(NAME, "api", env)
    sel = selector(NAME, env)
    port = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    plain: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(NAME, ns.app, lbl),
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(f"{NAME}-config", ns.app, lbl),
         "data": env_vars},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(f"{NAME}-stable", ns.app, lbl),
         "spec": {"selector": sel, "ports": port}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(f"{NAME}-canary", ns.app, lbl),
         "spec": {"selector": sel, "ports": port}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata(NAME, ns.app, lbl),
         "spec": {
             # The HPA scales the Rollout (Argo exposes the scale subresource), never a Deployment.
             "scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": NAME},
             "minReplicas": a.minReplicas, "maxReplicas": a.maxReplicas,
             "metrics": [{"type": "Resource", "resource": {
                 "name": "cpu", "target": {"type": "Utilization", "averageUtilization": a.targetCpuUtilization}}}],
         }},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(NAME, ns.app, lbl),
         "spec": {"selector": {"matchLabels": sel},
                  **({"minAvailable": a.minReplicas - 1} if a.minReplicas > 1 else {"maxUnavailable": 1})}},
        build_network_policy(cfg, ns),
    ]
    if a.host:
        plain.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata(NAME, ns.app, lbl),
            "spec": {"ingressClassName": a.ingressClass, "rules": [{"host": a.host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": f"{NAME}-stable", "port": {"name": "http"}}}}]}}]},
        })
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": metadata(NAME, ns.app, lbl),
        "spec": {
            # No `replicas`: the HPA owns it through the scale subresource. Declaring it here too
            # would make every `pulumi up` reset the HPA's choice (two field managers, one field).
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": sel},
            "template": build_pod_template(cfg, secret_name, env_vars),
            "strategy": {"canary": build_canary_strategy(cfg)},
        },
    }
    return {"plain": plain, "custom": [build_analysis_template(cfg, ns), rollout]}


def build_network_policy(cfg: StackConfig, ns: Namespaces) -> Manifest:
    env = cfg.environment
    # Prometheus' scrape is admitted by its own policy (infra/components/monitoring.py).
    ingress = []
    if cfg.agent.host:
        ingress.append({"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": cfg.agent.ingressControllerNamespace}}}],
            "ports": [{"protocol": "TCP", "port": PORT}]})

    def to_ns(name: str, ports: list[int]) -> dict:
        return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}],
                "ports": [{"protocol": "TCP", "port": p} for p in ports]}

    egress = [to_ns(ns.data, [6379, 26379]), to_ns(ns.milvus, [19530])]
    if cfg.gpu.enabled:
        egress.append(to_ns(ns.gpu, [8000]))
    if cfg.generator is not None:
        egress.append({"to": [{"ipBlock": {"cidr": cfg.generator.egressCidr}}], "ports": [{"protocol": "TCP", "port": 443}]})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata(f"{NAME}-traffic", ns.app, labels(NAME, "network-policy", env)),
        "spec": {"podSelector": {"matchLabels": selector(NAME, env)}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": ingress,
                 "egress": egress},
    }


class Agent(pulumi.ComponentResource):
    """The agent workload: Rollout, analysis, Services, HPA, PDB, NetworkPolicy, config."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, *, secrets: SecretNames,
                 redis: RedisEndpoints, milvus_uri: str, generator: GeneratorEndpoint | None,
                 rollouts: ArgoRollouts, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:agent:Agent", name, None, opts)
        env_vars = build_env(cfg, ns, redis, milvus_uri, generator)
        manifests = build_manifests(cfg, ns, secrets.agent, env_vars)
        self.namespace = ns.app
        self.internal_url = f"http://{NAME}-stable.{ns.app}.svc.cluster.local"
        self.public_url = f"https://{cfg.agent.host}" if cfg.agent.host else None
        self.objects = [KubeObject(m, pulumi.ResourceOptions(parent=self)) for m in manifests["plain"]]
        # Custom resources wait for the chart that installs their CRDs.
        self.custom = [KubeObject(m, pulumi.ResourceOptions(parent=self, depends_on=[rollouts.chart]))
                       for m in manifests["custom"]]
        self.rollout = self.custom[-1]
        self.register_outputs({"internalUrl": self.internal_url, "publicUrl": self.public_url})
