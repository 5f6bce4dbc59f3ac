"""GPU node pools (Karpenter), the NVIDIA device plugin, and an OpenAI-compatible model server.

Only where `gpu.pools` is non-empty (staging, prod). Nodes are tainted `nvidia.com/gpu:NoSchedule`,
so only pods that tolerate it (the model server, the device plugin) land there.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.agent import GeneratorEndpoint
from infra.config import GpuPool, StackConfig
from infra.kube import (KubeObject, agent_peer, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context, selector)

POOL_LABEL = "rag-platform/gpu-pool"
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
MODEL_SERVER = "model-server"
MODEL_PORT = 8000
UID = 10001


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
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
        },
    }
    return [node_class, node_pool]


def karpenter_values(cfg: StackConfig) -> dict[str, Any]:
    assert cfg.gpu.karpenter is not None
    k = cfg.gpu.karpenter
    return {
        "settings": {"clusterName": k.clusterName},
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


def build_model_server(cfg: StackConfig, ns: Namespaces, secret_name: str) -> list[Manifest]:
    env, ms = cfg.environment, cfg.gpu.modelServer
    lbl = labels(MODEL_SERVER, "generator", env)
    sel = selector(MODEL_SERVER, env)
    # vLLM reads its API key from VLLM_API_KEY: exported from the mounted file, not set in the spec.
    script = (f'export VLLM_API_KEY="$(cat /var/run/secrets/model-server/api-key)"; '
              f'exec vllm serve "{ms.model}" --host 0.0.0.0 --port {MODEL_PORT} '
              f'--tensor-parallel-size {ms.gpusPerReplica} --max-model-len {ms.maxModelLen}')
    pool_names = [p.name for p in cfg.gpu.pools]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
         "automountServiceAccountToken": False},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
         "spec": {"replicas": ms.replicas, "selector": {"matchLabels": sel},
                  "template": {"metadata": {"labels": lbl}, "spec": {
                      "serviceAccountName": MODEL_SERVER, "automountServiceAccountToken": False,
                      "securityContext": pod_security_context(UID),
                      "tolerations": [GPU_TOLERATION],
                      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                          "nodeSelectorTerms": [{"matchExpressions": [
                              {"key": POOL_LABEL, "operator": "In", "values": pool_names}]}]}}},
                      "containers": [{
                          "name": MODEL_SERVER, "image": versions.VLLM_IMAGE,
                          "command": ["sh", "-c", script],
                          "env": [{"name": "HOME", "value": "/cache"}, {"name": "HF_HOME", "value": "/cache/hf"}],
                          "ports": [{"name": "http", "containerPort": MODEL_PORT}],
                          "resources": {"requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": ms.gpusPerReplica},
                                        "limits": {"memory": "32Gi", "nvidia.com/gpu": ms.gpusPerReplica}},
                          "startupProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
                                           "failureThreshold": 90},
                          "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                          "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 20},
                          "volumeMounts": [
                              {"name": "auth", "mountPath": "/var/run/secrets/model-server", "readOnly": True},
                              {"name": "cache", "mountPath": "/cache"}, {"name": "tmp", "mountPath": "/tmp"},
                              {"name": "shm", "mountPath": "/dev/shm"}],
                          "securityContext": container_security_context(UID),
                      }],
                      "volumes": [
                          {"name": "auth", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
                          {"name": "cache", "emptyDir": {"sizeLimit": "100Gi"}},
                          {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
                          {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
                  }}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(MODEL_SERVER, ns.gpu, lbl),
         "spec": {"selector": sel, "ports": [{"name": "http", "port": MODEL_PORT, "targetPort": "http"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata(f"{MODEL_SERVER}-traffic", ns.gpu, labels(MODEL_SERVER, "network-policy", env)),
         "spec": {"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [agent_peer(ns, env)],
                               "ports": [{"protocol": "TCP", "port": MODEL_PORT}]}],
                  # Model weights are downloaded over HTTPS on first start.
                  "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}},
    ]


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
            self.objects += [KubeObject(m, child) for m in build_model_server(cfg, ns, secret_name)]
            self.generator = GeneratorEndpoint(
                base_url=f"http://{MODEL_SERVER}.{ns.gpu}.svc.cluster.local:{MODEL_PORT}/v1",
                model=cfg.gpu.modelServer.model)
        self.register_outputs({"pools": self.pools,
                               "generatorBaseUrl": self.generator.base_url if self.generator else None})
