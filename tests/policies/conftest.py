"""Builders for resources in the engine's shape (Pulumi type token + camelCase inputs).

Every builder returns a compliant object; tests break exactly one thing and expect exactly that
policy to fire, so a policy that never fires (or always fires) fails a test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies import catalog
from policies.engine import PolicyResource, check_resources
from policies.pack_config import PackConfig


def container(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "ghcr.io/acme/app:1.0.0",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
    }


def pod_spec(sa: str | None = "app", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container()],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if sa is not None:
        spec["serviceAccountName"] = sa
    spec.update(extra)
    return spec


def step(name: str = "build", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "docker.io/library/python:3.11", "script": "echo ok", **extra}


def task_spec(**extra: Any) -> dict[str, Any]:
    return {
        "stepTemplate": {"securityContext": copy.deepcopy(container()["securityContext"])},
        "steps": [step()],
        **extra,
    }


def meta(name: str, namespace: str | None = "apps") -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def resource(api_version: str, kind: str, name: str, namespace: str | None = "apps", **body: Any) -> PolicyResource:
    from policies.k8s import type_token

    props = {"apiVersion": api_version, "kind": kind, "metadata": meta(name, namespace), **body}
    return PolicyResource(type=type_token(api_version, kind), name=f"pulumi-{name}", props=props)


def workload(kind: str, spec: dict[str, Any] | None = None, name: str = "app") -> PolicyResource:
    """A workload of `kind` whose pod template is `spec` (default: compliant)."""
    spec = spec if spec is not None else pod_spec()
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    if kind == "Pod":
        return resource("v1", "Pod", name, spec=spec)
    if kind == "CronJob":
        return resource("batch/v1", "CronJob", name,
                        spec={"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}})
    if kind == "Job":
        return resource("batch/v1", "Job", name, spec={"template": template})
    if kind == "Rollout":
        return resource("argoproj.io/v1alpha1", "Rollout", name, spec={"template": template})
    return resource("apps/v1", kind, name, spec={"selector": {"matchLabels": {"app": name}}, "template": template})


def service_account(name: str = "app", namespace: str | None = "apps") -> PolicyResource:
    return resource("v1", "ServiceAccount", name, namespace, automountServiceAccountToken=False)


def violations(policy: str, *resources: PolicyResource, config: PackConfig | None = None):
    """Violations of one policy only, through the real engine."""
    return check_resources(list(resources), config, policies=[catalog.get(policy)]).violations


@pytest.fixture
def k8s():
    """The builders above, as one object (tests/ is not a package)."""
    class K8s:
        pass

    ns = K8s()
    for fn in (container, pod_spec, step, task_spec, meta, resource, workload, service_account, violations):
        setattr(ns, fn.__name__, staticmethod(fn))
    return ns
