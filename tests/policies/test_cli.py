"""`python -m policies`: usage and exit codes, a crashing policy is exit 2 naming policy and object, and
the analyzer is served only for the engine's launch command (tests/policies/test_pack.py serves it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from policies import catalog
from policies.__main__ import PACK_DIR, launched_by_engine
from policies.checker import main as check
from policies.model import Policy

ROOT = Path(__file__).resolve().parents[2]
ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: apps}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # A bounded timeout: before this change, anything but `check` started the gRPC server and hung.
    return subprocess.run([sys.executable, "-m", "policies", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_help_prints_usage_and_exits_0(args):
    proc = run(*args)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m policies check PATH...")
    assert "Exit codes" in proc.stdout


@pytest.mark.parametrize("args", [[], ["serve"], ["chek", "x.yaml"], ["127.0.0.1:1234", "."], ["--format", "json"]])
def test_anything_but_check_prints_usage_and_exits_2(args):
    proc = run(*args)
    assert proc.returncode == 2, proc
    assert "usage: python -m policies check" in proc.stderr and "error:" in proc.stderr
    assert proc.stdout == ""  # no port printed: nothing was served


def test_check_without_paths_is_a_usage_error():
    proc = run("check")
    assert proc.returncode == 2 and "PATH" in proc.stderr


def test_engine_launch_is_detected_exactly():
    pack = str(PACK_DIR)
    assert launched_by_engine([pack, "127.0.0.1:50051", pack], {"pulumi.policy"})
    assert launched_by_engine([pack, "localhost:9", pack], {"pulumi.policy", "sys"})
    # Without pulumi.policy's runner, with another program path, or without an address: not the engine.
    assert not launched_by_engine([pack, "127.0.0.1:50051", pack], {"sys"})
    assert not launched_by_engine([pack, "127.0.0.1:50051", str(ROOT)], {"pulumi.policy"})
    assert not launched_by_engine(["-m", "127.0.0.1:50051", pack], {"pulumi.policy"})
    assert not launched_by_engine([pack, "check", pack], {"pulumi.policy"})
    assert not launched_by_engine([pack, "127.0.0.1:50051"], {"pulumi.policy"})


def _boom(token, props):
    if token.endswith(":Role"):
        raise KeyError("rules")
    return iter(())


def test_a_crashing_policy_is_exit_2_naming_policy_and_object(monkeypatch, tmp_path, capsys):
    path = tmp_path / "role.yaml"
    path.write_text(ROLE)
    crashing = Policy("crashing-fixture", "raises on Roles", "high", "fix the policy", resource_check=_boom)
    monkeypatch.setattr(catalog, "POLICIES", catalog.POLICIES + (crashing,))
    assert check([str(path)]) == 2
    err = capsys.readouterr().err
    assert "policy crashing-fixture crashed on Role/apps/reader" in err and str(path) in err and "KeyError" in err


def test_a_crashing_stack_policy_is_exit_2_naming_the_policy(monkeypatch, tmp_path, capsys):
    path = tmp_path / "role.yaml"
    path.write_text(ROLE)
    crashing = Policy("crashing-stack-fixture", "raises", "high", "fix it", stack_check=lambda rs: [][0])
    monkeypatch.setattr(catalog, "POLICIES", (crashing,) + catalog.POLICIES)
    assert check([str(path)]) == 2
    assert "policy crashing-stack-fixture crashed on the stack's resources: IndexError" in capsys.readouterr().err


def test_the_crash_exit_code_reaches_the_shell(tmp_path):
    """The whole process, as `python -m policies check` runs it: exit status 2, not 1 ("violations")."""
    path = tmp_path / "role.yaml"
    path.write_text(ROLE)
    script = (
        "import sys\n"
        "from policies import catalog\n"
        "from policies.model import Policy\n"
        "def boom(token, props):\n"
        "    raise ValueError('odd shape')\n"
        "catalog.POLICIES += (Policy('crashing-fixture', 'd', 'high', 'r', resource_check=boom),)\n"
        "from policies.__main__ import main\n"
        f"sys.exit(main(['policies', 'check', {str(path)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert "policy crashing-fixture crashed on Role/apps/reader" in proc.stderr and "ValueError: odd shape" in proc.stderr
