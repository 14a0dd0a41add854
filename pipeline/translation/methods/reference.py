"""The target images the baselines take their style from (``translate.reference_split``).

A baseline never holds these images: it reads one when it needs it, by index. The random image
of a source image's style sample is a pure function of the image's style seed and the sample
index (:meth:`ReferenceSet.pick`), so a baseline's output does not depend on batches or shards.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from detection.images import open_image, to_rgb
from pipeline.formats import coco
from pipeline.translation.errors import TranslationError


@dataclass(frozen=True)
class ReferenceSet:
    """The images of a COCO manifest, in manifest order: their paths and ``(width, height)``."""

    manifest: Path
    paths: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]

    @classmethod
    def read(cls, manifest: str | Path) -> ReferenceSet:
        """The images of ``manifest`` (typically ``runs/<name>/data/target_train.json``).
        Raises :class:`DatasetError` for an unreadable manifest, :class:`TranslationError` for
        one without images."""
        path = Path(os.path.abspath(manifest))
        loaded = coco.read_manifest(path)
        if not loaded.images:
            raise TranslationError(f"{path}: the reference split has no images; the baselines "
                                   "take their style from it (translate.reference_split)")
        return cls(path, tuple(loaded.image_path(im) for im in loaded.images),
                   tuple((im["width"], im["height"]) for im in loaded.images))

    def __len__(self) -> int:
        return len(self.paths)

    @functools.cached_property
    def sha256(self) -> str:
        """A hash of the images' paths and sizes, in order (as the source's input digest)."""
        digest = hashlib.sha256()
        for path, (width, height) in zip(self.paths, self.sizes):
            digest.update(f"{path}\0{width}\0{height}\n".encode())
        return digest.hexdigest()

    def pick(self, style_seed: int, sample: int) -> int:
        """The index of the reference image of style sample ``sample`` of the source image whose
        style seed is ``style_seed`` (:func:`pipeline.translation.plan.style_seed`)."""
        return int(np.random.default_rng([style_seed, sample]).integers(len(self.paths)))

    def load(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Image ``index`` as ``(H, W, 3)`` uint8 RGB; with ``size`` ``(width, height)`` resized
        to it (bilinear). Raises :class:`TranslationError` naming an unreadable file."""
        path = self.paths[index]
        try:
            with open_image(path) as image:
                rgb = to_rgb(image)
                if size is not None and rgb.size != size:
                    rgb = rgb.resize(size, Image.Resampling.BILINEAR)
                return np.asarray(rgb)
        except FileNotFoundError:
            raise TranslationError(f"{path}: reference image does not exist (listed in "
                                   f"{self.manifest}); prepare the dataset again") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise TranslationError(f"{path}: reference image cannot be read ({exc}); replace "
                                   f"it or remove it from {self.manifest}") from None
