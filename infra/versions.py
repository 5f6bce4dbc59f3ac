"""Every pinned version the platform installs, in one place.

Bump a version here and nowhere else; `make preview` shows what changes per stack.
Release manifests are fetched by URL at `pulumi up` time (the preview never downloads them).
"""

from __future__ import annotations

# Tekton: plain release manifests (the upstream-supported install path).
# v1.15.x is the newest Pipelines LTS (v1.0 LTS reached end of life in 2026); tekton.dev/v1 is
# its storage version. Triggers v0.37.x is the release the Tekton operator pairs with Pipelines
# v1.15 (tektoncd/operator components.yaml), and >= v0.32 is needed for the EventListener's
# pod/container securityContext (tektoncd/triggers#1832; older webhooks reject it).
# Releases are served from infra.tekton.dev since Tekton left the GCS bucket (tektoncd/pipeline#9566).
TEKTON_RELEASES = "https://infra.tekton.dev/tekton-releases"
TEKTON_PIPELINES = "v1.15.4"
TEKTON_PIPELINES_URL = f"{TEKTON_RELEASES}/pipeline/previous/{TEKTON_PIPELINES}/release.yaml"
TEKTON_TRIGGERS = "v0.37.3"
TEKTON_TRIGGERS_URL = f"{TEKTON_RELEASES}/triggers/previous/{TEKTON_TRIGGERS}/release.yaml"
# Core interceptors (the `github` ClusterInterceptor lives here, not in release.yaml).
TEKTON_INTERCEPTORS_URL = f"{TEKTON_RELEASES}/triggers/previous/{TEKTON_TRIGGERS}/interceptors.yaml"

# Argo Rollouts (chart 2.40.x ships controller v1.8.x).
ARGO_ROLLOUTS_CHART = "argo-rollouts"
ARGO_ROLLOUTS_REPO = "https://argoproj.github.io/argo-helm"
ARGO_ROLLOUTS_CHART_VERSION = "2.40.4"

# Milvus: the zilliztech chart; 4.2.x deploys Milvus 2.5 (standalone or cluster mode).
MILVUS_CHART = "milvus"
MILVUS_REPO = "https://zilliztech.github.io/milvus-helm/"
MILVUS_CHART_VERSION = "4.2.56"
MILVUS_IMAGE_TAG = "v2.5.14"

# Karpenter (installs the karpenter.sh/v1 and karpenter.k8s.aws/v1 CRDs with its chart).
# 1.6 supports Kubernetes <= 1.33 and is no longer the maintained minor (upstream is at 1.15):
# move to a current minor together with the cluster version.
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KARPENTER_CHART_VERSION = "1.6.0"

# NVIDIA device plugin: advertises nvidia.com/gpu on GPU nodes.
NVIDIA_DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
NVIDIA_DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
NVIDIA_DEVICE_PLUGIN_CHART_VERSION = "0.17.1"

# Images we run ourselves.
# Digests: none of these is pinned by digest yet; each was chosen from release notes without registry
# access, and a guessed digest would break a deploy. Pin one as `<repo>:<tag>@sha256:<digest>` from
# `crane digest <repo>:<tag>` where the registry is reachable (checkov's CKV_K8S_43 asks for it).
# 7.4.10 carries the 2025/2026 Lua and client-eviction RCE fixes (CVE-2025-49844, CVE-2026-23479).
# The failover drill (tests/redis_drill) runs the start scripts against Debian's redis-server/-sentinel
# (7.0.x here): Sentinel behaviour they rely on (hostname re-resolution, accepting unresolved hosts at
# start) is the same from 7.0 to 7.4.
REDIS_IMAGE = "docker.io/library/redis:7.4.10-bookworm"
# v0.9.2 exists but is far behind upstream (v0.26.x); bumping needs a GPU smoke test of the server flags:
# --disable-log-requests (AsyncEngineArgs in 0.9.2) was replaced by --enable-log-requests in later
# releases, which reject the old flag.
VLLM_IMAGE = "docker.io/vllm/vllm-openai:v0.9.2"
# sha256 digests of the images above, where known. None: not resolved (no registry access when these were
# pinned); such images are pulled with imagePullPolicy Always and their workloads carry a reasoned
# checkov CKV_K8S_43 skip. Set the digest here and both go away.
IMAGE_DIGESTS: dict[str, str | None] = {REDIS_IMAGE: None, VLLM_IMAGE: None}


def image_ref(image: str) -> tuple[str, str, dict[str, str]]:
    """(image reference, imagePullPolicy, checkov skip annotations) for one of the images above."""
    digest = IMAGE_DIGESTS.get(image)
    if digest:
        return f"{image}@{digest}", "IfNotPresent", {}
    return image, "Always", {"checkov.io/skip2": "CKV_K8S_43=No digest known for this tag yet "
                                                 "(infra/versions.py IMAGE_DIGESTS); pulled with imagePullPolicy Always"}
# kaniko's upstream repo is archived; v1.23.2 is its last release. Swap for a maintained fork here.
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
GIT_IMAGE = "docker.io/alpine/git:v2.54.0"
# The full image, not -slim: the CI steps run `make` (and pip may compile), and run as non-root,
# so they cannot apt-get what -slim leaves out.
PYTHON_IMAGE = "docker.io/library/python:3.11.15-bookworm"
# CPU wheels for the CI steps: a plain `pip install torch==...` from PyPI is a multi-GB CUDA build.
TORCH_CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.33.3"

# Monitoring (mode install): kube-prometheus-stack brings the Prometheus Operator, its CRDs
# (monitoring.coreos.com: PodMonitor, ServiceMonitor, Prometheus) and a Prometheus.
# 88.5.x ships operator v0.93 and Prometheus v3.14 (its values.yaml image tag).
KUBE_PROMETHEUS_STACK_CHART = "kube-prometheus-stack"
KUBE_PROMETHEUS_STACK_REPO = "https://prometheus-community.github.io/helm-charts"
KUBE_PROMETHEUS_STACK_CHART_VERSION = "88.5.3"
# The same Prometheus for the CI `unit-tests` step's canary drill: the step copies /bin/prometheus
# out of this image (busybox-based, so it has `sh` and `cp`; the -distroless variant has neither).
PROMETHEUS_IMAGE = "quay.io/prometheus/prometheus:v3.14.0"


# Engines the engine-tier tests run, built from Go modules by `make engine` (tools/engine/build.py),
# cached outside the clone by version. Only versions the Go module proxy serves here can be built;
# what is pinned differently from the platform's target, and why, is said per entry.
from dataclasses import dataclass  # noqa: E402


@dataclass(frozen=True)
class Engine:
    name: str
    module: str
    version: str
    package: str
    binary: str
    go: str = "1.26"
    ldflags: tuple[tuple[str, str], ...] = ()


# The Kubernetes minor the stacks target (KUBECTL_IMAGE, Karpenter 1.6's support range).
KUBERNETES_VERSION = "v1.33.13"
_K8S_VERSION_VARS = tuple(
    (f"k8s.io/component-base/version.{k}", v)
    for k, v in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"), ("gitMinor", KUBERNETES_VERSION.split(".")[1]))
)
ENGINES: tuple[Engine, ...] = (
    Engine("kube-apiserver", "k8s.io/kubernetes", KUBERNETES_VERSION, "k8s.io/kubernetes/cmd/kube-apiserver",
           "kube-apiserver", ldflags=_K8S_VERSION_VARS),
    Engine("kube-controller-manager", "k8s.io/kubernetes", KUBERNETES_VERSION,
           "k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager", ldflags=_K8S_VERSION_VARS),
    # etcd 3.5 is the series Kubernetes 1.33 is tested with (Debian's etcd-server is 3.4).
    Engine("etcd", "go.etcd.io/etcd/server/v3", "v3.5.36", "go.etcd.io/etcd/server/v3", "etcd"),
    Engine("kwok", "sigs.k8s.io/kwok", "v0.7.0", "sigs.k8s.io/kwok/cmd/kwok", "kwok"),
    # The chart (ARGO_ROLLOUTS_CHART_VERSION 2.40.4) ships v1.8.3, which the proxy does not serve;
    # v1.8.5 is the same minor's newest patch.
    Engine("rollouts-controller", "github.com/argoproj/argo-rollouts", "v1.8.5",
           "github.com/argoproj/argo-rollouts/cmd/rollouts-controller", "rollouts-controller"),
    # The Python SDK is pulumi==3.272.0 (requirements.lock); the proxy serves pkg/v3 from v3.274.0 only.
    # A newer CLI runs an older SDK's program. The Python language host, pulumi-resource-random and
    # pulumi-resource-kubernetes at the SDK's versions are not served at all (docs/platform.md).
    Engine("pulumi", "github.com/pulumi/pulumi/pkg/v3", "v3.276.0", "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
           "pulumi", ldflags=(("github.com/pulumi/pulumi/sdk/v3/go/common/version.Version", "v3.276.0"),)),
)
