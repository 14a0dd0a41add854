"""The source image's fine luminance detail, added to a generator's output.

A generator that decodes from stride-s content maps renders what is finer than about s pixels
poorly in a short training run: the demo's 5-15 px pedestrians came out as blurs and the real
pair's objects as dark blobs, and a detector learns nothing from either. With
``ModelConfig.detail: luma`` the model adds the input's luminance detail (the luma minus its
Gaussian blur) to every image a generator renders from that input's content, so the generator
owns colour and everything coarser than ``detail_sigma`` and the input keeps its edges. Only
luminance passes: the colour of a small object, which a translation must be free to change,
stays with the generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma weights (the same for [-1, 1] and [0, 1] images: they sum to 1).
_LUMA = (0.299, 0.587, 0.114)


def luma(images: Tensor) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, 1, H, W)``: the BT.601 luma of each pixel."""
    weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def chroma(images: Tensor) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, 3, H, W)``: each pixel minus its luma (zero on greys)."""
    return images - luma(images)


def luma_detail(images: Tensor, sigma: float) -> Tensor:
    """``(B, 3, H, W)`` images -> ``(B, 1, H, W)``: luma minus its Gaussian blur (std ``sigma``
    pixels, kernel ``2 * ceil(3 sigma) + 1`` taps, the border pixels repeated outwards, so that
    any image size works and a constant image has no detail). Differentiable in ``images``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grey = luma(images)
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    blurred = F.pad(grey, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(blurred, kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1))
    return grey - blurred


def add_detail(rendered: Tensor, detail: Tensor | None) -> Tensor:
    """A generator's ``(B, 3, H, W)`` output in [-1, 1] plus ``(B, 1, H, W)`` detail on every
    channel, clamped back to [-1, 1]; ``detail=None`` returns ``rendered`` unchanged."""
    if detail is None:
        return rendered
    return (rendered + detail).clamp(-1.0, 1.0)
