"""The Detectron2 backend with a small randomly initialised network: train, resume, predict;
and register_run. Skipped where Detectron2 is not installed (it is an optional extra)."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip(
    "detectron2", reason="Detectron2 is not installed (optional: see the README's Detection "
                         "section); its backend is not tested here")

from detection import (DetectorConfig, evaluate, predict, read_card,  # noqa: E402
                       register_run, train)
from detection.config import (Detectron2Config, InferenceConfig, InputConfig,  # noqa: E402
                              ModelConfig, SolverConfig)
from tiny_detection import CLASSES, write_manifest  # noqa: E402


def tiny_config(iterations: int) -> DetectorConfig:
    """A randomly initialised R18-FPN Faster R-CNN with narrow heads, on 48-pixel images."""
    return DetectorConfig(
        backend="detectron2", num_workers=0,
        model=ModelConfig(anchor_sizes=[8, 16, 32, 64, 128], fpn_channels=16, box_head_dim=32,
                          roi_batch_size_per_image=32),
        solver=SolverConfig(iterations=iterations, batch_size=2, lr=0.01, warmup_iterations=1,
                            checkpoint_every=1, log_every=1),
        input=InputConfig(min_size=[48], max_size=64),
        test=InferenceConfig(batch_size=1),
        detectron2=Detectron2Config(overrides={"MODEL.RESNETS.DEPTH": 18,
                                               "MODEL.RESNETS.RES2_OUT_CHANNELS": 64}))


def test_small_random_detectron2_detector_trains_resumes_and_predicts(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    manifest = write_manifest(tmp_path, "train")
    out = tmp_path / "det"
    checkpoint = train([manifest], out, tiny_config(2), "cpu", progress=False)
    assert checkpoint == out / "model_final.pth"
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert (out / "config.yaml").exists()
    card = read_card(out)
    assert (card["backend"], card["iterations"]) == ("detectron2", 2)

    caplog.clear()
    train([manifest], out, tiny_config(3), "cpu", progress=False)
    assert "iterations 2 -> 3" in caplog.text, "continues from the checkpoint, not from 0"
    assert read_card(out)["iterations"] == 3

    results_path = predict(checkpoint, manifest, tmp_path / "pred.json", tiny_config(3), "cpu")
    results = json.loads(results_path.read_text())
    assert all(r.keys() == {"image_id", "category_id", "bbox", "score"} for r in results)
    assert all(r["image_id"] in {1, 2, 3, 4} and 1 <= r["category_id"] <= 4 for r in results)
    assert 0.0 <= evaluate(manifest, results_path, CLASSES)["map50"] <= 1.0


def test_register_run_names_every_manifest(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    run = tmp_path / "demo"
    for split in ("source_train", "target_val"):
        write_manifest(run / "data", split)
    (run / "translated").mkdir()
    write_manifest(run / "translated", "annotations")
    registered = register_run(run)
    assert set(registered) == {"demo_source_train", "demo_target_val", "demo_translated_train"}
    records = DatasetCatalog.get("demo_translated_train")
    assert len(records) == 4 and records[0]["file_name"].startswith(str(run / "translated"))
    assert MetadataCatalog.get("demo_source_train").thing_classes == CLASSES
    register_run(run)  # idempotent: registering again replaces


DDP_SCRIPT = """
import sys, torch
import torch.distributed as dist
from pathlib import Path
sys.path.insert(0, {tests!r})
import detectron2.engine.defaults as defaults
from detection import train
from test_detection_detectron2 import tiny_config

models = []

class Recording(defaults.DistributedDataParallel):
    def __init__(self, module, *args, **kwargs):
        super().__init__(module, *args, **kwargs)
        models.append(module)

defaults.DistributedDataParallel = Recording
cfg = tiny_config({iterations})
cfg.solver.batch_size = 2
train([{manifest!r}], Path({out!r}), cfg, "cpu", progress=False)
state = torch.cat([p.detach().flatten() for p in models[0].parameters()])
gathered = [torch.zeros_like(state) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, state)
if dist.get_rank() == 0:
    print("IDENTICAL" if all(torch.equal(gathered[0], g) for g in gathered[1:]) else "DIVERGED")
"""


@pytest.mark.slow
def test_two_gloo_processes_train_one_detectron2_detector(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    manifest = write_manifest(tmp_path, "train")
    out = tmp_path / "detector"
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), manifest=str(manifest),
                                        out=str(out), iterations=2))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_port=29551", str(script)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IDENTICAL" in result.stdout
    card = json.loads((out / "detector.json").read_text())
    assert (card["backend"], card["iterations"]) == ("detectron2", 2)
    assert len(list(out.glob("events.out.tfevents.*"))) == 1, "only the main process logs"
