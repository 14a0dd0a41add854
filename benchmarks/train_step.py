"""Seconds per MGUIT training iteration, and the share spent in the memory.

    python benchmarks/train_step.py --out benchmarks/results/train_step_cpu.json
    python benchmarks/train_step.py --device cuda --batch-sizes 1 4 --steps 20

Paper network sizes (``ModelConfig()``, C = 256, N = 20) at 360 x 360 by default. For each batch
size: warm-up steps, then the mean time of ``--steps`` full iterations (discriminator step,
generator step, memory update), and the time of the memory's own work on the same feature
shapes measured alone: the reads of one iteration (8), one update, the two feature losses, and
their backward pass. Their ratio is the memory's share of a step (goal: under 5 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, write_report  # noqa: E402

from mguit.config import TranslatorConfig  # noqa: E402
from mguit.memory import ClassAwareMemory  # noqa: E402
from mguit.model import MGUIT  # noqa: E402

READS_PER_ITERATION = 8   # fake x/y, recon x/y, cycle x/y, random-style x/y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_seconds(fn, steps: int, warmup: int, device: torch.device) -> float:
    """Mean wall time of ``fn()`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def time_training_step(cfg: TranslatorConfig, batch: int, size: int, steps: int, warmup: int,
                       device: torch.device, amp: bool) -> float:
    torch.manual_seed(0)
    model = MGUIT(cfg).to(device)
    gen = torch.optim.Adam(model.generator_parameters(), lr=1e-4)
    dis = torch.optim.Adam([*model.discriminator_parameters(),
                            *model.content_discriminator.parameters()], lr=1e-4)
    groups = len(cfg.memory.items)
    data = {"image_x": torch.rand(batch, 3, size, size, device=device) * 2 - 1,
            "image_y": torch.rand(batch, 3, size, size, device=device) * 2 - 1,
            "mask_x": torch.randint(0, groups, (batch, size, size), device=device),
            "mask_y": torch.randint(0, groups, (batch, size, size), device=device)}
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step() -> None:
        with torch.autocast(device.type, enabled=amp):
            out = model(data)
            d = model.discriminator_losses(out, data)
        dis.zero_grad()
        scaler.scale(sum(d.values())).backward()
        scaler.step(dis)
        with torch.autocast(device.type, enabled=amp):
            g = model.generator_losses(out, data)
        gen.zero_grad()
        scaler.scale(g["total"]).backward()
        scaler.step(gen)
        scaler.update()
        model.update_memory(out)

    return mean_seconds(step, steps, warmup, device)


def time_memory_work(cfg: TranslatorConfig, batch: int, size: int, steps: int,
                     device: torch.device) -> float:
    mem_cfg = cfg.memory
    mem = ClassAwareMemory(mem_cfg.key_dim, mem_cfg.items, mem_cfg.variant, mem_cfg.loss,
                           mem_cfg.temperature).to(device)
    h = w = size // cfg.model.stride
    c = torch.randn(batch, mem_cfg.key_dim, h, w, device=device, requires_grad=True)
    s = torch.randn(batch, mem_cfg.key_dim, h, w, device=device, requires_grad=True)
    mask = torch.randint(0, len(mem_cfg.items), (batch, h, w), device=device)

    def work() -> None:
        reads = sum(mem.read(c, i % 2, mask).sum() for i in range(READS_PER_ITERATION))
        losses = [mem.feature_loss(c, s, d, mask) for d in (0, 1)]
        total = reads + sum(v for loss in losses for v in loss.values())
        total.backward()
        mem.update(c.detach(), s.detach(), c.detach(), s.detach(), mask, mask)

    return mean_seconds(work, steps, 1, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=360)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", action="store_true", help="autocast (CUDA only)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = TranslatorConfig()
    results = []
    for batch in args.batch_sizes:
        step = time_training_step(cfg, batch, args.size, args.steps, args.warmup, device,
                                  args.amp and device.type == "cuda")
        memory = time_memory_work(cfg, batch, args.size, max(args.steps, 3), device)
        results.append({"batch_size": batch, "seconds_per_iteration": round(step, 4),
                        "memory_seconds": round(memory, 5),
                        "memory_share": round(memory / step, 5)})
        print(json.dumps(results[-1]), flush=True)
    report = {"benchmark": "train_step", "size": args.size, "model": "paper (C=256, N=20)",
              "device": str(device), "amp": args.amp, "steps": args.steps,
              "machine": describe_machine(), "results": results}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
