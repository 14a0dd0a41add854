"""MGUIT: memory-guided unsupervised image-to-image translation (Jeong et al., CVPR 2021).

A library with no knowledge of the pipeline around it::

    from mguit import load_translator
    translator = load_translator("runs/demo/translator/checkpoints/last.pt", device="cpu")
    samples = translator.translate(images, direction="source_to_target", num_samples=3, seed=0)

``MGUIT`` and ``load_translator`` are imported on first use, so reading a config
(:mod:`mguit.config`) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mguit.config import TranslatorConfig

if TYPE_CHECKING:
    from mguit.inference import load_translator
    from mguit.model import MGUIT

__all__ = ["MGUIT", "TranslatorConfig", "load_translator"]


def __getattr__(name: str):
    if name == "MGUIT":
        from mguit.model import MGUIT
        return MGUIT
    if name == "load_translator":
        from mguit.inference import load_translator
        return load_translator
    raise AttributeError(f"module 'mguit' has no attribute {name!r}")
