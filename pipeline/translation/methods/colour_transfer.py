"""Reinhard colour transfer (Reinhard et al., "Color Transfer between Images", 2001), in CIE Lab.

Each image is converted to L*a*b* (:mod:`pipeline.translation.lab`), and every channel is
shifted and scaled so that the image's mean and standard deviation over its pixels equal the
reference's: ``out = (lab - mean_image) * std_reference / std_image + mean_reference``, then
converted back, clipped to the sRGB gamut and rounded. A flat channel (std 0) is only shifted.
Reinhard et al. work in their l-alpha-beta space; CIE Lab decorrelates the channels as well
and is the usual choice today.

Where the target statistics come from (``translate.colour_transfer_reference``): ``image``
(the default, and the method's own use of one reference image): every sample k of a source
image takes the statistics of one reference image drawn by the image's style seed and k
(:meth:`~pipeline.translation.methods.reference.ReferenceSet.pick`, as FDA draws its image),
so the translations keep the target's image-to-image light. ``split``: sample 0 takes those
of every pixel of the reference split (``translate.reference_split``), computed once, one image
at a time, and kept in the output folder as ``reference.json`` (reused while the reference
images' paths and sizes are unchanged); samples k >= 1 one image's, as above. On the demo,
seeds 2 / 0 / 1, K = 1, ``split`` gives every translation the same brightness and recovers
-0.22 of the detection gap, ``image`` 0.21 (docs/translator.md, "Where the gap lives").
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
    methods`). ``mean``/``std``: the reference split's Lab statistics for sample 0 (``split``),
    or None: every sample takes one reference image's (``image``). Build it with
    :meth:`build`, which reuses the statistics of an earlier run."""

    name = "colour_transfer"
    device = torch.device("cpu")

    def __init__(self, reference: ReferenceSet, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None):
        if (mean is None) != (std is None):
            raise ValueError("colour transfer: give both the mean and the std, or neither")
        self.reference = reference
        self.mean = None if mean is None else list(mean)
        self.std = None if std is None else list(std)
        self.description = f"Reinhard colour transfer (CIE Lab, {self.statistics} statistics)"

    @property
    def statistics(self) -> str:
        """``image`` or ``split`` (see the module doc)."""
        return "image" if self.mean is None else "split"

    @classmethod
    def build(cls, reference: ReferenceSet, out_dir: Path, progress: bool = True,
              statistics: str = "image") -> ColourTransfer:
        """The method with target statistics from one reference image per sample
        (``statistics="image"``) or, for sample 0, from all of ``reference`` (``"split"``: read
        from ``out_dir/reference.json`` when it holds those of the same images, else computed,
        minutes on a large split)."""
        if statistics == "image":
            return cls(reference)
        if statistics != "split":
            raise ValueError(f"colour transfer statistics must be image or split, not "
                             f"{statistics!r}")
        cached = _read_cache(out_dir / REFERENCE)
        if cached.get("reference_sha256") == reference.sha256 \
                and cached.get("statistics") == STATISTICS:
            return cls(reference, cached["lab_mean"], cached["lab_std"])
        logger.info("colour_transfer: Lab statistics of the %d images of %s", len(reference),
                    reference.manifest)
        return cls(reference, *dataset_moments(reference, progress))

    def settings(self) -> dict:
        return {"method": self.name, "reference": str(self.reference.manifest),
                "reference_sha256": self.reference.sha256, "statistics": self.statistics,
                "reference_lab_mean": self.mean, "reference_lab_std": self.std}

    def files(self) -> dict[str, bytes]:
        if self.mean is None:
            return {}
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
                if k == 0 and self.mean is not None:
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
