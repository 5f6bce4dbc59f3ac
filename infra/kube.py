"""Shared Kubernetes helpers: names, labels, hardening, and one way to register a manifest.

Builders everywhere return plain manifest dicts (camelCase, exactly what the API server takes);
`KubeObject` registers such a dict with the kubernetes provider under its real type token
(`kubernetes:apps/v1:Deployment`, `kubernetes:argoproj.io/v1alpha1:Rollout`, ...), so the preview
and the policy pack see the same engine-shaped inputs a `pulumi up` would send.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.sdk_adapter import kubernetes_resource_opts

PART_OF = "rag-platform"
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Namespaces:
    """The namespaces of one environment; every component reads its names from here."""

    app: str
    data: str
    milvus: str
    ci: str
    gpu: str
    karpenter: str = "kube-system"
    device_plugin: str = "nvidia-device-plugin"

    @classmethod
    def for_env(cls, env: str) -> Namespaces:
        return cls(app=f"rag-{env}", data=f"rag-{env}-data", milvus=f"rag-{env}-milvus",
                   ci=f"rag-{env}-ci", gpu=f"rag-{env}-gpu")


def labels(name: str, component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(name: str, instance: str) -> dict[str, str]:
    """The immutable subset of labels used in selectors."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def metadata(name: str, namespace: str | None, lbls: dict[str, str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(lbls)}
    if namespace:
        meta["namespace"] = namespace
    meta.update({k: v for k, v in extra.items() if v})
    return meta


def agent_peer(ns: Namespaces, env: str) -> dict[str, Any]:
    """NetworkPolicy peer: the agent's pods, and nothing else in its namespace."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.app}},
            "podSelector": {"matchLabels": selector("agent", env)}}


def pod_security_context(uid: int = 10001, fs_group: int | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                           "seccompProfile": {"type": "RuntimeDefault"}}
    ctx["fsGroup"] = fs_group if fs_group is not None else uid
    return ctx


def container_security_context(uid: int | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if uid is not None:
        ctx["runAsUser"] = uid
        ctx["runAsGroup"] = uid
    return ctx


def token_for(kind: str, api_version: str) -> str:
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def resource_name(manifest: Manifest) -> str:
    """Stable Pulumi name: <namespace>/<name> (or <name> for cluster-scoped) plus the kind."""
    meta = manifest["metadata"]
    ns = meta.get("namespace")
    base = f"{ns}/{meta['name']}" if ns else meta["name"]
    return f"{manifest['kind'].lower()}:{base}"


class KubeObject(pulumi.CustomResource):
    """One Kubernetes object, registered from a manifest dict under its real type token."""

    def __init__(self, manifest: Manifest, opts: pulumi.ResourceOptions | None = None,
                 name: str | None = None) -> None:
        props = copy.copy(manifest)
        opts = pulumi.ResourceOptions.merge(kubernetes_resource_opts(), opts)
        super().__init__(token_for(manifest["kind"], manifest["apiVersion"]), name or resource_name(manifest),
                         props, opts)
        self.kind: str = manifest["kind"]
        self.manifest: Manifest = manifest


def register_all(manifests: list[Manifest], parent: pulumi.Resource,
                 depends_on: list[pulumi.Resource] | None = None) -> list[KubeObject]:
    return [KubeObject(m, pulumi.ResourceOptions(parent=parent, depends_on=depends_on or [])) for m in manifests]
