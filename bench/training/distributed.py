"""Where a training step runs: the device, the speed flags of the run config, and data parallelism
over torch.distributed.

Data parallelism (launched with `torchrun --nproc_per_node N -m bench.apps.cli train ...`, or a Slurm job
with one task per GPU): every rank draws the same per-step batch from the per-step rng, keeps its own
slice of the crops (the same crops at every level), and after backward the gradients are averaged over
the ranks. With equal slices the average of the per-rank mean losses is the mean over the combined
batch, so N processes follow the loss curve of one process on the whole batch. Protocols that do not
slice their batch stay correct (every rank computes the same full-batch gradient) but gain no speed.
Only rank 0 writes run folders, checkpoints and logs.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from bench.common.errors import HyperbenchError
from bench.data.images import as_float

GPU_FLAGS = ("bf16", "channels_last", "compile")  # the run config's optional `gpu` section


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env() -> bool:
    """Join the process group that torchrun (or submitit's TorchDistributedEnvironment) describes in the
    environment. True when this process is one of several."""
    if world_size() > 1:
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    if not is_main():
        os.environ["HYPERBENCH_QUIET"] = "1"  # one progress bar, from rank 0
    return True


NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16) in /proc/cpuinfo


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU has bf16 instructions, from the first flags/Features line of /proc/cpuinfo; None where
    it cannot tell (no such file or line). Without them torch emulates bf16 autocast on the CPU."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool(NATIVE_BF16_FLAGS & set(value.split()))
    return None


def emulated_bf16_warning(configs, where: torch.device, cpuinfo: str | None = None) -> str | None:
    """A warning when runs under bf16 autocast (gpu.bf16) would train on a CPU that emulates bf16."""
    count = sum(1 for config in configs if config.get("gpu", {}).get("bf16"))
    if not count or where.type != "cpu" or cpu_has_native_bf16(cpuinfo) is not False:
        return None
    return (f"{count} runs train under bf16 autocast (the profile's gpu.bf16) on a CPU without bf16 instructions "
            f"(no {', '.join(sorted(NATIVE_BF16_FLAGS))} in /proc/cpuinfo): torch emulates bf16 there, several times slower "
            "than fp32; `hyperbench perf` prints this machine's bf16 speed-up. The numbers stay those of the profile's recipe")


def named_device(name: str, asked_by: str = "--device") -> torch.device:
    """The device a user named (cpu, cuda, cuda:N), with a clear error for an unknown name or a missing GPU."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise HyperbenchError(f"unknown device {name!r} ({asked_by})", "use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HyperbenchError(f"device {name} asked for ({asked_by}) but torch sees no CUDA device", "use --device cpu on this machine")
    return dev


def device() -> torch.device:
    """$HYPERBENCH_DEVICE if set, else this rank's GPU if there is one, else the CPU."""
    wanted = os.environ.get("HYPERBENCH_DEVICE")
    if wanted:
        return named_device(wanted, "--device or HYPERBENCH_DEVICE")
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def average_gradients(params) -> None:
    """Average .grad over the ranks with one all-reduce of the flattened gradients."""
    if world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean(value: torch.Tensor) -> float:
    """The mean of a scalar over the ranks (the loss of the combined batch)."""
    if world_size() == 1:
        return float(value)
    t = value.detach().float().reshape(1).clone()
    dist.all_reduce(t)
    return float(t) / world_size()


def agree(flag: bool) -> bool:
    """Rank 0's answer, on every rank (decisions that read files must be the same everywhere)."""
    if world_size() == 1:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shard_crops(tensors, levels: int) -> list[torch.Tensor]:
    """This rank's slice of a level-major batch (K levels x B crops): crops [r*B/W, (r+1)*B/W) at every level."""
    w, r = world_size(), rank()
    if w == 1:
        return list(tensors)
    out = []
    for t in tensors:
        crops = t.shape[0] // levels
        if crops % w:
            raise HyperbenchError(f"train.batch = {crops} crops cannot be split evenly over {w} processes",
                                  f"use a number of processes that divides {crops}, or a batch that is a multiple of {w}")
        per = crops // w
        out.append(t.reshape(levels, crops, *t.shape[1:])[:, r * per : (r + 1) * per].reshape(levels * per, *t.shape[1:]))
    return out


def check_gpu_flags(flags: dict, where: str) -> dict:
    """The `gpu` section: known keys with true/false values; returns only the flags that are on."""
    if not isinstance(flags, dict):
        raise HyperbenchError(f"{where}: gpu must be a mapping of flags", f"write e.g. gpu: {{bf16: true}} (flags: {', '.join(GPU_FLAGS)})")
    unknown = sorted(set(flags) - set(GPU_FLAGS))
    if unknown:
        raise HyperbenchError(f"{where}: unknown gpu flags {unknown}", f"known: {', '.join(GPU_FLAGS)}")
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise HyperbenchError(f"{where}: gpu.{key} = {value!r} is not true or false", f"write gpu.{key}: true")
    return {k: True for k in GPU_FLAGS if flags.get(k)}


@dataclass
class Placement:
    """Device, memory format, autocast and compile for one run (the flags of its config's `gpu` section)."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def for_run(cls, config: dict) -> Placement:
        flags = check_gpu_flags(config.get("gpu", {}), f"run {config.get('model')}")
        return cls(device(), **flags)

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model (in place, so optimisers and checkpoints see the same parameters); the callable to train."""
        model.to(self.device, memory_format=self.memory_format)
        return torch.compile(model) if self.compile else model

    def batch(self, x, y, lv, levels: int):
        """This rank's crops of a level-major batch, on the device, in the memory format, as float32."""
        x, y, lv = shard_crops((x, y, lv), levels)
        move = dict(device=self.device, non_blocking=True)
        x, y = (as_float(t.to(**move, memory_format=self.memory_format)) for t in (x, y))  # 8-bit crops become float there
        return x, y, lv.to(**move)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
