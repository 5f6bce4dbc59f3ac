"""Every rendered manifest validates against the Kubernetes API schemas (kubernetes-validate, offline).

The schemas are the strict JSON schemas kubernetes-validate ships for each Kubernetes release: unknown
fields and wrong types fail. The release is the one infra/versions.py pins kubectl to (the cluster's).
Custom resources (Argo Rollouts, Tekton, Karpenter, Prometheus Operator) have no schema in that package: their kinds are
listed below, so a new kind cannot slip through unvalidated, and the Rollout's pod template, the part
that matters most, is validated as a core PodTemplate.
"""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from infra import versions

from .conftest import STACKS

KUBERNETES = re.search(r":v(\d+\.\d+)\.\d+$", versions.KUBECTL_IMAGE).group(1) + ".0"
# CRDs: installed by their charts / release manifests; kubernetes-validate ships core schemas only.
NO_SCHEMA_SHIPPED = {
    ("argoproj.io/v1alpha1", "Rollout"), ("argoproj.io/v1alpha1", "AnalysisTemplate"),
    ("tekton.dev/v1", "Task"), ("tekton.dev/v1", "Pipeline"),
    ("triggers.tekton.dev/v1beta1", "EventListener"), ("triggers.tekton.dev/v1beta1", "TriggerBinding"),
    ("triggers.tekton.dev/v1beta1", "TriggerTemplate"), ("triggers.tekton.dev/v1beta1", "Trigger"),
    ("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    # kube-prometheus-stack's CRD (or an existing operator's); fields pinned in test_release_path.py.
    ("monitoring.coreos.com/v1", "PodMonitor"),
}


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize("name", STACKS)
def test_every_manifest_validates_against_the_kubernetes_schemas(stacks, name):
    validated, problems = 0, []
    for m in stacks[name].manifests:
        key = (m["apiVersion"], m["kind"])
        if key in NO_SCHEMA_SHIPPED:
            continue
        try:
            validate(m)
            validated += 1
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{key}: no schema for Kubernetes {KUBERNETES} (a new custom kind? list it with why)")
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{m['kind']} {m['metadata'].get('namespace')}/{m['metadata']['name']}: {exc}")
    assert not problems, "\n".join(problems)
    assert validated >= 25, validated


@pytest.mark.parametrize("name", STACKS)
def test_the_agent_rollout_pod_template_validates_as_a_core_pod_template(stacks, name):
    rollout = stacks[name].one("Rollout", "agent")
    validate({"apiVersion": "v1", "kind": "PodTemplate",
              "metadata": {"name": "agent", "namespace": rollout["metadata"]["namespace"]},
              "template": rollout["spec"]["template"]})


def test_the_schemas_bite():
    """What the preview used to write (`stringData: "[secret]"`) and a typo both fail."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "type": "Opaque", "stringData": "[secret]"}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(secret)
    validate(dict(secret, stringData={"password": "[secret]"}))
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
                  "dataa": {"k": "v"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(config_map)
