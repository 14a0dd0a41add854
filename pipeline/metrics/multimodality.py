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
    ``{"definition", "objects", "background", "inputs", "pairs"}``."""
    objects: list[float] = []
    background: list[float] = []
    inputs = samples_per_input = 0
    for samples, boxes in groups:
        samples = np.asarray(samples)
        if samples.ndim != 4 or samples.shape[-1] != 3:
            raise ValueError(f"expected samples of shape (K, H, W, 3), got {samples.shape}")
        k = len(samples)
        if k < 2:
            raise ValueError("the sample difference needs at least 2 samples per input")
        inputs += 1
        samples_per_input = k
        inside = box_region(samples.shape[1:3], boxes)
        values = samples.astype(np.int16)
        for i in range(k):
            for j in range(i + 1, k):
                diff = np.abs(values[i] - values[j]).mean(axis=2)
                if inside.any():
                    objects.append(float(diff[inside].mean()))
                if (~inside).any():
                    background.append(float(diff[~inside].mean()))
    return {"definition": DEFINITION,
            "objects": float(np.mean(objects)) if objects else None,
            "background": float(np.mean(background)) if background else None,
            "inputs": inputs, "samples": samples_per_input,
            "pairs": max(len(objects), len(background))}
