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
REDIS_IMAGE = "docker.io/library/redis:7.4.10-bookworm"
# v0.9.2 exists but is far behind upstream (v0.26.x); bumping needs a GPU smoke test of the server flags.
VLLM_IMAGE = "docker.io/vllm/vllm-openai:v0.9.2"
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
