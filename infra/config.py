"""Typed stack configuration: read once, validated before any resource exists.

Each top-level field of `StackConfig` is one project-namespaced key in `stacks/Pulumi.<stack>.yaml`
(`rag-platform:<field>`). `load_stack_config` turns the raw CLI config (strings, JSON for objects)
into the model; any problem becomes a `ConfigError` naming the stack file, the key and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

PROJECT = "rag-platform"
STACK_CONFIG_DIR = "stacks"
# Any stack name a user adds works; behaviour comes from config values, never from the name.
Environment = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$")]


class ConfigError(pulumi.RunError):
    """A stack file is wrong. The message names the file, the key and the fix (RunError: no traceback)."""


def stack_file(stack: str) -> str:
    return f"{STACK_CONFIG_DIR}/Pulumi.{stack}.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KubernetesConfig(_Model):
    context: str | None = Field(None, description="kubeconfig context this stack deploys to (null: current context)")
    kubeconfig: str | None = Field(None, description="kubeconfig path or content (null: $KUBECONFIG / ~/.kube/config)")
    enableServerSideApply: bool = Field(True, description="keep true: server-side apply resolves field ownership")
    renderYamlToDirectory: str | None = Field(
        None, description="render manifests to this directory instead of applying (local stack; no cluster needed)")


class ImageConfig(_Model):
    repository: str = Field(description="agent image repository, e.g. ghcr.io/acme/rag-agent")
    tag: str = Field(description="agent image tag; the Tekton deploy task updates it after each release")
    pullPolicy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Resources(_Model):
    """Agent container resources. Memory is sized from the memory benchmark (bench/results/memory.json:
    RSS under /chat at concurrency 32); tests/infra/test_agent_sizing.py holds every stack to it."""

    cpuRequest: str = "250m"
    memoryRequest: str = "768Mi"
    cpuLimit: str = "1"
    memoryLimit: str = "1Gi"


class AgentConfig(_Model):
    minReplicas: int = Field(2, ge=1, description="HPA minimum (and the Rollout's starting replica count)")
    maxReplicas: int = Field(4, ge=1, description="HPA maximum; must be >= minReplicas")
    targetCpuUtilization: int = Field(70, ge=10, le=100)
    resources: Resources = Resources()
    rateLimitPerMinute: int = Field(120, ge=1)
    logLevel: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    toolsAllowed: list[str] = Field(default_factory=lambda: ["retrieve", "calculator"])
    apiKeyCount: int = Field(2, ge=1, le=10, description="how many API keys to generate (rotate one at a time)")
    milvusCollection: str = "rag_documents"
    host: str | None = Field(None, description="public host name of the agent (Ingress); null: cluster-internal only")
    ingressClass: str = "nginx"
    ingressControllerNamespace: str = Field("ingress-nginx", description="namespace of the ingress controller pods")
    apiDocs: Literal["public", "auth", "off"] = Field(
        "auth", description="/docs, /redoc and /openapi.json: open, behind the API keys, or not served (AGENT_DOCS_ACCESS)")
    readyzDetails: Literal["public", "auth"] = Field(
        "auth", description="who sees /readyz's per-dependency details; its status code stays open for the kubelet "
        "(AGENT_READYZ_DETAILS)")

    @model_validator(mode="after")
    def _bounds(self) -> AgentConfig:
        if self.maxReplicas < self.minReplicas:
            raise ValueError(f"maxReplicas ({self.maxReplicas}) must be >= minReplicas ({self.minReplicas})")
        return self


class SentinelConfig(_Model):
    """Sentinel timings and state; the failover drill (tests/redis_drill) renders the same scripts with smaller
    timings, so these values are the only difference between what it runs and what prod runs."""

    # Floor 5000: after a failover a Sentinel keeps its peers' "primary is down" votes about the old primary
    # for 5 x its 1 s ask period (sentinel.c: sentinelResetMaster keeps SRI_MASTER_DOWN; they expire in
    # sentinelAskMasterStateToOtherSentinels) and counts them against the new one. With a shorter
    # down-after, one late PONG from the just-promoted primary is an instant quorum and a second failover
    # onto a replica that has not synced yet: acknowledged writes lost (seen in the failover drill).
    downAfterMilliseconds: int = Field(
        5000, ge=5000, description="a data pod that does not answer for this long is down (Sentinel down-after-milliseconds); "
        "at least 5000: below that Sentinel can count stale votes about the old primary against a just-promoted one")
    failoverTimeoutMilliseconds: int = Field(
        30000, ge=1000, description="Sentinel failover-timeout: a failed failover is retried after twice this, "
        "a replica that follows the wrong primary is reconfigured after it")
    discoveryTimeoutSeconds: int = Field(
        60, ge=5, description="how long a starting data pod asks the Sentinels for a primary before it exits "
        "non-zero with the errors it got (the kubelet then restarts it)")
    storageSize: str = Field("1Gi", description="PVC per Sentinel for its state (id, epochs, primary, peers)")


class RedisConfig(_Model):
    mode: Literal["standalone", "sentinel"] = Field(
        "standalone", description="'sentinel' runs replicas plus Redis Sentinel for automatic failover (HA)")
    replicas: int = Field(1, ge=1, description="Redis data pods (1 primary + replicas-1 replicas)")
    storageSize: str = Field("1Gi", description="PVC size for the AOF and RDB files")
    storageClass: str | None = Field(None, description="storage class of the data and Sentinel PVCs (null: the cluster default)")
    maxMemory: str = Field("256mb", description="redis maxmemory")
    memoryLimit: str = "512Mi"
    minReplicasToWrite: int = Field(
        1, ge=0, description="sentinel mode: the primary refuses writes (NOREPLICAS) unless this many replicas are "
        "connected and acknowledged within minReplicasMaxLagSeconds (min-replicas-to-write); 0 turns it off")
    minReplicasMaxLagSeconds: int = Field(
        5, ge=1, description="sentinel mode: min-replicas-max-lag; bounds the acknowledged writes a failover can lose "
        "to about this many seconds")
    sentinel: SentinelConfig = SentinelConfig()

    @model_validator(mode="after")
    def _ha(self) -> RedisConfig:
        if self.mode == "sentinel" and self.replicas < 3:
            raise ValueError("sentinel mode needs replicas >= 3 (a Sentinel quorum of 2 must survive one pod)")
        if self.mode == "standalone" and self.replicas != 1:
            raise ValueError("standalone mode runs exactly 1 replica; use mode: sentinel for replication")
        if self.mode == "sentinel" and self.minReplicasToWrite > self.replicas - 1:
            raise ValueError(f"minReplicasToWrite ({self.minReplicasToWrite}) must be <= replicas - 1 "
                             f"({self.replicas - 1}), or the primary refuses every write")
        return self


class MilvusConfig(_Model):
    mode: Literal["standalone", "cluster"] = Field("standalone", description="'cluster' for prod scale and HA")
    storageSize: str = "10Gi"
    queryNodeReplicas: int = Field(1, ge=1, description="cluster mode only")
    proxyReplicas: int = Field(1, ge=1, description="cluster mode only")


class CanaryConfig(_Model):
    trafficRouter: Literal["none", "nginx"] = Field(
        "none", description="'nginx' routes exact canary weights through the ingress; 'none' scales replicas")
    approximateWeights: bool = Field(
        False, description="acknowledge that without a traffic router a 5% step is only approximate")
    pauseSeconds: list[int] = Field(default_factory=lambda: [300, 600], description="pause after the 5% and 20% steps")
    p95ThresholdSeconds: float = Field(0.8, gt=0, description="analysis fails when p95 latency exceeds this")
    maxErrorRate: float = Field(0.01, gt=0, lt=1, description="analysis fails when the 5xx ratio exceeds this")
    minRequests: int = Field(
        20, ge=1, description="canary requests (probes and scrapes excluded) a measurement window needs to count as "
        "evidence; fewer makes the measurement inconclusive, which pauses the Rollout for a person")
    inconclusiveLimit: int = Field(
        0, ge=0, description="inconclusive measurements (too little canary traffic) tolerated before the Rollout pauses")
    analysisIntervalSeconds: int = Field(60, ge=10, description="seconds between measurements")
    failureLimit: int = Field(1, ge=0, description="failed measurements tolerated before the rollout aborts")

    @model_validator(mode="after")
    def _pauses(self) -> CanaryConfig:
        if len(self.pauseSeconds) != 2:
            raise ValueError("pauseSeconds needs exactly two values: after the 5% and after the 20% step")
        # Background analysis starts at the first pause and is terminated (as Successful) when the
        # Rollout reaches 100%: a canary promoted before its first measurement was never judged.
        needed = self.initial_delay_seconds + self.analysisIntervalSeconds
        if sum(self.pauseSeconds) < needed:
            raise ValueError(
                f"pauseSeconds {self.pauseSeconds} add up to {sum(self.pauseSeconds)}s, but the analysis takes its "
                f"first measurement after {self.initial_delay_seconds}s (one full window) and its second "
                f"{self.analysisIntervalSeconds}s later: make the pauses add up to at least {needed}s or lower "
                "analysisIntervalSeconds")
        return self

    @property
    def window_seconds(self) -> int:
        """The rate window of every analysis query: two scrape-independent intervals, at least a minute."""
        return max(2 * self.analysisIntervalSeconds, 60)

    @property
    def initial_delay_seconds(self) -> int:
        """The first measurement waits for one full window of canary traffic."""
        return self.window_seconds


class WebhookTlsConfig(_Model):
    """TLS for the webhook host: an existing Secret, or one cert-manager issues. Exactly one."""

    secretName: str | None = Field(None, description="existing kubernetes.io/tls Secret in the CI namespace")
    clusterIssuer: str | None = Field(None, description="cert-manager ClusterIssuer that issues the certificate")

    @model_validator(mode="after")
    def _one(self) -> WebhookTlsConfig:
        if bool(self.secretName) == bool(self.clusterIssuer):
            raise ValueError("set exactly one of secretName (an existing TLS Secret) or clusterIssuer (cert-manager)")
        return self


class WebhookConfig(_Model):
    """How GitHub's webhook reaches the EventListener from outside the cluster."""

    exposure: Literal["ingress", "external"] = Field(
        "ingress", description="'ingress': an Ingress on `host` exposes only the listener's path; 'external': the "
        "listener is reached another way (a gateway or tunnel you run) at `externalUrl`")
    host: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$",
        description="public DNS name GitHub posts to, e.g. ci.example.com (exposure: ingress)")
    path: str = Field("/hooks/github", pattern=r"^/[-a-z0-9/]*[a-z0-9]$",
                      description="the one URL path routed to the listener; nothing else on the host is")
    ingressClass: str = Field("nginx", description="IngressClass of the controller that serves the host")
    ingressControllerNamespace: str = Field(
        "ingress-nginx", description="namespace of the pods that forward webhooks to the listener (the ingress "
        "controller, or your gateway with exposure external); the listener admits only them")
    tls: WebhookTlsConfig | None = Field(None, description="TLS for the host: secretName or clusterIssuer")
    externalUrl: str | None = Field(
        None, pattern=r"^https://", description="public https URL GitHub posts to (exposure: external)")


class RegistryAuthConfig(_Model):
    """How kaniko authenticates its push: an explicit choice, never 'whatever the node has'."""

    method: Literal["dockerConfig", "workloadIdentity"] = Field(
        description="'dockerConfig': the secret `registryDockerConfig` (a docker config.json); 'workloadIdentity': "
        "the image builder's ServiceAccount carries your cloud's identity annotation")
    serviceAccountAnnotations: dict[str, str] = Field(
        default_factory=dict, description="workloadIdentity: annotations of the image-builder ServiceAccount, e.g. "
        "eks.amazonaws.com/role-arn: arn:aws:iam::<account>:role/<role> or iam.gke.io/gcp-service-account: <sa>")
    credHelper: str | None = Field(
        None, pattern=r"^[a-z0-9][-a-z0-9]*$",
        description="workloadIdentity: docker credential helper kaniko uses for the push registry (e.g. ecr-login)")


class CicdConfig(_Model):
    enabled: bool = True
    gitUrl: str = Field(description="https URL of the repository the pipeline clones")
    gitRevision: str = "main"
    pushRepository: str | None = Field(None, description="where kaniko pushes images (default: image.repository)")
    runTests: bool = True
    webhook: WebhookConfig = Field(WebhookConfig(), description="how GitHub's webhook reaches the listener")
    registryAuth: RegistryAuthConfig | None = Field(
        None, description="how kaniko authenticates its push: method dockerConfig or workloadIdentity")


class MonitoringConfig(_Model):
    """The Prometheus the canary analysis queries, and what makes it scrape the agent and Argo Rollouts."""

    mode: Literal["install", "existing"] = Field(
        "install", description="'install': kube-prometheus-stack (pinned) in rag-<env>-monitoring; 'existing': "
        "a Prometheus (operator) you already run, at `prometheusAddress` in `namespace`")
    namespace: str | None = Field(
        None, description="existing: namespace of the Prometheus pods (NetworkPolicies admit them); "
        "install: leave unset (rag-<env>-monitoring)")
    prometheusAddress: str | None = Field(
        None, pattern=r"^https?://", description="existing: URL the analysis queries; install: derived")
    prometheusPodLabels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus"},
        description="labels of the Prometheus pods (the operator sets app.kubernetes.io/name: prometheus)")
    monitorLabels: dict[str, str] = Field(
        default_factory=dict, description="extra labels on the PodMonitors so an existing Prometheus selects them "
        "(e.g. release: kube-prometheus-stack)")
    replicas: int | None = Field(None, ge=1, description="install: Prometheus replicas (default 2 with "
                                 "highAvailability, else 1)")
    scrapeIntervalSeconds: int = Field(15, ge=5, le=60, description="how often the agent and the controller are scraped")
    retention: str = Field("15d", pattern=r"^[0-9]+[smhdwy]$", description="install: how long samples are kept")
    storageSize: str | None = Field("20Gi", description="install: PVC per replica; null keeps data in an emptyDir")
    storageClass: str | None = None

    @model_validator(mode="after")
    def _existing(self) -> MonitoringConfig:
        if self.mode == "existing" and not (self.prometheusAddress and self.namespace):
            raise ValueError("mode existing needs prometheusAddress (the URL the analysis queries) and namespace "
                             "(where its pods run, for the NetworkPolicies)")
        if self.mode == "install" and (self.prometheusAddress or self.namespace):
            raise ValueError("mode install derives prometheusAddress and namespace; remove them "
                             "(or use mode: existing)")
        return self


class ReviewConfig(_Model):
    """The pull-request preview pipeline (infra/components/review.py); one stack's CI runs it."""

    enabled: bool = Field(False, description="preview every pull request and post the diff (needs cicd and githubToken)")
    githubApiUrl: str = Field("https://api.github.com", pattern=r"^https://[^\s/]+(/[^\s]*)?$",
                              description="GitHub REST API base URL (GitHub Enterprise: https://<host>/api/v3)")
    statusContext: str = Field("rag-platform/preview", min_length=1, max_length=100,
                               description="the commit status context the pipeline sets on the head commit")
    allowForks: bool = Field(False, description="also preview pull requests from forks (runs their code in the cluster)")


class GpuPool(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    instanceTypes: list[str] = Field(min_length=1)
    capacityTypes: list[Literal["on-demand", "spot"]] = Field(default_factory=lambda: ["on-demand"])
    gpuLimit: int = Field(ge=1, description="max GPUs Karpenter may provision in this pool")
    amiAlias: str = "al2023@latest"


class KarpenterConfig(_Model):
    clusterName: str = Field(description="EKS cluster name (Karpenter discovery tag and settings.clusterName)")
    nodeRole: str = Field(description="IAM role name for the nodes Karpenter launches")
    controllerRoleArn: str = Field(description="IRSA role ARN for the Karpenter controller")
    interruptionQueue: str | None = Field(
        None, description="SQS queue (name) that receives EC2 interruption events: spot reclaims, rebalance "
        "recommendations, scheduled maintenance, instance stops (settings.interruptionQueue); without it Karpenter "
        "learns of a reclaim only when the node is gone. Required for pools with spot capacity")


class WeightsCacheConfig(_Model):
    """Where the model server keeps downloaded weights, so a pod start does not download them again."""

    cache: Literal["pvc", "none"] = Field(
        "pvc", description="'pvc': a PersistentVolumeClaim shared by every replica, filled by the first pod; "
        "'none': an emptyDir, so every pod start downloads the weights again")
    size: str = Field("100Gi", description="size of the weights PVC")
    storageClass: str | None = Field(
        None, description="storage class of the weights PVC; ReadWriteMany needs one that supports it (e.g. EFS)")
    accessMode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteMany", description="ReadWriteMany when replicas run on different nodes (they always do: one "
        "replica per GPU node); ReadWriteOnce only for a single replica")
    hubEndpoint: str | None = Field(
        None, pattern=r"^https://", description="a Hugging Face hub mirror (HF_ENDPOINT); null: huggingface.co")


class ModelServerConfig(_Model):
    model: str = Field("Qwen/Qwen2.5-7B-Instruct", description="model id vLLM serves (pre-pulled or from a mirror)")
    replicas: int = Field(1, ge=1, description="vLLM replicas, one per GPU node; 2 or more get a PDB")
    gpusPerReplica: int = Field(1, ge=1)
    maxModelLen: int = 8192
    cpuRequest: str = Field("4", description="CPU request of a replica; every pool instance type must fit it")
    memoryRequest: str = Field("24Gi", description="memory request of a replica; every pool instance type must fit it")
    memoryLimit: str = "32Gi"
    readyTimeoutMinutes: int = Field(
        45, ge=10, description="how long a cold start may take (new GPU node, image pull, weights, compilation): "
        "the Deployment's pulumi await timeout, progressDeadlineSeconds and startup probe budget")
    weights: WeightsCacheConfig = WeightsCacheConfig()


class GpuConfig(_Model):
    pools: list[GpuPool] = Field(default_factory=list, description="Karpenter GPU node pools; empty: no GPUs")
    karpenter: KarpenterConfig | None = None
    modelServer: ModelServerConfig = ModelServerConfig()

    @model_validator(mode="after")
    def _karpenter_needed(self) -> GpuConfig:
        if self.pools and self.karpenter is None:
            raise ValueError("GPU pools need the `karpenter` block (clusterName, nodeRole, controllerRoleArn)")
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"GPU pool names must be unique, got {names}")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.pools)


class ExternalGeneratorConfig(_Model):
    """An OpenAI-compatible API outside the cluster, for stacks without a GPU pool."""

    baseUrl: str = Field(pattern=r"^https://", description="https URL ending in /v1, e.g. https://api.openai.com/v1")
    model: str = Field(min_length=1, description="model name the endpoint serves")
    egressCidr: str = Field("0.0.0.0/0", description="CIDR the agent may reach on 443 for it (narrow it if you can)")


class StackConfig(_Model):
    """Everything one environment needs, validated before any resource is declared."""

    environment: Environment = Field(description="must equal the stack name; a DNS label of at most 20 characters")
    highAvailability: bool = Field(
        False, description="run platform controllers (Argo Rollouts, Karpenter) with 2 replicas")
    kubernetes: KubernetesConfig = KubernetesConfig()
    image: ImageConfig
    agent: AgentConfig = AgentConfig()
    redis: RedisConfig = RedisConfig()
    milvus: MilvusConfig = MilvusConfig()
    canary: CanaryConfig = CanaryConfig()
    monitoring: MonitoringConfig = Field(
        MonitoringConfig(), description="the Prometheus the canary analysis queries: mode install or existing")
    cicd: CicdConfig
    review: ReviewConfig = ReviewConfig()
    gpu: GpuConfig = GpuConfig()
    generator: ExternalGeneratorConfig | None = Field(
        None, description="external OpenAI-compatible generator (needs llmApiKey); null: extractive or the GPU model server")
    # External secrets (`pulumi config set --secret`); optional: a default exists for each.
    llmApiKey: SecretStr | None = Field(None, description="API key for the external `generator`; unused with the in-cluster model server")
    modelHubToken: SecretStr | None = Field(
        None, description="Hugging Face token for gated models or a private mirror; mounted into the model server as a file")
    registryDockerConfig: SecretStr | None = Field(
        None, description="docker config.json for kaniko pushes (with cicd.registryAuth.method: dockerConfig)")
    githubToken: SecretStr | None = Field(
        None, description="GitHub token the pull-request pipeline comments and sets statuses with (review.enabled)")

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        c = self.canary
        if c.trafficRouter == "none" and self.agent.minReplicas < 20 and not c.approximateWeights:
            raise ValueError(
                "canary: without a traffic router a 5% step needs >= 20 replicas to be exact "
                f"(agent.minReplicas is {self.agent.minReplicas}); set canary.trafficRouter: nginx, "
                "raise agent.minReplicas to 20, or set canary.approximateWeights: true to accept approximate steps")
        if c.trafficRouter == "nginx" and not self.agent.host:
            raise ValueError("canary.trafficRouter nginx routes through an Ingress: set agent.host")
        if self.generator is not None and self.gpu.enabled:
            raise ValueError("generator: the GPU pools already run an in-cluster model server; "
                             "remove `generator` or the GPU `pools`")
        if self.generator is not None and self.llmApiKey is None:
            raise ValueError("generator: an external endpoint needs its key; "
                             "run `pulumi config set --secret llmApiKey <key>`")
        if self.review.enabled and not (self.cicd.enabled and self.githubToken is not None):
            raise ValueError("review.enabled needs cicd.enabled (Tekton) and the GitHub token: "
                             "run `pulumi config set --secret githubToken <token>`")
        if self.kubernetes.renderYamlToDirectory and self.gpu.enabled:
            raise ValueError("renderYamlToDirectory is for laptop stacks; GPU pools need a real cluster")
        return self

    @property
    def push_repository(self) -> str:
        return self.cicd.pushRepository or self.image.repository

    @property
    def monitoring_namespace(self) -> str:
        return self.monitoring.namespace or f"rag-{self.environment}-monitoring"

    @property
    def prometheus_address(self) -> str:
        # prometheus-operated: the Service the operator creates for every Prometheus in its namespace.
        return (self.monitoring.prometheusAddress
                or f"http://prometheus-operated.{self.monitoring_namespace}.svc.cluster.local:9090")


def _field_help(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """Walk the model along a pydantic error location and return that field's description."""
    current: Any = model
    desc = None
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        desc = field.description
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return desc


def _format_errors(stack: str, exc: ValidationError) -> str:
    lines = [f"{stack_file(stack)}: invalid stack configuration ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        if not loc:
            key = f"{PROJECT}:<root>"
        else:
            key = f"{PROJECT}:{loc[0]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        msg = err["msg"].removeprefix("Value error, ")
        hint = _field_help(StackConfig, loc) if loc else None
        if err["type"] == "missing":
            fix = f"add `{key}` to {stack_file(stack)}" + (f" ({hint})" if hint else "")
        elif err["type"] == "extra_forbidden":
            fix = f"remove or rename `{key}` (unknown key; the allowed keys are the fields of the models in infra/config.py)"
        else:
            fix = f"set `{key}` to a valid value" + (f": {hint}" if hint else "")
        lines.append(f"  - {key}: {msg}\n    fix: {fix}")
    return "\n".join(lines)


def parse_stack_config(stack: str, raw: Mapping[str, str], secret_keys: set[str] | frozenset[str] = frozenset()) -> StackConfig:
    """Build the model from CLI-shaped config: `{"rag-platform:key": "string or JSON"}`.

    Keys of other namespaces (e.g. `kubernetes:`) are left to their providers.
    """
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            parsed = value
        # Plain strings stay strings (a secret like "123" must not become an int).
        if isinstance(value, str) and not isinstance(parsed, (dict, list)) and full_key in secret_keys:
            parsed = value
        values[key] = parsed
    try:
        cfg = StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(stack, exc)) from None
    # The provider's own key, read here only to refuse a strict stack that would fall back to the
    # ambient kubeconfig (strict mode exists to rule that out).
    strict = str(raw.get("kubernetes:strictMode", "false")).lower() == "true"
    if strict and not (cfg.kubernetes.context and cfg.kubernetes.kubeconfig):
        raise ConfigError(
            f"{stack_file(stack)}: kubernetes:strictMode needs explicit `context` and `kubeconfig`\n"
            f"    fix: set both in `{PROJECT}:kubernetes` (strict mode refuses the ambient kubeconfig)")
    if cfg.environment != stack:
        raise ConfigError(
            f"{stack_file(stack)}: {PROJECT}:environment is '{cfg.environment}' but the stack is '{stack}'\n"
            f"    fix: set `{PROJECT}:environment: {stack}` (one stack per environment)")
    problems = release_path_problems(stack, cfg)
    if problems:
        raise ConfigError(f"{stack_file(stack)}: the release path is incomplete ({len(problems)} problem(s))\n"
                          + "\n".join(problems))
    gpu_problems = _gpu_problems(cfg)
    if gpu_problems:
        raise ConfigError(f"{stack_file(stack)}: invalid stack configuration ({len(gpu_problems)} problem(s))\n" + "\n".join(
            f"  - {PROJECT}:{key}: {msg}\n    fix: {fix}" for key, msg, fix in gpu_problems))
    for secret_field in ("llmApiKey", "registryDockerConfig", "githubToken", "modelHubToken"):
        full = f"{PROJECT}:{secret_field}"
        if full in raw and full not in secret_keys:
            raise ConfigError(
                f"{stack_file(stack)}: `{full}` is stored in plaintext\n"
                f"    fix: pulumi config rm {secret_field} -s {stack} && "
                f"pulumi config set --secret {secret_field} <value> -s {stack}")
    return cfg


def _gpu_problems(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """GPU settings that would validate but never work: (key, what is wrong, fix)."""
    from infra.gpu_capacity import misfit

    gpu, ms = cfg.gpu, cfg.gpu.modelServer
    out: list[tuple[str, str, str]] = []
    if not gpu.enabled:
        return out
    for i, pool in enumerate(gpu.pools):
        misfits = [m for t in pool.instanceTypes
                   if (m := misfit(t, ms.cpuRequest, ms.memoryRequest, ms.gpusPerReplica))]
        if misfits:
            out.append((f"gpu.pools[{i}].instanceTypes",
                        f"the model server (cpu {ms.cpuRequest}, memory {ms.memoryRequest}, "
                        f"{ms.gpusPerReplica} GPU) cannot run on: " + "; ".join(misfits),
                        "remove those types from the pool or lower gpu.modelServer.cpuRequest/memoryRequest"))
        if "spot" in pool.capacityTypes and gpu.karpenter is not None and not gpu.karpenter.interruptionQueue:
            out.append(("gpu.karpenter.interruptionQueue",
                        f"pool '{pool.name}' uses spot capacity but Karpenter has no interruption queue, so a "
                        "reclaim is noticed only when the node is gone",
                        "set it to the SQS queue that receives the cluster's EC2 interruption events "
                        "(Karpenter's CloudFormation template creates one), or drop spot from capacityTypes"))
    need = (ms.replicas + 1) * ms.gpusPerReplica
    if sum(p.gpuLimit for p in gpu.pools) < need:
        out.append(("gpu.pools", f"the pools' gpuLimit adds up to {sum(p.gpuLimit for p in gpu.pools)} GPUs; "
                    f"{ms.replicas} replicas x {ms.gpusPerReplica} GPU plus one replacement node (a reclaim or a "
                    f"rollout starts the new pod before the old node is gone) need {need}",
                    f"raise a pool's gpuLimit so they add up to at least {need}"))
    w = ms.weights
    if w.cache == "pvc" and ms.replicas > 1 and w.accessMode == "ReadWriteOnce":
        out.append(("gpu.modelServer.weights.accessMode",
                    f"{ms.replicas} replicas run on different GPU nodes and cannot share a ReadWriteOnce volume",
                    "use ReadWriteMany with a storage class that supports it (e.g. EFS), or replicas: 1"))
    if w.cache == "pvc" and w.accessMode == "ReadWriteMany" and not w.storageClass:
        out.append(("gpu.modelServer.weights.storageClass",
                    "ReadWriteMany needs a storage class that provides it; the default (EBS) class does not",
                    "set it to your EFS (or other ReadWriteMany) storage class"))
    return out


def release_path_problems(stack: str, cfg: StackConfig) -> list[str]:
    """What CI/CD needs before a push can reach a canary: a way in for the webhook, and push credentials.

    Checked after the model (these span keys), each problem naming its key and the fix.
    """
    if not cfg.cicd.enabled:
        return []
    out: list[str] = []

    def problem(key: str, msg: str, fix: str) -> None:
        out.append(f"  - {PROJECT}:{key}: {msg}\n    fix: {fix}")

    hook = cfg.cicd.webhook
    if hook.exposure == "ingress":
        if not hook.host:
            problem("cicd.webhook.host", "CI/CD is enabled but GitHub has no way in: the EventListener is "
                    "cluster-internal without a public host",
                    "set `cicd.webhook.host` to the DNS name GitHub posts to (with `cicd.webhook.tls`), or set "
                    "`cicd.webhook.exposure: external` and `cicd.webhook.externalUrl` if the listener is reached "
                    "another way")
        if hook.tls is None:
            problem("cicd.webhook.tls", "GitHub posts the webhook (and its signature) over https only here",
                    "set `cicd.webhook.tls.secretName` (an existing TLS Secret in the CI namespace) or "
                    "`cicd.webhook.tls.clusterIssuer` (cert-manager)")
    elif not hook.externalUrl:
        problem("cicd.webhook.externalUrl", "exposure external says the listener is reached another way, "
                "but not at which URL", "set `cicd.webhook.externalUrl` to the public https URL GitHub posts to")
    auth = cfg.cicd.registryAuth
    secret_fix = (f'pulumi config set --secret registryDockerConfig "$(cat config.json)" -s {stack}')
    if auth is None:
        problem("cicd.registryAuth.method", "CI/CD pushes images but no registry authentication is chosen "
                "(kaniko would push without credentials)",
                "set `cicd.registryAuth.method: dockerConfig` and run `" + secret_fix + "`, or set "
                "`cicd.registryAuth.method: workloadIdentity` with `serviceAccountAnnotations` "
                "(e.g. eks.amazonaws.com/role-arn)")
    elif auth.method == "dockerConfig":
        if cfg.registryDockerConfig is None:
            problem("registryDockerConfig", "registryAuth.method is dockerConfig but the secret is not set",
                    "run `" + secret_fix + "`")
        if auth.serviceAccountAnnotations or auth.credHelper:
            problem("cicd.registryAuth.serviceAccountAnnotations", "only workloadIdentity uses annotations and "
                    "credHelper", "remove them, or set `cicd.registryAuth.method: workloadIdentity`")
    else:
        if not auth.serviceAccountAnnotations:
            problem("cicd.registryAuth.serviceAccountAnnotations", "workloadIdentity needs the annotation your "
                    "cloud maps to an identity",
                    "set e.g. `eks.amazonaws.com/role-arn: arn:aws:iam::<account>:role/<role>` (EKS IRSA) or "
                    "`iam.gke.io/gcp-service-account: <name>@<project>.iam.gserviceaccount.com` (GKE)")
        if cfg.registryDockerConfig is not None:
            problem("registryDockerConfig", "set, but registryAuth.method is workloadIdentity (two credentials, "
                    "unclear which pushes)", f"run `pulumi config rm registryDockerConfig -s {stack}` or set "
                    "`cicd.registryAuth.method: dockerConfig`")
    return out


def load_stack_config() -> StackConfig:
    """Read the running program's config (as the CLI passed it) into a `StackConfig`."""
    from infra.sdk_adapter import stack_config

    raw, secret_keys = stack_config()
    return parse_stack_config(pulumi.get_stack(), raw, secret_keys)
