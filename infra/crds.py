"""Which installer owns which CRD group: every custom resource must depend on it.

The preview checks this on the real program output (`check_crd_dependencies`), so a new custom
resource without `depends_on` on its installer fails `make preview` with exit code 2.
"""

from __future__ import annotations

from typing import Any

# API group -> Pulumi resource name of the ConfigFile/Chart that installs its CRDs.
CRD_INSTALLERS: dict[str, str] = {
    "tekton.dev": "tekton-pipelines",
    "triggers.tekton.dev": "tekton-triggers",
    "argoproj.io": "argo-rollouts",
    "karpenter.sh": "karpenter",
    "karpenter.k8s.aws": "karpenter",
    "monitoring.coreos.com": "kube-prometheus-stack",
}

BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "certificates.k8s.io",
}


def api_group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def check_crd_dependencies(resources: list[dict[str, Any]]) -> list[str]:
    """Problems (empty when fine): custom resources whose CRD installer is not among their dependencies."""
    urn_name = {r["urn"]: r["name"] for r in resources}
    installers = {r["name"] for r in resources if r["type"].startswith(("kubernetes:helm.sh/", "kubernetes:yaml/"))}
    # A component may vouch that the cluster already has a group's CRDs (an existing install the
    # stack points at, e.g. monitoring mode `existing`): `crdsFromCluster: [group, ...]` in its inputs.
    from_cluster = {g for r in resources if not r.get("custom") for g in (r.get("inputs") or {}).get("crdsFromCluster", [])}
    problems = []
    for r in resources:
        inputs = r.get("inputs") or {}
        if not r["type"].startswith("kubernetes:") or "apiVersion" not in inputs or "kind" not in inputs:
            continue
        group = api_group(inputs["apiVersion"])
        if group in BUILTIN_GROUPS:
            continue
        installer = CRD_INSTALLERS.get(group)
        label = f"{inputs['kind']} {r['name']}"
        if group in from_cluster:
            continue
        if installer is None:
            problems.append(f"{label}: API group '{group}' has no known CRD installer (add it to infra/crds.py)")
        elif installer not in installers:
            problems.append(f"{label}: its CRD installer '{installer}' is not part of this stack")
        elif installer not in {urn_name.get(u) for u in r.get("dependsOn", [])}:
            problems.append(f"{label}: does not depend on '{installer}' (add depends_on=[<installer>])")
    return problems
