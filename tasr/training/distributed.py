"""The processes of a training run: rank, world size and device of this one, and what they share.

Under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the processes form one
group, gloo on CPU and NCCL on GPU, and each takes its share of every global batch
(`tasr.data.shard`); without it there is one process and every collective is the identity.
"""

import os

import torch
import torch.distributed as dist

from tasr.device import pick_device


class Processes:
    """Rank, world size and device of this process (torchrun's RANK/WORLD_SIZE/LOCAL_RANK, or one process)."""

    def __init__(self, device_name: str = "auto"):
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = pick_device(device_name)
        if self.device.type == "cuda":
            if self.world_size > 1 and self.device.index is None:
                self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all processes."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj) -> list:
        """`obj` of every process, in rank order (every process gets the list)."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.world_size > 1:
            dist.barrier()

    def close(self):
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
