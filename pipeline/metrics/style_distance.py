"""Per-class style distance: are the objects of each class, once translated, coloured and textured
like the target's objects of that class? Needs no network weights.

Definition (this is what :func:`style_distance` computes):

1. Per box, the pixels it covers (even partly: columns ``floor(x0) .. ceil(x1) - 1`` and rows
   likewise, clipped to the image).
2. Per pixel four features: CIELAB ``L, a, b`` (sRGB -> linear RGB -> XYZ -> Lab, D65 white;
   :func:`srgb_to_lab`) and the gradient magnitude of ``L``, ``sqrt(dL/dx^2 + dL/dy^2)`` with
   central differences computed inside the box (one-sided at its edges, 0 along a side of one
   pixel), so nothing outside the box enters.
3. Per box at most ``pixels_per_box`` pixels, evenly spaced in raster order (deterministic: the
   same box always gives the same pixels), so large boxes do not drown small ones.
4. Per class and image set, a Gaussian fit to the pooled pixels (mean and maximum-likelihood
   covariance, 4 x 4).
5. The Fréchet distance between two Gaussians,
   ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`` (the FID formula), between
   (translated, target) and between (untranslated source, target). Units: squared Lab units.

The translated images carry the source's boxes, so the two numbers compare the same objects
before and after translation: ``translated < source`` means the translation moved that class
toward the target. The mean is over the classes with boxes on both sides. The Gaussian is fit
from the pixels' count, sum and sum of outer products (:class:`PixelMoments`), added exactly
(as fractions), so memory does not grow with the number of images, the result does not depend
on their order, and identical sets are at distance 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from pipeline.formats.common import Box
from pipeline.metrics.images import ImageItem, ImageSet, load_image

DEFINITION = (
    "Frechet distance between Gaussians fit, per class, to per-pixel features [L, a, b, "
    "|grad L|] (CIELAB, D65; gradient magnitude of L by central differences inside the box) "
    "of the pixels inside the boxes (at most {n} evenly spaced pixels per box), between the "
    "translated source and the target ('translated') and between the untranslated source and "
    "the target ('source'); squared Lab units, lower is closer to the target; mean over the "
    "classes with boxes on both sides")

# sRGB primaries -> CIE XYZ (IEC 61966-2-1, D65). The white point is the image of RGB white,
# so white maps to a = b = 0 exactly.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_DELTA = 6 / 29


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``(..., 3)`` -> CIELAB ``(..., 3)`` float64 (L in [0, 100])."""
    c = rgb.astype(np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _RGB_TO_XYZ.T) / _WHITE
    f = np.where(t > _DELTA ** 3, np.cbrt(t), t / (3 * _DELTA ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def box_features(image: np.ndarray, box: Box, pixels_per_box: int) -> np.ndarray:
    """The features ``[L, a, b, |grad L|]`` of (at most ``pixels_per_box``) pixels of ``box``
    in ``image`` ``(H, W, 3)`` uint8: ``(P, 4)`` float64; ``(0, 4)`` for a box outside it."""
    h, w = image.shape[:2]
    x0, x1 = max(0, math.floor(box.x0)), min(w, math.ceil(box.x1))
    y0, y1 = max(0, math.floor(box.y0)), min(h, math.ceil(box.y1))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 4))
    lab = srgb_to_lab(image[y0:y1, x0:x1])
    light = lab[..., 0]
    dy = np.gradient(light, axis=0) if light.shape[0] > 1 else np.zeros_like(light)
    dx = np.gradient(light, axis=1) if light.shape[1] > 1 else np.zeros_like(light)
    features = np.concatenate([lab, np.hypot(dx, dy)[..., None]], axis=-1).reshape(-1, 4)
    if len(features) > pixels_per_box:
        features = features[np.linspace(0, len(features) - 1, pixels_per_box).round().astype(int)]
    return features


def image_box_features(image: np.ndarray, boxes: Sequence[Box], classes: Sequence[str],
                       pixels_per_box: int) -> list[tuple[str, np.ndarray]]:
    """``(class, features (P, 4))`` of each box of ``image`` whose class is in ``classes``."""
    return [(b.category, box_features(image, b, pixels_per_box)) for b in boxes
            if b.category in classes]


def class_pixels(items: Sequence[ImageItem], classes: Sequence[str], pixels_per_box: int,
                 workers: int = 2) -> dict[str, tuple[PixelMoments, int]]:
    """Per class: the :class:`PixelMoments` of the box features of ``items`` and the number
    of boxes."""

    def one_image(item: ImageItem) -> list[tuple[str, np.ndarray]]:
        if not any(b.category in classes for b in item.boxes):
            return []
        return image_box_features(load_image(item), item.boxes, classes, pixels_per_box)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return pool_by_class(pool.map(one_image, items), classes)


class PixelMoments:
    """The count, sum ``(4,)`` and sum of outer products ``(4, 4)`` of pixel features, the
    statistics of a Gaussian fit. Sums are exact (fractions of the float64 partial sums of each
    box), so they take the same value in any order of adding."""

    def __init__(self) -> None:
        self.count = self.boxes = 0
        self._sums = [Fraction(0)] * 20

    def __len__(self) -> int:
        return self.count

    def add(self, rows: np.ndarray) -> None:
        """Add one box's features ``rows`` ``(P, 4)`` (none for a box outside its image)."""
        self.boxes += 1
        if not len(rows):
            return
        self.count += len(rows)
        partial = np.concatenate([rows.sum(axis=0), (rows.T @ rows).ravel()])
        self._sums = [total + Fraction(float(v)) for total, v in zip(self._sums, partial)]

    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(4,)`` and maximum-likelihood covariance ``(4, 4)``."""
        sums = np.array([float(total / self.count) for total in self._sums])
        mean = sums[:4]
        return mean, sums[4:].reshape(4, 4) - np.outer(mean, mean)


def pool_by_class(found: Iterable[list[tuple[str, np.ndarray]]], classes: Sequence[str]
                  ) -> dict[str, tuple[PixelMoments, int]]:
    """Per class, the :class:`PixelMoments` of ``found`` (one list of
    :func:`image_box_features` per image) and the number of boxes."""
    pooled = {c: PixelMoments() for c in classes}
    for per_image in found:
        for category, features in per_image:
            pooled[category].add(features)
    return {c: (moments, moments.boxes) for c, moments in pooled.items()}


def gaussian(pixels: PixelMoments | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(4,)`` and maximum-likelihood covariance ``(4, 4)`` of pixel features: their
    :class:`PixelMoments`, or rows ``(P, 4)``."""
    if isinstance(pixels, np.ndarray):
        moments = PixelMoments()
        moments.add(pixels)
        pixels = moments
    return pixels.gaussian()


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray,
                     cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`` for covariances ``S1``, ``S2``.

    The symmetric form has the same trace as ``sqrtm(S1 S2)`` and needs only eigenvalues of
    symmetric matrices (tiny negative ones from rounding are clipped), so it is stable for the
    singular covariances of flat regions. Clipped at 0, which rounding could undershoot.
    """
    values, vectors = np.linalg.eigh(cov1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ cov2 @ root1), 0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * cross
    return max(0.0, float(distance))


def style_distance(translated: ImageSet, target: ImageSet, source: ImageSet | None,
                   classes: Sequence[str], pixels_per_box: int = 256, workers: int = 2,
                   target_pixels: dict[str, tuple[PixelMoments, int]] | None = None) -> dict:
    """The per-class style distance (module docstring) as stored in ``translation.json``:
    ``{"definition", "per_class": {class: {"translated", "source", "boxes_translated",
    "boxes_source", "boxes_target"}}, "mean": {"translated", "source"}, "classes_compared"}``.
    A class without boxes on one side has null distances and is left out of the mean; without
    ``source`` the ``source`` distances are null. ``target_pixels``: :func:`class_pixels` of
    ``target``, when the caller already has them."""
    sets = {"translated": translated, "source": source}
    sides = {name: class_pixels(s.items, classes, pixels_per_box, workers)
             for name, s in sets.items() if s is not None}
    sides["target"] = target_pixels or class_pixels(target.items, classes, pixels_per_box,
                                                    workers)
    per_class: dict[str, dict] = {}
    for c in classes:
        target_rows, target_boxes = sides["target"][c]
        entry: dict = {}
        for side in ("translated", "source"):
            rows = sides[side][c][0] if side in sides else np.zeros((0, 4))
            entry[side] = (frechet_distance(*gaussian(rows), *gaussian(target_rows))
                           if len(rows) and len(target_rows) else None)
        entry.update(boxes_translated=sides["translated"][c][1],
                     boxes_source=sides["source"][c][1] if "source" in sides else None,
                     boxes_target=target_boxes)
        per_class[c] = entry
    compared = [c for c in classes if per_class[c]["translated"] is not None]
    mean = {side: _mean([per_class[c][side] for c in compared]) for side in ("translated",
                                                                          "source")}
    return {"definition": DEFINITION.format(n=pixels_per_box), "per_class": per_class,
            "mean": mean, "classes_compared": compared}


def mean_distance(rows: dict[str, tuple[PixelMoments, int]],
                  target: dict[str, tuple[PixelMoments, int]]) -> float | None:
    """The mean over classes with pixels on both sides of the Fréchet distance between the
    pooled features ``rows`` and ``target`` (each from :func:`pool_by_class`)."""
    distances = [frechet_distance(*gaussian(rows[c][0]), *gaussian(target[c][0]))
                 for c in rows if len(rows[c][0]) and len(target.get(c, (()))[0])]
    return float(np.mean(distances)) if distances else None


def _mean(values: list[float | None]) -> float | None:
    return float(np.mean(values)) if values and None not in values else None
