"""The train_detector stage's detectors trained side by side (detector.parallel)."""

from __future__ import annotations

import torch

from pipeline.cli import main
from tiny_run import data_section, detector_section

SETS = ("source_only", "oracle")


def _config(folder, tiny_data, name: str, parallel: int):
    text = (f"run: {{name: {name}, dir: {folder / 'runs'}, workers: 1, device: cpu, seed: 0, "
            "threads: 1}\n"
            + data_section(tiny_data.source_root, tiny_data.target_root)
            + detector_section(SETS) + f"  parallel: {parallel}\n")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def _weights(run_dir, train_set: str) -> dict[str, torch.Tensor]:
    path = run_dir / "detector" / train_set / "last.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"]


def test_detectors_trained_side_by_side_equal_those_trained_one_after_the_other(
        tmp_path, tiny_data, caplog):
    """With one thread each, two detectors trained at once in their own processes have exactly
    the weights of the same detectors trained in turn in the stage's process."""
    for name, parallel in (("seq", 1), ("par", 2)):
        config = _config(tmp_path, tiny_data, name, parallel)
        assert main(["run", str(config), "--only", "prepare,train_detector"]) == 0
    assert "training 2 detectors, 2 at a time with 1 thread(s) each" in caplog.text
    for train_set in SETS:
        one = _weights(tmp_path / "runs" / "seq", train_set)
        other = _weights(tmp_path / "runs" / "par", train_set)
        assert one.keys() == other.keys()
        assert all(torch.equal(one[k], other[k]) for k in one), train_set


def test_changing_parallel_retrains_nothing(tmp_path, tiny_data, caplog):
    config = _config(tmp_path, tiny_data, "p", 1)
    assert main(["run", str(config), "--only", "prepare,train_detector"]) == 0
    caplog.clear()
    assert main(["run", str(config), "--only", "train_detector", "detector.parallel=2"]) == 0
    assert "stage train_detector: up to date" in caplog.text
