"""The weight-free translation figures: edge correlation (content preservation) and the sample
difference (multimodality), against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.formats.common import Box
from pipeline.metrics.content_preservation import (edge_correlation, pair_edge_correlation,
                                                   sobel_magnitude)
from pipeline.metrics.multimodality import sample_difference


def grey(values) -> np.ndarray:
    """An RGB uint8 image whose three channels all hold ``values`` (H, W)."""
    v = np.asarray(values, dtype=np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def test_sobel_magnitude_of_a_vertical_step_by_hand():
    image = grey([[0, 0, 100, 100]] * 3)
    # Columns 1 and 2 straddle the step: (100 - 0) * (1 + 2 + 1) = 400; the replicated borders
    # see no change.
    np.testing.assert_allclose(sobel_magnitude(image), [[0, 400, 400, 0]] * 3, atol=1e-9)


def random_scene(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)


def test_edge_correlation_is_one_for_the_same_edges_at_another_contrast():
    image = random_scene()
    darker = (image // 2 + 20).astype(np.uint8)   # same edges, half the contrast
    boxes = [Box(2, 2, 10, 9, "car")]
    result = pair_edge_correlation(image, darker, boxes, ["car", "person"])
    assert result["whole"] == pytest.approx(1.0, abs=0.02)
    assert result["boxes"] == pytest.approx(1.0, abs=0.02)
    assert result["per_class"]["car"] == pytest.approx(1.0, abs=0.02)
    assert result["per_class"]["person"] is None   # no person box: undefined, not 0


def test_edge_correlation_of_unrelated_images_is_near_zero_and_averages_pairs():
    a, b = random_scene(1), random_scene(2)
    result = edge_correlation([(a, a, []), (a, b, [])], ["car"])
    single = pair_edge_correlation(a, b, [], ["car"])["whole"]
    assert abs(single) < 0.2
    assert result["whole"] == pytest.approx((1.0 + single) / 2)
    assert result["boxes"] is None and result["pairs"] == 2


def test_edge_correlation_of_a_flat_translation_is_left_out():
    image = random_scene()
    flat = np.full_like(image, 128)
    assert pair_edge_correlation(image, flat, [], [])["whole"] is None


def test_edge_correlation_refuses_images_of_different_sizes():
    with pytest.raises(ValueError, match="size"):
        pair_edge_correlation(random_scene(), random_scene()[:8], [], [])


def test_sample_difference_inside_and_outside_boxes_by_hand():
    first = np.zeros((4, 6, 3), dtype=np.uint8)
    second = first.copy()
    second[0:2, 0:3] = 10          # the box region differs by 10 grey levels
    second[3, 5] = (30, 0, 0)      # one background pixel differs by 30 in red only
    third = first.copy()
    samples = np.stack([first, second, third])
    result = sample_difference([(samples, [Box(0, 0, 3, 2, "car")])])
    # Pairs (1,2), (1,3), (2,3): object differences 10, 0, 10; the background pixel contributes
    # 30 / 3 channels = 10 over 18 background pixels in pairs (1,2) and (2,3).
    assert result["objects"] == pytest.approx(20 / 3)
    assert result["background"] == pytest.approx((10 / 18) * 2 / 3)
    assert result["pairs"] == 3 and result["samples"] == 3 and result["inputs"] == 1


def test_sample_difference_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        sample_difference([(np.zeros((1, 4, 4, 3), dtype=np.uint8), [])])
