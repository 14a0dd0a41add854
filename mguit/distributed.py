"""Device selection and process-group setup, shared by training and inference."""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist


def available_devices() -> list[str]:
    """The devices this process can compute on: ``cpu``, ``cuda:N`` for each GPU, ``mps``."""
    devices = ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    return devices + (["mps"] if torch.backends.mps.is_available() else [])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device, which must exist
    here (a :class:`RuntimeError` lists the ones that do)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = available_devices()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RuntimeError(f"device {name!r} is not a device name; "
                           f"this machine has: {', '.join(here)}") from None
    known = device.type == "cpu" or (device.type == "cuda" and torch.cuda.device_count() > (
        device.index or 0)) or (device.type == "mps" and "mps" in here)
    if not known:
        raise RuntimeError(f"device {name!r} is not available; this machine has: "
                           f"{', '.join(here)}")
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
