"""The linear-probe ceiling of the memory's read selectivity: how class-separable are the
content features the memory is read with?

A test-time read (eq 2) weighs the memory's items by a softmax of the cosines between a pixel's
content feature and the keys, a linear function of the feature's direction. However the keys
were learnt, such a read cannot tell the classes apart better than the best linear classifier
on those directions, so that classifier's accuracy is what a perfect read could reach: a read
mass well below it means the keys are the problem; a probe near chance means the content
features are (they do not carry the class). Definition (what :func:`probe_accuracy` computes,
on the pixels :func:`group_pixels` takes):

* per input image, its content pixels L2-normalised (the direction the cosine sees), labelled
  as :mod:`~pipeline.metrics.read_selectivity` labels them (memory group of the box covering
  the pixel, background elsewhere); at most ``per_group`` pixels per group and image, evenly
  spaced in raster order, so that large images and the background do not drown the rest;
* the inputs split into two halves by a seeded permutation (pixels of one image are strongly
  correlated, so they must not straddle the split);
* a multinomial logistic regression (a bias; features standardised with the first half's mean
  and standard deviation; every group weighted equally, so that the background's majority does
  not buy the small classes' accuracy; an L2 penalty that keeps separable data finite) fit on
  the first half's pixels by full-batch L-BFGS;
* per group, the share of its pixels of the second half that the classifier assigns to it
  (None when the second half has none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEFINITION = (
    "per memory group, the held-out accuracy of a linear classifier (multinomial logistic "
    "regression, L-BFGS, groups weighted equally) from a content pixel's L2-normalised "
    "feature to its group, fit on the pixels of a seeded half of the inputs and scored on the "
    "other half: what a test-time read, linear in that feature, could reach at best")

PIXELS_PER_GROUP = 64    # per image; enough for the fit, small enough for thousands of images
STEPS = 200              # L-BFGS iterations; the convex fit converges well within them
L2_PENALTY = 1e-4


def group_pixels(content: Tensor, mask: Tensor, groups: int,
                 per_group: int = PIXELS_PER_GROUP) -> tuple[Tensor, Tensor]:
    """The probe's pixels of one image: ``content`` ``(C, H, W)`` and its group index per pixel
    ``mask`` ``(H, W)`` int64 -> L2-normalised features ``(P, C)`` float32 and their groups
    ``(P,)`` int64, on the CPU, at most ``per_group`` evenly spaced pixels per group."""
    features = F.normalize(content.flatten(1).T.float(), dim=1)
    labels = mask.flatten().to(features.device)
    chosen = []
    for g in range(groups):
        where = (labels == g).nonzero().squeeze(1)
        if len(where) > per_group:
            where = where[torch.linspace(0, len(where) - 1, per_group).round().long()]
        chosen.append(where)
    index = torch.cat(chosen)
    return features[index].cpu(), labels[index].cpu()


def probe_accuracy(per_input: Sequence[tuple[Tensor, Tensor]], groups: int, seed: int,
                   steps: int = STEPS) -> list[float | None]:
    """The per-group held-out accuracy of the module docstring over ``per_input``, one
    ``(features (P, C), labels (P,))`` of :func:`group_pixels` per input image. All None with
    fewer than two inputs (nothing to hold out)."""
    if len(per_input) < 2:
        return [None] * groups
    order = np.random.default_rng(seed).permutation(len(per_input))
    half = (len(per_input) + 1) // 2
    train = [per_input[i] for i in order[:half]]
    test = [per_input[i] for i in order[half:]]
    x, y = (torch.cat(parts) for parts in zip(*train))
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    classifier = _fit((x - mean) / std, y, groups, steps)
    x_test, y_test = (torch.cat(parts) for parts in zip(*test))
    predicted = classifier((x_test - mean) / std).argmax(dim=1)
    right = predicted == y_test
    accuracy = []
    for g in range(groups):
        mine = y_test == g
        accuracy.append(float(right[mine].double().mean()) if mine.any() else None)
    return accuracy


def _fit(x: Tensor, y: Tensor, groups: int, steps: int) -> torch.nn.Linear:
    """Multinomial logistic regression from ``x`` ``(P, C)`` to ``y`` ``(P,)``, groups weighted
    by the inverse of their pixel count. Starts from zero weights: deterministic."""
    classifier = torch.nn.Linear(x.shape[1], groups)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    counts = torch.bincount(y, minlength=groups).float()
    weight = torch.where(counts > 0, 1 / counts.clamp_min(1), 0.0)
    optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=steps,
                                  line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        optimizer.zero_grad()
        value = (F.cross_entropy(classifier(x), y, weight=weight)
                 + L2_PENALTY * classifier.weight.square().sum())
        value.backward()
        return value

    with torch.enable_grad():   # read_selectivity runs under no_grad
        optimizer.step(loss)
    return classifier
