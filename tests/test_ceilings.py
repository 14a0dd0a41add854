"""The ceilings of the translation figures (perfect translations, the linear probe of the
content features) against values known by construction, and the ``metrics`` stage with
``data.source.perfect_translations`` on the tiny run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.cli import main
from pipeline.config import MetricsConfig
from pipeline.formats.common import Box
from pipeline.metrics.ceilings import (NOT_CONFIGURED, diversity_ceiling, edge_ceiling,
                                       fraction_of, fractions, perfect_pairs,
                                       translation_ceilings)
from pipeline.metrics.errors import MetricsError
from pipeline.metrics.images import ImageItem, ImageSet
from pipeline.metrics.linear_probe import group_pixels, probe_accuracy
from pipeline.metrics.suite import format_summary

CLASSES = ["car", "person"]


def image_set(folder, seeds: list[int], scale: float = 1.0) -> ImageSet:
    """One random 24 x 16 image per seed (the same seed, the same scene), named by its index,
    each with a car and a person box; ``scale`` dims it (the same edges, less contrast)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, seed in enumerate(seeds):
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3))
        path = folder / f"{i:06d}.png"
        Image.fromarray((pixels * scale).astype(np.uint8)).save(path)
        boxes = (Box(1, 1, 9, 7, "car"), Box(12, 6, 20, 15, "person"))
        items.append(ImageItem(path, 24, 16, boxes, group=str(path)))
    return ImageSet(folder / "manifest.json", tuple(items), tuple(CLASSES))


# ------------------------------------------------------------------ perfect translations

def test_a_perfect_translation_equal_to_the_source_keeps_every_edge(tmp_path):
    source = image_set(tmp_path / "source", [1, 2, 3])
    ceiling = edge_ceiling(source, image_set(tmp_path / "perfect", [1, 2, 3], scale=0.5),
                           CLASSES)
    assert ceiling["pairs"] == 3
    assert ceiling["whole"] == pytest.approx(1.0, abs=0.02)
    assert ceiling["boxes"] == pytest.approx(1.0, abs=0.02)
    assert ceiling["per_class"] == pytest.approx({"car": 1.0, "person": 1.0}, abs=0.02)


def test_identical_draws_give_a_diversity_ceiling_of_zero_and_different_draws_more(tmp_path):
    source = image_set(tmp_path / "source", [1, 2, 3])
    same = image_set(tmp_path / "draw_0", [4, 5, 6])
    ceiling = diversity_ceiling(source, (same, same), inputs=2, seed=0)
    assert (ceiling["objects"], ceiling["background"]) == (0.0, 0.0)
    assert (ceiling["inputs"], ceiling["samples"], ceiling["pairs"]) == (2, 2, 2)
    assert ceiling["split"] == "source_train"
    other = image_set(tmp_path / "draw_1", [7, 8, 9])
    # Two independent uniform images differ by E|U - V| = 256 / 3 grey levels on average.
    assert diversity_ceiling(source, (same, other), 3, 0)["objects"] == pytest.approx(85, abs=6)


def test_perfect_pairs_refuse_a_translation_of_other_images(tmp_path):
    source = image_set(tmp_path / "source", [1, 2])
    with pytest.raises(MetricsError, match="lists 1 images"):
        perfect_pairs(source, image_set(tmp_path / "short", [1]))
    renamed = image_set(tmp_path / "renamed", [1, 2])
    (tmp_path / "renamed" / "000001.png").rename(tmp_path / "renamed" / "other.png")
    items = (renamed.items[0], ImageItem(tmp_path / "renamed" / "other.png", 24, 16))
    with pytest.raises(MetricsError, match="other.png .* stands where 000001.png"):
        perfect_pairs(source, ImageSet(renamed.origin, items, renamed.classes))


def test_translation_ceilings_with_the_target_itself_as_perfect_translation(tmp_path):
    """A perfect translation that is the target set is at style distance 0 from it; one draw
    leaves the diversity ceiling skipped."""
    source = image_set(tmp_path / "source", [1, 2])
    target = image_set(tmp_path / "target", [3, 4])
    figures = {"edge_correlation": {"whole": 0.2, "boxes": 0.1,
                                    "per_class": {"car": 0.1, "person": None}},
               "multimodality": {"skipped": "no samples"},
               "style_distance": {"per_class": {"car": {"translated": 5.0, "source": 9.0},
                                                "person": {"translated": 7.0, "source": 9.0}},
                                  "mean": {"translated": 6.0, "source": 9.0}}}
    result = translation_ceilings(source, [target], target, CLASSES, MetricsConfig(), 1,
                                  figures)
    assert result["source"] == "data.source.perfect_translations"
    assert result["manifests"] == ["manifest.json"]
    style = result["style_distance"]
    assert style["per_class"] == pytest.approx({"car": 0, "person": 0}, abs=1e-6)
    assert style["classes_compared"] == CLASSES and style["mean"] == pytest.approx(0, abs=1e-6)
    # The ceiling is 0 up to rounding (exactly 0 with one thread): the fraction follows it,
    # None at 0 as fraction_of defines, never a division by zero.
    assert result["fractions"]["style_distance"]["mean"] == fraction_of(6.0, style["mean"])
    assert result["multimodality"]["skipped"].endswith("compares two draws")
    assert result["fractions"]["multimodality"] == {"objects": None, "background": None}
    # The target's own images: no distance, the target's spread; no figure, no fraction.
    stats = result["image_statistics"]
    assert stats["distance"] == pytest.approx(0, abs=1e-6) and stats["brightness_spread"] > 0
    assert result["fractions"]["image_statistics"] == {"distance": None,
                                                       "brightness_spread": None}
    edges = result["fractions"]["edge_correlation"]
    assert edges["boxes"] == pytest.approx(0.1 / result["edge_correlation"]["boxes"])
    assert edges["per_class"]["person"] is None


def test_fractions_divide_each_figure_by_its_ceiling():
    figures = {"edge_correlation": {"whole": 0.4, "boxes": 0.3, "per_class": {"car": 0.2}},
               "multimodality": {"objects": 10.0, "background": 6.0},
               "style_distance": {"per_class": {"car": {"translated": 150.0, "source": 900.0}},
                                  "mean": {"translated": 150.0, "source": 900.0}}}
    ceilings = {"edge_correlation": {"whole": 0.8, "boxes": 0.6, "per_class": {"car": 0.5}},
                "multimodality": {"objects": 40.0, "background": 3.0},
                "style_distance": {"per_class": {"car": 50.0}, "mean": 50.0}}
    result = fractions(figures, ceilings)
    edges, style = result["edge_correlation"], result["style_distance"]
    assert (edges["whole"], edges["boxes"]) == pytest.approx((0.5, 0.5))
    assert edges["per_class"] == pytest.approx({"car": 0.4})
    assert result["multimodality"] == pytest.approx({"objects": 0.25, "background": 2.0})
    assert (style["per_class"]["car"], style["mean"]) == pytest.approx((3.0, 3.0))
    assert "lower is better" in result["definition"]
    assert fraction_of(None, 1.0) is None and fraction_of(1.0, 0.0) is None


def test_the_summary_shows_each_ceiling_beside_its_figure():
    document = {key: {"skipped": "no weights"} for key in ("fid", "kid", "is", "cis",
                                                           "lpips_diversity")}
    document |= {
        "style_distance": {"per_class": {"car": {"translated": 150.0, "source": 900.0,
                                                 "boxes_translated": 4, "boxes_target": 3}},
                           "mean": {"translated": 150.0, "source": 900.0}},
        "edge_correlation": {"whole": 0.4, "boxes": 0.3},
        "multimodality": {"objects": 10.0, "background": 6.0},
        "ceilings": {"edge_correlation": {"boxes": 0.6}, "multimodality": {"objects": 40.0},
                     "style_distance": {"per_class": {"car": 50.0}, "mean": 50.0},
                     "fractions": {"edge_correlation": {"boxes": 0.5},
                                   "multimodality": {"objects": 0.25},
                                   "style_distance": {"per_class": {"car": 3.0},
                                                      "mean": 3.0}}}}
    text = format_summary(document)
    assert "inside boxes 0.30 (perfect translation 0.60, fraction 0.50)" in text
    assert "objects 10.00 (perfect translation 40.00, fraction 0.25)" in text
    assert "    car              150.00     900.00      50.00       3.00   4 / 3" in text
    assert "image statistics" not in text
    side = {"images": 2, "mean": {}, "brightness_spread": 3.0, "distance": 400.0}
    document["image_statistics"] = {"translated": side, "source": side | {"distance": 900.0},
                                    "target": {"images": 2, "mean": {},
                                               "brightness_spread": 17.0}}
    document["ceilings"]["image_statistics"] = {"distance": 8.0, "brightness_spread": 16.0}
    document["ceilings"]["fractions"]["image_statistics"] = {"distance": 50.0,
                                                             "brightness_spread": 0.19}
    text = format_summary(document)
    assert ("translated 400.00, perfect 8.00, source 900.00 (fraction of perfect: 50.00)"
            in text)
    assert "translated 3.00, perfect 16.00, source 3.00, target 17.00" in text
    skipped = format_summary(document | {"ceilings": {"skipped": NOT_CONFIGURED}})
    assert f"ceilings skipped: {NOT_CONFIGURED}" in skipped
    assert "perfect translation" not in skipped.replace(NOT_CONFIGURED, "")


# ------------------------------------------------------------------ the linear probe

def test_group_pixels_normalises_and_takes_evenly_spaced_pixels_per_group():
    content = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4) + 1
    mask = torch.zeros(3, 4, dtype=torch.int64)
    mask[0, :3] = 1
    features, labels = group_pixels(content, mask, groups=3, per_group=3)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]       # 9 background pixels: 3 of them
    assert torch.linalg.vector_norm(features, dim=1) == pytest.approx(torch.ones(6))
    # Background pixels 3, 7, 11 (0, 4 and 8 of the 9), the three group-1 pixels 0, 1, 2.
    picked = content.flatten(1).T[[3, 7, 11, 0, 1, 2]]
    assert torch.allclose(features, picked / picked.norm(dim=1, keepdim=True))


def probe_inputs(separable: bool, images: int = 8, pixels: int = 60, groups: int = 3,
                 channels: int = 16, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image ``pixels`` features per group: noise, plus, when ``separable``, a large
    offset along the group's own axis (a linear classifier separates them by construction)."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for _ in range(images):
        labels = torch.arange(groups).repeat_interleave(pixels)
        features = torch.randn(len(labels), channels, generator=generator)
        if separable:
            features[torch.arange(len(labels)), labels] += 6
        result.append((features, labels))
    return result


def test_the_probe_separates_linearly_separable_features():
    accuracy = probe_accuracy(probe_inputs(separable=True), groups=3, seed=0)
    assert accuracy == pytest.approx([1.0, 1.0, 1.0], abs=0.01)


def test_the_probe_on_random_features_is_at_chance():
    accuracy = probe_accuracy(probe_inputs(separable=False, images=20), groups=3, seed=0)
    assert np.mean(accuracy) == pytest.approx(1 / 3, abs=0.06)


def test_the_probe_holds_out_half_the_inputs_and_needs_two():
    assert probe_accuracy(probe_inputs(True, images=1), groups=3, seed=0) == [None] * 3
    # Two images, one without group 2: in one order it is held out (group 2 has no held-out
    # pixels: None), in the other the classifier never saw group 2 and never predicts it (0).
    (features, labels), other = probe_inputs(True, images=2)
    without = (features[labels != 2], labels[labels != 2])
    results = {probe_accuracy(inputs, groups=3, seed=0)[2]
               for inputs in ([without, other], [other, without])}
    assert results == {None, 0.0}


def test_read_selectivity_reports_the_probe_of_features_that_tell_the_classes_apart(tmp_path):
    """Content features that are the pixel's colour, one colour per class: the probe reaches 1
    whatever the memory's keys, and read mass / probe is the read mass."""
    from types import SimpleNamespace

    from mguit.memory import ClassAwareMemory
    from pipeline.metrics.read_selectivity import read_selectivity

    memory = ClassAwareMemory(2, {"person": 1, "car": 1, "background": 1})
    model = torch.nn.Module()
    model.memory = memory
    model.cfg = SimpleNamespace(model=SimpleNamespace(stride=1))
    # With x in [-1, 1], features (r + b + 1, g + b + 1): red (1, -1), green (-1, 1), blue
    # (1, 1), three directions a linear classifier separates.
    model.content_encoder = lambda x, domain: torch.stack([x[:, 0] + x[:, 2],
                                                           x[:, 1] + x[:, 2]], dim=1) + 1
    items = []
    for i in range(6):
        pixels = np.zeros((8, 12, 3), dtype=np.uint8)
        pixels[..., 2] = 255
        pixels[1:5, 1:4] = (255, 0, 0)
        pixels[3:7, 6 + i % 3:10] = (0, 255, 0)
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels).save(path)
        boxes = (Box(1, 1, 4, 5, "car"), Box(6 + i % 3, 3, 10, 7, "person"))
        items.append(ImageItem(path, 12, 8, boxes, group=str(path)))
    result = read_selectivity(model, items, 0, torch.device("cpu"), seed=1)
    assert result["probe"]["seed"] == 1
    for group, entry in result["per_class"].items():
        assert entry["probe_accuracy"] == pytest.approx(1.0), group
        assert entry["read_mass_fraction"] == pytest.approx(entry["read_mass"])


# ------------------------------------------------------------------ the stage

def test_metrics_stage_with_perfect_translations_writes_the_ceilings(tiny_run, tmp_path):
    config, run_dir = tiny_run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / run_dir.name)
    paired = config.parent / "synthetic" / "paired"
    perfect = f"data.source.perfect_translations=[{paired / 'draw_0' / 'training'}, " \
              f"{paired / 'draw_1' / 'training'}]"
    for stage in ("prepare", "metrics"):
        assert main(["run", str(config), "--only", stage, f"run.dir={runs}", perfect]) == 0
    doc = json.loads((runs / "tiny" / "eval" / "translation.json").read_text())
    ceilings = doc["ceilings"]
    assert ceilings["manifests"] == ["source_train.perfect_0.json",
                                     "source_train.perfect_1.json"]
    source_train = json.loads((runs / "tiny" / "data" / "source_train.json").read_text())
    edges = ceilings["edge_correlation"]
    assert edges["pairs"] == len(source_train["images"]) and 0 < edges["boxes"] < 1
    # Two draws of the target look differ (the demo's looks are drawn per object).
    diversity = ceilings["multimodality"]
    assert diversity["objects"] > 1 and diversity["samples"] == 2
    assert diversity["inputs"] == min(len(source_train["images"]),
                                      MetricsConfig().diversity_images)
    style = ceilings["style_distance"]
    assert set(style["classes_compared"]) <= set(doc["style_distance"]["classes_compared"])
    fractions_ = ceilings["fractions"]
    assert fractions_["edge_correlation"]["boxes"] == pytest.approx(
        doc["edge_correlation"]["boxes"] / edges["boxes"])
    assert fractions_["multimodality"]["objects"] == pytest.approx(
        doc["multimodality"]["objects"] / diversity["objects"])
    for c in style["classes_compared"]:
        assert fractions_["style_distance"]["per_class"][c] == pytest.approx(
            doc["style_distance"]["per_class"][c]["translated"] / style["per_class"][c])
    stats, ceiling = doc["image_statistics"], ceilings["image_statistics"]
    assert stats["translated"]["images"] == len(source_train["images"])
    assert stats["source"]["images"] == len(source_train["images"])
    assert ceiling["distance"] > 0 and ceiling["brightness_spread"] > 0
    for key in ("distance", "brightness_spread"):
        assert fractions_["image_statistics"][key] == pytest.approx(
            stats["translated"][key] / ceiling[key])
    for e in doc["read_selectivity"]["per_class"].values():
        assert e["probe_accuracy"] is None or 0 <= e["probe_accuracy"] <= 1
    # The perfect manifests are inputs of the stage: a changed draw reruns it.
    state = json.loads((runs / "tiny" / "state.json").read_text())
    inputs = state["stages"]["metrics"]["inputs"]
    assert str(runs / "tiny" / "data" / "source_train.perfect_1.json") in inputs
