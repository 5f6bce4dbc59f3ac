"""The recording mock engine: the real program runs, every registration is kept, nothing is deployed.

The SDK calls `RegisterResource` from its executor threads, in whatever order they get there. So each
registration is handled from its own request alone (no state handed between calls: the secret outputs
a resource asks for travel with its request), stored under its URN behind a lock, and read back
sorted by URN: the same program gives the same records in the same order, whatever the scheduling.
"""

from __future__ import annotations

import runpy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import sdk_adapter as sdk

from .stackfile import PROJECT, PreviewError, load_stack_file

# Recognisable fake values: tests grep the preview output for these to prove nothing leaks.
FAKE_SECRET_PREFIX = "FAKE-SECRET-"
# Resource types that are components or providers, not Kubernetes objects of our own.
NON_MANIFEST_TYPES = ("kubernetes:helm.sh/", "kubernetes:yaml/", "kubernetes:kustomize/")


@dataclass(frozen=True)
class Recorded:
    """One registration as the engine received it. `inputs` still carry the SDK's secret markers."""

    type: str
    name: str
    urn: str
    parent: str
    depends_on: tuple[str, ...]
    inputs: dict[str, Any]
    custom: bool

    @property
    def is_manifest(self) -> bool:
        return (self.custom and self.type.startswith("kubernetes:") and not self.type.startswith(NON_MANIFEST_TYPES)
                and "apiVersion" in self.inputs and "kind" in self.inputs)


@dataclass
class StackPreview:
    stack: str
    resources: list[Recorded]          # sorted by URN
    outputs: dict[str, Any]            # secret markers kept, like `inputs`
    manifests: list[Recorded] = field(default_factory=list)


def fake_outputs(type_: str, name: str, inputs: dict[str, Any], secret_outputs: list[str]) -> dict[str, Any]:
    """What the mock engine answers for one resource: its inputs, plus a fake secret for pulumi-random.

    `secret_outputs` is the request's `additionalSecretOutputs`: the real engine marks those secret
    (RandomPassword.result); the SDK's mock monitor does not, so this does it.
    """
    outputs = dict(inputs)
    if type_.startswith("random:"):
        outputs["result"] = f"{FAKE_SECRET_PREFIX}{name}"
    for key in secret_outputs:
        if key in outputs:
            outputs[key] = sdk.mark_secret(outputs[key])
    return outputs


def make_monitor():
    """A `MockMonitor` that records every registration (the SDK's mocks module is imported lazily)."""
    from pulumi.runtime import mocks, rpc
    from pulumi.runtime.proto import resource_pb2

    class NoInvokes(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs):  # pragma: no cover - RegisterResource below
            raise AssertionError("RecordingMonitor registers resources itself")

        def call(self, args: mocks.MockCallArgs):
            return {}, None

    class RecordingMonitor(mocks.MockMonitor):
        def __init__(self) -> None:
            super().__init__(NoInvokes())
            self._lock = threading.Lock()
            self._recorded: dict[str, Recorded] = {}

        @property
        def recorded(self) -> list[Recorded]:
            with self._lock:
                return [self._recorded[urn] for urn in sorted(self._recorded)]

        def RegisterResource(self, request):
            if request.type == "pulumi:pulumi:Stack":
                return super().RegisterResource(request)
            urn = self.make_urn(request.parent, request.type, request.name)
            sdk.ensure_event_loop()
            record = Recorded(
                type=request.type, name=request.name, urn=urn, parent=request.parent,
                depends_on=tuple(sorted(set(request.dependencies))), custom=bool(request.custom),
                inputs=rpc.deserialize_properties(request.object, keep_unknowns=True))
            state = fake_outputs(request.type, request.name, rpc.deserialize_properties(request.object),
                                 list(request.additionalSecretOutputs))
            id_ = f"{request.name}-id" if request.custom else ""
            obj = sdk.sync_await(rpc.serialize_properties(state, {}))
            with self._lock:
                if urn in self._recorded:
                    # The engine refuses this too; the SDK's mock would silently keep the last one.
                    raise PreviewError(f"duplicate resource URN {urn}: two resources share a type and name")
                self._recorded[urn] = record
                self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    return RecordingMonitor()


def run_program(stack: str, stacks_dir: Path, program_dir: Path) -> StackPreview:
    """Run the real program for one stack in this process (the mock runtime is process-global)."""
    from pulumi.runtime import rpc, settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.mocks import set_mocks
    from pulumi.runtime.stack import run_pulumi_func

    config, secret_keys = load_stack_file(stacks_dir / f"Pulumi.{stack}.yaml")
    set_all_config(config, sorted(secret_keys))
    monitor = make_monitor()
    set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    def program() -> None:
        # Exactly what the Python language host does with `main: infra/`.
        runpy.run_path(str(program_dir), run_name="__main__")

    sdk.sync_await(run_pulumi_func(program))
    root = settings.get_root_resource()
    serialized = sdk.sync_await(rpc.serialize_properties({"o": getattr(root, "outputs", {})}, {}))
    outputs = rpc.deserialize_properties(serialized, keep_unknowns=True).get("o", {})
    resources = monitor.recorded
    return StackPreview(stack=stack, resources=resources, outputs=outputs,
                        manifests=[r for r in resources if r.is_manifest])
