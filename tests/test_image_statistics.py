"""The image statistics (per-image Lab tone and contrast, their spread and Fréchet distance
over images) against values computed by hand: uniform grey images, whose only varying number
is the mean L, reduce the 6-d Fréchet distance to (mean difference)^2 + (spread difference)^2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.metrics.image_statistics import FEATURES, image_statistics, image_tone, summary
from pipeline.metrics.images import ImageItem, ImageSet
from pipeline.metrics.style_distance import srgb_to_lab


def grey_set(folder, levels: list[int]) -> ImageSet:
    """One uniform 8 x 6 grey image per level."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, level in enumerate(levels):
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.full((6, 8, 3), level, np.uint8)).save(path)
        items.append(ImageItem(path, 8, 6, group=str(path)))
    return ImageSet(folder, tuple(items), None)


def lightness(level: int) -> float:
    return float(srgb_to_lab(np.array([level, level, level], np.uint8))[0])


def test_the_tone_of_a_uniform_grey_is_its_lightness_and_no_spread():
    # sRGB 119 -> linear ((119/255 + 0.055) / 1.055)^2.4 = 0.1845 -> L = 116 Y^(1/3) - 16 = 50.0
    tone = image_tone(np.full((4, 5, 3), 119, np.uint8))
    assert tone == pytest.approx([50.04, 0, 0, 0, 0, 0], abs=0.01)
    assert len(tone) == len(FEATURES)


def test_the_tone_holds_the_standard_deviation_of_each_channel():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0] = 255        # half white (L 100), half black (L 0): L std 50, grey: a = b = 0
    assert image_tone(image) == pytest.approx([50, 0, 0, 50, 0, 0], abs=1e-6)


def test_spread_and_distance_of_grey_sets_by_hand(tmp_path):
    translated = grey_set(tmp_path / "translated", [100, 140])
    target = grey_set(tmp_path / "target", [60, 120, 200])
    result = image_statistics(translated, target, None, workers=1)
    ours = np.array([lightness(100), lightness(140)])
    theirs = np.array([lightness(60), lightness(120), lightness(200)])
    assert result["translated"]["brightness_spread"] == pytest.approx(ours.std())
    assert result["target"]["brightness_spread"] == pytest.approx(theirs.std())
    expected = (ours.mean() - theirs.mean()) ** 2 + (ours.std() - theirs.std()) ** 2
    assert result["translated"]["distance"] == pytest.approx(expected, rel=1e-6)
    assert result["translated"]["mean"]["L_mean"] == pytest.approx(ours.mean())
    assert result["source"] is None and "distance" not in result["target"]


def test_the_target_average_light_on_every_image_is_far_where_pooled_pixels_are_not(tmp_path):
    """Cause 18's failure: every image at the target's average light pools to the same mean
    lightness as the target, yet has no spread and stands at a distance; the target's own
    images in another order stand at 0."""
    target = grey_set(tmp_path / "target", [60, 200, 60, 200])
    middle = round(np.mean([60, 200]))
    flat = grey_set(tmp_path / "flat", [middle] * 4)
    shuffled = grey_set(tmp_path / "shuffled", [200, 60, 200, 60])
    result_flat = image_statistics(flat, target, shuffled, workers=1)
    assert result_flat["translated"]["brightness_spread"] == pytest.approx(0, abs=1e-9)
    assert result_flat["translated"]["distance"] > 100
    assert result_flat["source"]["distance"] == pytest.approx(0, abs=1e-6)
    assert result_flat["source"]["brightness_spread"] == pytest.approx(
        result_flat["target"]["brightness_spread"])


def test_one_image_has_no_covariance_so_no_distance():
    one = summary(np.array([[50.0, 0, 0, 1, 0, 0]]), np.zeros((3, 6)))
    assert one["distance"] is None and one["brightness_spread"] == 0
    assert summary(np.zeros((0, 6)), None) == {"images": 0, "mean": None,
                                               "brightness_spread": None, "distance": None}
