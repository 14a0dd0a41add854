"""Reinhard colour transfer (Reinhard et al., "Color Transfer between Images", 2001), in CIE Lab.

Each image is converted to L*a*b* (:mod:`pipeline.translation.lab`), and every channel is
shifted and scaled so that the image's mean and standard deviation over its pixels equal the
reference's: ``out = (lab - mean_image) * std_reference / std_image + mean_reference``, then
converted back, clipped to the sRGB gamut and rounded. A flat channel (std 0) is only shifted.
Reinhard et al. work in their l-alpha-beta space; CIE Lab decorrelates the channels as well
and is the usual choice today.

The reference statistics of sample 0 are those of every pixel of the reference split
(``translate.reference_split``, target_train by default), computed once, one image at a time,
and kept in the output folder as ``reference.json`` (reused while the reference images' paths
and sizes are unchanged). With ``num_samples`` K > 1, sample k >= 1 takes the statistics of
one reference image drawn by the source image's style seed and k
(:meth:`~pipeline.translation.methods.reference.ReferenceSet.pick`, as FDA draws its image),
so the samples show the spread of the target's colours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.translation.lab import lab_to_srgb, srgb_to_lab
from pipeline.translation.methods.reference import ReferenceSet
from pipeline.translation.records import REFERENCE

logger = logging.getLogger(__name__)

# What the statistics in reference.json are: a cache written by another definition is not reused.
STATISTICS = "CIE Lab (D65) per-channel mean and standard deviation over all pixels"


def lab_moments(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 -> per-channel Lab ``(mean, std)``, each of shape ``(3,)``."""
    lab = srgb_to_lab(pixels).reshape(-1, 3).astype(np.float64)
    return lab.mean(axis=0), lab.std(axis=0)


def transfer(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(H, W, 3)`` uint8 with its Lab statistics moved to ``mean``/``std`` -> ``(H, W, 3)``
    uint8 (see the module doc)."""
    lab = srgb_to_lab(pixels)
    own_mean = lab.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    own_std = lab.reshape(-1, 3).std(axis=0, dtype=np.float64)
    scale = np.divide(np.asarray(std), own_std, out=np.ones(3), where=own_std > 0)
    return lab_to_srgb((lab - own_mean) * scale + np.asarray(mean))


def dataset_moments(reference: ReferenceSet, progress: bool = True
                    ) -> tuple[list[float], list[float]]:
    """Per-channel Lab ``(mean, std)`` over every pixel of ``reference``, reading one image at
    a time (sums of values and squares in float64)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for index in tqdm(range(len(reference)), desc="reference statistics", unit="img",
                      disable=None if progress else True, leave=False):
        lab = srgb_to_lab(reference.load(index)).reshape(-1, 3).astype(np.float64)
        total += lab.sum(axis=0)
        squares += (lab * lab).sum(axis=0)
        count += len(lab)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0))
    return mean.tolist(), std.tolist()


class ColourTransfer:
    """The ``colour_transfer`` baseline (a translation method: :mod:`~pipeline.translation.
    methods`). Build it with :meth:`build`, which reuses the statistics of an earlier run."""

    name = "colour_transfer"
    device = torch.device("cpu")

    def __init__(self, reference: ReferenceSet, mean: Sequence[float], std: Sequence[float]):
        self.reference = reference
        self.mean, self.std = list(mean), list(std)
        self.description = "Reinhard colour transfer (CIE Lab)"

    @classmethod
    def build(cls, reference: ReferenceSet, out_dir: Path, progress: bool = True
              ) -> ColourTransfer:
        """The method with ``reference``'s statistics: read from ``out_dir/reference.json``
        when it holds those of the same images, else computed (minutes on a large split)."""
        cached = _read_cache(out_dir / REFERENCE)
        if cached.get("reference_sha256") == reference.sha256 \
                and cached.get("statistics") == STATISTICS:
            return cls(reference, cached["lab_mean"], cached["lab_std"])
        logger.info("colour_transfer: Lab statistics of the %d images of %s", len(reference),
                    reference.manifest)
        return cls(reference, *dataset_moments(reference, progress))

    def settings(self) -> dict:
        return {"method": self.name, "reference": str(self.reference.manifest),
                "reference_sha256": self.reference.sha256, "reference_lab_mean": self.mean,
                "reference_lab_std": self.std}

    def files(self) -> dict[str, bytes]:
        document = {"reference": str(self.reference.manifest),
                    "reference_sha256": self.reference.sha256, "images": len(self.reference),
                    "statistics": STATISTICS, "lab_mean": self.mean, "lab_std": self.std}
        return {REFERENCE: (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()}

    def translate(self, pixels: torch.Tensor, num_samples: int, seeds: Sequence[int]
                  ) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 -> ``(K, B, H, W, 3)`` uint8, image by image."""
        images = pixels.numpy()
        out = np.empty((num_samples, *images.shape), np.uint8)
        for row, (image, seed) in enumerate(zip(images, seeds)):
            for k in range(num_samples):
                if k == 0:
                    mean, std = self.mean, self.std
                else:
                    mean, std = lab_moments(self.reference.load(self.reference.pick(seed, k)))
                out[k, row] = transfer(image, mean, std)
        return out


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
