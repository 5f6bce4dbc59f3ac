"""The Milvus chart's objects, rebuilt from the chart sources with our values, judged by the real policies.

The credential-free preview shows `helm.sh/v4:Chart milvus` as one resource; under the Pulumi CLI the
pack sees every object the chart renders. The builders below follow, for the fields the policies read,
the templates of the pinned chart and its subcharts (docs/policies.md, "Third-party installs", names
them and the revisions read), and take the values `infra.components.milvus.build_values` passes. So a
dropped hardening value, a misnamed or stale exemption, or a value the templates do not read fails here,
and so does MinIO or a Milvus component not reading the generated credentials Secret.

Reconstructed, not rendered: when helm is available, render the real chart with the same values and
check it (`helm template ... | python -m policies check - --config stacks/policy/<stack>.json`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from infra import versions
from infra.components.milvus import RELEASE, build_values
from infra.components.secrets import MINIO_ACCESS_KEY, MINIO_SECRET_KEY, SecretNames
from infra.config import StackConfig, parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file
from policies.engine import PolicyResource, check_resources, load_pack_config
from policies.k8s import type_token
from policies.pack_config import PackConfig

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["dev", "local", "staging", "prod"]
MINIO_SECRET = SecretNames().minio  # what infra/program.py passes
PREFIX = f"Third-party (Milvus chart {versions.MILVUS_CHART_VERSION}): "

# Chart defaults the reconstructed templates read: zilliztech/milvus-helm charts/milvus/values.yaml
# (4.2.45) and the subcharts' values.yaml (bitnami etcd 6.3.3, zilliztech minio 8.0.x, apache pulsar 3.3.0).
DEFAULTS: dict[str, Any] = {
    "cluster": {"enabled": True},
    "image": {"all": {"repository": "milvusdb/milvus", "tag": "v2.5.9"}},
    "serviceAccount": {"create": False, "name": None},
    "securityContext": {},
    "containerSecurityContext": {},
    "streaming": {"enabled": False},
    "standalone": {"persistence": {"enabled": True}, "disk": {"enabled": True}},
    "mixCoordinator": {"enabled": True},
    "proxy": {"enabled": True},
    "queryNode": {"enabled": True, "disk": {"enabled": True}},
    "dataNode": {"enabled": True},
    "indexNode": {"enabled": True, "disk": {"enabled": True}},
    "rootCoordinator": {"enabled": False},
    "queryCoordinator": {"enabled": False},
    "indexCoordinator": {"enabled": False},
    "dataCoordinator": {"enabled": False},
    "etcd": {
        "enabled": True,
        "image": {"repository": "milvusdb/etcd", "tag": "3.5.18-r1"},
        "auth": {"rbac": {"enabled": False}},
        "podSecurityContext": {"enabled": True, "fsGroup": 1001},
        "containerSecurityContext": {"enabled": True, "runAsUser": 1001, "runAsNonRoot": True},
        "serviceAccount": {"create": False, "name": "", "automountServiceAccountToken": True},
    },
    "minio": {
        "enabled": True,
        "mode": "distributed",
        "image": {"repository": "minio/minio", "tag": "RELEASE.2023-03-20T20-16-18Z"},
        "accessKey": "minioadmin",
        "secretKey": "minioadmin",
        "existingSecret": "",
        "service": {"port": 9000},
        "securityContext": {"enabled": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
        "persistence": {"enabled": True},
        "serviceAccount": {"create": True, "name": None},
    },
    "pulsar": {"enabled": False},
    "pulsarv3": {
        "enabled": True,
        "nameOverride": "pulsarv3",
        "components": {"zookeeper": True, "bookkeeper": True, "autorecovery": True, "broker": True,
                       "proxy": True, "functions": False, "toolset": False, "pulsar_manager": False},
        "rbac": {"enabled": False, "psp": False, "limit_to_namespace": True},
        "zookeeper": {"securityContext": {"fsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"}},
        "bookkeeper": {"securityContext": {"fsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"}},
    },
}


def coalesce(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over chart defaults: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def obj(api_version: str, kind: str, name: str, namespace: str | None, **body: Any) -> PolicyResource:
    props = {"apiVersion": api_version, "kind": kind,
             "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}, **body}
    return PolicyResource(type_token(api_version, kind), f"milvus:{namespace}/{name}", props)


def workload(kind: str, name: str, namespace: str, pod: dict[str, Any]) -> PolicyResource:
    template = {"metadata": {"labels": {"app.kubernetes.io/instance": RELEASE}}, "spec": pod}
    if kind == "Job":
        return obj("batch/v1", "Job", name, namespace, spec={"template": template})
    return obj("apps/v1", kind, name, namespace, spec={"template": template})


def service_account(name: str, namespace: str, automount: bool | None = None) -> PolicyResource:
    body = {} if automount is None else {"automountServiceAccountToken": automount}
    return obj("v1", "ServiceAccount", name, namespace, **body)


# --- charts/milvus/templates/*-deployment.yaml, serviceaccount.yaml, _helpers.tpl -------------------

# values key -> component, as in the template names (`milvus.<component>.fullname` is "<release>-<component>").
CLUSTER_COMPONENTS = {"mixCoordinator": "mixcoord", "proxy": "proxy", "queryNode": "querynode",
                      "dataNode": "datanode", "indexNode": "indexnode", "rootCoordinator": "rootcoord",
                      "queryCoordinator": "querycoord", "indexCoordinator": "indexcoord",
                      "dataCoordinator": "datacoord"}


def milvus_objects(v: dict[str, Any], ns: str) -> list[PolicyResource]:
    sa = v["serviceAccount"]
    sa_name = (sa.get("name") or "milvus") if sa["create"] else (sa.get("name") or "default")  # milvus.serviceAccount
    if v["cluster"]["enabled"]:
        components = {key: c for key, c in CLUSTER_COMPONENTS.items() if v.get(key, {}).get("enabled")}
    else:
        components = {"standalone": "standalone"}
    out = [service_account(sa_name, ns)] if sa["create"] else []  # the template renders no automount field
    image = f"{v['image']['all']['repository']}:{v['image']['all']['tag']}"
    for key, component in components.items():
        own = v.get(key, {})
        container: dict[str, Any] = {"name": component, "image": image, "args": ["milvus", "run", component]}
        if own.get("extraEnv"):  # `{{- if .Values.<component>.extraEnv }}`, appended to the container's env
            container["env"] = copy.deepcopy(own["extraEnv"])
        # `{{ if and .Values.containerSecurityContext (not .Values.<c>.containerSecurityContext) }}`, then the
        # component's own; the pod securityContext is chosen the same way.
        container_security = own.get("containerSecurityContext") or v.get("containerSecurityContext")
        if container_security:
            container["securityContext"] = container_security
        pod: dict[str, Any] = {
            "serviceAccountName": sa_name,
            "containers": [container],
            "volumes": [{"name": "milvus-config", "configMap": {"name": RELEASE}}, {"name": "tools", "emptyDir": {}}],
        }
        pod_security = own.get("securityContext") or v.get("securityContext")
        if pod_security:
            pod["securityContext"] = pod_security
        if component == "standalone" and own.get("persistence", {}).get("enabled"):
            pod["volumes"].append({"name": "milvus-data-disk", "persistentVolumeClaim": {"claimName": RELEASE}})
        if own.get("disk", {}).get("enabled"):
            pod["volumes"].append({"name": "disk", "emptyDir": {}})
        out.append(workload("Deployment", f"{RELEASE}-{component}", ns, pod))
    return out


def milvus_config_minio(v: dict[str, Any]) -> dict[str, Any]:
    """templates/config.tpl, the `minio:` section of the ConfigMap's default.yaml (bundled MinIO, no externalS3)."""
    m = v["minio"]
    return {"address": f"{RELEASE}-minio", "port": m["service"]["port"],
            "accessKeyID": m["accessKey"], "secretAccessKey": m["secretKey"]}


# --- bitnami etcd 6.3.3: templates/statefulset.yaml, serviceaccount.yaml, etcd.serviceAccountName -----

def omit_enabled(context: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in context.items() if k != "enabled"}


def etcd_objects(e: dict[str, Any], ns: str) -> list[PolicyResource]:
    name = f"{RELEASE}-etcd"  # common.names.fullname
    sa = e["serviceAccount"]
    sa_name = (sa.get("name") or name) if sa["create"] else (sa.get("name") or "default")
    container: dict[str, Any] = {"name": "etcd", "image": f"{e['image']['repository']}:{e['image']['tag']}",
                                 "env": [{"name": "ETCDCTL_API", "value": "3"}]}
    if e["auth"]["rbac"]["enabled"]:
        container["env"].append({"name": "ETCD_ROOT_PASSWORD",
                                 "valueFrom": {"secretKeyRef": {"name": name, "key": "etcd-root-password"}}})
    if e["containerSecurityContext"]["enabled"]:
        container["securityContext"] = omit_enabled(e["containerSecurityContext"])
    pod: dict[str, Any] = {"serviceAccountName": sa_name, "containers": [container]}
    if e["podSecurityContext"]["enabled"]:
        pod["securityContext"] = omit_enabled(e["podSecurityContext"])
    out = [workload("StatefulSet", name, ns, pod)]
    if sa["create"]:
        out.append(service_account(sa_name, ns, sa["automountServiceAccountToken"]))
    return out


# --- zilliztech minio 8.0.x: templates/{deployment,statefulset,secrets}.yaml, minio.serviceAccountName,
# minio.secretName ----------------------------------------------------------------------------------

def minio_secret(m: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
    """The Secret the MinIO pods read, and the data the subchart renders into it (None: it renders none)."""
    if m["existingSecret"]:
        return m["existingSecret"], None
    # templates/secrets.yaml; an empty key would be randAlphaNum, the Milvus chart's defaults are minioadmin.
    return f"{RELEASE}-minio", {"accesskey": m["accessKey"], "secretkey": m["secretKey"]}


def minio_objects(m: dict[str, Any], ns: str) -> list[PolicyResource]:
    name = f"{RELEASE}-minio"  # minio.fullname
    secret_name, _ = minio_secret(m)
    sa = m["serviceAccount"]
    sa_name = (sa.get("name") or name) if sa["create"] else (sa.get("name") or "default")
    secret_env = [{"name": env, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
                  for env, key in (("MINIO_ACCESS_KEY", "accesskey"), ("MINIO_SECRET_KEY", "secretkey"))]
    pod: dict[str, Any] = {
        "serviceAccountName": sa_name,
        "containers": [{"name": "minio", "image": f"{m['image']['repository']}:{m['image']['tag']}",
                        "env": secret_env}],
        "volumes": [{"name": "minio-user", "secret": {"secretName": secret_name}}],
    }
    security = m["securityContext"]
    if security["enabled"] and m["persistence"]["enabled"]:  # only these three fields are rendered
        pod["securityContext"] = {k: security[k] for k in ("runAsUser", "runAsGroup", "fsGroup")}
    kind = "Deployment" if m["mode"] == "standalone" else "StatefulSet"
    out = [workload(kind, name, ns, pod)]
    if sa["create"]:
        out.append(service_account(sa_name, ns))
    return out


# --- apache pulsar 3.3.0 (alias pulsarv3): *-statefulset.yaml, *-cluster-initialize.yaml, RBAC --------

def pulsar_objects(p: dict[str, Any], ns: str) -> list[PolicyResource]:
    full = f"{RELEASE}-{p['nameOverride']}"  # pulsar.fullname
    image = {"name": "pulsar", "image": "apachepulsar/pulsar:3.0.7"}

    def pod(sa: str | None, init: list[str], security: dict[str, Any] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"initContainers": [{**image, "name": n} for n in init], "containers": [dict(image)]}
        if sa:
            spec["serviceAccountName"] = sa
        if security:  # `{{- if .Values.<component>.securityContext }}`: zookeeper and bookkeeper only
            spec["securityContext"] = security
        return spec

    c = p["components"]
    out: list[PolicyResource] = []
    if c["zookeeper"]:
        out += [workload("StatefulSet", f"{full}-zookeeper", ns,
                         pod(f"{full}-zookeeper", [], p["zookeeper"].get("securityContext"))),
                service_account(f"{full}-zookeeper", ns)]
    if c["bookkeeper"]:
        out += [workload("StatefulSet", f"{full}-bookie", ns,
                         pod(f"{full}-bookie", ["pulsar-bookkeeper-verify-clusterid"],
                             p["bookkeeper"].get("securityContext"))),
                workload("Job", f"{full}-bookie-init", ns, pod(f"{full}-bookie", ["wait-zookeeper-ready"])),
                service_account(f"{full}-bookie", ns)]
    if c["autorecovery"]:
        out += [workload("StatefulSet", f"{full}-recovery", ns,
                         pod(f"{full}-recovery", ["pulsar-bookkeeper-verify-clusterid"])),
                service_account(f"{full}-recovery", ns)]
    if c["broker"]:
        out += [workload("StatefulSet", f"{full}-broker", ns,
                         pod(f"{full}-broker-acct", ["wait-zookeeper-ready", "wait-bookkeeper-ready"])),
                # pulsar-cluster-initialize.yaml names no ServiceAccount.
                workload("Job", f"{full}-pulsar-init", ns,
                         pod(None, ["wait-zookeeper-ready", "pulsar-bookkeeper-verify-clusterid"])),
                service_account(f"{full}-broker-acct", ns)]
        # broker-cluster-role-binding.yaml: always rendered with the broker; namespaced when limit_to_namespace.
        rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                 {"apiGroups": ["", "extensions", "apps"],
                  "resources": ["pods", "services", "deployments", "secrets", "statefulsets"],
                  "verbs": ["list", "watch", "get", "update", "create", "delete", "patch"]}]
        subjects = [{"kind": "ServiceAccount", "name": f"{full}-broker-acct", "namespace": ns}]
        rbac = "rbac.authorization.k8s.io/v1"
        if p["rbac"]["limit_to_namespace"]:
            out += [obj(rbac, "Role", f"{full}-broker-role", ns, rules=rules),
                    obj(rbac, "RoleBinding", f"{full}-broker-rolebinding", ns, subjects=subjects,
                        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": f"{full}-broker-role"})]
        else:
            out += [obj(rbac, "ClusterRole", f"{full}-broker-clusterrole", None, rules=rules),
                    obj(rbac, "ClusterRoleBinding", f"{full}-broker-clusterrolebinding", None, subjects=subjects,
                        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": f"{full}-broker-clusterrole"})]
    if c["proxy"]:
        out += [workload("StatefulSet", f"{full}-proxy", ns,
                         pod(f"{full}-proxy", ["wait-zookeeper-ready", "wait-broker-ready"])),
                service_account(f"{full}-proxy", ns)]
    return out


def render(values: dict[str, Any], ns: str) -> list[PolicyResource]:
    """Every pod-bearing object, ServiceAccount and RBAC object the chart renders with these values."""
    v = coalesce(DEFAULTS, values)
    out = milvus_objects(v, ns)
    if v["etcd"]["enabled"]:
        out += etcd_objects(v["etcd"], ns)
    if v["minio"]["enabled"]:
        out += minio_objects(v["minio"], ns)
    if v["pulsarv3"]["enabled"]:
        out += pulsar_objects(v["pulsarv3"], ns)
    assert not v["pulsar"]["enabled"], "pulsar v2 is not reconstructed here"
    return out


def stack_config(stack: str) -> StackConfig:
    raw, secrets = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    return parse_stack_config(stack, raw, secrets)


def pack_config(stack: str) -> PackConfig:
    return load_pack_config(ROOT / "stacks" / "policy" / f"{stack}.json")


def names(resources: list[PolicyResource], kind: str) -> set[str]:
    return {r.props["metadata"]["name"] for r in resources if r.props["kind"] == kind}


# --- tests -----------------------------------------------------------------------------------------

def test_reconstruction_follows_the_mode_each_stack_installs():
    dev = render(build_values(stack_config("dev"), MINIO_SECRET), "rag-dev-milvus")
    assert names(dev, "Deployment") == {"milvus-standalone", "milvus-minio"}
    assert names(dev, "StatefulSet") == {"milvus-etcd"}
    assert names(dev, "Job") == set()
    prod = render(build_values(stack_config("prod"), MINIO_SECRET), "rag-prod-milvus")
    assert names(prod, "Deployment") == {f"milvus-{c}" for c in ("mixcoord", "proxy", "querynode", "datanode",
                                                                 "indexnode")}
    assert names(prod, "StatefulSet") == {"milvus-etcd", "milvus-minio"} | {
        f"milvus-pulsarv3-{c}" for c in ("zookeeper", "bookie", "recovery", "broker", "proxy")}
    assert names(prod, "Job") == {"milvus-pulsarv3-bookie-init", "milvus-pulsarv3-pulsar-init"}
    assert names(prod, "Role") == {"milvus-pulsarv3-broker-role"} and not names(prod, "ClusterRole")


@pytest.mark.parametrize("stack", STACKS)
def test_chart_objects_pass_with_the_stack_config(stack):
    """No violation is left (advisory included), and every Milvus exemption matches one of these objects."""
    config = pack_config(stack)
    objects = render(build_values(stack_config(stack), MINIO_SECRET), Namespaces.for_env(stack).milvus)
    report = check_resources(objects, config)
    assert [v.to_dict() for v in report.violations] == []
    milvus = [e for e in config.all_exemptions() if e.reason.startswith("Third-party (Milvus chart")]
    used = {id(e) for _, e in report.exempted}
    assert milvus, f"stacks/policy/{stack}.json has no Milvus exemptions"
    assert [e.to_dict() for e in milvus if id(e) not in used] == [], "stale or misnamed Milvus exemption"


@pytest.mark.parametrize("stack", STACKS)
def test_milvus_exemptions_are_third_party_and_name_the_pinned_chart(stack):
    """A chart bump changes the prefix, so every exemption is looked at again."""
    namespace = Namespaces.for_env(stack).milvus
    for e in pack_config(stack).all_exemptions():
        if e.namespace == namespace or e.reason.startswith("Third-party (Milvus chart"):
            assert e.third_party and e.reason.startswith(PREFIX), e.to_dict()
            assert e.namespace == namespace, e.to_dict()


def test_without_the_hardening_values_more_policies_fire():
    """The values, not the exemptions, keep seccomp, privilege escalation, capabilities and accounts clean."""
    ns = "rag-dev-milvus"
    values = build_values(stack_config("dev"), MINIO_SECRET)
    for key in ("securityContext", "containerSecurityContext"):
        del values[key]
    values["etcd"] = {"replicaCount": 1}
    found = {(v.policy, v.resource.name) for v in check_resources(render(values, ns), pack_config("dev")).violations}
    assert {("require-seccomp-runtime-default", "milvus-standalone"),
            ("restrict-privilege-escalation", "milvus-standalone"),
            ("require-drop-all-capabilities", "milvus-standalone"),
            ("require-seccomp-runtime-default", "milvus-etcd"),
            ("restrict-privilege-escalation", "milvus-etcd"),
            ("restrict-default-service-account", "milvus-etcd")} <= found

    ns = "rag-prod-milvus"
    values = build_values(stack_config("prod"), MINIO_SECRET)
    for component in ("zookeeper", "bookkeeper"):
        del values["pulsarv3"][component]
    found = {(v.policy, v.resource.name) for v in check_resources(render(values, ns), pack_config("prod")).violations}
    assert {("require-run-as-non-root", "milvus-pulsarv3-zookeeper"),
            ("require-seccomp-runtime-default", "milvus-pulsarv3-bookie")} <= found


def test_a_cluster_wide_broker_role_would_be_caught():
    """Why `pulsarv3.rbac.limit_to_namespace` is pinned: cluster-wide, the broker could read every Secret."""
    values = build_values(stack_config("prod"), MINIO_SECRET)
    values["pulsarv3"]["rbac"]["limit_to_namespace"] = False
    found = {(v.policy, v.resource.kind) for v in
             check_resources(render(values, "rag-prod-milvus"), pack_config("prod")).violations}
    assert ("restrict-cluster-wide-secret-read", "ClusterRole") in found


def secret_refs(resource: PolicyResource) -> dict[str, tuple[str, str]]:
    """env var -> (Secret, key) for every secretKeyRef in the workload's containers."""
    pod = resource.props["spec"]["template"]["spec"]
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for c in pod["containers"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


@pytest.mark.parametrize("stack", STACKS)
def test_minio_and_every_milvus_component_use_the_generated_secret(stack):
    """MinIO starts with our Secret's keys and every Milvus pod logs in with the same ones."""
    values = build_values(stack_config(stack), MINIO_SECRET)
    objects = render(values, Namespaces.for_env(stack).milvus)
    minio = [r for r in objects if r.props["metadata"]["name"] == "milvus-minio"
             and r.props["kind"] in ("Deployment", "StatefulSet")]
    assert len(minio) == 1
    assert secret_refs(minio[0]) == {"MINIO_ACCESS_KEY": (MINIO_SECRET, MINIO_ACCESS_KEY),
                                     "MINIO_SECRET_KEY": (MINIO_SECRET, MINIO_SECRET_KEY)}
    milvus = [r for r in objects if r.props["kind"] == "Deployment"
              and r.props["spec"]["template"]["spec"]["containers"][0].get("args", [])[:2] == ["milvus", "run"]]
    assert len(milvus) == (1 if stack != "prod" else 5)
    for r in milvus:
        assert secret_refs(r) == {"MINIO_ACCESS_KEY_ID": (MINIO_SECRET, MINIO_ACCESS_KEY),
                                  "MINIO_SECRET_ACCESS_KEY": (MINIO_SECRET, MINIO_SECRET_KEY)}, r.name
    # With existingSecret the subchart renders no Secret of its own (templates/secrets.yaml).
    assert minio_secret(coalesce(DEFAULTS, values)["minio"]) == (MINIO_SECRET, None)


@pytest.mark.parametrize("stack", STACKS)
def test_no_default_credentials_in_the_chart_configmap(stack):
    """config.tpl copies minio.accessKey/secretKey into the ConfigMap; ours are placeholders, not minioadmin."""
    config = milvus_config_minio(coalesce(DEFAULTS, build_values(stack_config(stack), MINIO_SECRET)))
    assert config["accessKeyID"].startswith("unused-") and config["secretAccessKey"].startswith("unused-")
    assert "minioadmin" not in repr(config).lower()


def test_without_the_credential_values_the_chart_defaults_come_back():
    """Why each value is set: drop them and MinIO and the ConfigMap fall back to minioadmin."""
    values = build_values(stack_config("dev"), MINIO_SECRET)
    for key in ("existingSecret", "accessKey", "secretKey"):
        del values["minio"][key]
    del values["standalone"]["extraEnv"]
    v = coalesce(DEFAULTS, values)
    assert minio_secret(v["minio"]) == ("milvus-minio", {"accesskey": "minioadmin", "secretkey": "minioadmin"})
    assert milvus_config_minio(v)["accessKeyID"] == "minioadmin"
    standalone = next(r for r in render(values, "rag-dev-milvus") if r.props["metadata"]["name"] == "milvus-standalone")
    assert secret_refs(standalone) == {}
