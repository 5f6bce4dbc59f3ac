"""GPU node pools (Karpenter), the NVIDIA device plugin, and an OpenAI-compatible model server.

Only where `gpu.pools` is non-empty (staging, prod). Nodes are tainted `nvidia.com/gpu:NoSchedule`,
so only pods that tolerate it (the model server, the device plugin) land there.

A cold start of the model server (a new GPU node, a ~10 GB image, ~15 GB of weights, compilation) takes
far longer than the provider's default 10-minute await: the Deployment carries customTimeouts, the same
value as its progressDeadlineSeconds and startup-probe budget (gpu.modelServer.readyTimeoutMinutes), so
`pulumi up` waits for a ready server instead of failing while the pod is still starting. Weights live
on a PVC (gpu.modelServer.weights) that the first pod fills, so later starts skip the download.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.agent import GeneratorEndpoint
from infra.components.secrets import SecretNames
from infra.config import GpuPool, StackConfig
from infra.kube import (KubeObject, agent_peer, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context, selector)

POOL_LABEL = "rag-platform/gpu-pool"
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
MODEL_SERVER = "model-server"
MODEL_PORT = 8000
UID = 10001
HOME = "/home/vllm"
WEIGHTS = "/models"
HUB_TOKEN_DIR = "/var/run/secrets/model-hub"
CPU_LIMIT_SKIP = ("CKV_K8S_11=No CPU limit on purpose: vLLM's API server and scheduler threads under CFS throttling "
                  "add latency to every token; the CPU request reserves what a replica needs")


def build_node_pool(cfg: StackConfig, pool: GpuPool) -> list[Manifest]:
    assert cfg.gpu.karpenter is not None
    k = cfg.gpu.karpenter
    name = f"gpu-{pool.name}"
    lbl = labels(name, "gpu-pool", cfg.environment)
    discovery = {"karpenter.sh/discovery": k.clusterName}
    node_class = {
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": metadata(name, None, lbl),
        "spec": {
            "role": k.nodeRole,
            "amiSelectorTerms": [{"alias": pool.amiAlias}],
            "subnetSelectorTerms": [{"tags": discovery}],
            "securityGroupSelectorTerms": [{"tags": discovery}],
            "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": "200Gi", "volumeType": "gp3", "encrypted": True}}],
        },
    }
    node_pool = {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": metadata(name, None, lbl),
        "spec": {
            "template": {
                "metadata": {"labels": {POOL_LABEL: pool.name}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": pool.instanceTypes},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": pool.capacityTypes},
                    ],
                    "taints": [GPU_TAINT],
                    "expireAfter": "720h",
                },
            },
            "limits": {"nvidia.com/gpu": pool.gpuLimit},
            # One GPU node at a time for voluntary disruption (expiry, drift, consolidation): with the PDB,
            # a replica keeps serving while its neighbour's node is replaced.
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m",
                           "budgets": [{"nodes": "1"}]},
        },
    }
    return [node_class, node_pool]


def karpenter_values(cfg: StackConfig) -> dict[str, Any]:
    assert cfg.gpu.karpenter is not None
    k = cfg.gpu.karpenter
    settings: dict[str, Any] = {"clusterName": k.clusterName}
    if k.interruptionQueue:
        # Spot reclaims, rebalance recommendations and scheduled maintenance arrive here; Karpenter then
        # cordons and drains the node and launches its replacement before the instance goes away.
        settings["interruptionQueue"] = k.interruptionQueue
    return {
        "settings": settings,
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": k.controllerRoleArn}},
        "controller": {"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}},
        "replicas": 2 if cfg.highAvailability else 1,
    }


def device_plugin_values() -> dict[str, Any]:
    # Only on our GPU pools (no node-feature-discovery needed).
    return {
        # The plugin needs hostPath and root (exempted in stacks/policy, thirdParty), but nothing
        # stops it running under the runtime's default seccomp profile.
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [GPU_TOLERATION],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": POOL_LABEL, "operator": "Exists"}]}]}}},
    }


def build_device_plugin_namespace(cfg: StackConfig, ns: Namespaces) -> Manifest:
    # The device plugin mounts the kubelet's device-plugin socket (hostPath): `privileged` is the
    # only level that admits it; this namespace holds nothing else.
    lbl = labels(ns.device_plugin, "gpu", cfg.environment) | {
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(ns.device_plugin, None, lbl)}


def model_server_env(cfg: StackConfig) -> list[dict[str, str]]:
    """uid 10001 has no passwd entry in the image: newer torch/vLLM resolve the user name (getpass.getuser
    reads USER/LOGNAME first) and write caches under HOME; point every cache at writable volumes."""
    ms = cfg.gpu.modelServer
    env = {
        "HOME": HOME, "USER": "vllm", "LOGNAME": "vllm",
        "XDG_CACHE_HOME": f"{HOME}/.cache", "XDG_CONFIG_HOME": f"{HOME}/.config",
        "VLLM_CACHE_ROOT": f"{HOME}/.cache/vllm", "VLLM_CONFIG_ROOT": f"{HOME}/.config/vllm",
        "TORCHINDUCTOR_CACHE_DIR": f"{HOME}/.cache/torchinductor", "TRITON_CACHE_DIR": f"{HOME}/.cache/triton",
        "NUMBA_CACHE_DIR": f"{HOME}/.cache/numba", "OUTLINES_CACHE_DIR": f"{HOME}/.cache/outlines",
        # Weights (and tokenizer files) on the cache volume; compile caches stay per pod (above).
        "HF_HOME": f"{WEIGHTS}/hf",
        # No usage reports to stats.vllm.ai or Hugging Face telemetry from inside the cluster.
        "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    if ms.weights.hubEndpoint:
        env["HF_ENDPOINT"] = ms.weights.hubEndpoint
    if cfg.modelHubToken is not None:
        env["HF_TOKEN_PATH"] = f"{HUB_TOKEN_DIR}/token"  # huggingface_hub reads the token from this file
    return [{"name": k, "value": v} for k, v in env.items()]


def _http_probe(period: int, timeout: int, failures: int) -> dict:
    return {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def build_model_server(cfg: StackConfig, ns: Namespaces, secret_name: str) -> list[Manifest]:
    env, ms = cfg.environment, cfg.gpu.modelServer
    lbl = labels(MODEL_SERVER, "generator", env)
    sel = selector(MODEL_SERVER, env)
    ready_seconds = ms.readyTimeoutMinutes * 60
    # vLLM reads its API key from VLLM_API_KEY: exported from the mounted file, not set in the spec.
    # --disable-log-requests: vLLM 0.9.2 (AsyncEngineArgs) logs every prompt in full without it.
    script = (f'export VLLM_API_KEY="$(cat /var/run/secrets/model-server/api-key)"; '
              f'exec vllm serve "{ms.model}" --host 0.0.0.0 --port {MODEL_PORT} '
              f'--tensor-parallel-size {ms.gpusPerReplica} --max-model-len {ms.maxModelLen} --disable-log-requests')
    pool_names = [p.name for p in cfg.gpu.pools]
    image, pull_policy, image_skip = versions.image_ref(versions.VLLM_IMAGE)
    mounts = [{"name": "auth", "mountPath": "/var/run/secrets/model-server", "readOnly": True},
              {"name": "weights", "mountPath": WEIGHTS}, {"name": "home", "mountPath": HOME},
              {"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}]
    weights_volume: dict[str, Any] = {"name": "weights", "emptyDir": {"sizeLimit": "100Gi"}}
    volumes = [{"name": "auth", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
               {"name": "home", "emptyDir": {"sizeLimit": "20Gi"}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
               {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    out: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
         "automountServiceAccountToken": False},
    ]
    w = ms.weights
    if w.cache == "pvc":
        pvc: Manifest = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            # No await on the claim itself: a WaitForFirstConsumer class binds it only when a pod lands, and
            # the Deployment's await (its pods mount it) is the readiness gate.
            "metadata": metadata(f"{MODEL_SERVER}-weights", ns.gpu, lbl,
                                 annotations={"pulumi.com/skipAwait": "true"}),
            "spec": {"accessModes": [w.accessMode], "resources": {"requests": {"storage": w.size}}}}
        if w.storageClass:
            pvc["spec"]["storageClassName"] = w.storageClass
        out.append(pvc)
        weights_volume = {"name": "weights", "persistentVolumeClaim": {"claimName": f"{MODEL_SERVER}-weights"}}
    volumes.insert(1, weights_volume)
    if cfg.modelHubToken is not None:
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
        volumes.append({"name": "hub-token", "secret": {"secretName": SecretNames().model_hub, "defaultMode": 0o440}})

    affinity: dict[str, Any] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": pool_names}]}]}}}
    pod_spec: dict[str, Any] = {
        "serviceAccountName": MODEL_SERVER, "automountServiceAccountToken": False,
        "securityContext": pod_security_context(UID),
        "tolerations": [GPU_TOLERATION],
        "affinity": affinity,
        "containers": [{
            "name": MODEL_SERVER, "image": image, "imagePullPolicy": pull_policy,
            "command": ["sh", "-c", script],
            "env": model_server_env(cfg),
            "ports": [{"name": "http", "containerPort": MODEL_PORT}],
            "resources": {"requests": {"cpu": ms.cpuRequest, "memory": ms.memoryRequest,
                                       "nvidia.com/gpu": ms.gpusPerReplica},
                          "limits": {"memory": ms.memoryLimit, "nvidia.com/gpu": ms.gpusPerReplica}},
            # Download (first start), load and compile: up to readyTimeoutMinutes before liveness applies.
            "startupProbe": _http_probe(10, 5, ready_seconds // 10),
            "readinessProbe": _http_probe(10, 5, 3),
            # /health answers from the API process; under a full batch it can take seconds.
            "livenessProbe": _http_probe(20, 10, 3),
            "volumeMounts": mounts,
            "securityContext": container_security_context(UID),
        }],
        "volumes": volumes,
    }
    if ms.replicas > 1:
        # One replica per GPU node, spread over zones where possible: a node reclaim or a zone outage
        # takes one replica, not all.
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": sel}}]}
        pod_spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                  "whenUnsatisfiable": "ScheduleAnyway",
                                                  "labelSelector": {"matchLabels": sel}}]
    # With several replicas, replace one at a time without an extra GPU; a single replica surges one.
    strategy = ({"maxSurge": 0, "maxUnavailable": 1} if ms.replicas > 1 else {"maxSurge": 1, "maxUnavailable": 0})
    out += [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": metadata(MODEL_SERVER, ns.gpu, lbl, annotations={
             # Same value as the customTimeouts the component sets; visible in the preview.
             "pulumi.com/timeoutSeconds": str(ready_seconds), "checkov.io/skip1": CPU_LIMIT_SKIP, **image_skip}),
         "spec": {"replicas": ms.replicas, "selector": {"matchLabels": sel},
                  # The Deployment controller would otherwise report ProgressDeadlineExceeded after 600 s,
                  # and the provider fails the update on it.
                  "progressDeadlineSeconds": ready_seconds,
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
                  "template": {"metadata": {"labels": lbl}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
         "spec": {"selector": sel, "ports": [{"name": "http", "port": MODEL_PORT, "targetPort": "http"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata(f"{MODEL_SERVER}-traffic", ns.gpu, labels(MODEL_SERVER, "network-policy", env)),
         "spec": {"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [agent_peer(ns, env)],
                               "ports": [{"protocol": "TCP", "port": MODEL_PORT}]}],
                  # Model weights are downloaded over HTTPS (hub or mirror) when the cache is empty.
                  "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}},
    ]
    if ms.replicas > 1:
        out.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}})
    return out


def await_timeouts(cfg: StackConfig) -> pulumi.CustomTimeouts:
    minutes = f"{cfg.gpu.modelServer.readyTimeoutMinutes}m"
    return pulumi.CustomTimeouts(create=minutes, update=minutes)


class GpuPlatform(pulumi.ComponentResource):
    """Karpenter GPU pools, the device plugin and the model server; empty where no pool is configured."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, secret_name: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:gpu:GpuPlatform", name, None, opts)
        self.generator: GeneratorEndpoint | None = None
        self.pools: list[str] = [p.name for p in cfg.gpu.pools]
        self.karpenter = self.device_plugin = None
        self.objects: list[KubeObject] = []
        if cfg.gpu.enabled:
            child = pulumi.ResourceOptions(parent=self)
            self.karpenter = k8s.helm.v4.Chart(
                "karpenter", chart=versions.KARPENTER_CHART, version=versions.KARPENTER_CHART_VERSION,
                name="karpenter", namespace=ns.karpenter, values=karpenter_values(cfg), opts=child)
            for pool in cfg.gpu.pools:
                self.objects += [KubeObject(m, pulumi.ResourceOptions(parent=self, depends_on=[self.karpenter]))
                                 for m in build_node_pool(cfg, pool)]
            plugin_ns = KubeObject(build_device_plugin_namespace(cfg, ns), child)
            self.device_plugin = k8s.helm.v4.Chart(
                "nvidia-device-plugin", chart=versions.NVIDIA_DEVICE_PLUGIN_CHART,
                version=versions.NVIDIA_DEVICE_PLUGIN_CHART_VERSION,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.NVIDIA_DEVICE_PLUGIN_REPO),
                name="nvidia-device-plugin", namespace=ns.device_plugin, values=device_plugin_values(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[plugin_ns]))
            for m in build_model_server(cfg, ns, secret_name):
                timeouts = await_timeouts(cfg) if m["kind"] == "Deployment" else None
                self.objects.append(KubeObject(m, pulumi.ResourceOptions(parent=self, custom_timeouts=timeouts)))
            self.generator = GeneratorEndpoint(
                base_url=f"http://{MODEL_SERVER}.{ns.gpu}.svc.cluster.local:{MODEL_PORT}/v1",
                model=cfg.gpu.modelServer.model)
        self.register_outputs({"pools": self.pools,
                               "generatorBaseUrl": self.generator.base_url if self.generator else None})
