"""Namespaces with Pod Security Standards `restricted` and default-deny NetworkPolicies."""

from __future__ import annotations

import pulumi

from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, labels, metadata, register_all

# Exceptions to `restricted` (audit and warn stay `restricted` everywhere, so drift is visible):
# - ci: kaniko needs root inside its container to unpack image layers.
# - milvus: the chart's bundled etcd/MinIO/Pulsar subcharts do not set restricted-level contexts.
PSS_EXCEPTIONS = {"ci": "baseline", "milvus": "baseline"}


def build_namespace(name: str, env: str, role: str, enforce: str = "restricted") -> Manifest:
    lbls = labels(name, role, env) | {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(name, None, lbls)}


def build_default_deny(namespace: str, env: str) -> list[Manifest]:
    """Deny all ingress and egress, then allow DNS: every other flow is an explicit allow elsewhere."""
    lbls = labels("default-deny", "network-policy", env)
    deny = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata("default-deny-all", namespace, lbls),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    dns = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata("allow-dns-egress", namespace, labels("allow-dns", "network-policy", env)),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        },
    }
    return [deny, dns]


def build_namespaces(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    roles = {"app": ns.app, "data": ns.data, "milvus": ns.milvus, "ci": ns.ci}
    if cfg.gpu.enabled:
        roles["gpu"] = ns.gpu
    out: list[Manifest] = []
    for role, name in roles.items():
        out.append(build_namespace(name, cfg.environment, role, PSS_EXCEPTIONS.get(role, "restricted")))
    return out


class PlatformNamespaces(pulumi.ComponentResource):
    """The environment's namespaces, locked down by default."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:namespaces:PlatformNamespaces", name, None, opts)
        self.namespaces: dict[str, KubeObject] = {}
        for manifest in build_namespaces(cfg, ns):
            obj = KubeObject(manifest, pulumi.ResourceOptions(parent=self))
            self.namespaces[manifest["metadata"]["name"]] = obj
        self.policies: list[KubeObject] = []
        for ns_name, ns_obj in self.namespaces.items():
            self.policies += register_all(build_default_deny(ns_name, cfg.environment), self, [ns_obj])
        self.register_outputs({"namespaces": list(self.namespaces)})
