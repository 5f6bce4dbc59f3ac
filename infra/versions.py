"""Every pinned version the platform installs, in one place.

Bump a version here and nowhere else; `make preview` shows what changes per stack.
Release manifests are fetched by URL at `pulumi up` time (the preview never downloads them).
"""

from __future__ import annotations

# Tekton: plain release manifests (the upstream-supported install path).
# v1.0.0 is an LTS release; tekton.dev/v1 is its storage version. ClusterTask is gone upstream.
TEKTON_PIPELINES = "v1.0.0"
TEKTON_PIPELINES_URL = (
    f"https://storage.googleapis.com/tekton-releases/pipeline/previous/{TEKTON_PIPELINES}/release.yaml"
)
TEKTON_TRIGGERS = "v0.31.0"
TEKTON_TRIGGERS_URL = (
    f"https://storage.googleapis.com/tekton-releases/triggers/previous/{TEKTON_TRIGGERS}/release.yaml"
)
# Core interceptors (the `github` ClusterInterceptor lives here, not in release.yaml).
TEKTON_INTERCEPTORS_URL = (
    f"https://storage.googleapis.com/tekton-releases/triggers/previous/{TEKTON_TRIGGERS}/interceptors.yaml"
)

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
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KARPENTER_CHART_VERSION = "1.6.0"

# NVIDIA device plugin: advertises nvidia.com/gpu on GPU nodes.
NVIDIA_DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
NVIDIA_DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
NVIDIA_DEVICE_PLUGIN_CHART_VERSION = "0.17.1"

# Images we run ourselves.
REDIS_IMAGE = "docker.io/library/redis:7.4.2-bookworm"
VLLM_IMAGE = "docker.io/vllm/vllm-openai:v0.9.2"
# kaniko's upstream repo is archived; v1.23.2 is its last release. Swap for a maintained fork here.
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
GIT_IMAGE = "docker.io/alpine/git:v2.47.2"
PYTHON_IMAGE = "docker.io/library/python:3.11.13-slim-bookworm"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.33.3"
