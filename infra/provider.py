"""The explicit kubernetes Provider of a stack: no resource ever uses the ambient default provider."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from infra.config import StackConfig


def provider_args(cfg: StackConfig) -> dict:
    """Provider inputs from config (pure, so tests can check the per-env differences)."""
    kube = cfg.kubernetes
    args: dict = {"enable_server_side_apply": kube.enableServerSideApply}
    if kube.context:
        args["context"] = kube.context
    if kube.kubeconfig:
        args["kubeconfig"] = kube.kubeconfig
    if kube.renderYamlToDirectory:
        args["render_yaml_to_directory"] = kube.renderYamlToDirectory
    return args


def make_provider(cfg: StackConfig) -> k8s.Provider:
    # Strict mode (prod) is the provider's own `kubernetes:strictMode` stack key: it disables the
    # default provider and requires kubeconfig + context on every Provider. StackConfig checks
    # both are set before we get here.
    return k8s.Provider(f"k8s-{cfg.environment}", **provider_args(cfg))
