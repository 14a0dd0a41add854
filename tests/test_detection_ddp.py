"""Detector training under torchrun: 2 gloo processes on the CPU, a small random ResNet-18 FPN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from detection.data import IterationBatchSampler

SCRIPT = textwrap.dedent("""
    import json, sys, torch
    import torch.distributed as dist
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import detection.data as data
    from detection import train
    from test_detection import tiny_config

    models, batches = [], []

    class Recording(torch.nn.parallel.DistributedDataParallel):
        def __init__(self, module, *args, **kwargs):
            super().__init__(module, *args, **kwargs)
            models.append(module)

    torch.nn.parallel.DistributedDataParallel = Recording
    iterate = data.IterationBatchSampler.__iter__

    def recording_iter(self):
        for batch in iterate(self):
            batches.append([index for index, _ in batch])
            yield batch

    data.IterationBatchSampler.__iter__ = recording_iter
    cfg = tiny_config({iterations})
    cfg.solver.batch_size = 4
    cfg.solver.checkpoint_every = 1
    train([{manifest!r}], Path({out!r}), cfg, "cpu", progress=False)
    # Parameters: batch-norm running statistics are each rank's own (as DDP leaves them).
    state = torch.cat([p.detach().flatten() for p in models[0].parameters()])
    gathered = [torch.zeros_like(state) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, state)
    seen = [None] * dist.get_world_size()
    dist.all_gather_object(seen, batches)
    if dist.get_rank() == 0:
        print("IDENTICAL" if all(torch.equal(gathered[0], g) for g in gathered[1:]) else "DIVERGED")
        print("BATCHES " + json.dumps(seen))
    dist.destroy_process_group()
""")


def run_two_processes(tmp_path: Path, manifest: Path, out: Path, iterations: int, port: int):
    script = tmp_path / f"ddp_{iterations}.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), manifest=str(manifest),
                                    out=str(out), iterations=iterations))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(script)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_each_rank_takes_its_share_of_the_global_batch():
    whole = list(IterationBatchSampler(10, 4, seed=3, start=0, end=5))
    shares = [list(IterationBatchSampler(10, 4, seed=3, start=0, end=5, rank=r, world_size=2))
              for r in range(2)]
    for step, batch in enumerate(whole):
        assert shares[0][step] + shares[1][step] == batch
        assert not {i for i, _ in shares[0][step]} & {i for i, _ in shares[1][step]}
    with pytest.raises(ValueError, match="does not divide among 3 ranks"):
        IterationBatchSampler(10, 4, seed=3, start=0, end=5, rank=0, world_size=3)


@pytest.fixture
def manifest(tmp_path) -> Path:
    from tiny_detection import write_manifest

    return write_manifest(tmp_path, "train")


def train_two(tmp_path: Path, manifest: Path, iterations: int, port: int) -> list[list[list[int]]]:
    """Train ``tmp_path/detector`` to ``iterations`` in 2 processes; check that both ranks end
    with the same parameters; return each rank's batches (image indices per step)."""
    result = run_two_processes(tmp_path, manifest, tmp_path / "detector", iterations, port)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IDENTICAL" in result.stdout
    return json.loads(result.stdout.split("BATCHES ", 1)[1].splitlines()[0])


@pytest.mark.slow
def test_two_gloo_processes_train_one_detector_and_resume(tmp_path, manifest):
    out = tmp_path / "detector"
    for rank0, rank1 in zip(*train_two(tmp_path, manifest, 2, 29531)):
        assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)
    assert json.loads((out / "detector.json").read_text())["iterations"] == 2
    assert len(list((out / "tensorboard").iterdir())) == 1, "only rank 0 writes logs"
    steps = train_two(tmp_path, manifest, 3, 29533)
    assert [len(rank) for rank in steps] == [1, 1], "continued at iteration 2, one step to 3"
    assert json.loads((out / "detector.json").read_text())["iterations"] == 3


@pytest.mark.slow
def test_two_gloo_processes_lower_the_loss(tmp_path, manifest):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_two(tmp_path, manifest, 12, 29535)
    events = EventAccumulator(str(tmp_path / "detector" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss/total")]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
