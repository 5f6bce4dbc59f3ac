"""The private SDK calls (infra/sdk_adapter.py, agent/torch_adapter.py) still mean what we rely on.

Each test exercises one private symbol through its adapter and checks the behaviour, not just the
name: an SDK release that keeps a name but changes what it does fails here, by name, first.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import types
from importlib import metadata

import pytest
from packaging.specifiers import SpecifierSet
from packaging.requirements import Requirement

from infra import sdk_adapter as sdk

from .workspace import REPO


def test_private_symbols_are_resolved_at_import_and_a_missing_one_names_itself():
    fake = types.ModuleType("pulumi.runtime.rpc")
    with pytest.raises(sdk.SdkChanged, match=r"pulumi\.runtime\.rpc\._special_sig_key is gone .*pulumi \d"):
        sdk.require(fake, "_special_sig_key")


def test_secret_marker_is_the_engines_wire_signature():
    from pulumi.runtime import rpc

    wrapped = sdk.mark_secret({"k": "v"})
    # The engine's constant: a different value would mean the protocol changed under us.
    assert sdk.SECRET_SIG_KEY == "4dabf18193072939515e22adb298388d"
    assert rpc.is_rpc_secret(wrapped) and rpc.unwrap_rpc_secret(wrapped) == {"k": "v"}
    # And it survives the SDK's own (de)serialization as a secret, as the mock engine needs.
    deserialized = rpc.deserialize_properties(sdk.sync_await(rpc.serialize_properties({"x": wrapped}, {})),
                                              keep_unknowns=True)
    assert rpc.is_rpc_secret(deserialized["x"])


def test_sync_await_and_ensure_event_loop_from_a_worker_thread():
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    seen: list[object] = []

    def worker() -> None:
        sdk.ensure_event_loop()
        seen.append(asyncio.get_event_loop_policy().get_event_loop())
        seen.append(sdk.sync_await(answer()))

    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=30)
    assert len(seen) == 2 and isinstance(seen[0], asyncio.AbstractEventLoop) and seen[1] == 42


def test_stack_config_reads_every_key_and_which_are_secret():
    from pulumi.runtime.config import set_all_config

    def inside() -> tuple[dict[str, str], set[str]]:
        set_all_config({"rag-platform:a": "1", "rag-platform:tok": "s3cret", "kubernetes:x": "y"},
                       ["rag-platform:tok"])
        return sdk.stack_config()

    raw, secret = contextvars.copy_context().run(inside)  # the SDK's config is a ContextVar: no leak
    assert raw == {"rag-platform:a": "1", "rag-platform:tok": "s3cret", "kubernetes:x": "y"}
    assert secret == {"rag-platform:tok"}


def test_kubernetes_resource_opts_carry_the_plugin_version():
    opts = sdk.kubernetes_resource_opts()
    assert opts.version == metadata.version("pulumi-kubernetes")


def test_installed_sdks_are_the_ones_the_adapters_were_written_against():
    """pyproject.toml's ranges bound what the adapters are tested with; requirements.lock pins inside them."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    ranges = {Requirement(r).name: Requirement(r).specifier for group in ("infra", "agent") for r in project[group]}
    for dist in ("pulumi", "pulumi-kubernetes", "torch"):
        installed = metadata.version(dist).split("+")[0]
        assert installed in SpecifierSet(str(ranges[dist])), f"{dist} {installed} outside {ranges[dist]}"
    locked = (REPO / "requirements.lock").read_text()
    for dist in ("pulumi", "pulumi-kubernetes"):
        assert f"\n{dist}=={metadata.version(dist)} \\" in locked, f"{dist} differs from requirements.lock: run make venv"


def test_torch_in_place_gelu_is_the_exact_gelu():
    import torch
    import torch.nn.functional as F

    from agent.torch_adapter import gelu_

    x = torch.linspace(-6, 6, 1001, dtype=torch.float32).reshape(7, 143)
    expected = F.gelu(x, approximate="none")
    buffer = x.clone()
    out = gelu_(buffer)
    assert out.data_ptr() == buffer.data_ptr()  # in place: the encoder reuses this buffer per layer
    assert torch.equal(buffer, expected)
