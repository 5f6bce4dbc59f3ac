"""Wires the components of one stack together, layer by layer.

provider -> namespaces -> secrets -> cluster services (Redis, Milvus, Tekton, Argo Rollouts,
monitoring, GPU) -> the agent -> its CI/CD. Each layer only reads what the layer below exposes.
"""

from __future__ import annotations

import pulumi

from infra.components.agent import Agent, GeneratorEndpoint
from infra.components.cicd import AgentPipeline, Tekton
from infra.components.gpu import GpuPlatform
from infra.components.milvus import Milvus
from infra.components.monitoring import Monitoring
from infra.components.namespaces import PlatformNamespaces
from infra.components.redis import Redis
from infra.components.review import ReviewPipeline
from infra.components.rollouts import ArgoRollouts
from infra.components.secrets import PlatformSecrets
from infra.config import StackConfig
from infra.kube import Namespaces
from infra.provider import make_provider


def build_platform(cfg: StackConfig) -> dict[str, object]:
    """Declare every resource of the stack; returns the stack outputs (names and URLs, never values)."""
    provider = make_provider(cfg)
    opts = pulumi.ResourceOptions(provider=provider)
    ns = Namespaces.for_env(cfg.environment)

    namespaces = PlatformNamespaces("namespaces", cfg, ns, opts)
    ns_dep = pulumi.ResourceOptions(provider=provider, depends_on=[namespaces])
    secrets = PlatformSecrets("secrets", cfg, ns, namespaces.namespaces, opts)

    # Cluster services.
    redis = Redis("redis", cfg, ns, secrets.names.redis,
                  pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))
    milvus = Milvus("milvus", cfg, ns, secrets.names.minio,
                    pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))
    rollouts = ArgoRollouts("argo-rollouts", cfg, ns, ns_dep)
    # After Argo Rollouts: the controller's PodMonitor selects its pods, and the analysis asks this Prometheus.
    monitoring = Monitoring("monitoring", cfg, ns, ns_dep)
    gpu = GpuPlatform("gpu", cfg, ns, secrets.names.model_server,
                      pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))
    tekton = Tekton("tekton", opts)

    # Apps. The generator is the in-cluster model server, an external API, or none (extractive).
    generator = gpu.generator
    if cfg.generator is not None:
        generator = GeneratorEndpoint(base_url=cfg.generator.baseUrl, model=cfg.generator.model)
    agent = Agent("agent", cfg, ns, secrets=secrets.names, redis=redis.endpoints, milvus_uri=milvus.uri,
                  generator=generator, rollouts=rollouts,
                  opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))
    pipeline = None
    if cfg.cicd.enabled:
        pipeline = AgentPipeline("agent-pipeline", cfg, ns, tekton=tekton, secrets=secrets.names,
                                 opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))
    if cfg.review.enabled:  # pull-request previews; their Trigger joins the release listener
        ReviewPipeline("review", cfg, ns, tekton=tekton, webhook_secret=secrets.names.webhook,
                       opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespaces, secrets]))

    return {
        "environment": cfg.environment,
        "namespaces": {"app": ns.app, "data": ns.data, "milvus": ns.milvus, "ci": ns.ci,
                       "monitoring": monitoring.namespace,
                       **({"gpu": ns.gpu} if cfg.gpu.enabled else {})},
        "secretNames": {key: obj.manifest["metadata"]["name"] for key, obj in secrets.secrets.items()},
        "agentUrl": agent.internal_url,
        "agentPublicUrl": agent.public_url,
        "redisUrl": redis.endpoints.url,
        "redisSentinelHosts": redis.endpoints.sentinel_hosts,
        "milvusUri": milvus.uri,
        "generatorBaseUrl": generator.base_url if generator else None,
        "webhookUrl": pipeline.webhook_url if pipeline else None,
        "prometheusAddress": monitoring.address,
        "image": cfg.image.ref,
    }
