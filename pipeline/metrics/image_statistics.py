"""Image statistics: does a translation keep the target's image-to-image light?

The per-class style distance pools the pixels of every image of a set, so a translation that
paints every image with the target's average light scores as well as one that gives each image
the light of one target image. Detectors see the difference: on the demo world, Reinhard colour
transfer with one target image's statistics per source image recovers 0.43 more of the detection
gap than with the whole split's, at nearly the same pooled colours (docs/translator.md,
cause 18). These figures see it.

Definition (what :func:`image_statistics` computes):

1. Per image six numbers: the mean and the standard deviation over all its pixels of CIELAB
   ``L, a, b`` (:func:`~pipeline.metrics.style_distance.srgb_to_lab`): the image's tone and
   contrast.
2. Per image set, a Gaussian fit to those vectors over its images (mean and maximum-likelihood
   covariance, 6 x 6).
3. ``distance``: the Fréchet distance between a set's Gaussian and the target's (the FID
   formula on these six numbers; squared Lab units, 0 for identical sets).
4. ``brightness_spread``: the standard deviation over the set's images of their mean ``L``
   (Lab units): how much the light changes from image to image.

The target's own spread is reported beside the translated set's and the source's: a translation
whose spread is far below the target's gives every image the same light.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.metrics.images import ImageItem, ImageSet, load_image
from pipeline.metrics.style_distance import frechet_distance, srgb_to_lab

DEFINITION = (
    "per image: mean and standard deviation of CIELAB L, a, b over all its pixels; per set: a "
    "Gaussian over its images of those six numbers. distance: Frechet distance of a set's "
    "Gaussian to the target's (squared Lab units, lower is closer); brightness_spread: standard "
    "deviation over the set's images of their mean L (Lab units; compare with the target's)")

FEATURES = ("L_mean", "a_mean", "b_mean", "L_std", "a_std", "b_std")


def image_tone(image: np.ndarray) -> np.ndarray:
    """``(6,)`` float64: the mean and standard deviation of ``L, a, b`` over the pixels of
    ``image`` ``(H, W, 3)`` uint8 (:data:`FEATURES`' order)."""
    lab = srgb_to_lab(image).reshape(-1, 3)
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


def set_tones(items: Sequence[ImageItem], workers: int = 2) -> np.ndarray:
    """``(N, 6)``: :func:`image_tone` of each item, in order (six numbers an image, so a set of
    thousands of images takes kilobytes)."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        tones = list(pool.map(lambda item: image_tone(load_image(item)), items))
    return np.stack(tones) if tones else np.zeros((0, len(FEATURES)))


def summary(tones: np.ndarray, target: np.ndarray | None) -> dict:
    """``{"images", "mean": {feature: value}, "brightness_spread", "distance"}`` of a set's
    tones ``(N, 6)``; ``distance`` to ``target``'s tones (None without them, or with fewer than
    two images on a side: a covariance needs two)."""
    if not len(tones):
        return {"images": 0, "mean": None, "brightness_spread": None, "distance": None}
    mean, cov = _gaussian(tones)
    distance = None
    if target is not None and len(tones) >= 2 and len(target) >= 2:
        distance = frechet_distance(mean, cov, *_gaussian(target))
    return {"images": len(tones),
            "mean": dict(zip(FEATURES, (float(v) for v in mean))),
            "brightness_spread": float(tones[:, 0].std()),
            "distance": distance}


def image_statistics(translated: ImageSet, target: ImageSet, source: ImageSet | None,
                     workers: int = 2, target_tones: np.ndarray | None = None) -> dict:
    """The figures of the module docstring as stored in ``translation.json``:
    ``{"definition", "translated", "source", "target"}``, each side a :func:`summary` (the
    target's distance is 0 by definition and left out; ``source`` is None without the
    untranslated set). ``target_tones``: :func:`set_tones` of ``target`` when the caller has
    them already."""
    if target_tones is None:
        target_tones = set_tones(target.items, workers)
    target_summary = summary(target_tones, None)
    del target_summary["distance"]
    return {"definition": DEFINITION,
            "translated": summary(set_tones(translated.items, workers), target_tones),
            "source": (summary(set_tones(source.items, workers), target_tones)
                       if source is not None else None),
            "target": target_summary}


def _gaussian(tones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(6,)`` and maximum-likelihood covariance ``(6, 6)`` of ``tones`` ``(N, 6)``."""
    mean = tones.mean(axis=0)
    centred = tones - mean
    return mean, centred.T @ centred / len(tones)
