"""Translation methods: what turns a batch of source images into their translations.

The engine (:mod:`pipeline.translation.engine`) plans the batches, decodes, resumes, writes and
logs; a method maps pixels to pixels. Every method goes through that one engine and its one
writer, so MGUIT's translation and the baselines' have the same folder layout, guarantees and
bookkeeping, and the detector stage reads them alike.

A method (:class:`TranslationMethod`) has

* ``name``: ``mguit``, ``colour_transfer`` or ``fda``; ``description``: for the log;
* ``device``: where it computes (batches for a CUDA device are decoded into pinned memory);
* ``settings()``: what, beyond the input, ``num_samples``, ``seed`` and the PNG level, decides
  its output bytes (MGUIT: checkpoint hash and direction; a baseline: its parameters and a hash
  of its reference images). Stored in ``translate.json``: a folder holding other settings is
  another translation;
* ``files()``: files it keeps in the output folder (name -> bytes), such as colour transfer's
  ``reference.json``;
* ``translate(pixels, num_samples, seeds)``: ``(B, H, W, 3)`` uint8 CPU tensor (one batch, one
  size) -> ``(K, B, H, W, 3)`` uint8 array. ``seeds[b]`` is image b's style seed
  (:func:`pipeline.translation.plan.style_seed`); sample k of image b depends on image b, its
  seed and k only, never on the other images of the batch.

The methods: :class:`~pipeline.translation.methods.translator.TranslatorMethod` (MGUIT) and the
baselines, :class:`~pipeline.translation.methods.colour_transfer.ColourTransfer` and
:class:`~pipeline.translation.methods.fda.FourierDomainAdaptation`, which take their style from
the images of a reference split (:mod:`~pipeline.translation.methods.reference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from pipeline.config import TranslateConfig
from pipeline.translation.methods.colour_transfer import ColourTransfer
from pipeline.translation.methods.fda import FourierDomainAdaptation
from pipeline.translation.methods.reference import ReferenceSet


class TranslationMethod(Protocol):
    name: str
    description: str
    device: torch.device

    def settings(self) -> dict: ...

    def files(self) -> dict[str, bytes]: ...

    def translate(self, pixels: torch.Tensor, num_samples: int, seeds: Sequence[int]
                  ) -> np.ndarray: ...


def build_baseline(name: str, reference_manifest: Path, options: TranslateConfig,
                   out_dir: Path, progress: bool = True) -> TranslationMethod:
    """The baseline ``name`` (one of ``pipeline.translation.BASELINES``) with its style from
    the images of ``reference_manifest``; ``out_dir`` is its output folder (colour transfer
    reuses the reference statistics it finds there)."""
    reference = ReferenceSet.read(reference_manifest)
    if name == "colour_transfer":
        return ColourTransfer.build(reference, out_dir, progress,
                                    options.colour_transfer_reference)
    if name == "fda":
        return FourierDomainAdaptation(reference, options.fda_beta)
    raise ValueError(f"unknown baseline {name!r} (baselines: colour_transfer, fda)")
