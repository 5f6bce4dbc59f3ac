"""What a pod can request on each GPU instance type a Karpenter pool may launch.

A pool that lists a type too small for the model server never gets a node for it (Karpenter skips
types that cannot fit the pending pod), so such a type is a config error, caught before any resource.

Capacity: EC2 instance type specifications (vCPUs, memory, NVIDIA GPUs; aws.amazon.com/ec2/instance-types
/g5, /g6, /g6e) and the ENI-limited max pods of amazon-vpc-cni-k8s misc/eni-max-pods.txt.
Allocatable is computed the way Karpenter does for EKS AMIs before a node exists (aws/karpenter-provider-aws
pkg/providers/instancetype/types.go): memory less `settings.vmMemoryOverheadPercent` (chart default 7.5 %),
kube-reserved memory 11 MiB x max pods + 255 MiB, the kubelet's hard eviction threshold 100 MiB;
kube-reserved CPU 6 % of the first core, 1 % of the second, 0.5 % of the next two, 0.25 % of the rest.
Then a margin for the DaemonSets every GPU node runs (VPC CNI, kube-proxy, CSI node plugins, the NVIDIA
device plugin, a log/metrics agent): DAEMONSET_MARGIN_CPU_M and DAEMONSET_MARGIN_MEMORY_MI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VM_MEMORY_OVERHEAD = 0.075
EVICTION_HARD_MI = 100
DAEMONSET_MARGIN_CPU_M = 500
DAEMONSET_MARGIN_MEMORY_MI = 1024


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_gib: int
    gpus: int
    gpu_memory_gib: int
    max_pods: int

    @property
    def allocatable_cpu_m(self) -> int:
        reserved, cpu = 0.0, self.vcpus * 1000
        for start, end, share in ((0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005), (4000, 1 << 31, 0.0025)):
            if cpu > start:
                reserved += (min(cpu, end) - start) * share
        return int(cpu - reserved) - DAEMONSET_MARGIN_CPU_M

    @property
    def allocatable_memory_mi(self) -> int:
        memory = int(self.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD))
        return memory - (11 * self.max_pods + 255) - EVICTION_HARD_MI - DAEMONSET_MARGIN_MEMORY_MI


# vCPUs, memory GiB, GPUs, GPU memory GiB per GPU (A10G 24, L4 24, L40S 48), max pods.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "g5.xlarge": InstanceType(4, 16, 1, 24, 58),
    "g5.2xlarge": InstanceType(8, 32, 1, 24, 58),
    "g5.4xlarge": InstanceType(16, 64, 1, 24, 234),
    "g5.8xlarge": InstanceType(32, 128, 1, 24, 234),
    "g5.12xlarge": InstanceType(48, 192, 4, 24, 737),
    "g5.16xlarge": InstanceType(64, 256, 1, 24, 234),
    "g5.24xlarge": InstanceType(96, 384, 4, 24, 737),
    "g5.48xlarge": InstanceType(192, 768, 8, 24, 345),
    "g6.xlarge": InstanceType(4, 16, 1, 24, 58),
    "g6.2xlarge": InstanceType(8, 32, 1, 24, 58),
    "g6.4xlarge": InstanceType(16, 64, 1, 24, 234),
    "g6.8xlarge": InstanceType(32, 128, 1, 24, 234),
    "g6.12xlarge": InstanceType(48, 192, 4, 24, 234),
    "g6.16xlarge": InstanceType(64, 256, 1, 24, 737),
    "g6.24xlarge": InstanceType(96, 384, 4, 24, 737),
    "g6.48xlarge": InstanceType(192, 768, 8, 24, 737),
    "g6e.xlarge": InstanceType(4, 32, 1, 48, 58),
    "g6e.2xlarge": InstanceType(8, 64, 1, 48, 58),
    "g6e.4xlarge": InstanceType(16, 128, 1, 48, 234),
    "g6e.8xlarge": InstanceType(32, 256, 1, 48, 234),
    "g6e.12xlarge": InstanceType(48, 384, 4, 48, 292),
    "g6e.16xlarge": InstanceType(64, 512, 1, 48, 737),
    "g6e.24xlarge": InstanceType(96, 768, 4, 48, 492),
    "g6e.48xlarge": InstanceType(192, 1536, 8, 48, 492),
}

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_MI = {None: 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2,
              "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20}


def cpu_millis(quantity: str) -> int:
    m = _CPU.match(quantity)
    if not m:
        raise ValueError(f"not a CPU quantity: {quantity!r} (e.g. 4 or 3500m)")
    return int(float(m.group(1)) * (1 if m.group(2) else 1000))


def memory_mi(quantity: str) -> int:
    m = _MEMORY.match(quantity)
    if not m:
        raise ValueError(f"not a memory quantity: {quantity!r} (e.g. 24Gi or 512Mi)")
    return int(float(m.group(1)) * _MEMORY_MI[m.group(2)])


def misfit(instance_type: str, cpu: str, memory: str, gpus: int) -> str | None:
    """Why a pod requesting cpu/memory/gpus cannot run on this type, or None when it fits."""
    it = INSTANCE_TYPES.get(instance_type)
    if it is None:
        return (f"{instance_type} is not in the allocatable table (infra/gpu_capacity.py), so its fit cannot be "
                f"checked; add it there with its source, or use one of {', '.join(INSTANCE_TYPES)}")
    problems = []
    if cpu_millis(cpu) > it.allocatable_cpu_m:
        problems.append(f"cpu request {cpu} > allocatable {it.allocatable_cpu_m}m")
    if memory_mi(memory) > it.allocatable_memory_mi:
        problems.append(f"memory request {memory} > allocatable {it.allocatable_memory_mi}Mi")
    if gpus > it.gpus:
        problems.append(f"{gpus} GPUs requested > {it.gpus} on the node")
    return f"{instance_type}: " + ", ".join(problems) if problems else None
