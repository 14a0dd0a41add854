"""The DRIT-style networks of MGUIT: content/style encoders, generator, discriminators.

Every network takes a :class:`~mguit.config.ModelConfig` and initialises its own weights with
``cfg.init_std`` (the paper's N(0, 0.001)); :func:`init_weights` re-initialises any module.
"""

from mguit.networks.blocks import init_weights
from mguit.networks.discriminators import (ClassDiscriminator, ContentDiscriminator,
                                           MultiScaleDiscriminator)
from mguit.networks.encoders import ContentEncoder, StyleEncoder
from mguit.networks.generator import Generator

__all__ = [
    "ClassDiscriminator",
    "ContentDiscriminator",
    "ContentEncoder",
    "Generator",
    "MultiScaleDiscriminator",
    "StyleEncoder",
    "init_weights",
]
