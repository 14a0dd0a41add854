"""Stage machinery and the prepare stage, on tiny synthetic data in the real on-disk layouts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import synthetic
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.runner import Runner, StageError
from pipeline.stages import STAGE_NAMES, STAGES, Stage, prepare
from tiny_run import data_section


def write_config(tmp_path: Path, data: synthetic.SyntheticDataset, source_root: Path | None = None,
                 extra: str = "") -> Path:
    text = textwrap.dedent(f"""\
        run: {{name: t, dir: {tmp_path / 'runs'}, workers: 1}}
        """) + data_section(source_root or data.source_root, data.target_root) + extra
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_prepare_writes_four_manifests_and_summary(tmp_path, tiny_data):
    cfg = load_config(write_config(tmp_path, tiny_data))
    runner = Runner(cfg)
    assert [s.state for s in runner.statuses()] == ["todo"] * (len(STAGES) - 2)
    assert "pseudo_label" not in runner.names       # only with data.target.labels: pseudo
    assert "translate_baselines" not in runner.names    # only with a baseline's detector
    runner.run(runner.select(only=["prepare"]))
    data_dir = cfg.run.path / "data"
    for split in prepare.SPLITS:
        manifest = json.loads((data_dir / f"{split}.json").read_text())
        assert [c["name"] for c in manifest["categories"]] == ["person", "car", "truck", "bicycle"]
        assert [c["id"] for c in manifest["categories"]] == [1, 2, 3, 4]
    summary = json.loads((data_dir / "summary.json").read_text())
    assert summary["splits"]["source_train"]["images"] == 8
    assert summary["splits"]["source_val"]["images"] == 2
    assert summary["splits"]["target_train"]["images"] == 6
    assert summary["splits"]["target_val"]["images"] == 4
    assert (cfg.run.path / "config.resolved.yaml").exists()
    assert runner.status(runner.select(only=["prepare"])[0]).state == "done"
    assert not list(data_dir.glob(".prepare-*")), "temporary folder left behind"


def test_unchanged_stage_is_skipped_and_changes_make_it_stale(tmp_path, tiny_data):
    source = copy_tree(tiny_data.source_root, tmp_path / "kitti")
    config_path = write_config(tmp_path, tiny_data, source_root=source)
    runner = Runner(load_config(config_path))
    stage = runner.select(only=["prepare"])
    runner.run(stage)
    manifest = runner.ctx.manifest("source_train")
    before = manifest.stat().st_mtime_ns
    assert runner.run(stage) == {}, "an up-to-date stage must be skipped"
    assert manifest.stat().st_mtime_ns == before

    changed = Runner(load_config(config_path, ["data.on_bad_box=drop"]))
    status = changed.status(stage[0])
    assert status.state == "stale"
    assert status.reason == "config changed: data.on_bad_box: 'clip' -> 'drop'"
    assert "prepare" in changed.run(stage)

    label = sorted((source / "label_2").iterdir())[0]
    label.write_text(label.read_text() + "Car 0.00 0 0.00 1.00 1.00 20.00 20.00 "
                     "1.50 1.60 3.90 0.00 1.70 20.00 0.00\n")
    status = changed.status(stage[0])
    assert (status.state, status.reason) == ("stale", f"input changed: {source}")
    changed.run(stage)
    changed.ctx.manifest("target_val").unlink()
    assert changed.status(stage[0]).reason.startswith("output missing")


def test_speed_keys_do_not_make_a_finished_stage_stale(tmp_path, tiny_data):
    stage = Stage(name="probe", description="", config_keys=("translate",),
                  inputs=lambda ctx: [], outputs=lambda ctx: [], run=lambda ctx: {"ran": 1},
                  speed_keys=("translate.workers",))
    config_path = write_config(tmp_path, tiny_data)
    assert Runner(load_config(config_path)).run([stage]) == {"probe": {"ran": 1}}
    faster = Runner(load_config(config_path, ["translate.workers=7"]))
    assert faster.status(stage).state == "done"
    assert faster.run([stage]) == {}
    other = Runner(load_config(config_path, ["translate.seed=3"]))
    assert other.status(stage).reason == "config changed: translate.seed: 0 -> 3"


def test_stage_selection():
    runner = Runner.__new__(Runner)
    runner.stages = STAGES
    assert [s.name for s in runner.select(start="translate", stop="evaluate")] == \
        ["translate", "translate_baselines", "train_detector", "evaluate"]
    assert [s.name for s in runner.select(only=["evaluate", "prepare"])] == ["prepare", "evaluate"]
    assert [s.name for s in runner.select()] == list(STAGE_NAMES)
    with pytest.raises(StageError, match="unknown stage 'tranlate'; did you mean 'translate'"):
        runner.select(only=["tranlate"])
    with pytest.raises(StageError, match="comes after"):
        runner.select(start="evaluate", stop="prepare")


def test_bad_label_stops_prepare_with_no_partial_manifest(tmp_path, tiny_data):
    source = copy_tree(tiny_data.source_root, tmp_path / "kitti")
    label = sorted((source / "label_2").iterdir())[-1]
    label.write_text("Car 0.00 0 -1.58 587.01 173.33\n")
    runner = Runner(load_config(write_config(tmp_path, tiny_data, source_root=source)))
    assert main(["run", str(tmp_path / "exp.yaml"), "--only", "prepare"]) == 1
    assert not list((runner.ctx.run_dir / "data").glob("*.json"))
    assert "prepare" not in runner.load_state()["stages"]


def test_cli_run_stages_and_log(tmp_path, tiny_data, capsys, caplog):
    config_path = write_config(tmp_path, tiny_data)
    assert main(["run", str(config_path), "--to", "prepare", "run.name=cli"]) == 0
    run_dir = tmp_path / "runs" / "cli"
    log = (run_dir / "pipeline.log").read_text()
    assert "stage prepare: done" in log
    assert "source_train" in log and "bicycle" in log, "summary table goes to the log"
    assert main(["stages", str(config_path), "run.name=cli"]) == 0
    out = capsys.readouterr().out
    assert "prepare" in out and "done" in out
    assert re.search(r"train_translator +todo +never finished in this run directory", out)
    assert main(["run", str(config_path), "--only", "translate", "run.name=cli"]) == 1
    assert "stage translate needs" in caplog.text
    assert "which stage train_translator makes" in caplog.text
    assert main(["run", str(config_path), "run.nmae=x"]) == 2


def test_cli_rejects_missing_dataset_root(tmp_path, tiny_data, caplog):
    config_path = write_config(tmp_path, tiny_data, source_root=tmp_path / "nowhere")
    assert main(["run", str(config_path), "--only", "prepare"]) == 1
    assert str(tmp_path / "nowhere") in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="console script path is POSIX-specific")
def test_console_script_help_lists_stages():
    exe = Path(sys.executable).with_name("pipeline")
    out = subprocess.run([str(exe), "run", "--help"], capture_output=True, text=True, check=True)
    for name in STAGE_NAMES:
        assert name in out.stdout


@pytest.mark.slow
def test_end_to_end_prepare_and_train_translator_then_resume(tmp_path, tiny_data):
    """`pipeline run` through the stages that exist, with small random networks; a rerun with a
    longer schedule continues from the checkpoint instead of starting over."""
    tiny = textwrap.dedent("""\
        translator:
          model: {base_channels: 8, content_res_blocks: 1, style_res_blocks: 1,
                  generator_res_blocks: 1, discriminator_channels: 8, discriminator_layers: 2,
                  discriminator_scales: 1, content_discriminator_channels: 16}
          memory: {key_dim: 32, items: {person: 1, car: 1, truck: 1, bicycle: 1, background: 2}}
          train: {iterations: 3, resize: 32, crop: 32, num_workers: 0, checkpoint_every: 2,
                  image_every: 2, log_every: 1}
        """)
    config_path = write_config(tmp_path, tiny_data, extra=tiny)
    assert main(["run", str(config_path), "--to", "train_translator"]) == 0
    run_dir = tmp_path / "runs" / "t"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["train_translator"]["result"]["iterations"] == 3
    checkpoint = run_dir / "translator" / "checkpoints" / "last.pt"
    assert checkpoint.exists()
    assert main(["run", str(config_path), "--to", "train_translator",
                 "translator.train.iterations=5"]) == 0
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["train_translator"]["result"]["iterations"] == 5
    log = (run_dir / "pipeline.log").read_text()
    assert "config changed: translator.train.iterations: 3 -> 5" in log
    assert "resuming from" in log and "at iteration 3" in log
