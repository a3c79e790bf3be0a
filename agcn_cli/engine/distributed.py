"""Data-parallel training under torchrun: the process group and the few collectives `fit` needs.

`torchrun --nproc_per_node=N -m agcn_cli train ...` (or with `--nnodes/--rdzv-endpoint` for
several machines) starts N processes with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT set; `init` joins them through the `env://` rendezvous, gloo on CPU and NCCL on
CUDA. Without WORLD_SIZE > 1 everything here is a no-op and training runs in one process.
"""

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import AgcnError


@dataclass(frozen=True)
class Dist:
    rank: int = 0  # global rank; rank 0 alone writes logs and checkpoints
    world_size: int = 1  # processes in the job
    local_rank: int = 0  # rank on this machine: the CUDA device index

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device_type: str) -> Dist:
    """Join the torchrun job described by the environment, if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise AgcnError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices here")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method="env://")
    return Dist(rank, world_size, local_rank)


def cleanup(ctx: Dist) -> None:
    """Leave the process group. Ranks that end normally meet at a barrier first: gloo aborts a
    rank ("terminate called without an active exception") that destroys its group while another
    still uses theirs. A rank leaving on an exception does not wait (the others may never come)."""
    if not (ctx.enabled and dist.is_initialized()):
        return
    if sys.exc_info()[0] is None:
        dist.barrier()
    dist.destroy_process_group()


def on_main(ctx: Dist, fn: Callable[[], Any]) -> Any:
    """Run `fn` on rank 0 and hand its result (or its AgcnError) to every rank.

    Keeps the ranks in step when only rank 0 can see the run folder (multi-node without a
    shared file system): an error on rank 0 is raised everywhere instead of a hang.
    """
    result: list[Any] = [None, None]
    if ctx.is_main:
        try:
            result = [fn(), None]
        except AgcnError as e:
            result = [None, str(e)]
    if ctx.enabled:
        dist.broadcast_object_list(result, src=0)
    if result[1] is not None:
        raise AgcnError(result[1])
    return result[0]


def _all_reduce_(t: torch.Tensor, op: Any, ctx: Dist) -> torch.Tensor:
    """In place over ranks; a CPU tensor goes through the GPU under NCCL."""
    if ctx.enabled:
        if dist.get_backend() == "nccl" and not t.is_cuda:
            on_gpu = t.cuda()
            dist.all_reduce(on_gpu, op=op)
            t.copy_(on_gpu)
        else:
            dist.all_reduce(t, op=op)
    return t


def all_sum(values: list[float], ctx: Dist) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    if not ctx.enabled:
        return values
    return _all_reduce_(torch.tensor(values, dtype=torch.float64), dist.ReduceOp.SUM, ctx).tolist()


def all_max_(t: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """In-place element-wise maximum over ranks."""
    return _all_reduce_(t, dist.ReduceOp.MAX, ctx)


def broadcast_buffers_(module: torch.nn.Module, ctx: Dist) -> None:
    """Rank 0's buffers (BatchNorm running statistics) to every rank, in place.

    DDP syncs them before each training forward, so after the last step each rank holds its
    own update; evaluating without this would score each shard with a slightly different model
    than the one rank 0 saves.
    """
    if ctx.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def any_rank(flags: list[bool], ctx: Dist) -> list[bool]:
    """Each flag set on any rank: stop requests and non-finite losses seen by one rank stop all."""
    if not ctx.enabled:
        return flags
    return [v > 0 for v in all_sum([float(f) for f in flags], ctx)]
