"""Every private Pulumi SDK call the project makes, in one place (tests/infra/test_sdk_adapters.py).

The SDK offers no public way to do these; each one is resolved when this module is imported, so an SDK
release that renames or drops one fails here, loudly and by name, instead of deep inside a preview.
The versions these were read against are pinned in requirements.lock (ranges in pyproject.toml).

- `pulumi_kubernetes._utilities.get_resource_opts_defaults`: the plugin version the generated SDK
  classes attach to every resource; our `KubeObject` is hand-made, so it asks for the same defaults.
- `pulumi.runtime.config.CONFIG`: the whole stack config as the language host passed it (the public
  `pulumi.Config` only reads one key at a time, and the typed config needs every key to refuse typos).
- `pulumi.runtime.rpc._special_sig_key` / `_special_secret_sig`: the wire marker of a secret value; the
  preview's mock engine applies `additionalSecretOutputs` with it, as the real engine does.
- `pulumi.runtime.sync_await._sync_await` / `_ensure_event_loop`: run the SDK's coroutines from the
  mock engine's worker threads, the way the SDK's own `MockMonitor` does.
"""

from __future__ import annotations

from collections.abc import Awaitable
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import config as _config
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import sync_await as _sync

T = TypeVar("T")


class SdkChanged(ImportError):
    """A private SDK symbol this project relies on is gone or changed shape."""


def require(module: ModuleType, name: str, package: str = "pulumi") -> Any:
    """`module.name`, or an error naming the symbol, the installed version and where it is used."""
    try:
        return getattr(module, name)
    except AttributeError:
        versions = ", ".join(f"{d} {_version(d)}" for d in ("pulumi", "pulumi-kubernetes"))
        raise SdkChanged(
            f"{module.__name__}.{name} is gone in the installed {package} ({versions}); "
            f"infra/sdk_adapter.py relies on it: pin the SDK back (requirements.lock) or port the adapter"
        ) from None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _k8s_utilities() -> ModuleType:
    try:
        from pulumi_kubernetes import _utilities
    except ImportError as exc:
        raise SdkChanged(f"pulumi_kubernetes._utilities is gone ({exc}); port infra/sdk_adapter.py") from None
    return _utilities


_get_resource_opts_defaults = require(_k8s_utilities(), "get_resource_opts_defaults", "pulumi-kubernetes")
_CONFIG = require(_config, "CONFIG")
_is_config_secret = require(_config, "is_config_secret")
SECRET_SIG_KEY: str = require(_rpc, "_special_sig_key")
SECRET_SIG: str = require(_rpc, "_special_secret_sig")
_sync_await = require(_sync, "_sync_await")
_ensure_event_loop = require(_sync, "_ensure_event_loop")


def kubernetes_resource_opts() -> pulumi.ResourceOptions:
    """The options the generated pulumi_kubernetes classes give every resource (plugin version)."""
    return _get_resource_opts_defaults()


def stack_config() -> tuple[dict[str, str], set[str]]:
    """The running program's whole config map (`{"ns:key": "value"}`) and which keys are secret."""
    raw = dict(_CONFIG.get())
    return raw, {k for k in raw if _is_config_secret(k)}


def mark_secret(value: Any) -> dict[str, Any]:
    """`value` as the engine sends a secret output over the wire."""
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def sync_await(awaitable: Awaitable[T]) -> T:
    """Run an SDK coroutine to completion from synchronous code (the mock engine's threads)."""
    return _sync_await(awaitable)


def ensure_event_loop() -> None:
    """Give the current (worker) thread an event loop; deserializing resource references needs one."""
    _ensure_event_loop()
