"""Multimodality without weights: how different are the K style samples of one input?

LPIPS diversity (paper Table 2) needs AlexNet weights; this figure needs none and says in plain
units whether the generator follows the style it reads. Definition (what
:func:`sample_difference` computes):

* per input, its K samples as uint8 RGB; for every pair of samples ``i < j`` the mean absolute
  difference of their pixel values (0-255 "grey levels", averaged over the three channels),
  separately over the pixels inside the input's boxes (``objects``) and outside them
  (``background``);
* the figure is the mean over all pairs of all inputs (inputs without box pixels are left out of
  ``objects``).

0 means every sample is the same image; a few grey levels is invisible; tens are a visibly
different rendering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.formats.common import Box
from pipeline.metrics.content_preservation import box_region

DEFINITION = (
    "mean over all pairs of style samples of the same input of the mean absolute difference of "
    "their uint8 RGB values (grey levels, 0-255), inside the input's boxes ('objects') and "
    "outside them ('background')")


def sample_difference(groups: Iterable[tuple[np.ndarray, Sequence[Box]]]) -> dict:
    """The metric of the module docstring over ``(samples (K, H, W, 3) uint8, boxes)`` per input:
    ``{"definition", "objects", "background", "inputs", "samples", "pairs"}``."""
    difference = SampleDifference()
    for samples, boxes in groups:
        difference.add(samples, boxes)
    return difference.summary()


class SampleDifference:
    """:func:`sample_difference` fed one input at a time; it keeps sums, not images, so a run's
    diversity samples need not be held until the end."""

    def __init__(self) -> None:
        self.sums = {"objects": 0.0, "background": 0.0}
        self.pairs = {"objects": 0, "background": 0}
        self.inputs = self.samples_per_input = 0

    def add(self, samples: np.ndarray, boxes: Sequence[Box]) -> None:
        """One input's K samples ``(K, H, W, 3)`` uint8 and its boxes."""
        samples = np.asarray(samples)
        if samples.ndim != 4 or samples.shape[-1] != 3:
            raise ValueError(f"expected samples of shape (K, H, W, 3), got {samples.shape}")
        k = len(samples)
        if k < 2:
            raise ValueError("the sample difference needs at least 2 samples per input")
        self.inputs += 1
        self.samples_per_input = k
        inside = box_region(samples.shape[1:3], boxes)
        values = samples.astype(np.int16)
        for i in range(k):
            for j in range(i + 1, k):
                diff = np.abs(values[i] - values[j]).mean(axis=2)
                for region, pixels in (("objects", inside), ("background", ~inside)):
                    if pixels.any():
                        self.sums[region] += float(diff[pixels].mean())
                        self.pairs[region] += 1

    def summary(self) -> dict:
        mean = {r: self.sums[r] / self.pairs[r] if self.pairs[r] else None for r in self.sums}
        return {"definition": DEFINITION, **mean, "inputs": self.inputs,
                "samples": self.samples_per_input, "pairs": max(self.pairs.values())}
