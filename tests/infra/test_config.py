"""Stack config validation: a wrong or missing key fails before any resource, naming file, key and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError, parse_stack_config
from infra.preview import load_stack_file

from .conftest import REPO


def dev_config() -> tuple[dict[str, str], set[str]]:
    return load_stack_file(REPO / "stacks" / "Pulumi.dev.yaml")


def with_key(key: str, value) -> tuple[dict[str, str], set[str]]:
    import json
    raw, secrets = dev_config()
    raw = dict(raw)
    if value is None:
        raw.pop(key)
    else:
        raw[key] = value if isinstance(value, str) else json.dumps(value)
    return raw, secrets


def test_real_stack_files_parse():
    for name in ("dev", "staging", "prod", "local"):
        raw, secrets = load_stack_file(REPO / "stacks" / f"Pulumi.{name}.yaml")
        cfg = parse_stack_config(name, raw, secrets)
        assert cfg.environment == name
    prod_raw, prod_secrets = load_stack_file(REPO / "stacks" / "Pulumi.prod.yaml")
    assert "rag-platform:registryDockerConfig" in prod_secrets
    assert prod_raw["kubernetes:strictMode"] == "true"
    assert parse_stack_config("prod", prod_raw, prod_secrets).kubernetes.kubeconfig


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("rag-platform:image", None, "rag-platform:image: Field required"),
    ("rag-platform:redis", {"mode": "sentinel", "replicas": 2}, "sentinel mode needs replicas >= 3"),
    ("rag-platform:agent", {"minReplicas": 0}, "rag-platform:agent.minReplicas"),
    ("rag-platform:redis", {"replicas": 1, "sise": "1Gi"}, "rag-platform:redis.sise"),
    ("rag-platform:canary", {"trafficRouter": "none"}, "raise agent.minReplicas to 20"),
    ("rag-platform:canary", {"trafficRouter": "istio"}, "rag-platform:canary.trafficRouter"),
    ("rag-platform:environment", "prod", "stack is 'dev'"),
    ("rag-platform:llmApiKey", "sk-plain", "pulumi config set --secret llmApiKey"),
])
def test_errors_name_file_key_and_fix(key, value, expected):
    raw, secrets = with_key(key, value)
    with pytest.raises(ConfigError) as err:
        parse_stack_config("dev", raw, secrets)
    message = str(err.value)
    assert "stacks/Pulumi.dev.yaml" in message
    assert expected in message
    assert "fix:" in message


def test_strict_mode_requires_kubeconfig_and_context():
    raw, secrets = dev_config()
    raw = dict(raw, **{"kubernetes:strictMode": "true"})
    with pytest.raises(ConfigError, match="strictMode needs explicit `context` and `kubeconfig`") as err:
        parse_stack_config("dev", raw, secrets)
    assert "stacks/Pulumi.dev.yaml" in str(err.value) and "fix:" in str(err.value)
    with pytest.raises(ConfigError, match="rag-platform:kubernetes.strict"):  # not a key of ours
        parse_stack_config("dev", with_key("rag-platform:kubernetes", {"strict": True})[0], secrets)


def test_broken_stack_file_exits_2_before_any_resource(tmp_path: Path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    doc = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["rag-platform:redis"]["replicas"] = 0
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(out),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Pulumi.dev.yaml" in proc.stderr and "rag-platform:redis.replicas" in proc.stderr
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "dev").exists()  # failed before anything was declared or written


def test_unreadable_stack_file_exits_2(tmp_path: Path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.dev.yaml").write_text("config: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(tmp_path / "o"),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Pulumi.dev.yaml" in proc.stderr and "not valid YAML" in proc.stderr


def test_a_stack_a_user_adds_renders_from_its_own_file(tmp_path: Path):
    """Stack names are not a fixed list: copy a stack file, rename it, and it previews."""
    stacks = tmp_path / "stacks"
    (stacks / "policy").mkdir(parents=True)
    doc = yaml.safe_load((REPO / "stacks" / "Pulumi.staging.yaml").read_text())
    doc["config"]["rag-platform:environment"] = "perf-eu"
    doc["config"]["rag-platform:highAvailability"] = True
    (stacks / "Pulumi.perf-eu.yaml").write_text(yaml.safe_dump(doc))
    # Exemptions name objects per stack (namespace rag-<stack>-ci, binding triggers-listener-<stack>).
    policy = (REPO / "stacks" / "policy" / "staging.json").read_text().replace("staging", "perf-eu")
    (stacks / "policy" / "perf-eu.json").write_text(policy)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "perf-eu", "--out", str(out),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifests = list(yaml.safe_load_all((out / "perf-eu" / "manifests.yaml").read_text()))
    namespaces = {m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"}
    assert any("perf-eu" in n for n in namespaces), namespaces


def test_stack_name_must_be_a_dns_label():
    raw, secrets = dev_config()
    raw = dict(raw, **{"rag-platform:environment": "Prod_EU"})
    with pytest.raises(ConfigError, match="rag-platform:environment"):
        parse_stack_config("Prod_EU", raw, secrets)


def test_external_generator_needs_its_key_and_excludes_gpu_pools():
    raw, secrets = dev_config()
    gen = '{"baseUrl": "https://llm.example.com/v1", "model": "m"}'
    with pytest.raises(ConfigError, match="llmApiKey"):
        parse_stack_config("dev", dict(raw, **{"rag-platform:generator": gen}), secrets)
    with pytest.raises(ConfigError, match="baseUrl"):
        parse_stack_config("dev", dict(raw, **{"rag-platform:generator": '{"baseUrl": "http://x", "model": "m"}',
                                               "rag-platform:llmApiKey": "k"}), secrets | {"rag-platform:llmApiKey"})
    cfg = parse_stack_config("dev", dict(raw, **{"rag-platform:generator": gen, "rag-platform:llmApiKey": "k"}),
                             secrets | {"rag-platform:llmApiKey"})
    assert cfg.generator is not None and cfg.generator.model == "m"


def test_external_generator_reaches_the_agent_env_and_its_egress():
    from infra.components.agent import GeneratorEndpoint, build_env, build_network_policy
    from infra.components.redis import RedisEndpoints
    from infra.kube import Namespaces

    raw, secrets = dev_config()
    cfg = parse_stack_config("dev", dict(raw, **{
        "rag-platform:generator": '{"baseUrl": "https://llm.example.com/v1", "model": "m", "egressCidr": "203.0.113.0/24"}',
        "rag-platform:llmApiKey": "k"}), secrets | {"rag-platform:llmApiKey"})
    ns = Namespaces.for_env("dev")

    env = build_env(cfg, ns, RedisEndpoints("redis://r:6379/0", None, "mymaster"), "http://milvus:19530",
                    GeneratorEndpoint(cfg.generator.baseUrl, cfg.generator.model))
    assert env["AGENT_GENERATOR"] == "openai" and env["AGENT_GENERATOR_BASE_URL"] == "https://llm.example.com/v1"
    assert env["AGENT_GENERATOR_API_KEY_FILE"].endswith("/generator-api-key")
    egress = build_network_policy(cfg, ns)["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 443}]} in egress


def test_broken_policy_config_exits_2_naming_the_file(tmp_path: Path):
    stacks = tmp_path / "stacks"
    (stacks / "policy").mkdir(parents=True)
    (stacks / "Pulumi.dev.yaml").write_text((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    (stacks / "policy" / "dev.json").write_text('{"restrict-host-path": {"exemptions": "not-a-list"}}')
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "dev", "--out", str(tmp_path / "o"),
                           "--stacks-dir", str(stacks)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "dev.json" in proc.stderr and "Traceback" not in proc.stderr
