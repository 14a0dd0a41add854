"""The bad-input corpus: inputs and interruptions a careful user tries, generated here.

Each case ends with the project's one-line error (the file and, where it applies, the line;
what to do), a non-zero exit, the error also in the run's pipeline.log, and no partial output;
or with correct data.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from pipeline import synthetic
from pipeline.cli import main
from pipeline.formats.common import DatasetError
from tiny_run import data_section


def write_config(tmp_path: Path, data: synthetic.SyntheticDataset, source_root: Path | None = None,
                 target_root: Path | None = None, run: str = "workers: 1", extra: str = "") -> Path:
    text = (f"run: {{name: t, dir: {tmp_path / 'runs'}, {run}}}\n"
            + data_section(source_root or data.source_root, target_root or data.target_root)
            + textwrap.dedent(extra))
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def run_log(tmp_path: Path) -> str:
    return (tmp_path / "runs" / "t" / "pipeline.log").read_text()


# -- D1: errors raised in worker processes -------------------------------------------------


def test_dataset_error_survives_pickling_with_its_fields():
    error = pickle.loads(pickle.dumps(DatasetError("a/b.txt", "bad class 'Tram'", line=3)))
    assert (str(error), error.path, error.line, error.reason) == (
        "a/b.txt:3: bad class 'Tram'", Path("a/b.txt"), 3, "bad class 'Tram'")


def test_truncated_png_with_two_workers_is_named_in_the_log_and_leaves_no_data(
        tmp_path, tiny_data, make_png, caplog):
    source = shutil.copytree(tiny_data.source_root, tmp_path / "kitti")
    bad = make_png(source / "image_2" / "000003.png", 96, 48, noise=True)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    config = write_config(tmp_path, tiny_data, source_root=source, run="workers: 2")
    assert main(["run", str(config), "--only", "prepare"]) == 1
    assert f"{bad}: image cannot be read" in caplog.text
    assert f"{bad}: image cannot be read" in run_log(tmp_path)
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "runs" / "t" / "data").exists()


# -- D3-D6: config files and values -----------------------------------------------------------


def test_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path, capsys, caplog):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(lines) + "\nrun: {name: *a8}\n")
    assert len(config.read_bytes()) < 1000
    assert main(["stages", str(config)]) == 2
    assert "YAML aliases" in caplog.text and len(caplog.text) < 2000
    assert main(["stages", str(tmp_path / "bomb.yaml"), "run.name=[*a8]"]) == 2


def test_a_long_value_is_quoted_short_in_the_error(tmp_path, tiny_data, caplog):
    config = tmp_path / "long.yaml"
    config.write_text("run: {name: [" + ", ".join(["abc"] * 5000) + "]}\n"
                      + data_section(tiny_data.source_root, tiny_data.target_root))
    assert main(["stages", str(config)]) == 2
    assert "run.name" in caplog.text and len(caplog.text) < 1000


@pytest.mark.parametrize("case", ["folder", "base_folder", "latin1"])
def test_unreadable_config_files_are_named(tmp_path, caplog, case):
    if case == "folder":
        config, expect = tmp_path, "is a folder, not a config file"
    elif case == "base_folder":
        config = tmp_path / "exp.yaml"
        config.write_text(f"_base_: {tmp_path}\n")
        expect = f"is a folder, not a config file (the _base_ of {config}"
    else:
        config = tmp_path / "exp.yaml"
        config.write_bytes("run: {name: caf\u00e9}\n".encode("latin-1"))
        expect = "not UTF-8 text (byte 0xe9 at offset 15)"
    assert main(["stages", str(config)]) == 2
    assert expect in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("override, message", [
    ("translator.train.lr=-1", "train.lr must be a number > 0"),
    ("translator.train.lr=.nan", "is not a finite number"),
    ("translator.train.lr=.inf", "is not a finite number"),
    ("translator.train.checkpoint_every=0", "train.checkpoint_every must be >= 1"),
    ("translator.train.checkpoint_every=-1", "train.checkpoint_every must be >= 1"),
    ("translator.train.log_every=0", "train.log_every must be >= 1"),
    ("translator.train.image_every=0", "train.image_every must be >= 1"),
    ("translator.train.snapshot_every=0", "train.snapshot_every must be >= 1"),
    ("translator.train.crop=0", "train.crop must be >= 1"),
    ("translator.loss.cycle=-2", "loss.cycle is a weight: it must be >= 0"),
    ("translator.train.betas=[0.5, 1.5]", "train.betas must be in [0, 1)"),
])
def test_translator_values_that_would_fail_in_training_are_refused_at_load(
        tmp_path, tiny_data, caplog, override, message):
    config = write_config(tmp_path, tiny_data)
    assert main(["stages", str(config), override]) == 2
    assert message in caplog.text


# -- D14: devices ----------------------------------------------------------------------------


def test_unknown_or_missing_device_names_the_devices_this_machine_has(tmp_path, tiny_data, caplog,
                                                                     capsys):
    import torch

    config = write_config(tmp_path, tiny_data)
    assert main(["run", str(config), "--only", "prepare", "run.device=cuda:7"]) == 0, \
        "prepare computes nothing on the device"
    assert main(["run", str(config), "--only", "train_translator", "run.device=cuda:7"]) == 1
    assert "run.device: device 'cuda:7' is not available; this machine has: cpu" in caplog.text
    assert "Traceback" not in caplog.text
    caplog.clear()
    assert main(["translate", "--checkpoint", str(tmp_path / "none.pt"), "--input",
                 str(tmp_path / "runs" / "t" / "data" / "source_val.json"), "--output",
                 str(tmp_path / "out"), "--device", "tpu"]) == 1
    assert "--device: device 'tpu' is not a device name; this machine has: cpu" in caplog.text
    assert not (tmp_path / "out").exists()
    if torch.cuda.is_available():
        pytest.skip("the rest needs a machine without CUDA")
    with pytest.raises(SystemExit) as exit_info:
        main(["metrics", "--real", str(tmp_path), "--fake", str(tmp_path), "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "device 'cuda' is not available; this machine has: cpu" in capsys.readouterr().err


# -- D7, D8, D9: checkpoints -------------------------------------------------------------------


TINY_TRANSLATOR = """\
translator:
  model: {base_channels: 4, num_downsample: 1, content_res_blocks: 1, shared_res_blocks: 1,
          style_res_blocks: 1, generator_res_blocks: 1, discriminator_channels: 4,
          discriminator_layers: 2, discriminator_scales: 1, content_discriminator_channels: 8}
  memory: {key_dim: 8, items: {person: 1, car: 1, truck: 1, bicycle: 1, background: 2}}
  train: {iterations: 4, resize: 32, crop: 32, num_workers: 0, log_every: 2, image_every: 100,
          checkpoint_every: 2, snapshot_every: 2}
"""


@pytest.fixture
def trained(tmp_path, tiny_data):
    """A config with a tiny translator trained for 4 iterations (snapshots at 2 and 4)."""
    config = write_config(tmp_path, tiny_data, extra=TINY_TRANSLATOR)
    assert main(["run", str(config), "--to", "train_translator"]) == 0
    return config, tmp_path / "runs" / "t" / "translator" / "checkpoints"


def test_truncated_last_checkpoint_falls_back_to_the_newest_intact_snapshot(trained, caplog,
                                                                           capsys):
    config, checkpoints = trained
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (checkpoints / "iter_000004.pt").write_bytes(b"")
    assert main(["stages", str(config)]) == 0
    assert f"output changed since the stage wrote it: {last}" in capsys.readouterr().out
    assert main(["run", str(config), "--only", "train_translator",
                 "translator.train.iterations=6"]) == 0
    assert f"{last}: unreadable checkpoint" in caplog.text
    assert "resuming from the newest intact snapshot iter_000002.pt instead (iteration 2)" \
        in caplog.text
    assert torch_iteration(last) == 6


def test_truncated_checkpoint_without_snapshots_says_what_to_do(trained, caplog):
    config, checkpoints = trained
    for snapshot in checkpoints.glob("iter_*.pt"):
        snapshot.unlink()
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    assert main(["run", str(config), "--only", "train_translator", "--force"]) == 1
    assert f"{last}: unreadable checkpoint" in caplog.text
    assert f"delete {last} to train from the start" in caplog.text
    assert f"delete {last} to train from the start" in run_log(config.parent)
    assert "Traceback" not in caplog.text


def test_resuming_with_another_model_size_is_a_one_line_error_in_the_log(trained, caplog):
    config, _ = trained
    assert main(["run", str(config), "--only", "train_translator", "--force",
                 "translator.model.base_channels=8", "translator.memory.key_dim=16"]) == 1
    assert "the checkpoint was trained with other settings" in run_log(config.parent)
    assert "Traceback" not in caplog.text


def test_stale_temporary_of_a_killed_write_is_removed(trained, caplog):
    config, checkpoints = trained
    dead = checkpoints / ".last.pt.tmp-999999999"
    dead.write_bytes(b"partial")
    alive = checkpoints / f".last.pt.tmp-{os.getppid()}"    # another process's write
    alive.write_bytes(b"being written")
    assert main(["run", str(config), "--only", "train_translator",
                 "translator.train.iterations=5"]) == 0
    assert not dead.exists() and alive.exists()
    assert f"removed {dead}" in caplog.text


def torch_iteration(path: Path) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["iteration"]


# -- D10, D13: concurrency and the user's files ------------------------------------------------


def test_second_process_on_a_run_directory_is_refused_naming_the_first(tmp_path, tiny_data,
                                                                       caplog):
    import socket

    from pipeline.lock import LOCK_NAME, exclusive

    config = write_config(tmp_path, tiny_data)
    run_dir = tmp_path / "runs" / "t"
    with exclusive(run_dir):
        assert main(["run", str(config), "--only", "prepare"]) == 1
    assert f"in use by pid {os.getpid()} on {socket.gethostname()}" in caplog.text
    assert not (run_dir / "data").exists()
    (run_dir / LOCK_NAME).write_text("pid 1 on a machine that crashed")   # left by a kill
    assert main(["run", str(config), "--only", "prepare"]) == 0
    assert not (run_dir / LOCK_NAME).exists()


def test_overwrite_deletes_only_the_translations_own_files(trained, caplog):
    from pipeline.lock import exclusive

    config, checkpoints = trained
    source = config.parent / "runs" / "t" / "data" / "source_train.json"
    out = config.parent / "out"
    translate = ["translate", "--checkpoint", str(checkpoints / "last.pt"), "--input",
                 str(source), "--output", str(out)]
    assert main(translate) == 0
    own = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    mine = [out / "image_2" / "my_notes.png", out / "label_2" / "sub" / "keep.txt"]
    for path in mine:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the user's")
    assert main([*translate, "--seed", "1", "--overwrite"]) == 1
    assert "--overwrite deletes only the files this translation wrote, and 2 others" \
        in caplog.text
    assert str(mine[0]) in caplog.text
    assert all(p.read_text() == "the user's" for p in mine)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()
                  and p not in mine) == own, "nothing deleted"
    for path in mine:
        path.unlink()
    with exclusive(out, name=".pipeline.lock"):
        assert main([*translate, "--seed", "1", "--overwrite"]) == 1
    assert "this translation output (shard 0/1) is in use by pid" in caplog.text
    assert main([*translate, "--seed", "1", "--overwrite"]) == 0
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == own


# -- D9, D11, D12: signals and the file system --------------------------------------------------


def test_sigterm_stops_training_like_ctrl_c_with_a_message(tmp_path, tiny_data):
    import signal
    import subprocess
    import sys
    import time

    config = write_config(tmp_path, tiny_data, extra=TINY_TRANSLATOR.replace(
        "iterations: 4", "iterations: 100000"))
    assert main(["run", str(config), "--only", "prepare"]) == 0
    last = tmp_path / "runs" / "t" / "translator" / "checkpoints" / "last.pt"
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(config), "--only",
                                "train_translator"], cwd=tmp_path, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "terminated (SIGTERM); rerun the same command to resume" in run_log(tmp_path)
    assert b"Traceback" not in err
    assert not (tmp_path / "runs" / "t" / ".pipeline.lock").exists()


@pytest.mark.parametrize("code, advice", [
    (28, "free space on that disk (or point run.dir / --output elsewhere), then rerun"),
    (30, "write somewhere this user may write"),
])
def test_disk_full_or_read_only_is_one_line_naming_the_file(tmp_path, tiny_data, caplog,
                                                           monkeypatch, code, advice):
    import errno

    from pipeline.formats import coco

    target = tmp_path / "runs" / "t" / "data" / "source_train.json"

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(coco, "write_manifest", fail)
    assert errno.ENOSPC == 28 and errno.EROFS == 30
    assert main(["run", str(write_config(tmp_path, tiny_data)), "--only", "prepare"]) == 1
    assert f"{target}: {os.strerror(code)}; {advice}" in caplog.text
    assert "Traceback" not in caplog.text


# -- D2: every image mode a PNG or JPEG decodes to -----------------------------------------------


GREY = 200     # 8-bit grey level of the test images


def write_image(path: Path, mode: str) -> Path:
    """A 6 x 4 image of grey level GREY (or its 16-bit equivalent) saved in ``mode``."""
    import numpy as np
    from PIL import Image

    if mode == "I;16":
        image = Image.fromarray(np.full((4, 6), GREY * 257, np.uint16))
    else:
        image = Image.new("RGB", (6, 4), (GREY, GREY, GREY)).convert(mode)
    image.save(path)
    return path


PNG_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]
JPEG_MODES = ["L", "RGB", "CMYK"]


@pytest.mark.parametrize("suffix, mode", [*((".png", m) for m in PNG_MODES),
                                          *((".jpg", m) for m in JPEG_MODES)])
def test_every_reader_decodes_every_mode_to_the_right_8_bit_rgb(tmp_path, suffix, mode):
    import numpy as np
    import torch
    from PIL import Image

    from detection.images import to_rgb
    from mguit.data import _to_rgb
    from pipeline.metrics.images import ImageItem, load_image
    from pipeline.translation.sources import SourceImage
    from pipeline.translation.workers import DecodeDataset

    path = write_image(tmp_path / f"image{suffix}", mode)
    with Image.open(path) as image:
        decoded_mode = image.mode
        expected = np.array(to_rgb(image))
        assert np.array_equal(np.array(_to_rgb(image)), expected)
    assert expected.shape == (4, 6, 3)
    if mode == "1":     # dithered to black and white when saved
        assert set(np.unique(expected)) == {0, 255}
    else:
        assert abs(float(expected.mean()) - GREY) <= 6, decoded_mode   # palette, JPEG: near
    assert np.array_equal(load_image(ImageItem(path, 6, 4)), expected)
    item = DecodeDataset([SourceImage("k", path, 6, 4, (), None)])[0]
    assert item["error"] is None and torch.equal(item["pixels"], torch.from_numpy(expected))


def test_32_bit_integer_greyscale_of_16_bit_values_is_scaled_too():
    import numpy as np
    from PIL import Image

    from detection.images import to_rgb
    from mguit.data import _to_rgb

    image = Image.fromarray(np.full((4, 6), GREY * 257, np.int32), "I")   # Pillow's other form
    assert np.array_equal(np.array(to_rgb(image)), np.full((4, 6, 3), GREY, np.uint8))
    assert np.array_equal(np.array(_to_rgb(image)), np.full((4, 6, 3), GREY, np.uint8))


def test_a_float_image_is_refused_by_name(tmp_path):
    import numpy as np
    from PIL import Image

    from pipeline.metrics.images import ImageItem, load_image

    path = tmp_path / "float.tiff"
    Image.fromarray(np.full((4, 6), 0.5, np.float32)).save(path)
    with pytest.raises(DatasetError, match=r"float\.tiff: .*32-bit float image \(PIL mode F\)"):
        load_image(ImageItem(path, 6, 4))


# -- D15: Cityscapes polygons --------------------------------------------------------------------


@pytest.mark.parametrize("vertices", [[[94, 61]], [[94, 61], [96, 70]]])
def test_polygon_of_one_or_two_points_is_a_bad_box(tmp_path, make_png, vertices):
    import json

    from pipeline.formats.cityscapes import read_cityscapes
    from pipeline.formats.common import BadInputLog

    root = tmp_path / "cityscapes"
    frame = "aachen_000000_000019"
    make_png(root / "leftImg8bit" / "val" / "aachen" / f"{frame}_leftImg8bit.png", 128, 96)
    polygons = root / "gtFine" / "val" / "aachen" / f"{frame}_gtFine_polygons.json"
    polygons.parent.mkdir(parents=True)
    polygons.write_text(json.dumps({"imgWidth": 128, "imgHeight": 96, "objects": [
        {"label": "car", "polygon": vertices},
        {"label": "car", "polygon": [[-5, 10], [30, 10], [30, 40]]}]}))
    with pytest.raises(DatasetError, match=rf"object 0 \(car\): polygon has {len(vertices)} "
                                           r"vertices: an object outline needs at least 3"):
        list(read_cityscapes(root, "val", class_map={"car": "car"}, on_bad_box="error",
                                log=BadInputLog()))
    log = BadInputLog()
    [record] = read_cityscapes(root, "val", class_map={"car": "car"}, on_bad_box="clip",
                               log=log)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in record.boxes] == [(0, 10, 31, 41)]
    assert log.to_dict() == {"degenerate polygon dropped": 1, "polygon clipped to the image": 1}


# -- run.threads ---------------------------------------------------------------------------------


def test_run_threads_sets_pytorch_threads_for_computing_stages(monkeypatch):
    from pipeline.config import RunConfig

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert RunConfig(threads=3).thread_count(default=8) == 3
    assert RunConfig().thread_count(default=8) == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert RunConfig().thread_count(default=8) == 2, "shared among torchrun's processes"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert RunConfig().thread_count(default=8) == 1


def test_run_threads_reaches_pytorch(trained, caplog):
    import torch

    config, _ = trained
    before = torch.get_num_threads()
    try:
        assert main(["run", str(config), "--only", "train_translator", "--force",
                     "run.threads=1"]) == 0
        assert torch.get_num_threads() == 1
        assert "PyTorch uses 1 threads (run.threads)" in caplog.text or before == 1
    finally:
        torch.set_num_threads(before)


def test_disk_full_while_translating_is_one_line_and_the_rerun_resumes(trained, caplog,
                                                                       monkeypatch):
    import errno

    from pipeline.translation import workers

    config, checkpoints = trained
    out = config.parent / "out"
    translate = ["translate", "--checkpoint", str(checkpoints / "last.pt"), "--input",
                 str(config.parent / "runs" / "t" / "data" / "source_train.json"), "--output",
                 str(out), "--batch-size", "1"]
    real_write, written = workers.write_bytes, []

    def write_until_full(path, data):
        if len(written) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(path)
        real_write(path, data)

    monkeypatch.setattr(workers, "write_bytes", write_until_full)
    assert main(translate) == 1
    assert f": {os.strerror(errno.ENOSPC)}; free space on that disk" in caplog.text
    assert "Traceback" not in caplog.text
    monkeypatch.setattr(workers, "write_bytes", real_write)
    assert main(translate) == 0
    assert (out / "annotations.json").exists()


# -- Second round (issue 27): images -------------------------------------------------------------


CLASS_MAP = {"Pedestrian": "person", "Person_sitting": "person", "Car": "car", "Truck": "truck",
             "Cyclist": "bicycle", "Van": None, "Tram": None, "Misc": None, "DontCare": None}


def _store_rotated(path: Path, orientation: int = 6):
    """Store ``path``'s pixels rotated, tagged with the EXIF ``orientation`` that shows them
    upright again (6: turn 90 degrees clockwise); return the upright pixels."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        shown = image.convert("RGB")
    stored = shown.transpose(Image.Transpose.ROTATE_90 if orientation == 6
                             else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif)
    with Image.open(path) as image:
        assert image.size == shown.size[::-1]
    return np.asarray(shown)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied_by_every_reader_so_boxes_keep_their_frame(
        tmp_path, tiny_data, orientation):
    import numpy as np
    from PIL import Image

    from detection.images import open_image, to_rgb
    from mguit.data import _to_rgb
    from pipeline.formats.common import BadInputLog, read_image_size
    from pipeline.formats.kitti import read_kitti
    from pipeline.metrics.images import ImageItem, load_image
    from pipeline.translation.sources import SourceImage
    from pipeline.translation.workers import DecodeDataset

    source = shutil.copytree(tiny_data.source_root, tmp_path / "kitti")
    path = source / "image_2" / "000003.png"
    [upright] = read_kitti(source, ["000003"], class_map=CLASS_MAP, log=BadInputLog())
    shown = _store_rotated(path, orientation)
    height, width = shown.shape[:2]
    assert read_image_size(path, verify=True) == (width, height)
    log = BadInputLog()
    [record] = read_kitti(source, ["000003"], class_map=CLASS_MAP, log=log, verify_images=True)
    assert record.boxes == upright.boxes and (record.width, record.height) == (width, height)
    assert log.to_dict() == {}
    with open_image(path) as image:
        assert np.array_equal(np.asarray(to_rgb(image)), shown)
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(_to_rgb(image)), shown)
    assert np.array_equal(load_image(ImageItem(path, width, height)), shown)
    item = DecodeDataset([SourceImage("k", path, width, height, (), None)])[0]
    assert item["error"] is None and np.array_equal(item["pixels"].numpy(), shown)


def test_translator_training_crops_an_oriented_image_in_its_shown_frame(tmp_path, make_png):
    import numpy as np

    from mguit.data import BoxImage, UnpairedBoxDataset

    path = make_png(tmp_path / "a.png", 96, 48, noise=True)
    shown = _store_rotated(path)
    entry = BoxImage(path, 96, 48, np.zeros((0, 4)), [])
    dataset = UnpairedBoxDataset([entry], [entry], ["background"], resize=48, crop=48,
                                 flip=False)
    image = dataset[0]["image_x"]                  # (3, 48, 48) in [-1, 1]
    pixels = (image.permute(1, 2, 0).numpy() + 1) * 127.5
    errors = [np.abs(pixels - shown[:, left:left + 48]).max() for left in range(96 - 48 + 1)]
    assert min(errors) < 1.0                       # the crop of the upright image at some left


def test_a_decompression_bomb_is_refused_naming_the_file_and_the_limit(tmp_path, caplog):
    from PIL import Image

    from pipeline.formats.common import read_image_size
    from pipeline.metrics.images import ImageItem, load_image

    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)
    assert path.stat().st_size < 100_000
    for read in (lambda: read_image_size(path), lambda: load_image(ImageItem(path, 20000, 20000))):
        with pytest.raises(DatasetError, match=r"bomb\.png: .*too many pixels to decode safely "
                                               r"\(Image size \(400000000 pixels\) exceeds limit"):
            read()


def test_an_image_past_the_warning_limit_is_refused_not_warned_about(tmp_path, monkeypatch,
                                                                   recwarn):
    from PIL import Image

    from pipeline.formats.common import read_image_size

    path = tmp_path / "big.png"
    Image.new("L", (120, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)   # warns past 10k, fails past 20k
    with pytest.raises(DatasetError, match=r"big\.png: .*12000 pixels\) exceeds limit of 10000"):
        read_image_size(path)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("size", [(3, 1), (1, 1), (5, 9)])
def test_an_image_smaller_than_the_network_stride_translates_at_its_own_size(size):
    import torch

    from mguit.model import MGUIT
    from test_translate import small_random_config

    model = MGUIT(small_random_config()).eval()
    width, height = size
    out = model.translate(torch.zeros(1, 3, height, width), num_samples=2)
    assert out.shape == (2, 1, 3, height, width) and torch.isfinite(out).all()


# -- Second round (issue 27): label files ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["error", "ignore"])
def test_a_byte_order_mark_before_the_first_kitti_label_is_not_part_of_its_class(
        tmp_path, tiny_data, policy):
    from pipeline.formats.common import BadInputLog
    from pipeline.formats.kitti import read_kitti

    source = shutil.copytree(tiny_data.source_root, tmp_path / "kitti")
    label = source / "label_2" / "000003.txt"
    [plain] = read_kitti(source, ["000003"], class_map=CLASS_MAP, log=BadInputLog())
    assert plain.boxes
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    log = BadInputLog()
    [record] = read_kitti(source, ["000003"], class_map=CLASS_MAP, on_unknown_label=policy,
                          log=log)
    assert record.boxes == plain.boxes and log.to_dict() == {}


def test_a_byte_order_mark_before_a_json_file_is_read_past(tmp_path):
    from pipeline.formats.common import read_json

    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"images": []}')
    assert read_json(path) == {"images": []}


@pytest.mark.parametrize("token", ["1_0.00", "nan", "inf", "-Infinity", "0x10", "1.0.0"])
def test_a_kitti_number_python_reads_but_kitti_does_not_write_is_refused(token):
    from pipeline.formats.kitti import parse_label_line

    line = f"Car 0.00 0 {token} 10.00 20.00 30.00 40.00 1.50 1.60 3.90 1.00 1.50 20.00 0.10"
    with pytest.raises(DatasetError, match=rf"a\.txt:7: field 'alpha' must be a number, found "
                                           rf"'{re.escape(token)}'"):
        parse_label_line(line, "a.txt", 7)
    good = parse_label_line(line.replace(token, "-1.5e1"), "a.txt", 7)
    assert good.alpha == -15.0


# -- Second round (issue 27): config files, overrides, weights -------------------------------------


@pytest.mark.parametrize("override, message", [
    ("translator.train.crop=66", "command-line override translator.train.crop: train.crop 66 must "
                                 "be a multiple of the networks' stride 4"),
    ("translator.train.crop=4", "train.crop 4 must be a multiple of the networks' stride 4 "
                                "(2**model.num_downsample) and at least 8"),
    ("run.seed=-1", "command-line override run.seed: run.seed must be an integer in "
                    "[0, 4294967295], got -1"),
    ("run.seed=18446744073709551617", "run.seed must be an integer in [0, 4294967295]"),
    ("translate.seed=-2", "command-line override translate.seed: translate.seed must be"),
    ("data.source.split_seed=-2", "command-line override data.source.split_seed: split_seed"),
    ("translator.train.iterations=-5", "command-line override translator.train.iterations: "
                                       "train.iterations must be >= 1"),
])
def test_values_that_fail_later_are_refused_at_load_naming_the_override(
        tmp_path, tiny_data, caplog, override, message):
    config = write_config(tmp_path, tiny_data, extra="""\
        translator:
          model: {num_downsample: 2}
          train: {iterations: 3, crop: 32, resize: 96}
        """)
    assert main(["run", str(config), override]) == 2
    assert message in caplog.text
    assert not (tmp_path / "runs").exists()


def test_a_bad_value_in_the_file_is_blamed_on_its_own_line(tmp_path, tiny_data, caplog):
    config = write_config(tmp_path, tiny_data, extra="""\
        translator:
          train:
            resize: 96
            crop: 66
        """)
    line = config.read_text().splitlines().index("    crop: 66") + 1
    assert main(["stages", str(config)]) == 2
    assert f"{config}:{line}: translator.train.crop: train.crop 66 must be" in caplog.text


def test_ablate_refuses_a_seed_past_32_bits_before_creating_a_run(tmp_path, tiny_data, capsys):
    config = write_config(tmp_path, tiny_data)
    with pytest.raises(SystemExit) as exit_:
        main(["ablate", str(config), "--seeds", "0,99999999999999999999"])
    assert exit_.value.code == 2
    assert "a seed must be an integer in [0, 4294967295]" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, line, first", [
    ("data:\n  classes: [car]\nrun: {seed: 1}\ndata:\n  classes: [person]\n", 4, 1),
    ("_base_: a.yaml\nrun: {seed: 1}\n_base_: b.yaml\n", 3, 1),
    ("run:\n  seed: 1\n  seed: 2\n", 3, 2),
])
def test_a_key_set_twice_in_a_config_file_is_refused_naming_both_lines(tmp_path, caplog, text,
                                                                       line, first):
    config = tmp_path / "twice.yaml"
    config.write_text(text)
    assert main(["stages", str(config)]) == 2
    assert f"{config}:{line}: key " in caplog.text
    assert f"is set twice (also on line {first}); keep one" in caplog.text


def test_yaml_merge_keys_may_still_be_overridden(tmp_path, tiny_data):
    from pipeline.config import load_config

    config = write_config(tmp_path, tiny_data, extra="""\
        metrics: &shared {seed: 3}
        report:
          <<: *shared
          seed: 5
        """)
    loaded = load_config(config)
    assert (loaded.metrics.seed, loaded.report.seed) == (3, 5)


def test_a_key_set_twice_in_an_override_is_refused(tmp_path, tiny_data, caplog):
    config = write_config(tmp_path, tiny_data)
    assert main(["stages", str(config), "data.source.class_map={Car: car, Car: truck}"]) == 2
    assert "override data.source.class_map: key 'Car' is set twice; keep one" in caplog.text


@pytest.mark.parametrize("where", ["file", "override"])
def test_invalid_yaml_is_one_line_with_its_position(tmp_path, tiny_data, caplog, where):
    config = write_config(tmp_path, tiny_data)
    if where == "file":
        config.write_text(config.read_text() + "report:\n  seed: [1\n")
        args = ["stages", str(config)]
    else:
        args = ["stages", str(config), "run.name=[a"]
    caplog.clear()
    assert main(args) == 2
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "\n" not in error and "not valid YAML: expected ',' or ']'" in error
    assert "(column " in error


def test_weights_lists_a_garbage_local_file_and_a_folder_as_unusable(tmp_path, tiny_data, capsys):
    import torch

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(2)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:-40])
    for path, status in ((junk, "not a weights file"), (tmp_path, "a folder, not a weights file"),
                         (truncated, "not a weights file"), (good, "present")):
        config = write_config(tmp_path, tiny_data, extra=f"detector: {{weights: {path}}}\n")
        assert main(["weights", str(config)]) == (0 if status == "present" else 1)
        row = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("detector.weights")][0]
        assert status in row


def test_junk_backbone_weights_are_one_line(tmp_path):
    import torchvision

    from detection.errors import DetectionError
    from detection.torchvision_backend import _load_backbone

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02this is a broken pickle")
    with pytest.raises(DetectionError) as error:
        _load_backbone(torchvision.models.resnet18(), junk)
    assert "\n" not in str(error.value) and "junk.pth: cannot read backbone weights" in str(
        error.value)


# -- Second round (issue 27): a run's own outputs and bookkeeping ------------------------------------


def _detector_config(tmp_path, tiny_data, keep_snapshots: bool) -> Path:
    from tiny_run import detector_section

    detector = detector_section(["source_only"]).replace(
        "checkpoint_every: 2,\n           keep_snapshots: false",
        f"checkpoint_every: 1,\n           keep_snapshots: {str(keep_snapshots).lower()}")
    assert "checkpoint_every: 1" in detector
    return write_config(tmp_path, tiny_data, extra=detector)


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_a_truncated_detector_checkpoint_makes_the_stage_stale_and_resumes_from_a_snapshot(
        tmp_path, tiny_data, caplog, capsys):
    import torch

    config = _detector_config(tmp_path, tiny_data, keep_snapshots=True)
    assert main(["run", str(config), "--only", "prepare,train_detector"]) == 0
    folder = tmp_path / "runs" / "t" / "detector" / "source_only"
    last = folder / "last.pt"
    uninterrupted = _weights(last)
    assert sorted(p.name for p in folder.glob("model_*.pt")) == ["model_0000001.pt",
                                                                "model_0000002.pt"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (folder / "model_0000002.pt").unlink()
    capsys.readouterr()
    assert main(["stages", str(config)]) == 0
    assert f"output changed since the stage wrote it: {last}" in capsys.readouterr().out
    assert main(["run", str(config), "--only", "train_detector"]) == 0
    assert "resuming from the newest intact snapshot model_0000001.pt instead (iteration 1)" \
        in caplog.text
    resumed = _weights(last)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    capsys.readouterr()
    assert main(["stages", str(config)]) == 0
    assert re.search(r"train_detector +done", capsys.readouterr().out)


def test_a_deleted_detector_checkpoint_is_trained_again(tmp_path, tiny_data, caplog, capsys):
    config = _detector_config(tmp_path, tiny_data, keep_snapshots=False)
    assert main(["run", str(config), "--only", "prepare,train_detector"]) == 0
    last = tmp_path / "runs" / "t" / "detector" / "source_only" / "last.pt"
    last.unlink()
    capsys.readouterr()
    assert main(["stages", str(config)]) == 0
    assert f"output missing: {last}" in capsys.readouterr().out
    assert main(["run", str(config), "--only", "train_detector"]) == 0
    assert f"{last}: missing; training again from the newest intact checkpoint" in caplog.text
    assert torch_iteration(last) == 2


def test_a_translated_image_deleted_after_the_stage_is_noticed_and_translated_again(
        tmp_path, tiny_data, caplog, capsys):
    config = write_config(tmp_path, tiny_data, extra=TINY_TRANSLATOR)
    assert main(["run", str(config), "--to", "translate"]) == 0
    image = tmp_path / "runs" / "t" / "translated" / "image_2" / "000004.png"
    original = image.read_bytes()
    image.unlink()
    capsys.readouterr()
    assert main(["stages", str(config)]) == 0
    assert re.search(rf"translate +stale +output missing: {re.escape(str(image))} ",
                     capsys.readouterr().out)
    caplog.clear()
    assert main(["run", str(config), "--only", "translate"]) == 0
    assert ": 8 images, 1 to translate in 1 batches, 7 outputs reused" in caplog.text
    assert image.read_bytes() == original


@pytest.mark.parametrize("content, problem", [
    (b"[]", "a JSON list, not an object"),
    (b"\xff\xfe{}", "not UTF-8 text: byte 0"),
    (b'{"version": 1, "stages": []}', "'stages' is not an object"),
    (b'{"version": 1, "stages": {"prepare": []}}', "stage 'prepare' is not an object"),
    (b'{"version": 1, "stages": {"prepare": {"config": {}, "inputs": {}, "outputs": "x", '
     b'"started_at": "", "finished_at": ""}}}', "stage 'prepare': 'outputs' is not a list"),
])
def test_a_corrupt_state_file_is_named_with_what_to_do(tmp_path, tiny_data, caplog, content,
                                                      problem):
    config = write_config(tmp_path, tiny_data)
    state = tmp_path / "runs" / "t" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(content)
    for command in (["stages", str(config)], ["run", str(config), "--only", "prepare"]):
        caplog.clear()
        assert main(command) == 1
        assert f"{state}: corrupt state file ({problem}); delete it to rerun every stage" \
            in caplog.text
        assert "Traceback" not in caplog.text


def test_the_folder_of_a_killed_prepare_is_removed_by_the_next_one(tmp_path, tiny_data):
    config = write_config(tmp_path, tiny_data)
    data = tmp_path / "runs" / "t" / "data"
    leftover = data / ".prepare-k1ll3d"
    leftover.mkdir(parents=True)
    (leftover / "source_train.json").write_text("{")
    assert main(["run", str(config), "--only", "prepare"]) == 0
    assert not list(data.glob(".prepare-*"))
    assert (data / "source_train.json").is_file()


def test_no_progress_bars_off_a_terminal_and_errors_start_their_own_line(tmp_path, tiny_data,
                                                                         capsys):
    import subprocess
    import sys

    source = shutil.copytree(tiny_data.source_root, tmp_path / "kitti")
    label = source / "label_2" / "000005.txt"
    label.write_text(label.read_text() + "Tram2 0 0 0 1 1 5 5 1 1 1 1 1 1 0\n")
    config = write_config(tmp_path, tiny_data, source_root=source)
    piped = subprocess.run([sys.executable, "-m", "pipeline", "run", str(config), "--only",
                            "prepare"], capture_output=True, text=True)
    assert piped.returncode == 1
    assert "\r" not in piped.stderr and "img/s" not in piped.stderr, piped.stderr[-1000:]
    assert any(line.startswith("ERROR ") and "unknown label 'Tram2'" in line
               for line in piped.stderr.splitlines()), piped.stderr[-1000:]
    label.write_text(label.read_text().replace("Tram2", "Tram"))
    assert main(["run", str(config), "--only", "prepare", "--no-progress"]) == 0
    for sub in ("translate", "ablate", "weights", "synth"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "--no-progress" in capsys.readouterr().out


KILL_AT_ITERATION = """\
import os, signal, sys
from mguit.trainer import Trainer
from pipeline.cli import main
step = Trainer.step
def killed(self, batch):
    if self.iteration == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch)
Trainer.step = killed
main(["run", sys.argv[1], "--to", "train_translator"])
"""


@pytest.mark.parametrize("lose_last", [False, True])
def test_a_translator_killed_and_resumed_equals_an_uninterrupted_one(tmp_path, tiny_data,
                                                                     caplog, lose_last):
    import subprocess
    import sys

    import torch

    translator = TINY_TRANSLATOR.replace("iterations: 4", "iterations: 8").replace(
        "snapshot_every: 2", "snapshot_every: 4")
    runs = {}
    for name in ("straight", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        runs[name] = write_config(folder, tiny_data, run="workers: 1, threads: 1",
                                  extra=translator)
    assert main(["run", str(runs["straight"]), "--to", "train_translator"]) == 0
    killed = subprocess.run([sys.executable, "-c", KILL_AT_ITERATION, str(runs["killed"])],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = tmp_path / "killed" / "runs" / "t" / "translator" / "checkpoints"
    assert torch_iteration(checkpoints / "last.pt") == 6
    if lose_last:       # resumes from iter_000004.pt
        (checkpoints / "last.pt").unlink()
    caplog.clear()
    assert main(["run", str(runs["killed"]), "--to", "train_translator"]) == 0
    assert ("resuming from the newest intact snapshot iter_000004.pt instead (iteration 4)"
            if lose_last else "last.pt at iteration 6") in caplog.text
    uninterrupted = tmp_path / "straight" / "runs" / "t" / "translator" / "checkpoints"
    straight = torch.load(uninterrupted / "last.pt", map_location="cpu", weights_only=True)
    resumed = torch.load(checkpoints / "last.pt", map_location="cpu", weights_only=True)
    assert resumed["iteration"] == straight["iteration"] == 8
    different = [k for k in straight["model"]
                 if not torch.equal(straight["model"][k], resumed["model"][k])]
    assert different == []
    assert len(straight["model"]) > 50 and "memory.values" in straight["model"]
