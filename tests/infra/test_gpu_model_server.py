"""The GPU stacks as `pulumi up` would meet them: await timeouts, weights cache, interruption handling,
disruption budget, and config that cannot schedule refused before any resource exists."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError, parse_stack_config
from infra.gpu_capacity import INSTANCE_TYPES, cpu_millis, memory_mi, misfit
from infra.preview import load_stack_file

from .conftest import REPO

GPU_STACKS = ("staging", "prod")


def stack_raw(stack: str) -> tuple[dict[str, str], set[str]]:
    return load_stack_file(REPO / "stacks" / f"Pulumi.{stack}.yaml")


def with_gpu(stack: str, change) -> tuple[dict[str, str], set[str]]:
    raw, secrets = stack_raw(stack)
    gpu = json.loads(raw["rag-platform:gpu"])
    change(gpu)
    return dict(raw, **{"rag-platform:gpu": json.dumps(gpu)}), secrets


def server(stacks, name: str) -> tuple[dict, dict]:
    deployment = stacks[name].one("Deployment", "model-server")
    return deployment, deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", GPU_STACKS)
def test_await_timeouts_cover_a_cold_start(stacks, name):
    deployment, _ = server(stacks, name)
    minutes = parse_stack_config(name, *stack_raw(name)).gpu.modelServer.readyTimeoutMinutes
    assert minutes >= 30
    # The annotation (visible here) and customTimeouts (below) say the same; progressDeadlineSeconds must
    # not cut the await short (the provider fails on ProgressDeadlineExceeded), nor the startup probe.
    assert deployment["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == str(minutes * 60)
    assert deployment["spec"]["progressDeadlineSeconds"] == minutes * 60
    startup = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= minutes * 60


def test_custom_timeouts_reach_the_engine():
    """The Deployment's registration request carries customTimeouts (the engine's await limit). Run in a
    fresh interpreter: the Pulumi mock runtime is process-global."""
    code = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
import pulumi
from pulumi.runtime import mocks
seen = {{}}
original = mocks.MockMonitor.RegisterResource
def record(self, request):
    if request.type == "kubernetes:apps/v1:Deployment":
        seen[request.name] = [request.customTimeouts.create, request.customTimeouts.update]
    return original(self, request)
mocks.MockMonitor.RegisterResource = record
class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return args.name + "-id", args.inputs
    def call(self, args):
        return {{}}
pulumi.runtime.set_mocks(Mocks(), "rag-platform", "staging", preview=False)
from infra.components.gpu import GpuPlatform
from infra.config import parse_stack_config
from infra.kube import Namespaces
from infra.preview import load_stack_file
cfg = parse_stack_config("staging", *load_stack_file(Path({str(REPO / 'stacks' / 'Pulumi.staging.yaml')!r})))
@pulumi.runtime.test
def declare():
    GpuPlatform("gpu", cfg, Namespaces.for_env("staging"), "model-server-auth")
declare()
print(json.dumps(seen))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"deployment:rag-staging-gpu/model-server": ["45m", "45m"]}


@pytest.mark.parametrize("name", GPU_STACKS)
def test_weights_cache_survives_pod_restarts(stacks, name):
    deployment, pod = server(stacks, name)
    pvc = stacks[name].one("PersistentVolumeClaim", "model-server-weights")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"]
    assert {"name": "weights", "persistentVolumeClaim": {"claimName": "model-server-weights"}} in pod["volumes"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "weights")
    assert env["HF_HOME"].startswith(mount + "/")
    # uid 10001 has no passwd entry: user name and every cache come from the env, on writable volumes.
    assert env["USER"] and env["LOGNAME"] and env["HOME"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    for key in ("HOME", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        assert any(env[key] == w or env[key].startswith(w + "/") for w in writable), key
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert env["VLLM_NO_USAGE_STATS"] == "1"


@pytest.mark.parametrize("name", GPU_STACKS)
def test_replicas_survive_a_node_loss(stacks, name):
    deployment, pod = server(stacks, name)
    assert deployment["spec"]["replicas"] == 2
    pdb = stacks[name].one("PodDisruptionBudget", "model-server")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    # Rolling updates never need a GPU beyond the pool's limit: one replica down at a time.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    for pool in stacks[name].objects("NodePool"):
        assert pool["spec"]["disruption"]["budgets"] == [{"nodes": "1"}]


@pytest.mark.parametrize("name", GPU_STACKS)
def test_interruption_handling_and_server_flags(stacks, name):
    chart = next(r for r in stacks[name].resources
                 if r["type"] == "kubernetes:helm.sh/v4:Chart" and r["name"] == "karpenter")
    assert chart["inputs"]["values"]["settings"]["interruptionQueue"] == f"rag-{name}-karpenter-interruptions"
    _, pod = server(stacks, name)
    container = pod["containers"][0]
    script = container["command"][-1]
    assert "--disable-log-requests" in script  # vLLM 0.9.2 logs every prompt without it
    assert container["livenessProbe"]["timeoutSeconds"] >= 5
    assert container["imagePullPolicy"] == "Always" or "@sha256:" in container["image"]


def test_staging_runs_spot_only_with_interruption_handling():
    cfg = parse_stack_config("staging", *stack_raw("staging"))
    assert "spot" in cfg.gpu.pools[0].capacityTypes and "on-demand" in cfg.gpu.pools[0].capacityTypes
    with pytest.raises(ConfigError) as err:
        parse_stack_config("staging", *with_gpu("staging", lambda g: g["karpenter"].pop("interruptionQueue")))
    assert "rag-platform:gpu.karpenter.interruptionQueue" in str(err.value) and "fix:" in str(err.value)


@pytest.mark.parametrize(("change", "key", "words"), [
    (lambda g: g["pools"][0].update(instanceTypes=["g5.xlarge", "g5.2xlarge"]),
     "rag-platform:gpu.pools[0].instanceTypes", ["g5.xlarge", "memory request 24Gi > allocatable"]),
    (lambda g: g["pools"][0].update(instanceTypes=["p9.mega"]),
     "rag-platform:gpu.pools[0].instanceTypes", ["p9.mega is not in the allocatable table"]),
    (lambda g: g["modelServer"].update(gpusPerReplica=2),
     "rag-platform:gpu.pools[0].instanceTypes", ["2 GPUs requested > 1 on the node"]),
    (lambda g: g["modelServer"]["weights"].update(accessMode="ReadWriteOnce"),
     "rag-platform:gpu.modelServer.weights.accessMode", ["cannot share a ReadWriteOnce volume"]),
    (lambda g: g["modelServer"]["weights"].pop("storageClass"),
     "rag-platform:gpu.modelServer.weights.storageClass", ["ReadWriteMany needs a storage class"]),
    (lambda g: g["pools"][0].update(gpuLimit=2),
     "rag-platform:gpu.pools", ["need 3"]),
])
def test_config_that_cannot_schedule_is_refused(change, key, words):
    with pytest.raises(ConfigError) as err:
        parse_stack_config("staging", *with_gpu("staging", change))
    message = str(err.value)
    assert "stacks/Pulumi.staging.yaml" in message and key in message and "fix:" in message
    for w in words:
        assert w in message


def test_preview_exits_2_naming_the_key(tmp_path: Path):
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    doc = yaml.safe_load((stacks / "Pulumi.staging.yaml").read_text())
    doc["config"]["rag-platform:gpu"]["pools"][0]["instanceTypes"] = ["g5.xlarge", "g5.2xlarge"]
    (stacks / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "staging", "--stacks-dir", str(stacks),
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "rag-platform:gpu.pools[0].instanceTypes" in proc.stderr and "g5.xlarge" in proc.stderr
    assert not (tmp_path / "out" / "staging").exists()  # nothing rendered


def test_allocatable_table():
    # Karpenter's own numbers for an m5.4xlarge-sized node (64 GiB, 234 pods): 2829 MiB kube-reserved.
    assert 11 * 234 + 255 == 2829
    fits = INSTANCE_TYPES["g5.2xlarge"]
    assert fits.allocatable_cpu_m == 8000 - 90 - 500
    assert fits.allocatable_memory_mi == int(32 * 1024 * 0.925) - (11 * 58 + 255) - 100 - 1024
    assert misfit("g5.2xlarge", "4", "24Gi", 1) is None
    assert "cpu request 4 > allocatable" in misfit("g5.xlarge", "4", "24Gi", 1)
    assert misfit("g5.12xlarge", "4", "24Gi", 4) is None
    assert cpu_millis("3500m") == 3500 and cpu_millis("4") == 4000 and memory_mi("24Gi") == 24576
    with pytest.raises(ValueError, match="not a memory quantity"):
        memory_mi("24 GB")


def test_hub_token_is_a_mounted_secret_file(tmp_path: Path):
    raw, secrets = stack_raw("staging")
    raw = dict(raw, **{"rag-platform:modelHubToken": "PREVIEW-PLACEHOLDER-token"})
    cfg = parse_stack_config("staging", raw, secrets | {"rag-platform:modelHubToken"})
    from infra.components.gpu import build_model_server
    from infra.kube import Namespaces

    manifests = build_model_server(cfg, Namespaces.for_env("staging"), "model-server-auth")
    pod = next(m for m in manifests if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "hub-token")
    assert env["HF_TOKEN_PATH"] == mount["mountPath"] + "/token" and mount["readOnly"]
    assert {"name": "hub-token", "secret": {"secretName": "model-hub-token", "defaultMode": 0o440}} in pod["volumes"]
    assert "HF_TOKEN" not in env and "PREVIEW-PLACEHOLDER" not in json.dumps(manifests)
    # A plaintext token in the stack file is refused.
    with pytest.raises(ConfigError, match="pulumi config set --secret modelHubToken"):
        parse_stack_config("staging", raw, secrets)


def test_hub_token_secret_in_the_preview(tmp_path: Path):
    """From `pulumi config set --secret modelHubToken` to a Secret whose value never leaves Pulumi's secrets."""
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    doc = yaml.safe_load((stacks / "Pulumi.staging.yaml").read_text())
    doc["config"]["rag-platform:modelHubToken"] = {"secure": "v1:AAAAAAAAAAAAAAAA:aHViLXRva2Vu"}
    (stacks / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "infra.preview", "--stack", "staging", "--stacks-dir", str(stacks),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    manifests = [m for m in yaml.safe_load_all((out / "staging" / "manifests.yaml").read_text()) if m]
    secret = next(m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == "model-hub-token")
    assert secret["metadata"]["namespace"] == "rag-staging-gpu" and secret["stringData"] in ("[secret]", {"token": "[secret]"})
    for f in (out / "staging").iterdir():
        assert "PREVIEW-PLACEHOLDER" not in f.read_text(), f.name
