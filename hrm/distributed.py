"""Data-parallel training under torchrun: process group setup and the collectives the trainer needs.

Gradients are averaged with one all-reduce over a flat buffer (what DistributedDataParallel does, without wrapping
the model, whose forward takes and returns an ACT carry). gloo on CPU, NCCL on CUDA. Without torchrun every
function here is a no-op, so single-process code never branches on it.
"""

import os
from dataclasses import dataclass

import torch
import torch._dynamo  # noqa: F401  (imported before the process group exists: see init_distributed)
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files."""
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Joins the torchrun job if there is one (gloo on CPU, NCCL on CUDA); returns this process's place in it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    # torch._dynamo is imported above, not lazily by the first optimizer: imported while a process group exists, it
    # keeps references to it, destroy_process_group then cannot free the gloo backend, its worker threads outlive
    # the interpreter, and a rank could abort at exit ("terminate called without an active exception").
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def shutdown_distributed() -> None:
    """Waits for every rank, then leaves the torchrun job (a process that exits inside it can abort its peers)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    """Returns this process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """Returns the number of processes in the job (1 without torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def broadcast_module(module: torch.nn.Module) -> None:
    """Copies rank 0's parameters and buffers to every rank, so all ranks start identical."""
    if world_size() == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replaces every gradient with its mean over ranks (one all-reduce of a flat buffer)."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= n
    for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        grad.copy_(reduced)


def sum_metrics(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns the metric sums added over ranks."""
    if world_size() == 1:
        return sums
    keys = sorted(sums)
    flat = torch.stack([sums[k].detach().double() for k in keys])
    dist.all_reduce(flat)
    return dict(zip(keys, flat, strict=True))


def gather_objects(obj) -> list:
    """Returns [obj from rank 0, obj from rank 1, ...] on every rank."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
