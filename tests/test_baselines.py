"""The baseline translation methods (Reinhard colour transfer, FDA), their stage, the perfect
translation of the prepare stage, and the baselines' detectors through evaluate and the report."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.cli import main
from pipeline.config import TranslateConfig, load_config
from pipeline.formats import coco
from pipeline.formats.common import DatasetError, ImageRecord
from pipeline.runner import Runner
from pipeline.schema import ConfigError
from pipeline.stages import get_stage
from pipeline.translation import TranslationError, translate_dataset
from pipeline.translation.lab import lab_to_srgb, srgb_to_lab
from pipeline.translation.methods import build_baseline
from pipeline.translation.methods import colour_transfer as ct
from pipeline.translation.methods.fda import (FourierDomainAdaptation, swap_low_frequencies,
                                              window_half_width)
from pipeline.translation.methods.reference import ReferenceSet
from pipeline.translation.plan import style_seed
from test_translate import OPTIONS, files, kitti_manifest, write_kitti
from tiny_run import data_section, detector_section

def random_image(height: int, width: int, low: int = 0, high: int = 256, seed: int = 0
                 ) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (height, width, 3), dtype=np.uint8)


def write_reference(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """A manifest of random target images of ``sizes`` ``(width, height)``, each with its own
    tint (so the images' statistics differ)."""
    records = []
    for i, (width, height) in enumerate(sizes):
        pixels = random_image(height, width, 40, 200, seed=100 + i)
        pixels[..., i % 3] = np.clip(pixels[..., i % 3].astype(int) + 50, 0, 255)
        path = folder / "images" / f"target_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        records.append(ImageRecord(path=path, file_name=f"images/{path.name}", width=width,
                                   height=height, boxes=[], extra={}))
    manifest = folder / "target_train.json"
    coco.write_manifest(manifest, records, ["person", "car", "truck", "bicycle"], folder)
    return manifest


# ------------------------------------------------------------------ CIE Lab

def test_lab_of_white_and_pure_red_are_the_textbook_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.01)
    np.testing.assert_allclose(lab[2], [0, 0, 0], atol=1e-3)


def test_lab_round_trip_keeps_every_colour_within_one_grey_level():
    levels = np.arange(0, 256, 3, dtype=np.uint8)     # 86^3 colours, the extremes included
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    back = lab_to_srgb(srgb_to_lab(colours))
    assert np.abs(back.astype(int) - colours).max() <= 1


# ------------------------------------------------------------------ Reinhard colour transfer

def test_colour_transfer_gives_the_image_the_reference_lab_statistics():
    source = random_image(24, 32, 30, 220, seed=1)
    mean, std = ct.lab_moments(random_image(20, 20, 80, 180, seed=2))
    out = ct.transfer(source, mean, std)
    got_mean, got_std = ct.lab_moments(out)
    # Rounding to 8 bits moves a Lab value by well under one unit, and its mean far less.
    np.testing.assert_allclose(got_mean, mean, atol=0.2)
    np.testing.assert_allclose(got_std, std, atol=0.2)
    # Transferring an image's own statistics gives the image back.
    assert np.array_equal(ct.transfer(source, *ct.lab_moments(source)), source)


def test_dataset_statistics_are_those_of_all_pixels_and_are_reused(tmp_path, monkeypatch):
    manifest = write_reference(tmp_path / "target", [(20, 10), (30, 16)])
    reference = ReferenceSet.read(manifest)
    mean, std = ct.dataset_moments(reference, progress=False)
    pixels = np.concatenate([reference.load(i).reshape(-1, 3) for i in range(2)])
    np.testing.assert_allclose(mean, srgb_to_lab(pixels).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, srgb_to_lab(pixels).std(axis=0), rtol=1e-4)

    method = ct.ColourTransfer.build(reference, tmp_path / "out", progress=False,
                                     statistics="split")
    (tmp_path / "out").mkdir()
    for name, data in method.files().items():
        (tmp_path / "out" / name).write_bytes(data)
    monkeypatch.setattr(ct, "dataset_moments", lambda *a: pytest.fail("recomputed"))
    again = ct.ColourTransfer.build(reference, tmp_path / "out", statistics="split")
    assert again.settings() == method.settings()


def test_colour_transfer_samples_use_dataset_then_one_image_statistics(tmp_path):
    reference = ReferenceSet.read(write_reference(tmp_path, [(16, 12), (16, 12), (16, 12)]))
    method = ct.ColourTransfer(reference, [50.0, 5.0, -5.0], [20.0, 10.0, 10.0])
    source = random_image(12, 16, seed=3)
    seed = style_seed(0, "000001")
    out = method.translate(torch.from_numpy(source[None]), 3, [seed])
    assert out.shape == (3, 1, 12, 16, 3)
    assert np.array_equal(out[0, 0], ct.transfer(source, method.mean, method.std))
    for k in (1, 2):
        image = reference.load(reference.pick(seed, k))
        assert np.array_equal(out[k, 0], ct.transfer(source, *ct.lab_moments(image)))


def test_colour_transfer_image_statistics_give_each_sample_one_reference_images(
        tmp_path, monkeypatch):
    """``translate.colour_transfer_reference: image`` (the default): sample 0 too takes one
    reference image's statistics, so two source images get different light; the split's
    statistics are never computed and no reference.json is written."""
    reference = ReferenceSet.read(write_reference(tmp_path, [(16, 12)] * 4))
    monkeypatch.setattr(ct, "dataset_moments", lambda *a: pytest.fail("split statistics"))
    method = ct.ColourTransfer.build(reference, tmp_path / "out", progress=False)
    assert method.statistics == "image" and method.files() == {}
    assert method.settings()["statistics"] == "image"
    source = random_image(12, 16, seed=3)
    seeds = [style_seed(0, name) for name in ("000001", "000002", "000003")]
    out = method.translate(torch.from_numpy(np.stack([source] * 3)), 2, seeds)
    for row, seed in enumerate(seeds):
        for k in (0, 1):
            image = reference.load(reference.pick(seed, k))
            assert np.array_equal(out[k, row], ct.transfer(source, *ct.lab_moments(image)))
    assert len({out[0, row].tobytes() for row in range(3)}) > 1
    assert TranslateConfig().colour_transfer_reference == "image"
    with pytest.raises(ValueError, match="image or split"):
        ct.ColourTransfer.build(reference, tmp_path / "out", statistics="dataset")


# ------------------------------------------------------------------ FDA

def test_fda_window_of_half_width_zero_swaps_only_the_mean():
    source = random_image(20, 30, 100, 150, seed=4).astype(float)
    target = random_image(20, 30, 60, 120, seed=5).astype(float)
    assert window_half_width(20, 30, 0.01) == 0
    mixed = swap_low_frequencies(source, target, 0.01)
    expected = source - source.mean(axis=(0, 1)) + target.mean(axis=(0, 1))
    np.testing.assert_allclose(mixed, expected, atol=1e-9)
    # The image itself as the target changes nothing, whatever the window.
    image = random_image(20, 30, seed=6)
    assert np.array_equal(np.clip(np.rint(swap_low_frequencies(image, image, 0.2)), 0, 255),
                          image)


@pytest.mark.parametrize("height, width", [(32, 48), (33, 45)])
def test_fda_takes_the_target_low_frequency_amplitude_and_keeps_the_source_phase(height, width):
    source = 128 + random_image(height, width, 0, 40, seed=7).astype(float) - 20   # mid-grey
    target = random_image(height, width, 0, 256, seed=8).astype(float)
    beta = 0.1
    b = window_half_width(height, width, beta)
    assert b == 3
    mixed = swap_low_frequencies(source, target, beta)
    assert 0 <= mixed.min() and mixed.max() <= 255, "no clipping on this image"

    def shifted(image):
        return np.fft.fftshift(np.fft.fft2(image, axes=(0, 1)), axes=(0, 1))

    out, src, tgt = shifted(mixed), shifted(source), shifted(target)
    window = np.zeros((height, width), bool)
    window[height // 2 - b:height // 2 + b + 1, width // 2 - b:width // 2 + b + 1] = True
    np.testing.assert_allclose(np.abs(out)[window], np.abs(tgt)[window], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(np.abs(out)[~window], np.abs(src)[~window], rtol=1e-9,
                               atol=1e-6)
    phase_difference = np.angle(out * np.conj(src))
    np.testing.assert_allclose(phase_difference, 0, atol=1e-6)


def test_fda_output_is_a_pure_function_of_image_seed_and_sample(tmp_path):
    reference = ReferenceSet.read(write_reference(tmp_path, [(24, 14), (40, 20), (10, 30)]))
    method = FourierDomainAdaptation(reference, 0.05)
    images = np.stack([random_image(18, 26, seed=s) for s in range(3)])
    seeds = [style_seed(0, f"{i:06d}") for i in range(3)]
    batched = method.translate(torch.from_numpy(images), 2, seeds)
    for i in range(3):
        alone = method.translate(torch.from_numpy(images[i:i + 1]), 2, seeds[i:i + 1])
        assert np.array_equal(alone[:, 0], batched[:, i])
    # Each sample draws its own target image, resized to the source (bilinear).
    target = reference.load(reference.pick(seeds[1], 1), (26, 18))
    expected = np.clip(np.rint(swap_low_frequencies(images[1], target, 0.05)), 0, 255)
    assert np.array_equal(batched[1, 1], expected)


# ------------------------------------------------------------------ the engine

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("baselines")
    root = write_kitti(base / "kitti")
    return {"kitti": root, "manifest": kitti_manifest(root, base / "source.json"),
            "reference": write_reference(base / "target", [(50, 30), (64, 40), (30, 60)])}


@pytest.mark.parametrize("name", ["colour_transfer", "fda"])
def test_baseline_translation_keeps_labels_resumes_and_refuses_other_settings(
        data, tmp_path, name):
    options = replace(OPTIONS, num_samples=2, batch_size=3)
    out = tmp_path / name

    def run(opts=options, overwrite=False):
        method = build_baseline(name, data["reference"], opts, out, progress=False)
        return translate_dataset(data["manifest"], out, options=opts, method=method,
                                 overwrite=overwrite, progress=False)

    summary = run()
    assert summary.complete and summary.translated == 12 and summary.outputs == 24
    for label in sorted((data["kitti"] / "label_2").iterdir()):
        for k in (0, 1):
            assert (out / "label_2" / f"{label.stem}_s{k}.txt").read_bytes() == \
                label.read_bytes()
    first = files(out)
    settings = json.loads(first["translate.json"])
    assert settings["method"] == name and "checkpoint_sha256" not in settings
    annotations = json.loads(first["annotations.json"])
    assert annotations["info"]["description"].endswith(f"translated by {name}")
    assert len(annotations["images"]) == 24 and annotations["annotations"]
    # Only colour transfer's split statistics are kept (the default takes one image's).
    assert "reference.json" not in first

    (out / "image_2" / "000003_s1.png").unlink()
    (out / "annotations.json").unlink()
    again = run(replace(options, batch_size=1))
    assert again.reused == 23 and again.outputs == 1
    assert files(out) == first

    other = replace(options, fda_beta=0.2, seed=1)
    with pytest.raises(TranslationError, match=r"other settings \(.*seed: 0 -> 1.*--overwrite"):
        run(other)
    run(other, overwrite=True)
    assert json.loads((out / "translate.json").read_text())["seed"] == 1
    if name == "fda":
        assert json.loads((out / "translate.json").read_text())["beta"] == 0.2


def test_baseline_of_a_missing_reference_image_names_it(data, tmp_path):
    folder = tmp_path / "target"
    manifest = write_reference(folder, [(20, 20)])
    (folder / "images" / "target_0.png").unlink()
    method = build_baseline("fda", manifest, OPTIONS, tmp_path / "out")
    with pytest.raises(TranslationError, match=r"target_0\.png: reference image does not exist"):
        translate_dataset(data["manifest"], tmp_path / "out", options=OPTIONS, method=method,
                          progress=False)


# ------------------------------------------------------------------ config and stage keys

def write_config(folder: Path, tiny_data, train_sets, extra: str = "", name: str = "b") -> Path:
    text = textwrap.dedent(f"""\
        run: {{name: {name}, dir: {folder / 'runs'}, workers: 1, device: cpu, seed: 0}}
        """) + data_section(tiny_data.source_root, tiny_data.target_root) + \
        detector_section(train_sets) + textwrap.dedent(extra)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_stage_keys_follow_the_baselines_not_the_translator(tmp_path, tiny_data):
    config = load_config(write_config(tmp_path, tiny_data, ["source_only", "fda"]))
    baselines, translate = get_stage("translate_baselines"), get_stage("translate")
    assert baselines.active(config)
    keys = baselines.keys(config)
    assert "translate.fda_beta" in keys and "translate.reference_split" in keys
    assert not any(k.startswith("translator") or k in ("translate", "translate.checkpoint")
                   for k in keys)
    assert "translate.fda_beta" not in translate.keys(config)
    assert "translate.checkpoint" in translate.keys(config)
    assert "translate.colour_transfer_reference" not in keys
    colour = load_config(write_config(tmp_path, tiny_data, ["colour_transfer"]))
    assert "translate.fda_beta" not in baselines.keys(colour)
    assert "translate.colour_transfer_reference" in baselines.keys(colour)
    assert "translate.colour_transfer_reference" not in translate.keys(colour)
    plain = load_config(write_config(tmp_path, tiny_data, ["source_only", "translated"]))
    assert not baselines.active(plain)


def test_perfect_translation_needs_its_folder(tmp_path, tiny_data):
    path = write_config(tmp_path, tiny_data, ["source_only", "perfect_translation"])
    with pytest.raises(ConfigError, match=r"perfect_translation.*data\.source\."
                                          r"perfect_translations"):
        load_config(path)
    with pytest.raises(ConfigError, match="fda_beta"):
        load_config(path, ["translate.fda_beta=0.9",
                           f"data.source.perfect_translations=[{tmp_path}]"])


def test_perfect_translation_takes_as_many_draws_as_the_translations_have_samples(
        tmp_path, tiny_data):
    from pipeline.context import RunContext
    from pipeline.stages.train_detector import train_manifests

    path = write_config(tmp_path, tiny_data, ["source_only", "perfect_translation"])
    draws = [str(tmp_path / f"draw_{k}") for k in range(3)]
    with pytest.raises(ConfigError, match=r"translate.num_samples is 3.*perfect_translations "
                                          r"names 2"):
        load_config(path, [f"data.source.perfect_translations=[{draws[0]}, {draws[1]}]",
                           "translate.num_samples=3"])
    for k in (1, 3):
        config = load_config(path, [f"data.source.perfect_translations=[{', '.join(draws)}]",
                                    f"translate.num_samples={k}"])
        found = train_manifests(RunContext(config), "perfect_translation")
        assert [p.name for p in found] == [f"source_train.perfect_{i}.json" for i in range(k)]


# ------------------------------------------------------------------ perfect translation

def test_prepare_writes_the_perfect_translation_and_refuses_a_missing_or_resized_image(
        tmp_path, tiny_data):
    perfect = tmp_path / "perfect" / "training"
    shutil.copytree(tiny_data.source_root, perfect)
    path = write_config(tmp_path, tiny_data, ["source_only", "perfect_translation"])
    overrides = [f"data.source.perfect_translations=[{perfect}]"]
    assert main(["run", str(path), "--only", "prepare", *overrides]) == 0
    data_dir = tmp_path / "runs" / "b" / "data"
    manifest = json.loads((data_dir / "source_train.perfect_0.json").read_text())
    source = json.loads((data_dir / "source_train.json").read_text())
    assert manifest["info"]["image_root"] == perfect.as_posix()
    assert manifest["images"] == source["images"]
    assert manifest["annotations"] == source["annotations"]

    before = (data_dir / "source_train.perfect_0.json").read_bytes()
    victim = perfect / source["images"][1]["file_name"]
    Image.new("RGB", (10, 10)).save(victim)
    with pytest.raises(DatasetError, match=rf"{victim}: image is 10x10 but its source image"):
        _prepare_raising(path, overrides)
    victim.unlink()
    with pytest.raises(DatasetError, match=rf"{victim}: image file does not exist; "
                                        "data.source.perfect_translations"):
        _prepare_raising(path, overrides)
    assert (data_dir / "source_train.perfect_0.json").read_bytes() == before, "no partial output"
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".prepare-")]


def _prepare_raising(config: Path, overrides: list[str]) -> None:
    """Run prepare, raising its error (the CLI would log it and return 1)."""
    runner = Runner(load_config(config, overrides))
    runner.run([get_stage("prepare")], force=True)


# ------------------------------------------------------------------ end to end

def test_run_trains_and_evaluates_a_detector_per_baseline(tmp_path, tiny_data, caplog):
    train_sets = ["source_only", "colour_transfer", "fda", "translated", "oracle"]
    path = write_config(tmp_path, tiny_data, train_sets, extra="""\
        translator:
          model: {base_channels: 8, content_res_blocks: 1, style_res_blocks: 1,
                  generator_res_blocks: 1, discriminator_channels: 8, discriminator_layers: 2,
                  discriminator_scales: 1, content_discriminator_channels: 16}
          memory: {key_dim: 32, items: {person: 1, car: 1, truck: 1, bicycle: 1,
                                         background: 2}}
          train: {iterations: 2, resize: 32, crop: 32, num_workers: 0, checkpoint_every: 2,
                  image_every: 2, log_every: 1}
        translate: {num_samples: 2, batch_size: 4, workers: 0, writers: 1, fda_beta: 0.05}
        """)
    assert main(["run", str(path), "--to", "evaluate"]) == 0
    assert main(["run", str(path), "--only", "report"]) == 0
    run_dir = tmp_path / "runs" / "b"
    for name in ("colour_transfer", "fda"):
        folder = run_dir / "baselines" / name
        assert (folder / "annotations.json").is_file()
        assert json.loads((folder / "translate.json").read_text())["method"] == name
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert list(metrics["detectors"]) == train_sets
    gaps = {s: d["gap_recovered"] for s, d in metrics["detectors"].items()}
    if gaps["source_only"] is not None:
        assert gaps["source_only"] == 0 and gaps["oracle"] == 1
    table = (run_dir / "eval" / "table.md").read_text()
    for row in ("Reinhard colour transfer, this run", "FDA (Fourier domain adaptation), "
                "this run"):
        assert row in table
    report = (run_dir / "report" / "index.html").read_text()
    assert "Reinhard colour transfer" in report and "Gap recovered" in report
    # The image grid shows each baseline's translation of the same images beside MGUIT's.
    assert "more styles of it, reinhard colour transfer, fda (fourier domain adaptation), and " \
        "a target" in report

    # A retrained translator leaves the baselines done; another beta redoes FDA.
    caplog.clear()
    assert main(["run", str(path), "--only", "translate_baselines",
                 "translator.train.iterations=3"]) == 0
    assert "stage translate_baselines: up to date" in caplog.text
    statuses = {s.stage: s for s in
                Runner(load_config(path, ["translate.fda_beta=0.1"])).statuses()}
    assert statuses["translate_baselines"].state == "stale"
    assert "translate.fda_beta" in statuses["translate_baselines"].reason
    assert statuses["translate"].state == "done"


# ------------------------------------------------------------------ pipeline translate

def test_pipeline_translate_runs_a_baseline_on_any_kitti_root(tmp_path, capsys):
    """``pipeline translate --method fda|colour_transfer --reference MANIFEST`` translates a
    KITTI root without a config: label files byte-identical, the same bytes as the engine's
    own call, and a clear usage error without the reference or with a checkpoint."""
    source = write_kitti(tmp_path / "kitti")
    reference = write_reference(tmp_path / "target", [(64, 48), (80, 40)])
    for method in ("fda", "colour_transfer"):
        out = tmp_path / method
        assert main(["translate", "--method", method, "--input", str(source), "--reference",
                     str(reference), "--output", str(out), "--workers", "0",
                     "--fda-beta", "0.05"]) == 0
        for label in sorted((source / "label_2").iterdir()):
            assert (out / "label_2" / label.name).read_bytes() == label.read_bytes()
        assert json.loads((out / "translate.json").read_text())["method"] == method
    options = replace(OPTIONS, fda_beta=0.05)
    direct = tmp_path / "direct"
    translate_dataset(source, direct, options=options,
                      method=build_baseline("fda", reference, options, direct, progress=False))
    produced = files(tmp_path / "fda")
    assert {k: v for k, v in files(direct).items() if k.startswith("image_2/")} == \
        {k: v for k, v in produced.items() if k.startswith("image_2/")}

    for extra in ([], ["--checkpoint", str(tmp_path / "last.pt"), "--reference",
                       str(reference)]):
        with pytest.raises(SystemExit) as exc:
            main(["translate", "--method", "fda", "--input", str(source), "--output",
                  str(tmp_path / "bad"), *extra])
        assert exc.value.code == 2
    assert "--method fda" in capsys.readouterr().err
