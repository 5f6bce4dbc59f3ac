"""Generated credentials (pulumi-random) stored as Kubernetes Secrets and mounted as files.

Values never leave Pulumi's secret handling: RandomPassword.result is a secret Output, and
`stringData` built from it stays secret in state and in the preview ("[secret]").
The one exception to "mounted as files" is MinIO's keys: the Milvus chart only passes them as env vars
(infra/components/milvus.py says why, docs/policies.md lists the exemptions).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, labels, metadata

# The keys the Milvus chart's MinIO subchart reads from the Secret named by `minio.existingSecret`
# (zilliztech/milvus-helm charts/minio/values.yaml, templates/{deployment,statefulset}.yaml); the Milvus
# pods read the same keys (infra/components/milvus.py).
MINIO_ACCESS_KEY = "accesskey"
MINIO_SECRET_KEY = "secretkey"


@dataclass(frozen=True)
class SecretNames:
    """Names (never values) of the Secrets other components mount."""

    redis: str = "redis-auth"
    agent: str = "agent-secrets"
    webhook: str = "github-webhook-secret"
    registry: str = "registry-credentials"
    model_server: str = "model-server-auth"
    model_hub: str = "model-hub-token"
    # Not `milvus-minio`: that is the name of the Secret the subchart would render itself.
    minio: str = "milvus-minio-credentials"


def build_secret(name: str, namespace: str, env: str, component: str,
                 string_data: dict[str, pulumi.Input[str]], type_: str = "Opaque") -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": type_,
        "metadata": metadata(name, namespace, labels(name, component, env)),
        "stringData": string_data,
    }


def _password(name: str, parent: pulumi.Resource, length: int = 32) -> random.RandomPassword:
    # Alphanumeric only: these land in URLs, headers and config files without escaping.
    return random.RandomPassword(name, length=length, special=False,
                                 opts=pulumi.ResourceOptions(parent=parent))


class PlatformSecrets(pulumi.ComponentResource):
    """Every credential the platform generates, plus the optional external ones from secret config."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces,
                 namespace_objs: dict[str, pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:secrets:PlatformSecrets", name, None, opts)
        env = cfg.environment
        self.names = SecretNames()
        self.redis_password = _password("redis-password", self)
        self.api_keys = [_password(f"agent-api-key-{i}", self, 40) for i in range(cfg.agent.apiKeyCount)]
        self.webhook_secret = _password("github-webhook-secret", self, 40)
        self.model_server_key = _password("model-server-api-key", self, 40) if cfg.gpu.enabled else None
        # Milvus' object store (the chart's MinIO): the lengths the subchart would generate itself
        # (charts/minio/templates/secrets.yaml, randAlphaNum 20/40), within MinIO's 3/8-character minimums.
        self.minio_access_key = _password("minio-access-key", self, 20)
        self.minio_secret_key = _password("minio-secret-key", self, 40)

        # Explicitly secret: the engine marks RandomPassword.result secret, but we don't rely on it.
        self.redis_password_value = pulumi.Output.secret(self.redis_password.result)
        minio_data: dict[str, pulumi.Input[str]] = {
            MINIO_ACCESS_KEY: pulumi.Output.secret(self.minio_access_key.result),
            MINIO_SECRET_KEY: pulumi.Output.secret(self.minio_secret_key.result),
        }
        api_keys_file = pulumi.Output.secret(
            pulumi.Output.all(*[k.result for k in self.api_keys]).apply(lambda ks: "\n".join(ks) + "\n"))
        webhook_value = pulumi.Output.secret(self.webhook_secret.result)
        generator_key: pulumi.Input[str] | None = None
        if self.model_server_key is not None:
            generator_key = pulumi.Output.secret(self.model_server_key.result)
        elif cfg.llmApiKey is not None:
            generator_key = pulumi.Output.secret(cfg.llmApiKey.get_secret_value())

        def dep(namespace: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[namespace_objs[namespace]])

        agent_data: dict[str, pulumi.Input[str]] = {"api-keys": api_keys_file,
                                                    "redis-password": self.redis_password_value}
        if generator_key is not None:
            agent_data["generator-api-key"] = generator_key
        self.secrets: dict[str, KubeObject] = {
            "redis": KubeObject(build_secret(self.names.redis, ns.data, env, "redis",
                                             {"password": self.redis_password_value}), dep(ns.data)),
            "minio": KubeObject(build_secret(self.names.minio, ns.milvus, env, "milvus", minio_data), dep(ns.milvus)),
            "agent": KubeObject(build_secret(self.names.agent, ns.app, env, "agent", agent_data), dep(ns.app)),
            "webhook": KubeObject(build_secret(self.names.webhook, ns.ci, env, "cicd",
                                               {"secretToken": webhook_value}), dep(ns.ci)),
        }
        if cfg.registryDockerConfig is not None:
            self.secrets["registry"] = KubeObject(build_secret(
                self.names.registry, ns.ci, env, "cicd",
                {"config.json": pulumi.Output.secret(cfg.registryDockerConfig.get_secret_value())}), dep(ns.ci))
        if cfg.modelHubToken is not None and cfg.gpu.enabled:
            # Read by the model server as a file (HF_TOKEN_PATH) for gated models or a private mirror.
            self.secrets["model_hub"] = KubeObject(build_secret(
                self.names.model_hub, ns.gpu, env, "model-server",
                {"token": pulumi.Output.secret(cfg.modelHubToken.get_secret_value())}), dep(ns.gpu))
        if self.model_server_key is not None:
            self.secrets["model_server"] = KubeObject(build_secret(
                self.names.model_server, ns.gpu, env, "model-server",
                {"api-key": generator_key}), dep(ns.gpu))
        self.register_outputs({"secretNames": {k: v.manifest["metadata"]["name"] for k, v in self.secrets.items()}})
