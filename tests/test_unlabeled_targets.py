"""Targets without labels: ``data.target.labels: none | pseudo``, image folders of any layout,
pseudo-labelling rounds, evaluation without target labels, the ablation over the three modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline import ablation
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.context import StageError
from pipeline.formats import unlabeled
from pipeline.formats.common import DatasetError
from pipeline.runner import Runner
from pipeline.schema import ConfigError
from pipeline.stages.pseudo_label import pseudo_manifest
from tiny_run import write_tiny_run_config


@pytest.fixture
def config_path(tmp_path, tiny_data) -> Path:
    return write_tiny_run_config(tmp_path, tiny_data, name="unl")


# ------------------------------------------------------------------ config


def test_labels_default_to_boxes_and_the_oracle_needs_them(config_path):
    assert load_config(config_path).data.target.labels == "boxes"
    assert load_config(config_path).train_sets == ["source_only", "translated", "oracle"]
    for mode in ("none", "pseudo"):
        config = load_config(config_path, [f"data.target.labels={mode}"])
        assert config.train_sets == ["source_only", "translated"]
        assert config.detector.train_sets[-1] == "oracle"     # as configured, not used
    with pytest.raises(ConfigError, match="lists only oracle, which needs the target's own"):
        load_config(config_path, ["data.target.labels=none", "detector.train_sets=[oracle]"])


@pytest.mark.parametrize("override, message", [
    ("data.source.labels=none", "source.labels must be boxes"),
    ("data.target.labels=some", "labels"),
    ("data.target.format=folder", "format folder holds images without labels"),
    ("pseudo_labels.score_threshold=1.5", "score_threshold must be in"),
    ("pseudo_labels.rounds=0", "rounds must be >= 1"),
])
def test_bad_label_settings_are_refused(config_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_path, [override])


def test_pseudo_label_stage_exists_only_with_pseudo_labels(config_path):
    boxes = Runner(load_config(config_path))
    assert "pseudo_label" not in boxes.names
    with pytest.raises(StageError, match="runs only with data.target.labels: pseudo"):
        boxes.select(only=["pseudo_label"])
    pseudo = Runner(load_config(config_path, ["data.target.labels=pseudo"]))
    assert pseudo.names[:3] == ["prepare", "pseudo_label", "train_translator"]
    source_only = ["data.target.labels=pseudo", "pseudo_labels.detector=source_only"]
    one = load_config(config_path, source_only)
    two = load_config(config_path, [*source_only, "pseudo_labels.rounds=2"])
    unlabeled = load_config(config_path, ["data.target.labels=pseudo",
                                          "pseudo_labels.detector=translated_unlabeled"])
    given = load_config(config_path, ["data.target.labels=pseudo",
                                      "pseudo_labels.checkpoint=x.pt"])
    stage = pseudo.stages[1]
    assert "translator" not in stage.keys(one) and "translator" in stage.keys(two)
    assert {"translator", "data.target.unlabeled_rule"} <= set(stage.keys(unlabeled))
    assert "translator" not in stage.keys(given)


# ------------------------------------------------------------------ reading images only


def test_image_folders_of_every_layout(tmp_path, make_png):
    flat = tmp_path / "flat"
    for name in ("a.png", "b/c.jpg", "b/d.JPEG", "e.png", ".hidden.png", "notes.txt"):
        (flat / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("txt"):
            (flat / name).write_text("x")
        else:
            make_png(flat / name)
    train = unlabeled.list_split("folder", flat, "train", val_fraction=0.25, split_seed=1)
    val = unlabeled.list_split("folder", flat, "val", val_fraction=0.25, split_seed=1)
    assert len(val) == 1 and len(train) == 3
    assert sorted(p.relative_to(flat).as_posix() for p in train + val) == \
        ["a.png", "b/c.jpg", "b/d.JPEG", "e.png"]
    assert unlabeled.list_split("folder", flat, "val", val_fraction=0.25, split_seed=1) == val

    split = tmp_path / "split"
    for name in ("train/x/1.png", "train/2.png", "val/3.png"):
        make_png(split / name)
    assert [p.name for p in unlabeled.list_split("folder", split, "train")] == ["2.png", "1.png"]
    assert [p.name for p in unlabeled.list_split("folder", split, "val")] == ["3.png"]
    assert not unlabeled.has_labels("folder", split, "val")

    city = tmp_path / "city"
    make_png(city / "leftImg8bit/train/bonn/bonn_000000_000019_leftImg8bit.png")
    make_png(city / "leftImg8bit/train/bonn/stray.png")
    paths = unlabeled.list_split("cityscapes", city, "train")
    assert [p.name for p in paths] == ["bonn_000000_000019_leftImg8bit.png"]
    assert not unlabeled.has_labels("cityscapes", city, "train")
    (city / "gtFine/val").mkdir(parents=True)
    assert unlabeled.has_labels("cityscapes", city, "val")

    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [{"file_name": "e.png"}, {"file_name": "a.png"}]}))
    assert unlabeled.list_split("coco", flat, "train", annotations=str(coco)) == \
        [flat / "e.png", flat / "a.png"]
    assert not unlabeled.has_labels("coco", flat, "train", str(coco))
    records = list(unlabeled.read_images([flat / "e.png"], flat))
    assert (records[0].file_name, records[0].width, records[0].height, records[0].boxes) == \
        ("e.png", 64, 48, [])

    with pytest.raises(DatasetError, match=r"leftImg8bit/val: holds no images"):
        unlabeled.list_split("cityscapes", city, "val")
    coco.write_text(json.dumps({"images": [{"id": 1}]}))
    with pytest.raises(DatasetError, match="needs an 'images' list of entries with a 'file_name'"):
        unlabeled.list_split("coco", flat, "train", annotations=str(coco))


def test_prepare_without_target_labels_never_opens_the_training_labels(tmp_path, tiny_data):
    """With labels none, target_train is its images only (a corrupt polygons file there is not
    read), target_val keeps its boxes; with boxes the same file is an error."""
    target = tmp_path / "target"
    shutil.copytree(tiny_data.target_root, target)
    polygons = sorted((target / "gtFine" / "train").rglob("*_polygons.json"))[0]
    polygons.write_text("{ not json")
    config = write_tiny_run_config(tmp_path, tiny_data, name="prep")
    overrides = [f"data.target.root={target}"]
    assert main(["run", str(config), *overrides, "--only", "prepare"]) == 1
    assert main(["run", str(config), *overrides, "data.target.labels=none",
                 "--only", "prepare"]) == 0
    data = tmp_path / "runs" / "prep" / "data"
    train = json.loads((data / "target_train.json").read_text())
    val = json.loads((data / "target_val.json").read_text())
    assert len(train["images"]) == 6 and train["annotations"] == []
    assert train["info"]["labeled"] is False and "labeled" not in val["info"]
    assert val["annotations"]
    summary = json.loads((data / "summary.json").read_text())
    assert summary["splits"]["target_train"]["labeled"] is False


# ------------------------------------------------------------------ pseudo labels


def test_pseudo_manifest_keeps_detections_at_or_above_the_threshold():
    manifest = {"info": {"image_root": "/data", "labeled": False},
                "images": [{"id": 1}, {"id": 2}],
                "annotations": [], "categories": [{"id": 1, "name": "car"}]}
    detections = [{"image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
                  {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.3},
                  {"image_id": 1, "category_id": 1, "bbox": [2, 2, 2, 2], "score": 0.5}]
    document = pseudo_manifest(manifest, detections, 0.5, {"round": 1})
    assert document["annotations"] == [
        {"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12,
         "iscrowd": 0, "score": 0.9},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2, 2, 2, 2], "area": 4,
         "iscrowd": 0, "score": 0.5}]
    assert document["info"] == {"image_root": "/data", "labeled": True,
                                "pseudo_labels": {"round": 1}}
    assert manifest["annotations"] == [] and document["images"] == manifest["images"]


@pytest.mark.slow
def test_pseudo_labels_two_rounds_end_to_end(tmp_path, tiny_data, caplog):
    """labels pseudo, two rounds, small random networks: the source-only detector labels round 1
    and is reused by train_detector; round 1's translator, translation and detector live in
    pseudo_round1/ and its detector labels round 2, which the run's translator trains on; no
    oracle; the report shows the pseudo boxes; a rerun does nothing."""
    config = write_tiny_run_config(tmp_path, tiny_data, name="pl")
    args = ["run", str(config), "data.target.labels=pseudo", "pseudo_labels.rounds=2",
            "pseudo_labels.detector=source_only", "pseudo_labels.score_threshold=0.0",
            "--to", "report"]
    assert main(args) == 0
    run = tmp_path / "runs" / "pl"
    state = json.loads((run / "state.json").read_text())
    assert state["order"][:3] == ["prepare", "pseudo_label", "train_translator"]
    final = json.loads((run / "data" / "target_train.pseudo.json").read_text())
    first = json.loads((run / "pseudo_round1" / "data" / "target_train.pseudo.json").read_text())
    assert first["info"]["pseudo_labels"]["origin"] == "source_only"
    assert final["info"]["pseudo_labels"]["round"] == 2
    assert final["info"]["pseudo_labels"]["origin"] == "translated detector of round 1"
    assert final["info"]["pseudo_labels"]["detector"].startswith(
        str(run / "pseudo_round1" / "detector" / "translated"))
    threshold = load_config(config).detector.test.score_threshold
    assert all(a["score"] >= threshold for a in first["annotations"] + final["annotations"])
    for path in ("translator/checkpoints/last.pt", "translated/annotations.json",
                 "detector/translated/detector.json"):
        assert (run / "pseudo_round1" / path).is_file(), path
    assert "source_only: already trained" in caplog.text.replace(
        str(run / "detector") + "/", "")
    assert sorted(p.name for p in (run / "detector").iterdir()) == ["source_only", "translated"]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert list(metrics["detectors"]) == ["source_only", "translated"]
    page = (run / "report" / "index.html").read_text()
    assert "target_train, pseudo labels (score &gt;= 0.0)" in page
    assert "pseudo: boxes of source_only scoring &gt;= 0.0, 2 round(s)" in page
    caplog.clear()
    assert main(args) == 0
    assert "running" not in caplog.text


@pytest.mark.slow
def test_plain_image_folder_target_runs_through_the_report(tmp_path, tiny_data):
    """A target that is a plain folder of images: the translator trains without target masks,
    evaluate says it cannot score (no labels anywhere) and the report shows the translation."""
    folder = tmp_path / "target_images"
    for split in ("train", "val"):
        for image in (tiny_data.target_root / "leftImg8bit" / split).rglob("*.png"):
            (folder / split).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, folder / split / image.name)
    config = write_tiny_run_config(tmp_path, tiny_data, name="fold")
    assert main(["run", str(config), "data.target.format=folder", f"data.target.root={folder}",
                 "data.target.labels=none", "--to", "report"]) == 0
    run = tmp_path / "runs" / "fold"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["detectors"] == {} and "target_val has no labels" in metrics["skipped"]
    assert "cannot be scored" in (run / "eval" / "table.md").read_text()
    assert not (run / "eval" / "predictions").exists()
    translation = json.loads((run / "eval" / "translation.json").read_text())
    assert translation["style_distance"]["mean"]["translated"] is None
    page = (run / "report" / "index.html").read_text()
    assert "Detection not evaluated" in page and "none: the target side of the memory" in page
    import torch

    last = run / "translator" / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    from mguit.data import records_fingerprint
    from detection.manifest import load_manifest
    from pipeline.stages.train_translator import box_images

    records = [box_images(load_manifest(run / "data" / f"{s}.json"))
               for s in ("source_train", "target_train")]
    assert checkpoint["data"] == records_fingerprint(*records, target_labeled=False,
                                                     unlabeled_target="single")


@pytest.mark.slow
def test_pseudo_labels_from_a_translation_without_target_labels(tmp_path, tiny_data):
    """The translated_unlabeled first labeller: a translator trained without target labels
    (its checkpoint records the unlabeled target and its rule), its translation, a detector on
    it, in pseudo_unlabeled/; no source-only detector is trained for the labels."""
    import torch

    from detection.manifest import load_manifest
    from mguit.data import records_fingerprint
    from pipeline.stages.train_translator import box_images

    config = write_tiny_run_config(tmp_path, tiny_data, name="tu")
    assert main(["run", str(config), "data.target.labels=pseudo",
                 "pseudo_labels.detector=translated_unlabeled",
                 "data.target.unlabeled_rule=values",
                 "pseudo_labels.score_threshold=0.0", "detector.train_sets=[translated]",
                 "--to", "pseudo_label"]) == 0
    run = tmp_path / "runs" / "tu"
    labels = json.loads((run / "data" / "target_train.pseudo.json").read_text())
    assert labels["info"]["pseudo_labels"]["origin"] == "translated_unlabeled"
    assert labels["info"]["pseudo_labels"]["detector"].startswith(
        str(run / "pseudo_unlabeled" / "detector" / "translated"))
    assert not (run / "detector").exists()
    last = run / "pseudo_unlabeled" / "translator" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    records = [box_images(load_manifest(run / "data" / f"{s}.json"))
               for s in ("source_train", "target_train")]
    assert state["data"] == records_fingerprint(*records, target_labeled=False,
                                                unlabeled_target="values")


# ------------------------------------------------------------------ ablation


def test_ablation_configs_per_label_mode(config_path, tmp_path):
    variant = ablation.VARIANTS[3]
    boxes = ablation.variant_config(config_path, [], variant, "demo", 1, "boxes")
    assert boxes.run.name == "demo_cm_cl_s1" and boxes.data.target.labels == "boxes"
    pseudo = ablation.variant_config(config_path, [], variant, "demo", 1, "pseudo",
                                     tmp_path / "so.pt")
    assert pseudo.run.name == "demo_cm_cl_pseudo_s1"
    assert pseudo.pseudo_labels.checkpoint == str(tmp_path / "so.pt")
    two = ablation.variant_config(config_path, ["pseudo_labels.rounds=2"], variant, "demo", 1,
                                  "pseudo")
    assert two.run.name == "demo_cm_cl_pseudo2_s1" and two.pseudo_labels.rounds == 2
    none = ablation.variant_config(config_path, [], variant, "demo", 1, "none", tmp_path / "x")
    assert none.run.name == "demo_cm_cl_none_s1" and none.pseudo_labels.checkpoint is None
    reference = ablation.reference_config(config_path, ["data.target.labels=none"], "demo", 1,
                                          "boxes")
    assert reference.train_sets == ["source_only", "colour_transfer", "fda", "oracle"]
    assert ablation.reference_config(config_path, ["data.target.labels=none"], "demo",
                                     1).train_sets == ["source_only", "colour_transfer", "fda"]


def test_unknown_label_mode_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablate", str(tmp_path / "x.yaml"), "--labels", "boxes,maybe"])
    assert exc.value.code == 2
    assert "unknown --labels mode(s) maybe" in capsys.readouterr().err


@pytest.mark.slow
def test_ablate_covers_the_three_label_modes(tmp_path, tiny_data):
    """One variant, the three modes, one seed: the reference keeps the oracle (boxes is among the
    modes), the pseudo run labels with the none run's detector (translated_unlabeled, trained
    there already), the table has a row per mode with a gap for each; with source_only the
    reference's source-only detector labels."""
    config = write_tiny_run_config(tmp_path, tiny_data, name="abl")
    assert main(["ablate", str(config), "--variants", "cm_cl", "--labels", "pseudo,boxes,none",
                 "--seeds", "0", "pseudo_labels.detector=translated_unlabeled"]) == 0
    result = json.loads((tmp_path / "runs" / "abl_ablation" / "ablation.json").read_text())
    assert list(result["variants"]) == ["cm_cl", "cm_cl_none", "cm_cl_pseudo"]
    assert [v["labels"] for v in result["variants"].values()] == ["boxes", "none", "pseudo"]
    assert set(result["reference"]["0"]) == {"source_only", "colour_transfer", "fda", "oracle"}
    for row in result["variants"].values():
        assert row["seeds"]["0"]["gap_recovered"] is not None or \
            row["seeds"]["0"]["gap_map50"] is None
    pseudo = json.loads((tmp_path / "runs" / "abl_cm_cl_pseudo_s0" / "data" /
                         "target_train.pseudo.json").read_text())
    assert pseudo["info"]["pseudo_labels"]["detector"].startswith(
        str(tmp_path / "runs" / "abl_cm_cl_none_s0" / "detector" / "translated"))
    assert not (tmp_path / "runs" / "abl_cm_cl_pseudo_s0" / "pseudo_unlabeled").exists()
    assert main(["ablate", str(config), "--variants", "cm_cl", "--labels", "pseudo", "--seeds",
                 "0"]) == 0
    pseudo = json.loads((tmp_path / "runs" / "abl_cm_cl_pseudo_s0" / "data" /
                         "target_train.pseudo.json").read_text())
    assert pseudo["info"]["pseudo_labels"]["detector"].startswith(
        str(tmp_path / "runs" / "abl_reference_s0" / "detector" / "source_only"))
    table = (tmp_path / "runs" / "abl_ablation" / "ablation.md").read_text()
    assert "| **cm_cl_pseudo: class-aware memory + contrastive loss, target labels: pseudo** |" \
        in table


def test_a_folder_target_follows_symlinked_subfolders_and_refuses_one_frame_twice(
        tmp_path, make_png):
    elsewhere = tmp_path / "elsewhere"
    make_png(elsewhere / "b.png")
    flat = tmp_path / "flat"
    make_png(flat / "a.png")
    (flat / "more").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(flat, target_is_directory=True)     # walked once
    both = unlabeled.list_split("folder", flat, "train", val_fraction=0.5) \
        + unlabeled.list_split("folder", flat, "val", val_fraction=0.5)
    assert sorted(p.relative_to(flat).as_posix() for p in both) == ["a.png", "more/b.png"]
    make_png(flat / "a.jpg")
    with pytest.raises(DatasetError, match=r"a\.png: frame 'a' has two images \(a\.jpg and a\.png\)"):
        unlabeled.list_split("folder", flat, "train")
