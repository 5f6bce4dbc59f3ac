"""Each component on its own under the Pulumi mock engine (no CLI, no cluster)."""

from __future__ import annotations

import asyncio

import pulumi
import pytest

from infra.components.agent import Agent
from infra.components.cicd import AgentPipeline, Tekton
from infra.components.gpu import GpuPlatform
from infra.components.milvus import Milvus
from infra.components.namespaces import PlatformNamespaces
from infra.components.redis import Redis
from infra.components.rollouts import ArgoRollouts
from infra.components.secrets import MINIO_ACCESS_KEY, MINIO_SECRET_KEY, PlatformSecrets, SecretNames
from infra.config import parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file

from .conftest import REPO


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []
        self.inputs: dict[tuple[str, str], dict] = {}  # what the program sent the engine

    def new_resource(self, args):
        self.created.append((args.typ, args.name))
        self.inputs[(args.typ, args.name)] = dict(args.inputs)
        outputs = dict(args.inputs)
        if args.typ.startswith("random:"):
            outputs["result"] = f"fake-{args.name}"
        return f"{args.name}-id", outputs

    def call(self, args):
        return {}, None


MOCKS = Mocks()


@pytest.fixture(scope="module", autouse=True)
def pulumi_mocks():
    """Mocks on a fresh event loop, installed when this module runs, not when it is imported.

    Other suites (the agent's) call asyncio.run(), which closes the loop the Pulumi runtime would
    otherwise have captured at collection time.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(MOCKS, project="rag-platform", stack="prod", preview=False)
    yield MOCKS
    asyncio.set_event_loop(None)
    loop.close()


def cfg(stack: str):
    raw, secrets = load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")
    return parse_stack_config(stack, raw, secrets)


@pulumi.runtime.test
def test_namespaces_and_secrets():
    c, ns = cfg("prod"), Namespaces.for_env("prod")
    namespaces = PlatformNamespaces("t-namespaces", c, ns)
    assert set(namespaces.namespaces) == {"rag-prod", "rag-prod-data", "rag-prod-milvus", "rag-prod-ci", "rag-prod-gpu"}
    secrets = PlatformSecrets("t-secrets", c, ns, namespaces.namespaces)
    assert set(secrets.secrets) == {"redis", "minio", "agent", "webhook", "registry", "model_server"}
    assert len(secrets.api_keys) == c.agent.apiKeyCount

    # MinIO's keys: in the Milvus namespace, under the keys the chart's MinIO subchart reads.
    minio = secrets.secrets["minio"].manifest
    assert minio["metadata"]["namespace"] == "rag-prod-milvus"
    assert minio["metadata"]["name"] == "milvus-minio-credentials"
    assert minio["type"] == "Opaque" and set(minio["stringData"]) == {"accesskey", "secretkey"}

    def check(args):
        is_secret, value, *minio_values = args
        assert is_secret and value.startswith("fake-")
        access_secret, access, key_secret, key = minio_values
        assert access_secret and key_secret
        assert (access, key) == ("fake-minio-access-key", "fake-minio-secret-key")
        # From pulumi-random (registered by now), alphanumeric: env vars and S3 signing take them unescaped.
        for name, length in (("minio-access-key", 20), ("minio-secret-key", 40)):
            assert MOCKS.inputs[("random:index/randomPassword:RandomPassword", name)] == {"length": length,
                                                                                          "special": False}

    # The mock engine does not apply `additionalSecretOutputs`: this proves our own marking.
    data = minio["stringData"]
    return pulumi.Output.all(pulumi.Output.is_secret(secrets.redis_password_value),
                             secrets.redis_password_value,
                             pulumi.Output.is_secret(data[MINIO_ACCESS_KEY]), data[MINIO_ACCESS_KEY],
                             pulumi.Output.is_secret(data[MINIO_SECRET_KEY]), data[MINIO_SECRET_KEY]).apply(check)


@pulumi.runtime.test
def test_redis_component_sentinel_in_prod():
    r = Redis("t-redis", cfg("prod"), Namespaces.for_env("prod"), "redis-auth")
    kinds = sorted(o.kind for o in r.objects)
    assert kinds.count("StatefulSet") == 2 and "NetworkPolicy" in kinds
    assert r.endpoints.sentinel_hosts and r.endpoints.master_name == "mymaster"


@pulumi.runtime.test
def test_cluster_services_and_agent():
    c, ns = cfg("staging"), Namespaces.for_env("staging")
    milvus = Milvus("t-milvus", c, ns, SecretNames().minio)
    assert milvus.mode == "standalone" and milvus.uri.endswith(":19530")
    rollouts = ArgoRollouts("t-rollouts", c, ns)
    gpu = GpuPlatform("t-gpu", c, ns, "model-server-auth")
    assert gpu.pools == ["inference"] and gpu.karpenter is not None and gpu.device_plugin is not None
    agent = Agent("t-agent", c, ns, secrets=SecretNames(), redis=Redis("t-redis2", c, ns, "redis-auth").endpoints,
                  milvus_uri=milvus.uri, generator=gpu.generator, rollouts=rollouts)
    assert agent.rollout.kind == "Rollout"
    tekton = Tekton("t-tekton")
    pipeline = AgentPipeline("t-pipeline", c, ns, tekton=tekton, secrets=SecretNames())
    assert [t.manifest["metadata"]["name"] for t in pipeline.tasks] == [
        "fetch-source", "unit-tests", "evaluation-gate", "build-push", "deploy-rollout"]
    return agent.rollout.urn.apply(lambda urn: _assert_in_component(urn, "rag-platform:agent:Agent"))


def _assert_in_component(urn: str, component_type: str) -> None:
    assert component_type in urn  # children are parented to their component


@pulumi.runtime.test
def test_gpu_component_is_empty_without_pools():
    gpu = GpuPlatform("t-gpu-dev", cfg("dev"), Namespaces.for_env("dev"), "model-server-auth")
    assert gpu.generator is None and gpu.objects == [] and gpu.karpenter is None


def test_component_type_tokens():
    tokens = {t for t, _ in MOCKS.created if t.startswith("rag-platform:")}
    assert tokens <= {"rag-platform:namespaces:PlatformNamespaces", "rag-platform:secrets:PlatformSecrets",
                      "rag-platform:redis:Redis", "rag-platform:milvus:Milvus", "rag-platform:rollouts:ArgoRollouts",
                      "rag-platform:gpu:GpuPlatform", "rag-platform:agent:Agent", "rag-platform:cicd:Tekton",
                      "rag-platform:cicd:AgentPipeline"}
    if not tokens:
        pytest.fail("component tests did not run first")
