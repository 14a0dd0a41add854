"""Device selection and process-group setup, shared by training and inference."""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available")
    return device


def distributed_context() -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        # A group left to the interpreter's exit can abort the process while gloo's threads
        # are still joinable ("terminate called without an active exception").
        atexit.register(_destroy_process_group)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
