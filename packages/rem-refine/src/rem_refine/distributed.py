"""Process-group plumbing for ``torchrun --nproc-per-node N -m rem_refine ...``.

Ranks exchange almost nothing: rank 0 decides whether the run may start (and every rank raises
the same error if not), each rank streams its own part file, and after a barrier rank 0 merges
them. The group uses gloo, on CPU and GPU machines alike, because only small Python objects
travel through it. Several machines must share the output folder's filesystem; rank 0 checks
that it sees every rank's part file byte for byte.

torch is imported only when there is more than one process, so single-process runs of the
weight-free backend do not need it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# A rank that finishes early waits at the final barrier for the slowest one; on a large dataset
# that can be hours, far past gloo's default 30 minutes.
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass
class DistContext:
    """Rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_env(cls) -> DistContext:
        """Read torchrun's environment and join the process group if there is more than one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        owns = False
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
            owns = True
        return cls(rank, world, local_rank, owns)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False
