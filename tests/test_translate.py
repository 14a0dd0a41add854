"""The translate stage and ``pipeline translate``, with small, randomly initialised networks on
tiny images (64x40 and 70x36) in a KITTI layout written by the tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mguit.model import MGUIT
from mguit.trainer import CHECKPOINT_VERSION
from pipeline import synthetic
from pipeline.cli import main
from pipeline.config import KITTI_CLASS_MAP, TranslateConfig, load_config
from pipeline.formats import coco, kitti
from pipeline.formats.common import BadInputLog, ImageRecord
from pipeline.runner import Runner
from pipeline.translation import Shard, TranslationError, translate_dataset
from pipeline.translation.methods.translator import autocast_dtype
from pipeline.translation.plan import plan_batches, style_seed
from test_translator import tiny_config

ROOT = Path(__file__).resolve().parents[1]
FRAMES = [f"{i:06d}" for i in range(12)]
# Two sizes, interleaved, so batches must group by size; neither is a multiple of the stride 4.
SIZES = {frame: (64, 40) if i % 3 else (70, 38) for i, frame in enumerate(FRAMES)}
LABEL_LINES = [
    "Car 0.00 0 -1.58 {x0:.2f} 5.33 {x1:.2f} 30.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n",
    "Pedestrian 0.00 1 0.21 2.50 3.25 12.75 33.00 1.72 0.64 0.89 -5.90 1.78 13.45 -0.20\n",
    "DontCare -1 -1 -10 40.00 1.00 60.00 12.00 -1 -1 -1 -1000 -1000 -1000 -10\n",
]
# float32: the tolerances below are those of float32 (see test_amp_on_cpu_* for bfloat16).
OPTIONS = TranslateConfig(batch_size=4, workers=0, writers=2, amp=False, style="memory")


def small_random_config(**changes):
    cfg = tiny_config()
    # Weights large enough that the output depends visibly on the input and the style.
    cfg.model.init_std = 0.05
    for key, value in changes.items():
        setattr(cfg.memory, key, value)
    return cfg


def save_checkpoint(path: Path, cfg, seed: int = 0) -> Path:
    """The checkpoint format of mguit.trainer.Trainer, for a randomly initialised model."""
    torch.manual_seed(seed)
    model = MGUIT(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "config": asdict(cfg)}, path)
    return path


def write_kitti(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, frame in enumerate(FRAMES):
        width, height = SIZES[frame]
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        pixels[5:30, 10:30] = (200, 40, 40)
        (root / "image_2").mkdir(parents=True, exist_ok=True)
        (root / "label_2").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "image_2" / f"{frame}.png")
        lines = LABEL_LINES[:1 + i % 3]
        text = "".join(line.format(x0=10 + i, x1=30 + i) for line in lines)
        (root / "label_2" / f"{frame}.txt").write_text(text if i != 4 else "")
    return root


def kitti_manifest(root: Path, path: Path) -> Path:
    """The manifest prepare writes for a KITTI root (frame_id and label_path included)."""
    records = kitti.read_kitti(root, class_map=KITTI_CLASS_MAP, log=BadInputLog())
    coco.write_manifest(path, records, ["person", "car", "truck", "bicycle"], root)
    return path


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def assert_pixels_close(a: Path, b: Path) -> None:
    """The documented tolerance: batching may move a pixel by one grey level (float rounding
    of batched convolutions), on under 0.1 % of the values."""
    pa, pb = pixels(a), pixels(b)
    assert pa.shape == pb.shape
    diff = np.abs(pa - pb)
    assert diff.max() <= 1, (a, b)
    assert (diff > 0).mean() < 1e-3, (a, b)


def test_plan_groups_images_by_size_and_shards_partition_the_batches():
    sizes = [(40, 64), (38, 70), (40, 64), (40, 64), (38, 70)]
    assert plan_batches(sizes, 2) == [[0, 2], [3], [1, 4]]
    batches = plan_batches(sizes * 5, 3)
    assert [i for shard in range(3) for b in Shard(shard, 3).take(batches) for i in b] == \
        [i for b in batches for i in b]
    assert Shard.parse(" 1 / 4 ") == Shard(1, 4) and str(Shard(1, 4)) == "1/4"
    for bad in ("4/4", "1", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)
    assert style_seed(0, "000001") != style_seed(1, "000001") != style_seed(0, "000002")


def test_small_random_model_per_image_seeds_equal_single_image_calls():
    torch.manual_seed(0)
    model = MGUIT(small_random_config()).eval()
    images = torch.rand(3, 3, 36, 52) * 2 - 1
    batched = model.translate(images, num_samples=3, seeds=[5, 6, 7])
    for i, seed in enumerate((5, 6, 7)):
        alone = model.translate(images[i:i + 1], num_samples=3, seed=seed)
        torch.testing.assert_close(batched[:, i], alone[:, 0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched[1, 0], batched[2, 0])
    with pytest.raises(ValueError, match="one seed per image"):
        model.translate(images, seeds=[1, 2])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("translate")
    root = write_kitti(base / "kitti")
    cfg = small_random_config()
    return {"base": base, "kitti": root, "manifest": kitti_manifest(root, base / "source.json"),
            "checkpoint": save_checkpoint(base / "ckpt" / "last.pt", cfg)}


@pytest.fixture(scope="module")
def reference(data) -> Path:
    """A complete, uninterrupted run on the KITTI manifest (batch 4, one process)."""
    out = data["base"] / "reference"
    summary = translate_dataset(data["manifest"], out, data["checkpoint"], OPTIONS,
                                device="cpu", progress=False)
    assert summary.complete and summary.translated == 12
    return out


def test_small_random_model_keeps_names_sizes_labels_and_boxes(data, reference):
    source = data["kitti"]
    assert sorted(p.name for p in (reference / "image_2").iterdir()) == \
        [f"{f}.png" for f in FRAMES]
    for frame in FRAMES:
        with Image.open(reference / "image_2" / f"{frame}.png") as image:
            assert image.size == SIZES[frame]
        assert (reference / "label_2" / f"{frame}.txt").read_bytes() == \
            (source / "label_2" / f"{frame}.txt").read_bytes()
    assert sorted(os.listdir(reference)) == ["annotations.json", "image_2", "label_2",
                                             "manifest.jsonl", "translate.json"]

    src = json.loads(data["manifest"].read_text())
    out = json.loads((reference / "annotations.json").read_text())
    assert out["categories"] == src["categories"]
    assert [i["file_name"] for i in out["images"]] == [f"image_2/{f}.png" for f in FRAMES]
    assert [(i["width"], i["height"]) for i in out["images"]] == \
        [(i["width"], i["height"]) for i in src["images"]]
    strip = [{k: a[k] for k in ("image_id", "category_id", "bbox", "area")}
             for a in src["annotations"]]
    assert [{k: a[k] for k in strip[0]} for a in out["annotations"]] == strip
    translated = coco.read_manifest(reference / "annotations.json")
    assert translated.image_path(translated.images[0]) == reference / "image_2" / "000000.png"

    lines = (reference / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 12
    for line, frame in zip(lines, FRAMES):
        entry = json.loads(line)
        assert (entry["key"], entry["sample"], entry["status"]) == (frame, 0, "done")
        assert entry["source"] == str(source / "image_2" / f"{frame}.png")
        for name, digest in ((entry["source"], entry["source_sha256"]),
                             (reference / entry["image"], entry["image_sha256"]),
                             (reference / entry["label"], entry["label_sha256"])):
            assert sha256(Path(name)) == digest
    # The translation is not a constant image: the test network does depend on its input.
    assert pixels(reference / "image_2" / "000001.png").std() > 2


def test_small_random_model_batch_size_invariance(data, reference, tmp_path):
    options = replace(OPTIONS, batch_size=1)
    translate_dataset(data["manifest"], tmp_path, data["checkpoint"], options, device="cpu",
                      progress=False)
    for frame in FRAMES:
        assert_pixels_close(reference / "image_2" / f"{frame}.png",
                            tmp_path / "image_2" / f"{frame}.png")
    assert (tmp_path / "annotations.json").read_bytes() == \
        (reference / "annotations.json").read_bytes()


def test_small_random_model_samples_are_named_and_pure_per_image(data, tmp_path):
    options = replace(OPTIONS, num_samples=3, seed=7)
    translate_dataset(data["manifest"], tmp_path / "all", data["checkpoint"], options,
                      device="cpu", progress=False)
    names = sorted(p.name for p in (tmp_path / "all" / "image_2").iterdir())
    assert names == sorted(f"{f}_s{k}.png" for f in FRAMES for k in range(3))
    assert sorted(p.name for p in (tmp_path / "all" / "label_2").iterdir()) == \
        sorted(f"{f}_s{k}.txt" for f in FRAMES for k in range(3))
    label = (data["kitti"] / "label_2" / "000002.txt").read_bytes()
    assert all((tmp_path / "all" / "label_2" / f"000002_s{k}.txt").read_bytes() == label
               for k in range(3))
    s0, s1, s2 = (pixels(tmp_path / "all" / "image_2" / f"000005_s{k}.png") for k in range(3))
    assert np.abs(s1 - s2).max() > 10 and np.abs(s0 - s1).max() > 10, "styles must differ"
    annotations = json.loads((tmp_path / "all" / "annotations.json").read_text())
    assert len(annotations["images"]) == 36
    assert annotations["images"][1]["sample"] == 1

    # The same images alone, in another order and batching: the same styles (per image key).
    subset = tmp_path / "subset"
    for frame in ("000005", "000001", "000007"):
        for folder, suffix in (("image_2", ".png"), ("label_2", ".txt")):
            (subset / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(data["kitti"] / folder / f"{frame}{suffix}", subset / folder)
    translate_dataset(subset, tmp_path / "sub", data["checkpoint"],
                      replace(options, batch_size=2), device="cpu", progress=False)
    for frame in ("000005", "000001", "000007"):
        for k in range(3):
            assert_pixels_close(tmp_path / "all" / "image_2" / f"{frame}_s{k}.png",
                                tmp_path / "sub" / "image_2" / f"{frame}_s{k}.png")


def test_small_random_model_two_shards_union_equals_single_run(data, reference, tmp_path):
    first = translate_dataset(data["manifest"], tmp_path, data["checkpoint"], OPTIONS,
                              device="cpu", shard=Shard(1, 2), progress=False)
    assert not first.complete and 0 < first.translated < 12
    assert (tmp_path / "manifest.shard-1-of-2.jsonl").exists()
    assert not (tmp_path / "annotations.json").exists()
    second = translate_dataset(data["manifest"], tmp_path, data["checkpoint"], OPTIONS,
                               device="cpu", shard=Shard(0, 2), progress=False)
    assert second.complete and first.translated + second.translated == 12
    assert files(tmp_path) == files(reference)


def test_small_random_model_shards_run_apart_then_merge_command(data, reference, tmp_path):
    for index in (0, 1):
        translate_dataset(data["manifest"], tmp_path / str(index), data["checkpoint"], OPTIONS,
                          device="cpu", shard=Shard(index, 2), progress=False)
    merged = tmp_path / "0"
    assert main(["translate", "--merge", "--output", str(merged)]) == 1, "shard 1 missing"
    shutil.copytree(tmp_path / "1", merged, dirs_exist_ok=True)
    (merged / "image_2" / "000011.png").write_bytes(b"damaged")
    assert main(["translate", "--merge", "--output", str(merged)]) == 1, "hash mismatch"
    shutil.copy(tmp_path / "1" / "image_2" / "000011.png", merged / "image_2")
    assert main(["translate", "--merge", "--output", str(merged)]) == 0
    assert files(merged) == files(reference)


def test_small_random_model_rerun_keeps_intact_outputs_and_redoes_damaged_ones(
        data, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "image_2" / "000003.png").write_bytes(b"not a png")
    (out / "label_2" / "000007.txt").unlink()
    (out / "image_2" / ".000009.png.123.abcd.tmp").write_bytes(b"left by a kill")
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"key": "000010", "sample": 0, "status": "do')     # a line cut by a kill
    summary = translate_dataset(data["manifest"], out, data["checkpoint"], OPTIONS,
                                device="cpu", progress=False)
    assert (summary.translated, summary.reused) == (2, 10)
    assert files(out) == files(reference)


@pytest.mark.slow
def test_small_random_model_kill_and_resume_equals_uninterrupted_run(data, reference,
                                                                    tmp_path):
    """`pipeline translate` killed with SIGKILL in the middle, then rerun: the same files."""
    root = tmp_path / "kitti"
    shutil.copytree(data["kitti"], root)
    manifest = kitti_manifest(root, tmp_path / "source.json")
    straight = tmp_path / "straight"
    command = [sys.executable, "-m", "pipeline", "translate", "--checkpoint",
               str(data["checkpoint"]), "--input", str(manifest), "--batch-size", "2",
               "--workers", "1"]
    subprocess.run([*command, "--output", str(straight)], check=True, capture_output=True)
    # Image 000010 becomes a pipe that nobody writes: the run blocks there, after the other
    # images' batches have been translated, and is killed while it waits.
    blocker = root / "image_2" / "000010.png"
    real = blocker.read_bytes()
    blocker.unlink()
    os.mkfifo(blocker)
    out = tmp_path / "resumed"
    process = subprocess.Popen([*command, "--output", str(out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = out / "manifest.jsonl"
            if log.exists() and log.read_text().count("\n") >= 4:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the translation did not log 4 images in 60 s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    logged = (out / "manifest.jsonl").read_text().count("\n")
    assert 4 <= logged < 12 and not (out / "annotations.json").exists()
    blocker.unlink()
    blocker.write_bytes(real)
    subprocess.run([*command, "--output", str(out)], check=True, capture_output=True)
    assert files(out) == files(straight)


def test_unreadable_image_stops_naming_it_and_a_fixed_rerun_completes(data, reference,
                                                                      tmp_path):
    root = tmp_path / "kitti"
    shutil.copytree(data["kitti"], root)
    manifest = kitti_manifest(root, tmp_path / "source.json")
    bad = root / "image_2" / "000010.png"
    good = bad.read_bytes()
    bad.write_bytes(good[:len(good) // 2])          # truncated
    out = tmp_path / "out"
    with pytest.raises(TranslationError, match=r"000010\.png: image cannot be read"):
        translate_dataset(manifest, out, data["checkpoint"], OPTIONS, device="cpu",
                          progress=False)
    assert not (out / "annotations.json").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    logged = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert logged and all((out / e["image"]).exists() for e in logged)

    bad.write_bytes(good)
    summary = translate_dataset(manifest, out, data["checkpoint"], OPTIONS, device="cpu",
                                progress=False)
    assert summary.complete and summary.reused == len(logged)
    for frame in FRAMES:
        assert (out / "image_2" / f"{frame}.png").read_bytes() == \
            (reference / "image_2" / f"{frame}.png").read_bytes()


def test_unreadable_image_with_skip_is_listed_and_counted(data, reference, tmp_path):
    root = tmp_path / "kitti"
    shutil.copytree(data["kitti"], root)
    manifest = kitti_manifest(root, tmp_path / "source.json")
    (root / "image_2" / "000005.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "out"
    summary = translate_dataset(manifest, out, data["checkpoint"],
                                replace(OPTIONS, on_bad_image="skip"), device="cpu",
                                progress=False)
    assert summary.complete and len(summary.skipped) == 1 and "000005.png" in summary.skipped[0]
    assert summary.to_dict()["skipped"] == 1
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["status"] for e in entries].count("skipped") == 1
    assert entries[5]["key"] == "000005" and "cannot be read" in entries[5]["error"]
    assert not (out / "image_2" / "000005.png").exists()
    annotations = json.loads((out / "annotations.json").read_text())
    assert len(annotations["images"]) == 11
    # The bad image's slot in its batch is filled with zeros: its neighbours are unchanged.
    for frame in FRAMES:
        if frame != "000005":
            assert (out / "image_2" / f"{frame}.png").read_bytes() == \
                (reference / "image_2" / f"{frame}.png").read_bytes()


def test_output_folder_of_another_run_is_refused_unless_overwrite(data, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    with pytest.raises(TranslationError, match=r"other settings \(seed: 0 -> 1\).*--overwrite"):
        translate_dataset(data["manifest"], out, data["checkpoint"], replace(OPTIONS, seed=1),
                          device="cpu", progress=False)
    assert files(out) == files(reference), "a refusal must not touch the folder"
    translate_dataset(data["manifest"], out, data["checkpoint"],
                      replace(OPTIONS, num_samples=2), device="cpu", overwrite=True,
                      progress=False)
    assert json.loads((out / "translate.json").read_text())["num_samples"] == 2
    assert not (out / "image_2" / "000000.png").exists()

    (out / "notes.txt").write_text("mine")
    with pytest.raises(TranslationError, match="did not write.*notes.txt"):
        translate_dataset(data["manifest"], out, data["checkpoint"], OPTIONS, device="cpu",
                          overwrite=True, progress=False)
    with pytest.raises(TranslationError, match="did not write.*image_2, label_2"):
        translate_dataset(data["manifest"], data["kitti"], data["checkpoint"], OPTIONS,
                          device="cpu", overwrite=True, progress=False)


def test_checkpoint_that_does_not_match_the_config_is_refused(data, tmp_path):
    expected = small_random_config(items={"person": 2, "car": 2, "truck": 1, "bicycle": 1,
                                          "background": 2})
    with pytest.raises(TranslationError, match=r"does not match the config's translator "
                                               r"section \(translator\.memory\.items"):
        translate_dataset(data["manifest"], tmp_path / "a", data["checkpoint"], OPTIONS,
                          device="cpu", expected=expected, progress=False)
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(TranslationError, match="bogus.pt: cannot be loaded"):
        translate_dataset(data["manifest"], tmp_path / "b", bogus, OPTIONS, device="cpu",
                          progress=False)
    with pytest.raises(TranslationError, match="no such checkpoint"):
        translate_dataset(data["manifest"], tmp_path / "c", tmp_path / "missing.pt", OPTIONS,
                          device="cpu", progress=False)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_non_kitti_manifest_gets_label_files_written_from_its_boxes(data, tmp_path):
    records = [ImageRecord(r.path, r.file_name, r.width, r.height, r.boxes)
               for r in kitti.read_kitti(data["kitti"], class_map=KITTI_CLASS_MAP,
                                         log=BadInputLog())]
    manifest = tmp_path / "coco.json"
    coco.write_manifest(manifest, records, ["person", "car", "truck", "bicycle"], data["kitti"])
    translate_dataset(manifest, tmp_path / "out", data["checkpoint"], OPTIONS, device="cpu",
                      progress=False)
    objects = kitti.read_label_file(tmp_path / "out" / "label_2" / "000002.txt")
    assert [(o.type, o.left, o.top, o.right, o.bottom) for o in objects] == \
        [(b.category, b.x0, b.y0, b.x1, b.y1) for b in records[2].boxes]
    assert (objects[0].occluded, objects[0].alpha, objects[0].z) == (-1, -10.0, -1000.0)


def test_cli_translate_on_a_kitti_folder(data, reference, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["translate", "--checkpoint", str(data["checkpoint"]), "--input", str(data["kitti"]),
            "--output", str(out), "--workers", "1", "--batch-size", "3", "--no-amp"]
    assert main(args) == 0
    for frame in FRAMES:
        assert_pixels_close(out / "image_2" / f"{frame}.png",
                            reference / "image_2" / f"{frame}.png")
        assert (out / "label_2" / f"{frame}.txt").read_bytes() == \
            (data["kitti"] / "label_2" / f"{frame}.txt").read_bytes()
    assert json.loads((out / "annotations.json").read_text())["annotations"] == \
        json.loads((reference / "annotations.json").read_text())["annotations"]
    assert main([*args, "--seed", "3"]) == 1                     # another run's folder
    for usage, message in ((["translate", "--output", str(out)], "needs --checkpoint"),
                           ([*args, "--shard", "2/2"], "need 0 <= I < N"),
                           ([*args, "--batch-size", "0"], "batch_size must be >= 1")):
        with pytest.raises(SystemExit) as exc:
            main(usage)
        assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> synthetic.SyntheticDataset:
    out = tmp_path_factory.mktemp("synthetic")
    return synthetic.generate(out, seed=3, width=96, height=48, num_source=5,
                              num_target_train=2, num_target_val=2, progress=False)


def test_stage_translates_source_train_and_checks_the_checkpoint(demo_data, data, tmp_path):
    cfg = small_random_config()
    config = tmp_path / "exp.yaml"
    config.write_text(textwrap.dedent(f"""\
        run: {{name: t, dir: {tmp_path / 'runs'}, device: cpu}}
        data:
          source: {{format: kitti, root: {demo_data.source_root}, val_fraction: 0.2,
                   class_map: {json.dumps(KITTI_CLASS_MAP)}}}
          target: {{format: cityscapes, root: {demo_data.target_root},
                   class_map: {{person: person, car: car, truck: truck, bicycle: bicycle}},
                   on_unknown_label: ignore}}
        translator:
          model: {json.dumps(asdict(cfg.model))}
          memory: {json.dumps(asdict(cfg.memory))}
        translate: {{checkpoint: {data['checkpoint']}, batch_size: 2, workers: 0}}
        """))
    assert main(["run", str(config), "--only", "prepare,translate"]) == 0
    run_dir = tmp_path / "runs" / "t"
    out = run_dir / "translated"
    train = json.loads((run_dir / "data" / "source_train.json").read_text())
    names = sorted(Path(i["file_name"]).name for i in train["images"])
    assert sorted(p.name for p in (out / "image_2").iterdir()) == names
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["translate"]["result"]["translated"] == len(names) == 4
    runner = Runner(load_config(config))
    assert runner.status(runner.select(only=["translate"])[0]).state == "done"

    # A changed seed makes the stage stale; its own earlier translation is replaced.
    assert main(["run", str(config), "--only", "translate", "translate.seed=4"]) == 0
    assert json.loads((out / "translate.json").read_text())["seed"] == 4
    # The run's translator section no longer matches the checkpoint: refused, exit 1.
    assert main(["run", str(config), "--only", "translate", "--force",
                 "translator.memory.sample_noise=0.3"]) == 1


@pytest.mark.slow
def test_small_random_model_torchrun_ranks_take_shards_and_rank_zero_merges(data, reference,
                                                                             tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_port=29533", "-m", "pipeline", "translate", "--checkpoint",
         str(data["checkpoint"]), "--input", str(data["manifest"]), "--output", str(out),
         "--batch-size", "4", "--workers", "0", "--no-amp"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shard 0/2" in result.stderr and "shard 1/2" in result.stderr
    assert files(out) == files(reference)


@pytest.mark.skipif(autocast_dtype(torch.device("cpu")) is None,
                    reason="this CPU has no native bfloat16 (AMX / AVX512-BF16)")
def test_amp_on_cpu_is_bfloat16_close_to_float32(data, reference, tmp_path):
    translate_dataset(data["manifest"], tmp_path, data["checkpoint"], replace(OPTIONS, amp=True),
                      device="cpu", progress=False)
    diff = np.concatenate([np.abs(pixels(reference / "image_2" / f"{f}.png")
                                  - pixels(tmp_path / "image_2" / f"{f}.png")).ravel()
                           for f in FRAMES])
    assert 0 < diff.max() <= 10 and diff.mean() < 1


def test_small_random_model_exemplar_values_by_hand():
    torch.manual_seed(0)
    model = MGUIT(small_random_config()).eval()
    groups = model.memory.groups
    car, background = groups.index("car"), groups.index("background")
    image = torch.rand(1, 3, 18, 26) * 2 - 1        # not a multiple of the stride 4
    mask = torch.full((1, 18, 26), background)
    mask[0, 0:8, 0:12] = car                          # feature rows 0-1, columns 0-2
    values = model.exemplar_values(image, mask)
    padded = torch.nn.functional.pad(image, (0, 2, 0, 2), mode="reflect")
    mu = model.style_encoders[1](padded)["mu"][0]     # (C, 5, 7)
    cars = torch.zeros(5, 7, dtype=torch.bool)
    cars[0:2, 0:3] = True
    expected_car = torch.nn.functional.normalize(mu[:, cars].mean(dim=1), dim=0)
    expected_background = torch.nn.functional.normalize(mu[:, ~cars].mean(dim=1), dim=0)
    item_group = model.memory.group_of_item
    for group, expected in ((car, expected_car), (background, expected_background)):
        items = item_group == group
        torch.testing.assert_close(values[items], expected.expand(int(items.sum()), -1))
    # Classes the image does not show keep the memory's values.
    absent = (item_group != car) & (item_group != background)
    torch.testing.assert_close(values[absent], model.memory.values[1][absent])
    # Without boxes every item takes the image's mean style.
    whole = model.exemplar_values(image, None)
    torch.testing.assert_close(whole, torch.nn.functional.normalize(
        mu.mean(dim=(1, 2)), dim=0).expand_as(whole))
    # Scene styles: the background alone takes the image's style, cars keep the memory's.
    scene = model.exemplar_values(image, mask, groups=[background])
    items = item_group == background
    torch.testing.assert_close(scene[items], expected_background.expand(int(items.sum()), -1))
    torch.testing.assert_close(scene[~items], model.memory.values[1][~items])
    whole_scene = model.exemplar_values(image, None, groups=[background])
    torch.testing.assert_close(whole_scene[items], whole[items])
    torch.testing.assert_close(whole_scene[~items], model.memory.values[1][~items])


def test_small_random_model_translate_reads_the_values_it_is_given():
    torch.manual_seed(0)
    model = MGUIT(small_random_config()).eval()
    images = torch.rand(2, 3, 20, 24) * 2 - 1
    memory = model.memory.values[1].expand(2, 2, -1, -1)           # (K, B, N, C)
    given = model.translate(images, num_samples=2, values=memory)
    torch.testing.assert_close(given[0], model.translate(images)[0])
    torch.testing.assert_close(given[1], given[0])  # the memory's values again, not random ones
    other = torch.nn.functional.normalize(torch.randn_like(memory), dim=-1)
    assert not torch.allclose(model.translate(images, num_samples=2, values=other), given)
    with pytest.raises(ValueError, match=r"\(K, B, N, C\)"):
        model.translate(images, num_samples=3, values=memory)


def test_small_random_model_exemplar_style_translates_with_the_picked_reference(data, tmp_path):
    options = replace(OPTIONS, num_samples=2, seed=3, style="exemplar")
    with pytest.raises(TranslationError, match="reference"):
        translate_dataset(data["manifest"], tmp_path / "none", data["checkpoint"], options,
                          device="cpu", progress=False)
    # The source lends its own images as references: sample k of an image is rendered with
    # the values of the reference image that ReferenceSet.pick gives its style seed and k.
    out = tmp_path / "exemplar"
    translate_dataset(data["manifest"], out, data["checkpoint"], options, device="cpu",
                      progress=False, reference=data["manifest"])
    settings = json.loads((out / "translate.json").read_text())
    assert settings["style"] == "exemplar" and settings["reference"] == str(data["manifest"])

    from mguit.inference import load_translator
    from pipeline.translation.methods.translator import ExemplarStyles
    model = load_translator(data["checkpoint"], "cpu")
    exemplars = ExemplarStyles.read(model, data["manifest"], "source_to_target",
                                    torch.device("cpu"))
    frame = "000005"
    seed = style_seed(3, frame)
    source = torch.from_numpy(pixels(data["kitti"] / "image_2" / f"{frame}.png"))
    x = source.permute(2, 0, 1)[None].float() / 127.5 - 1
    values = torch.stack([exemplars.values(exemplars.pick(seed, k))[None] for k in range(2)])
    expected = model.translate(x, num_samples=2, values=values)
    for k in range(2):
        ours = torch.from_numpy(pixels(out / "image_2" / f"{frame}_s{k}.png"))
        want = expected[k, 0].add(1).mul(127.5).round().clamp(0, 255).permute(1, 2, 0)
        assert (ours - want).abs().max() <= 1
    # A memory translation of the same images differs: the references' styles were used.
    memory = tmp_path / "memory"
    translate_dataset(data["manifest"], memory, data["checkpoint"], replace(options,
                      style="memory"), device="cpu", progress=False)
    assert np.abs(pixels(memory / "image_2" / f"{frame}_s0.png")
                  - pixels(out / "image_2" / f"{frame}_s0.png")).max() > 5


def test_small_random_model_scene_style_takes_the_reference_background_only(data, tmp_path):
    from mguit.data import BACKGROUND
    from mguit.inference import load_translator
    from pipeline.translation.methods.translator import ExemplarStyles

    options = replace(OPTIONS, num_samples=1, seed=3, style="scene")
    out = tmp_path / "scene"
    translate_dataset(data["manifest"], out, data["checkpoint"], options, device="cpu",
                      progress=False, reference=data["manifest"])
    assert json.loads((out / "translate.json").read_text())["style"] == "scene"
    model = load_translator(data["checkpoint"], "cpu")
    scene = ExemplarStyles.read(model, data["manifest"], "source_to_target",
                                torch.device("cpu"), "scene")
    exemplar = ExemplarStyles.read(model, data["manifest"], "source_to_target",
                                   torch.device("cpu"))
    frame = "000005"
    index = scene.pick(style_seed(3, frame), 0)
    background = model.memory.group_of_item == model.memory.groups.index(BACKGROUND)
    torch.testing.assert_close(scene.values(index)[background],
                               exemplar.values(index)[background])
    torch.testing.assert_close(scene.values(index)[~background],
                               model.memory.values[1][~background])
    source = torch.from_numpy(pixels(data["kitti"] / "image_2" / f"{frame}.png"))
    x = source.permute(2, 0, 1)[None].float() / 127.5 - 1
    want = model.translate(x, values=scene.values(index)[None, None])[0, 0]
    want = want.add(1).mul(127.5).round().clamp(0, 255).permute(1, 2, 0)
    assert (torch.from_numpy(pixels(out / "image_2" / f"{frame}.png")) - want).abs().max() <= 1
    # A single memory has no class groups: the whole image is its scene, as under exemplar.
    torch.manual_seed(0)
    single = MGUIT(small_random_config(variant="single")).eval()
    scene, exemplar = (ExemplarStyles.read(single, data["manifest"], "source_to_target",
                                           torch.device("cpu"), style) for style in
                       ("scene", "exemplar"))
    torch.testing.assert_close(scene.values(index), exemplar.values(index))
    assert not torch.allclose(scene.values(index), single.memory.values[1])


def test_small_random_model_metrics_samples_follow_the_exemplar_rule(data, tmp_path):
    from mguit.inference import load_translator
    from pipeline.metrics.diversity import translate_samples
    from pipeline.metrics.images import read_image_set
    from pipeline.translation.methods.translator import ExemplarStyles

    options = replace(OPTIONS, num_samples=2, seed=4, style="exemplar")
    out = tmp_path / "exemplar"
    translate_dataset(data["manifest"], out, data["checkpoint"], options, device="cpu",
                      progress=False, reference=data["manifest"])
    model = load_translator(data["checkpoint"], "cpu")
    exemplars = ExemplarStyles.read(model, data["manifest"], "source_to_target",
                                    torch.device("cpu"))
    items = read_image_set(data["manifest"]).items[:3]
    for item, samples in zip(items, translate_samples(model, items, 2, 4, "source_to_target",
                                                      torch.device("cpu"), exemplars)):
        for k in range(2):
            written = pixels(out / "image_2" / f"{item.path.stem}_s{k}.png")
            assert np.abs(samples[k].permute(1, 2, 0).numpy().astype(int) - written).max() <= 1
