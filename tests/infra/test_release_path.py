"""The release path's four links, on the real program output: the webhook gets in, kaniko can push,
Prometheus scrapes what the analysis asks, and the Argo Rollouts controller is scraped too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.components import cicd, monitoring
from infra.components.agent import build_canary_strategy
from infra.config import ConfigError, parse_stack_config
from infra.crds import check_crd_dependencies
from infra.kube import Namespaces
from infra.preview import load_stack_file

from .conftest import REPO

CICD_STACKS = ["dev", "staging", "prod"]


def config(stack: str, **overrides) -> tuple[dict[str, str], set[str]]:
    raw, secrets = load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")
    raw = dict(raw)
    for key, value in overrides.items():
        full = f"rag-platform:{key}"
        if value is None:
            raw.pop(full, None)
            secrets = secrets - {full}
        else:
            raw[full] = value if isinstance(value, str) else json.dumps(value)
    return raw, secrets


def cicd_with(stack: str, **changes) -> dict:
    doc = json.loads(load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")[0]["rag-platform:cicd"])
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def refused(stack: str, **overrides) -> str:
    raw, secrets = config(stack, **overrides)
    with pytest.raises(ConfigError) as err:
        parse_stack_config(stack, raw, secrets)
    message = str(err.value)
    assert f"stacks/Pulumi.{stack}.yaml" in message and "fix:" in message
    return message


# ------------------------------------------------------------------ config: an explicit way in, explicit auth

def test_cicd_without_a_webhook_host_is_refused_naming_the_key():
    message = refused("dev", cicd=cicd_with("dev", webhook=None))
    assert "rag-platform:cicd.webhook.host" in message and "exposure: external" in message
    assert "rag-platform:cicd.webhook.tls" in message


def test_external_exposure_needs_its_url_and_then_renders_no_ingress():
    message = refused("dev", cicd=cicd_with("dev", webhook={"exposure": "external"}))
    assert "rag-platform:cicd.webhook.externalUrl" in message
    raw, secrets = config("dev", cicd=cicd_with("dev", webhook={
        "exposure": "external", "externalUrl": "https://hooks.example.com/rag-dev", "ingressControllerNamespace": "gw"}))
    cfg = parse_stack_config("dev", raw, secrets)
    ns = Namespaces.for_env("dev")
    assert cicd.build_webhook_ingress(cfg, ns) == []
    assert cicd.webhook_url(cfg) == "https://hooks.example.com/rag-dev"
    listener = next(p for p in cicd.build_network_policies(cfg, ns) if p["metadata"]["name"] == "listener-ingress")
    assert listener["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gw"}}}]


def test_tls_is_one_explicit_choice():
    message = refused("dev", cicd=cicd_with("dev", webhook={"host": "ci.example.com", "tls": {}}))
    assert "rag-platform:cicd.webhook.tls" in message and "exactly one" in message
    message = refused("dev", cicd=cicd_with("dev", webhook={
        "host": "ci.example.com", "tls": {"secretName": "a", "clusterIssuer": "b"}}))
    assert "exactly one" in message


def test_pushing_without_registry_auth_is_refused_naming_the_key():
    message = refused("dev", cicd=cicd_with("dev", registryAuth=None))
    assert "rag-platform:cicd.registryAuth.method" in message
    assert "pulumi config set --secret registryDockerConfig" in message and "workloadIdentity" in message


def test_docker_config_auth_needs_the_secret():
    message = refused("dev", registryDockerConfig=None)
    assert "rag-platform:registryDockerConfig" in message
    assert 'pulumi config set --secret registryDockerConfig "$(cat config.json)" -s dev' in message


def test_workload_identity_needs_an_annotation_and_excludes_a_docker_config():
    message = refused("staging", cicd=cicd_with("staging", registryAuth={"method": "workloadIdentity"}))
    assert "rag-platform:cicd.registryAuth.serviceAccountAnnotations" in message
    assert "eks.amazonaws.com/role-arn" in message
    raw, secrets = config("staging", registryDockerConfig="x")
    with pytest.raises(ConfigError, match="rag-platform:registryDockerConfig"):
        parse_stack_config("staging", raw, secrets | {"rag-platform:registryDockerConfig"})


def test_a_stack_without_cicd_needs_neither():
    raw, secrets = config("local")
    assert parse_stack_config("local", raw, secrets).cicd.enabled is False


def test_pauses_too_short_for_a_measurement_are_refused():
    message = refused("dev", canary={"trafficRouter": "none", "approximateWeights": True, "pauseSeconds": [30, 30]})
    assert "rag-platform:canary" in message and "pauseSeconds" in message and "first measurement" in message


@pytest.mark.parametrize(("removed", "key"), [
    ("webhook", "rag-platform:cicd.webhook.host"),
    ("registryAuth", "rag-platform:cicd.registryAuth.method"),
])
def test_the_preview_exits_2_naming_the_key_and_the_fix(tmp_path: Path, removed, key):
    stacks = tmp_path / "stacks"
    (stacks / "policy").mkdir(parents=True)
    doc = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    del doc["config"]["rag-platform:cicd"][removed]
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    (stacks / "policy" / "dev.json").write_text((REPO / "stacks" / "policy" / "dev.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(tmp_path / "o"),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert key in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "dev").exists()


# ------------------------------------------------------------------ the rendered stacks

@pytest.mark.parametrize("name", CICD_STACKS)
def test_the_webhook_gets_in_through_one_tls_path(stacks, name):
    s = stacks[name]
    ingress = s.one("Ingress", "github-listener")
    spec = ingress["spec"]
    host = spec["rules"][0]["host"]
    paths = spec["rules"][0]["http"]["paths"]
    assert paths == [{"path": "/hooks/github", "pathType": "Exact",
                      "backend": {"service": {"name": "el-github-listener", "port": {"number": 8080}}}}]
    assert spec["tls"] == [{"hosts": [host], "secretName": spec["tls"][0]["secretName"]}]
    assert spec["ingressClassName"] == "nginx"
    assert s.outputs["webhookUrl"] == f"https://{host}/hooks/github"
    issuer = (ingress["metadata"].get("annotations") or {}).get("cert-manager.io/cluster-issuer")
    assert bool(issuer) != (spec["tls"][0]["secretName"] != "github-listener-tls")
    listener = s.one("NetworkPolicy", "listener-ingress")["spec"]
    assert listener["podSelector"] == {"matchLabels": {"eventlistener": "github-listener"}}
    assert listener["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]


def test_the_listener_picks_up_other_pipelines_triggers_by_label(stacks):
    el = stacks["dev"].one("EventListener", "github-listener")["spec"]
    assert el["labelSelector"] == {"matchLabels": cicd.TRIGGER_SELECTOR}


@pytest.mark.parametrize(("name", "workspace"), [
    ("dev", {"name": "docker-config", "secret": {"secretName": "registry-credentials"}}),
    ("prod", {"name": "docker-config", "secret": {"secretName": "registry-credentials"}}),
    ("staging", {"name": "docker-config", "configMap": {"name": "registry-cred-helpers"}}),
])
def test_kaniko_pushes_with_the_chosen_credentials(stacks, name, workspace):
    s = stacks[name]
    run = s.one("TriggerTemplate", "agent-release")["spec"]["resourcetemplates"][0]["spec"]
    assert workspace in run["workspaces"]
    assert {"name": "docker-config", "emptyDir": {}} not in run["workspaces"]
    build = next(t for t in run["taskRunSpecs"] if t["pipelineTaskName"] == "build-push")
    assert build["serviceAccountName"] == "image-builder"
    builder = s.one("ServiceAccount", "image-builder")
    assert builder["automountServiceAccountToken"] is False
    if name == "staging":
        assert builder["metadata"]["annotations"] == {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/rag-staging-image-builder"}
        helpers = json.loads(s.one("ConfigMap", "registry-cred-helpers")["data"]["config.json"])
        assert helpers == {"credHelpers": {"111122223333.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"}}
        assert "registry" not in s.outputs["secretNames"]
    else:
        assert "annotations" not in builder["metadata"]
        assert s.outputs["secretNames"]["registry"] == "registry-credentials"


def test_registry_host_follows_dockers_rule():
    assert cicd.registry_host("111122223333.dkr.ecr.eu-west-1.amazonaws.com/rag-agent") == \
        "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
    assert cicd.registry_host("localhost:5001/rag-agent") == "localhost:5001"
    assert cicd.registry_host("acme/rag-agent") == "docker.io"


@pytest.mark.parametrize("name", ["dev", "local", "staging", "prod"])
def test_prometheus_is_installed_pinned_and_scrapes_the_agent_and_the_controller(stacks, name):
    s = stacks[name]
    chart = next(r for r in s.of_type("kubernetes:helm.sh/v4:Chart") if r["inputs"]["chart"] == "kube-prometheus-stack")
    assert chart["inputs"]["version"] == "88.5.3" and chart["inputs"]["namespace"] == f"rag-{name}-monitoring"
    spec = chart["inputs"]["values"]["prometheus"]["prometheusSpec"]
    ha = name == "prod"
    assert spec["replicas"] == (2 if ha else 1)
    assert (spec.get("podAntiAffinity") == "hard") == ha
    assert chart["inputs"]["values"]["prometheus"]["podDisruptionBudget"]["enabled"] == ha
    assert spec["podMonitorSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "rag-platform",
                                                          "app.kubernetes.io/instance": name}}
    assert chart["inputs"]["values"]["prometheusOperator"]["namespaces"] == {"releaseNamespace": True,
                                                                            "additional": [f"rag-{name}"]}
    assert s.outputs["prometheusAddress"] == f"http://prometheus-operated.rag-{name}-monitoring.svc.cluster.local:9090"
    for metric in s.one("AnalysisTemplate", "agent-canary-health")["spec"]["metrics"]:
        assert metric["provider"]["prometheus"]["address"] == s.outputs["prometheusAddress"]

    agent = s.one("PodMonitor", "agent")["spec"]
    assert agent["selector"] == {"matchLabels": {"app.kubernetes.io/name": "agent", "app.kubernetes.io/instance": name}}
    endpoint = agent["podMetricsEndpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "rollouts_pod_template_hash",
                                        "sourceLabels": ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"]}]
    controller = s.one("PodMonitor", "argo-rollouts")["spec"]
    assert controller["podMetricsEndpoints"][0]["port"] == "metrics"
    assert controller["selector"]["matchLabels"]["app.kubernetes.io/component"] == "rollouts-controller"
    # The monitors wait for the chart that installs their CRD.
    monitors = [r for r in s.resources if r["inputs"].get("kind") == "PodMonitor"]
    assert len(monitors) == 2 and not check_crd_dependencies(s.resources)


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_network_policies_let_the_scrapes_and_the_queries_through(stacks, name):
    s = stacks[name]
    mon_ns = f"rag-{name}-monitoring"
    prom = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": mon_ns}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    agent = s.one("NetworkPolicy", "prometheus-scrape-agent")["spec"]
    assert agent["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "agent"
    assert agent["ingress"] == [{"from": [prom], "ports": [{"protocol": "TCP", "port": 8080}]}]
    ctrl = s.one("NetworkPolicy", "prometheus-scrape-argo-rollouts")["spec"]
    assert ctrl["ingress"] == [{"from": [prom], "ports": [{"protocol": "TCP", "port": 8090}]}]
    query = s.one("NetworkPolicy", "argo-rollouts-query-prometheus")["spec"]
    assert query["egress"] == [{"to": [prom], "ports": [{"protocol": "TCP", "port": 9090}]}]
    # The monitoring namespace itself: default deny, then the scrape egress and the query ingress only.
    names = {p["metadata"]["name"] for p in s.objects("NetworkPolicy") if p["metadata"]["namespace"] == mon_ns}
    assert names == {"default-deny-all", "allow-dns-egress", "monitoring-egress-apiserver",
                     "prometheus-scrape-egress", "prometheus-query-ingress"}
    scrape = s.one("NetworkPolicy", "prometheus-scrape-egress")["spec"]["egress"]
    assert sorted(rule["ports"][0]["port"] for rule in scrape) == [8080, 8090]
    # Nothing else in the monitoring namespace may reach the agent: only Prometheus' pods.
    assert all("podSelector" in peer for rule in agent["ingress"] for peer in rule["from"])


def test_existing_prometheus_mode_installs_nothing_and_labels_the_monitors():
    raw, secrets = config("dev", monitoring={"mode": "existing", "namespace": "monitoring",
                                             "prometheusAddress": "http://prometheus.monitoring:9090",
                                             "monitorLabels": {"release": "kube-prometheus-stack"}})
    cfg = parse_stack_config("dev", raw, secrets)
    ns = Namespaces.for_env("dev")
    monitors = monitoring.build_monitors(cfg, ns)
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus-stack" for m in monitors)
    policies = monitoring.build_scrape_policies(cfg, ns)
    query = next(p for p in policies if p["metadata"]["name"] == "argo-rollouts-query-prometheus")
    assert query["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert query["spec"]["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"}
    with pytest.raises(ConfigError, match="rag-platform:monitoring"):
        parse_stack_config("dev", *config("dev", monitoring={"mode": "existing"}))


def test_existing_prometheus_mode_previews_clean(tmp_path: Path):
    """The monitors' CRDs come from the cluster: the CRD check accepts that only when the stack says so."""
    stacks = tmp_path / "stacks"
    (stacks / "policy").mkdir(parents=True)
    doc = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["rag-platform:monitoring"] = {"mode": "existing", "namespace": "monitoring",
                                                "prometheusAddress": "https://prometheus.example.com"}
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    (stacks / "policy" / "dev.json").write_text((REPO / "stacks" / "policy" / "dev.json").read_text())
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(out),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resources = json.loads((out / "dev" / "resources.json").read_text())
    assert not [r for r in resources if r["inputs"].get("chart") == "kube-prometheus-stack"]
    assert len([r for r in resources if r["inputs"].get("kind") == "PodMonitor"]) == 2
    query = next(r for r in resources if r["name"].endswith("argo-rollouts-query-prometheus"))
    assert query["inputs"]["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    # Without the component's word for it, the same monitors fail the check.
    vouched = [dict(r, inputs={}) if r["type"] == "rag-platform:monitoring:Monitoring" else r for r in resources]
    problems = check_crd_dependencies(vouched)
    assert len(problems) == 2 and all("kube-prometheus-stack" in p for p in problems)


@pytest.mark.parametrize("name", ["dev", "local", "staging", "prod"])
def test_abort_scale_down_delay_only_with_traffic_routing(stacks, name):
    canary = stacks[name].one("Rollout", "agent")["spec"]["strategy"]["canary"]
    assert ("abortScaleDownDelaySeconds" in canary) == ("trafficRouting" in canary)


def test_canary_strategy_builder_matches_config():
    raw, secrets = config("dev")
    cfg = parse_stack_config("dev", raw, secrets)
    assert "abortScaleDownDelaySeconds" not in build_canary_strategy(cfg)


@pytest.mark.parametrize("name", ["dev", "local", "staging", "prod"])
def test_prometheus_operator_needs_no_secret_that_only_a_helm_hook_creates(stacks, name):
    """Pulumi's helm v4 Chart skips Helm hooks: the chart's operator TLS Secret would never exist."""
    chart = next(r for r in stacks[name].of_type("kubernetes:helm.sh/v4:Chart")
                 if r["inputs"]["chart"] == "kube-prometheus-stack")
    operator = chart["inputs"]["values"]["prometheusOperator"]
    # kube-prometheus-stack's operator Deployment mounts `<fullname>-admission` when tls.enabled
    # (default true), and only the admission webhook's hook Job or cert-manager creates it.
    assert operator["tls"]["enabled"] is False
    assert operator["admissionWebhooks"]["enabled"] is False
