"""Detection: evaluation against known answers, bad input, the torchvision backend with small
randomly initialised networks, and the train_detector / evaluate stages."""

from __future__ import annotations

import ast
import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from detection import DetectionError, DetectorConfig, evaluate, predict, read_card, train
from detection.api import resolve_backend
from detection.config import InferenceConfig, InputConfig, ModelConfig, SolverConfig, \
    TorchvisionConfig
from detection.data import IterationBatchSampler, ManifestDataset
from detection.manifest import check_trainable, load_manifest
from detection.registry import register_run
from pipeline import synthetic
from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from pipeline.stages.evaluate import format_table
from tiny_detection import CLASSES, perfect_results, write_manifest
from tiny_run import data_section, detector_section

# ---------------------------------------------------------------------------------- evaluation


def test_perfect_predictions_give_ap_1_per_class(tmp_path):
    gt = write_manifest(tmp_path, "val")
    metrics = evaluate(gt, perfect_results(gt), CLASSES)
    assert metrics["ap50"] == {c: pytest.approx(1.0) for c in CLASSES}
    assert metrics["map50"] == pytest.approx(1.0)
    assert metrics["ap"] == pytest.approx(1.0)
    assert metrics["images"] == 4
    assert metrics["boxes"] == {"person": 2, "car": 2, "truck": 1, "bicycle": 1, "total": 6}


def test_no_predictions_give_ap_0(tmp_path):
    gt = write_manifest(tmp_path, "val")
    metrics = evaluate(gt, [], CLASSES)
    assert metrics["ap50"] == dict.fromkeys(CLASSES, 0.0)
    assert metrics["map50"] == 0.0 and metrics["ap"] == 0.0
    results = tmp_path / "empty.json"
    results.write_text("[]")
    assert evaluate(gt, results, CLASSES)["map50"] == 0.0


def test_hand_built_case_has_the_hand_computed_ap(tmp_path):
    """Two persons; detections by score: hit, false alarm, hit. Precision 1 up to recall 0.5,
    then 2/3 up to recall 1; on COCO's 101 recall points that is (51 * 1 + 50 * 2/3) / 101.
    The car is found perfectly, the truck and bicycle have no boxes (no AP, not in the mAP)."""
    gt = write_manifest(tmp_path, "val", boxes=[[(1, 2, 2, 10, 20), (1, 40, 4, 10, 20)],
                                                [(2, 10, 10, 30, 20)]])
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 20], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [20, 25, 10, 20], "score": 0.8},
        {"image_id": 1, "category_id": 1, "bbox": [40, 4, 10, 20], "score": 0.7},
        {"image_id": 2, "category_id": 2, "bbox": [10, 10, 30, 20], "score": 0.6},
        # IoU 0.6 with the car: a hit at 0.5, a miss from 0.65 up.
        {"image_id": 2, "category_id": 2, "bbox": [10, 10, 30, 12], "score": 0.95},
    ]
    metrics = evaluate(gt, results, CLASSES)
    person = (51 + 50 * 2 / 3) / 101
    assert metrics["ap50"]["person"] == pytest.approx(person)
    assert metrics["ap50"]["truck"] is None and metrics["ap50"]["bicycle"] is None
    # The car's first detection (IoU 0.6) is a hit at 0.5: precision 1 at full recall.
    assert metrics["ap50"]["car"] == pytest.approx(1.0)
    assert metrics["map50"] == pytest.approx((person + 1.0) / 2)
    assert metrics["detections"] == 5


def test_evaluation_rejects_results_of_another_dataset(tmp_path):
    gt = write_manifest(tmp_path, "val")
    bad = [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(DetectionError, match="image_id 99, which is not in the ground-truth"):
        evaluate(gt, bad, CLASSES)
    bad = [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(DetectionError, match="category_id 7, not one of 1..4"):
        evaluate(gt, bad, CLASSES)


# ---------------------------------------------------------------------------------- bad input


def test_class_list_that_does_not_match_the_manifest(tmp_path):
    gt = write_manifest(tmp_path, "val")
    with pytest.raises(DetectionError, match=r"val.json: its categories .* do not match the "
                                             r"classes \['car', 'person', 'truck', 'bicycle'\]"):
        evaluate(gt, [], ["car", "person", "truck", "bicycle"])
    with pytest.raises(DetectionError, match="do not match the classes"):
        train([gt], tmp_path / "out", tiny_config(), "cpu", classes=["person", "car"])


def test_empty_split_and_missing_class_and_no_boxes(tmp_path):
    empty = write_manifest(tmp_path, "empty", boxes=[])
    with pytest.raises(DetectionError, match="empty.json: the split is empty"):
        train([empty], tmp_path / "out", tiny_config(), "cpu")
    no_truck = write_manifest(tmp_path, "no_truck", boxes=[[(1, 2, 2, 9, 9), (2, 20, 20, 9, 9)],
                                                            [(4, 2, 2, 9, 9)]])
    with pytest.raises(DetectionError, match="no_truck.json: no boxes of class 'truck'; a "
                                             "detector trained on it cannot learn that class"):
        train([no_truck], tmp_path / "out", tiny_config(), "cpu")
    assert check_trainable(load_manifest(no_truck), "warn") == ["truck"]
    nothing = write_manifest(tmp_path, "nothing", boxes=[[], []])
    with pytest.raises(DetectionError, match="nothing.json: no boxes in 2 images"):
        train([nothing], tmp_path / "out", tiny_config(), "cpu")
    with pytest.raises(DetectionError, match="predict on"):
        predict(nothing, empty, tmp_path / "p.json", tiny_config())


def test_unknown_backend_name(tmp_path):
    with pytest.raises(DetectionError, match="unknown detector backend 'detectrn2'; did you "
                                             "mean 'detectron2'"):
        resolve_backend("detectrn2")
    cfg = tiny_config()
    cfg.backend = "torchvison"
    with pytest.raises(DetectionError, match="did you mean 'torchvision'"):
        train([write_manifest(tmp_path, "train")], tmp_path / "out", cfg, "cpu")
    config = write_tiny_experiment(tmp_path, tmp_path / "unused", tmp_path / "unused")
    with pytest.raises(ConfigError, match="override detector.backend: 'torchvison' is not one "
                                          "of .*; did you mean 'torchvision'"):
        load_config(config, ["detector.backend=torchvison"])


def test_detectron2_requested_but_not_installed(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "detectron2", None)  # makes `import detectron2` fail
    message = ("Detectron2 is not installed; install it following "
               "https://detectron2.readthedocs.io/en/latest/tutorials/install.html or set "
               "detector.backend: torchvision")
    with pytest.raises(DetectionError, match=message):
        resolve_backend("detectron2")
    with pytest.raises(DetectionError, match="Detectron2 is not installed"):
        register_run(tmp_path)
    with caplog.at_level(logging.INFO, logger="detection"):
        assert resolve_backend("auto") == "torchvision"
    assert "Detectron2 is not installed, using torchvision" in caplog.text


def test_missing_weights_file(tmp_path):
    cfg = tiny_config()
    cfg.weights = str(tmp_path / "resnet18.pth")
    with pytest.raises(DetectionError, match="resnet18.pth: detector.weights does not exist"):
        train([write_manifest(tmp_path, "train")], tmp_path / "out", cfg, "cpu")


def test_detection_never_imports_the_pipeline_or_the_translator():
    for path in (Path(__file__).parents[1] / "detection").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("pipeline", "mguit")], path


# ---------------------------------------------------------------------------------- data


def test_dataset_converts_boxes_and_flips(tmp_path):
    dataset = ManifestDataset([write_manifest(tmp_path, "train")], CLASSES)
    image, target = dataset[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert target["boxes"].tolist() == [[4, 6, 14, 26], [30, 20, 54, 34]]
    assert target["labels"].tolist() == [1, 2]
    flipped, target = dataset[(0, True)]
    assert torch.equal(flipped, image.flip(-1))
    assert target["boxes"].tolist() == [[50, 6, 60, 26], [10, 20, 34, 34]]
    _, empty = dataset[3]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_training_order_is_a_function_of_the_iteration():
    full = list(IterationBatchSampler(5, 3, seed=1, start=0, end=4))
    assert list(IterationBatchSampler(5, 3, seed=1, start=2, end=4)) == full[2:]
    first_epoch = [i for batch in full for i, _ in batch][:5]
    assert sorted(first_epoch) == list(range(5))


# ---------------------------------------------------------------------------------- torchvision


def tiny_config(iterations: int = 2) -> DetectorConfig:
    """A small randomly initialised ResNet18-FPN Faster R-CNN on 48-pixel images."""
    return DetectorConfig(
        backend="torchvision", num_workers=0,
        model=ModelConfig(anchor_sizes=[8, 16, 32, 64, 128], fpn_channels=16, box_head_dim=32,
                          roi_batch_size_per_image=32),
        solver=SolverConfig(iterations=iterations, batch_size=2, lr=0.01, warmup_iterations=1,
                            checkpoint_every=2, keep_snapshots=False, log_every=1),
        input=InputConfig(min_size=[48], max_size=64),
        test=InferenceConfig(batch_size=2),
        torchvision=TorchvisionConfig(backbone="resnet18_fpn"))


def test_small_random_torchvision_detector_trains_resumes_and_predicts(tmp_path):
    manifest = write_manifest(tmp_path, "train")
    cfg = tiny_config(2)
    cfg.solver.keep_snapshots = True
    straight = train([manifest], tmp_path / "straight", cfg, "cpu", progress=False)
    assert straight == tmp_path / "straight" / "last.pt"
    card = read_card(tmp_path / "straight")
    assert (card["backend"], card["iterations"], card["images"]) == ("torchvision", 2, 4)
    assert (tmp_path / "straight" / "model_0000002.pt").exists(), "snapshot at each checkpoint"
    assert list((tmp_path / "straight" / "tensorboard").iterdir())

    # Interrupted after 1 iteration, then continued: the same weights as without interruption.
    train([manifest], tmp_path / "resumed", tiny_config(1), "cpu", progress=False)
    resumed = train([manifest], tmp_path / "resumed", tiny_config(2), "cpu", progress=False)
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert b["iteration"] == 2
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key

    out = predict(straight, manifest, tmp_path / "pred.json", tiny_config(), "cpu",
                  progress=False)
    results = json.loads(out.read_text())
    assert all(r.keys() == {"image_id", "category_id", "bbox", "score"} for r in results)
    assert all(r["image_id"] in {1, 2, 3, 4} and 1 <= r["category_id"] <= 4 for r in results)
    assert all(r["score"] >= 0.05 for r in results)
    metrics = evaluate(manifest, out, CLASSES)
    assert 0.0 <= metrics["map50"] <= 1.0


def test_backbone_weights_come_from_a_local_file(tmp_path, caplog):
    import torchvision

    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18(weights=None)  # stands in for ImageNet weights
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    cfg = tiny_config(1)
    cfg.weights = str(tmp_path / "resnet18.pth")
    with caplog.at_level(logging.INFO, logger="detection"):
        checkpoint = train([write_manifest(tmp_path, "train")], tmp_path / "det", cfg, "cpu",
                           progress=False)
    assert f"backbone initialised from {cfg.weights}" in caplog.text
    assert "random weights" not in caplog.text
    state = torch.load(checkpoint, weights_only=True)
    # torchvision's rule with pretrained weights: frozen stem and layer1, frozen batch norm.
    assert torch.equal(state["model"]["backbone.body.conv1.weight"], imagenet.conv1.weight)
    assert state["arch"]["frozen_bn"] and state["arch"]["trainable_layers"] == 3

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    cfg.weights = str(tmp_path / "other.pth")
    with pytest.raises(DetectionError, match="other.pth: not ImageNet weights of this ResNet"):
        train([write_manifest(tmp_path, "train")], tmp_path / "det2", cfg, "cpu",
              progress=False)


def test_finished_training_is_not_repeated_and_other_settings_are_refused(tmp_path, caplog):
    manifest = write_manifest(tmp_path, "train")
    out = tmp_path / "det"
    train([manifest], out, tiny_config(1), "cpu", progress=False)
    before = (out / "last.pt").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="detection"):
        train([manifest], out, tiny_config(1), "cpu", progress=False)
    assert "already trained for 1 iterations" in caplog.text
    assert (out / "last.pt").stat().st_mtime_ns == before
    other = tiny_config(1)
    other.solver.lr = 0.02
    with pytest.raises(DetectionError, match=r"other settings or data \(solver.lr: 0.01 -> "
                                             r"0.02\)"):
        train([manifest], out, other, "cpu", progress=False)
    train([manifest], out, other, "cpu", progress=False, on_change="restart")
    assert json.loads((out / "settings.json").read_text())["solver"]["lr"] == 0.02


# ---------------------------------------------------------------------------------- stages


def write_tiny_experiment(tmp_path, source_root, target_root,
                          train_sets=("source_only", "oracle")):
    text = textwrap.dedent(f"""\
        run: {{name: t, dir: {tmp_path / 'runs'}, workers: 1, device: cpu}}
        """) + data_section(source_root, target_root, 0.25) + detector_section(train_sets)
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_street(tmp_path_factory) -> synthetic.SyntheticDataset:
    return synthetic.generate(tmp_path_factory.mktemp("synthetic"), seed=5, width=96, height=48,
                              num_source=8, num_target_train=6, num_target_val=4,
                              progress=False)


def test_stages_train_detectors_and_write_a_table_3_shaped_report(tmp_path, tiny_street,
                                                                    caplog):
    config = write_tiny_experiment(tmp_path, tiny_street.source_root, tiny_street.target_root)
    assert main(["run", str(config), "--only", "prepare,train_detector,evaluate"]) == 0
    run_dir = tmp_path / "runs" / "t"
    for train_set in ("source_only", "oracle"):
        assert read_card(run_dir / "detector" / train_set)["iterations"] == 2
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "target_val" and metrics["classes"] == CLASSES
    assert metrics["images"] == 4 and metrics["boxes"]["total"] > 0
    assert set(metrics["detectors"]) == {"source_only", "oracle"}
    oracle = metrics["detectors"]["oracle"]
    assert oracle["backend"] == "torchvision" and oracle["iterations"] == 2
    assert set(oracle["ap50"]) == set(CLASSES) and "map50" in oracle and "ap" in oracle
    assert (run_dir / oracle["predictions"]).exists()
    table = (run_dir / "eval" / "table.md").read_text()
    assert "| Oracle (target train), this run |" in table
    assert "| *MGUIT (Ours), quoted from the paper* | *58.3* | *68.2* | *33.4* | *58.4* | " \
           "*54.6* |" in table
    assert "quoted from Jeong et al., CVPR 2021, Table 3" in table
    assert "Source only, this run" in caplog.text, "the table is printed to the log"

    # Unchanged: both stages are skipped. The translated set needs the translate stage.
    assert main(["run", str(config), "--only", "train_detector,evaluate"]) == 0
    assert "stage train_detector: up to date" in caplog.text
    caplog.clear()
    assert main(["run", str(config), "--only", "train_detector",
                 "detector.train_sets=[translated]"]) == 1
    assert f"stage train_detector needs {run_dir / 'translated' / 'annotations.json'}, which " \
           "stage translate makes: run it first (pipeline run CONFIG --only translate)" \
           in caplog.text


def test_table_marks_quoted_rows_and_handles_other_classes():
    detector = {"backend": "torchvision", "iterations": 10, "map50": 0.5, "ap": 0.2,
                "ap50": {"person": 0.5, "car": 0.5}}
    metrics = {"split": "target_val", "run": "x", "images": 3, "boxes": {"total": 7},
               "classes": ["person", "car"], "detectors": {"translated": detector}}
    table = format_table(metrics)
    assert "| Translated (MGUIT), this run | 50.0 | 50.0 | 50.0 | 20.0 | 10 |" in table
    # Only the paper's columns for these classes; its mAP is over four classes, so not shown.
    assert "| *DT [14], quoted from the paper* | *28.5* | *40.7* | – | – | – |" in table


def test_write_bytes_streams_chunks_and_leaves_nothing_when_cut(tmp_path):
    from detection.manifest import write_bytes

    path = tmp_path / "lines.jsonl"
    write_bytes(path, (f"{i}\n".encode() for i in range(1000)))
    assert path.read_bytes() == b"".join(f"{i}\n".encode() for i in range(1000))

    def cut():
        yield b"first\n"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        write_bytes(path, cut())
    assert path.read_bytes().startswith(b"0\n1\n"), "the old file stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["lines.jsonl"], "no temporary left"
