"""MGUIT: memory-guided unsupervised image-to-image translation (Jeong et al., CVPR 2021).

A library with no knowledge of the pipeline around it::

    from mguit import load_translator
    translator = load_translator("runs/demo/translator/checkpoints/last.pt", device="cpu")
    samples = translator.translate(images, direction="source_to_target", num_samples=3, seed=0)
"""

from mguit.config import TranslatorConfig
from mguit.inference import load_translator
from mguit.model import MGUIT

__all__ = ["MGUIT", "TranslatorConfig", "load_translator"]
