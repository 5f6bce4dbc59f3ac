"""The engine build's wrapper modules: what go.mod it writes for each pinned engine.

These run without Go. They read the upstream go.mod files from the Go module cache where
`make engine` has put them, and otherwise use the shapes those files have (block and single-line
replaces, path replaces into a monorepo).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from infra.versions import ENGINES, KUBERNETES_VERSION, Engine

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("engine_build", ROOT / "tools" / "engine" / "build.py")
build = importlib.util.module_from_spec(_spec)
sys.modules["engine_build"] = build  # dataclasses look their module up there
_spec.loader.exec_module(build)

K8S_GOMOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0 // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go // a comment
)
"""

PULUMI_GOMOD = """module github.com/pulumi/pulumi/pkg/v3

require github.com/pulumi/pulumi/sdk/v3 v0.0.0

replace github.com/pulumi/pulumi/sdk/v3 => ../sdk

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
"""


ETCD_GOMOD = """module go.etcd.io/etcd/server/v3

require (
	go.etcd.io/etcd/api/v3 v3.5.36
	go.etcd.io/etcd/client/v2 v2.305.36
)

replace (
	go.etcd.io/etcd/api/v3 => ../api
	go.etcd.io/etcd/client/v2 => ./../client/v2
)
"""


def _engine(name: str) -> Engine:
    return next(e for e in ENGINES if e.name == name)


def test_block_and_single_line_replaces_are_parsed() -> None:
    got = build.parse_replaces(K8S_GOMOD)
    assert [(r.old, r.new) for r in got] == [
        ("k8s.io/api", "./staging/src/k8s.io/api"),
        ("k8s.io/client-go", "./staging/src/k8s.io/client-go"),
    ]
    got = build.parse_replaces(PULUMI_GOMOD)
    assert [(r.old, r.new, r.new_version) for r in got] == [
        ("github.com/pulumi/pulumi/sdk/v3", "../sdk", None),
        ("github.com/atotto/clipboard", "github.com/tgummerer/clipboard", "v0.0.0-20241001131231-d02d263e614e"),
    ]


def test_kubernetes_staging_paths_become_the_published_v0_modules() -> None:
    gomod = build.wrapper_gomod(_engine("kube-apiserver"), K8S_GOMOD)
    minor_patch = KUBERNETES_VERSION[2:]
    assert f"require k8s.io/kubernetes {KUBERNETES_VERSION}" in gomod
    assert f"replace k8s.io/api => k8s.io/api v0{minor_patch}" in gomod
    assert f"replace k8s.io/client-go => k8s.io/client-go v0{minor_patch}" in gomod
    assert "./staging" not in gomod


def test_pulumi_sdk_path_becomes_the_sdk_at_the_cli_version_and_forks_are_kept() -> None:
    pulumi = _engine("pulumi")
    gomod = build.wrapper_gomod(pulumi, PULUMI_GOMOD)
    assert f"replace github.com/pulumi/pulumi/sdk/v3 => github.com/pulumi/pulumi/sdk/v3 {pulumi.version}" in gomod
    assert ("replace github.com/atotto/clipboard => github.com/tgummerer/clipboard "
            "v0.0.0-20241001131231-d02d263e614e") in gomod


def test_siblings_required_at_published_versions_get_no_replace() -> None:
    gomod = build.wrapper_gomod(_engine("etcd"), ETCD_GOMOD)
    assert "replace" not in gomod
    assert "require go.etcd.io/etcd/server/v3" in gomod


def test_engine_names_and_binaries_are_unique() -> None:
    assert len({e.name for e in ENGINES}) == len(ENGINES)
    assert len({e.binary for e in ENGINES}) == len(ENGINES)


@pytest.mark.parametrize("args,needle", [(["--only", "no-such-engine"], "not a pinned engine")])
def test_unknown_engine_is_refused_with_the_choices(args: list[str], needle: str) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "engine" / "build.py"), *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert needle in res.stderr and "kube-apiserver" in res.stderr
