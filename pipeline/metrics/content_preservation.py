"""Content preservation: does a translation keep the edges of the image it translates?

A data-augmentation translation keeps the source's boxes, so what the boxes enclose must still
be the object: its outline and inner structure must survive the change of style. Needs no
network weights. Definition (what :func:`edge_correlation` computes):

1. Both images to luminance (ITU-R BT.601 weights of sRGB, 0-255).
2. Sobel gradient magnitude of each (3 x 3 kernels, edges replicated at the border).
3. Per image pair, the Pearson correlation of the two magnitude maps over all pixels
   (``whole``) and over the pixels inside the union of the boxes (``boxes``), and per class over
   the pixels inside that class's boxes.
4. The figure is the mean over image pairs (pairs whose region has fewer than 2 pixels or a
   constant magnitude are left out of that region's mean).

1 means the translation has the same edges where the source has them (any global change of
contrast is allowed: correlation ignores scale and offset); 0 means its edges are unrelated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.formats.common import Box

DEFINITION = (
    "mean over image pairs (source, its translation) of the Pearson correlation of the Sobel "
    "gradient magnitudes of their luminance, over whole images ('whole'), over the pixels "
    "inside the union of the boxes ('boxes') and inside each class's boxes ('per_class'); "
    "1 = the same edges, 0 = unrelated edges")

_LUMA = np.array([0.299, 0.587, 0.114])


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` float64 Sobel gradient magnitude of luminance."""
    light = np.pad(image.astype(np.float64) @ _LUMA, 1, mode="edge")
    # Separable Sobel: smoothing [1, 2, 1] across, difference [-1, 0, 1] along.
    gx = light[:, 2:] - light[:, :-2]
    gx = gx[:-2] + 2 * gx[1:-1] + gx[2:]
    gy = light[2:] - light[:-2]
    gy = gy[:, :-2] + 2 * gy[:, 1:-1] + gy[:, 2:]
    return np.hypot(gx, gy)


def box_region(shape: tuple[int, int], boxes: Sequence[Box]) -> np.ndarray:
    """``(H, W)`` bool: the pixels covered (even partly) by any of ``boxes``."""
    h, w = shape
    region = np.zeros((h, w), dtype=bool)
    for b in boxes:
        x0, x1 = max(0, int(np.floor(b.x0))), min(w, int(np.ceil(b.x1)))
        y0, y1 = max(0, int(np.floor(b.y0))), min(h, int(np.ceil(b.y1)))
        region[y0:y1, x0:x1] = True
    return region


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two equally long 1-D arrays; None when undefined."""
    if a.size < 2:
        return None
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else None


def pair_edge_correlation(source: np.ndarray, translated: np.ndarray, boxes: Sequence[Box],
                          classes: Sequence[str]) -> dict[str, float | None | dict]:
    """The figures of one pair of ``(H, W, 3)`` uint8 images: ``{"whole", "boxes",
    "per_class": {class: value}}`` (None where undefined)."""
    if source.shape != translated.shape:
        raise ValueError(f"a translation must have its source's size: {source.shape[:2]} vs "
                         f"{translated.shape[:2]}")
    a, b = sobel_magnitude(source), sobel_magnitude(translated)
    inside = box_region(a.shape, boxes)
    per_class = {}
    for c in classes:
        region = box_region(a.shape, [x for x in boxes if x.category == c])
        per_class[c] = correlation(a[region], b[region])
    return {"whole": correlation(a.ravel(), b.ravel()),
            "boxes": correlation(a[inside], b[inside]), "per_class": per_class}


def edge_correlation(pairs: Iterable[tuple[np.ndarray, np.ndarray, Sequence[Box]]],
                     classes: Sequence[str]) -> dict:
    """The metric of the module docstring over ``(source, translated, boxes)`` triples:
    ``{"definition", "whole", "boxes", "per_class": {class: value}, "pairs"}``."""
    values: dict[str, list[float]] = {"whole": [], "boxes": []}
    per_class: dict[str, list[float]] = {c: [] for c in classes}
    count = 0
    for source, translated, boxes in pairs:
        one = pair_edge_correlation(source, translated, boxes, classes)
        count += 1
        for key in values:
            if one[key] is not None:
                values[key].append(one[key])
        for c, v in one["per_class"].items():
            if v is not None:
                per_class[c].append(v)
    return {"definition": DEFINITION,
            **{k: _mean(v) for k, v in values.items()},
            "per_class": {c: _mean(v) for c, v in per_class.items()},
            "pairs": count}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
