"""``pipeline export``: a set of a run as COCO, YOLO, VOC or KITTI through FiftyOne's exporters,
written whole or not at all (real FiftyOne database in a temporary folder: ``fiftyone_db``)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

CLASSES = ["person", "car", "truck", "bicycle"]


def manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def lines(files: list[Path]) -> list[str]:
    return [line for f in files for line in f.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run_dir(tiny_run, fiftyone_db) -> Path:
    return tiny_run[1]


@pytest.fixture(scope="module")
def translated(run_dir) -> dict:
    return manifest(run_dir / "translated" / "annotations.json")


def export(run_dir: Path, set_name: str, fmt: str, out: Path, *extra: str) -> int:
    return main(["export", str(run_dir), "--set", set_name, "--format", fmt, "--out", str(out),
                 *extra])


def test_coco(run_dir, translated, tmp_path):
    assert export(run_dir, "translated", "coco", tmp_path / "out") == 0
    labels = manifest(tmp_path / "out" / "labels.json")
    assert labels["categories"] == [{"id": i, "name": c, "supercategory": None}
                                    for i, c in enumerate(CLASSES, start=1)]
    assert len(labels["images"]) == len(translated["images"])
    assert len(labels["annotations"]) == len(translated["annotations"])
    # same category of every box, as in the run's manifest (ids 1..K in both)
    assert Counter(a["category_id"] for a in labels["annotations"]) == \
        Counter(a["category_id"] for a in translated["annotations"])
    assert len(list((tmp_path / "out" / "data").iterdir())) == len(translated["images"])


def test_yolo(run_dir, translated, tmp_path):
    assert export(run_dir, "translated", "yolo", tmp_path / "out") == 0
    labels = sorted((tmp_path / "out" / "labels" / "train").glob("*.txt"))
    assert len(labels) == len(translated["images"])
    assert len(lines(labels)) == len(translated["annotations"])
    assert len(list((tmp_path / "out" / "images" / "train").iterdir())) == len(labels)
    spec = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert spec["names"] == dict(enumerate(CLASSES))
    assert "path" not in spec                  # relative to the YAML: the folder can move


def test_voc(run_dir, translated, tmp_path):
    assert export(run_dir, "translated", "voc", tmp_path / "out") == 0
    xml = sorted((tmp_path / "out" / "labels").glob("*.xml"))
    assert len(xml) == len(translated["images"])
    assert sum(f.read_text().count("<object>") for f in xml) == len(translated["annotations"])
    assert str(tmp_path) not in "".join(f.read_text() for f in xml)


def test_kitti(run_dir, tmp_path):
    target = manifest(run_dir / "data" / "target_val.json")
    assert export(run_dir, "target_val", "kitti", tmp_path / "out") == 0
    labels = sorted((tmp_path / "out" / "labels").glob("*.txt"))
    assert len(labels) == len(target["images"])
    rows = [line.split() for line in lines(labels)]
    assert len(rows) == len(target["annotations"])
    assert {r[0] for r in rows} <= set(CLASSES) and all(len(r) == 15 for r in rows)


def test_val_set_goes_to_the_yolo_val_split(run_dir, tmp_path):
    assert export(run_dir, "source_val", "yolo", tmp_path / "out") == 0
    spec = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert spec["val"] == "./images/val/" and "train" not in spec


def test_non_empty_out_is_refused_unless_overwrite(run_dir, tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert export(run_dir, "source_val", "kitti", out) == 1
    assert "not empty" in caplog.text and (out / "mine.txt").read_text() == "keep"
    assert export(run_dir, "source_val", "kitti", out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["data", "labels"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]   # no temporary folders left


def test_overwrite_never_replaces_the_run_itself(tiny_run, fiftyone_db, tmp_path, caplog):
    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run[1] / "data", run_dir / "data")
    shutil.copy2(tiny_run[1] / "config.resolved.yaml", run_dir)
    assert export(run_dir, "source_val", "coco", run_dir, "--overwrite") == 1
    assert "belongs to the run" in caplog.text and (run_dir / "data").is_dir()


def test_failed_export_leaves_no_partial_folder(run_dir, tmp_path, monkeypatch, caplog):
    import fiftyone.core.collections as foc

    def failing_export(self, export_dir=None, **kwargs):
        Path(export_dir, "data").mkdir(parents=True)       # some output, then a failure
        raise OSError("disk full")

    monkeypatch.setattr(foc.SampleCollection, "export", failing_export)
    assert export(run_dir, "translated", "coco", tmp_path / "out") == 1
    assert "disk full" in caplog.text and "Traceback" not in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_missing_translated_set_is_explained(tiny_run, fiftyone_db, tmp_path, caplog):
    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run[1] / "data", run_dir / "data")
    shutil.copy2(tiny_run[1] / "config.resolved.yaml", run_dir)
    assert export(run_dir, "translated", "yolo", tmp_path / "out") == 1
    assert "annotations.json: missing" in caplog.text and not (tmp_path / "out").exists()


def test_pseudo_labelled_target_set(run_dir, tmp_path, caplog):
    """target_train_pseudo exports data/target_train.pseudo.json; a run without it says how it
    is made."""
    from pipeline.stages.pseudo_label import pseudo_manifest

    assert export(run_dir, "target_train_pseudo", "coco", tmp_path / "none") == 1
    assert "pseudo labels come from a run with data.target.labels: pseudo" in caplog.text
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    target = manifest(copy / "data" / "target_train.json")
    first = target["images"][0]
    detections = [{"image_id": first["id"], "category_id": 2, "bbox": [1, 2, 10, 8],
                   "score": 0.8},
                  {"image_id": first["id"], "category_id": 1, "bbox": [3, 3, 5, 5],
                   "score": 0.1}]
    (copy / "data" / "target_train.pseudo.json").write_text(json.dumps(
        pseudo_manifest({**target, "annotations": []}, detections, 0.5, {"round": 1})))
    assert export(copy, "target_train_pseudo", "coco", tmp_path / "out") == 0
    labels = manifest(tmp_path / "out" / "labels.json")
    assert len(labels["images"]) == len(target["images"])
    assert [(a["category_id"], a["bbox"]) for a in labels["annotations"]] == [(2, [1, 2, 10, 8])]


@pytest.mark.parametrize("inside", ["detector", "translated/label_2", "data/new"])
def test_an_export_never_writes_inside_what_the_pipeline_wrote(tiny_run, fiftyone_db, tmp_path,
                                                               caplog, inside):
    run_dir = tmp_path / "copy"
    shutil.copytree(tiny_run[1] / "data", run_dir / "data")
    shutil.copy2(tiny_run[1] / "config.resolved.yaml", run_dir)
    (run_dir / "detector" / "source_only").mkdir(parents=True)
    (run_dir / "detector" / "source_only" / "last.pt").write_bytes(b"weights")
    (run_dir / "translated" / "label_2").mkdir(parents=True)
    (run_dir / "translated" / "label_2" / "000001.txt").write_text("Car 0 0 0 1 1 5 5\n")

    def files():    # the run's log records the refused commands, as it should
        return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                      if p.name != "pipeline.log")

    before = files()
    for extra in ((), ("--overwrite",)):
        assert export(run_dir, "source_val", "kitti", run_dir / inside, *extra) == 1
        assert "which belongs to the run (the pipeline writes it)" in caplog.text
    assert files() == before
    assert export(run_dir, "source_val", "kitti", run_dir / "exports" / "kitti") == 0
    assert (run_dir / "exports" / "kitti" / "labels").is_dir()
