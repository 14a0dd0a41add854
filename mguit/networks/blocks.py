"""Building blocks shared by the MGUIT networks: convolutions, residual blocks, input checks
and the weight initialisation of the paper."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

Norm = Literal["instance", "layer", "none"]


def make_norm(kind: Norm, channels: int) -> nn.Module:
    """Normalisation layer over a ``(B, channels, H, W)`` map.

    ``instance``: per-sample, per-channel statistics, no affine (as DRIT's encoders); it removes
    each channel's mean and scale, i.e. the "style" statistics. ``layer``: one mean and variance
    per sample over ``(C, H, W)`` (GroupNorm with one group) with a per-channel affine; it keeps
    the relative statistics of the channels, which is why decoders that carry style use it.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; expected 'instance', 'layer' or 'none'")


class ConvNormAct(nn.Sequential):
    """Reflection-padded convolution -> normalisation -> ReLU.

    ``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)`` for even ``H, W``:
    the padding is ``(kernel_size - 1) // 2``, so 7x7/1, 3x3/1 and 4x4/2 all keep or exactly
    halve the size. Reflection padding avoids the dark borders zero padding teaches a generator.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 norm: Norm = "instance", activation: bool = True):
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            # A per-channel bias right before InstanceNorm is subtracted again: leave it out.
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      padding_mode="reflect" if padding else "zeros", bias=norm != "instance"),
            make_norm(norm, out_channels),
        ]
        if activation:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """``x + conv3x3(relu(norm(conv3x3(x))))`` with a norm after each conv; ``(B, C, H, W)``."""

    def __init__(self, channels: int, norm: Norm):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, 3, norm=norm),
            ConvNormAct(channels, channels, 3, norm=norm, activation=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def downsampling_layers(base_channels: int, num_downsample: int, norm: Norm) -> list[nn.Module]:
    """The encoders' front: conv7x7 (3 -> base) and ``num_downsample`` conv4x4/2 doubling widths.

    ``(B, 3, H, W) -> (B, base * 2**num_downsample, H / 2**num_downsample, W / 2**num_downsample)``.
    """
    layers: list[nn.Module] = [ConvNormAct(3, base_channels, 7, norm=norm)]
    channels = base_channels
    for _ in range(num_downsample):
        layers.append(ConvNormAct(channels, 2 * channels, 4, stride=2, norm=norm))
        channels *= 2
    return layers


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` with spectral normalisation of its weight when ``enabled``."""
    return spectral_norm(module) if enabled else module


def check_image(image: Tensor, stride: int) -> None:
    """Raise ``ValueError`` unless ``image`` is ``(B, 3, H, W)`` with ``H, W`` multiples of
    ``stride`` and at least ``2 * stride`` (the 3x3 reflection padding at the lowest resolution
    needs feature maps of at least 2x2)."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height % stride or width % stride or min(height, width) < 2 * stride:
        raise ValueError(
            f"image size {height}x{width} is not supported: height and width must be multiples "
            f"of {stride} (2**num_downsample) and at least {2 * stride}; pad the image first"
        )


def init_weights(module: nn.Module, std: float) -> None:
    """Initialise ``module`` in place as the paper (section 4.1): every convolution and linear
    weight ~ N(0, std), biases 0; affine normalisation weights 1 and biases 0.

    Spectral-normalised layers get their raw weight redrawn and their power-iteration vectors
    re-estimated, so that the normalised weight has spectral norm ~1 from the first step.

    With the paper's std = 0.001 a layer multiplies the scale of its input by about
    ``std * sqrt(fan_in)`` (0.01 - 0.05 here). Nothing vanishes where a normalisation follows:
    the content encoder's InstanceNorm and the generator's LayerNorm bring every map back to
    unit scale, so content codes are O(1) and the generator's images are small but non-zero
    (mean |x| ~ 0.04 after the last 7x7 conv and tanh), with the style's modulation ~0 at first.
    The un-normalised style encoder's ``mu`` and ``logvar`` start near 1e-7, so a sampled style
    is N(0, I) noise until training scales the weights up. Spectral norm makes the
    discriminators independent of the scale.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            parametrized = parametrize.is_parametrized(m, "weight")
            weight = m.parametrizations.weight.original if parametrized else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if parametrized:
                _refresh_parametrization(m)
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _refresh_parametrization(module: nn.Module, iterations: int = 15) -> None:
    # Spectral norm keeps power-iteration vectors u, v estimated from the old weight, and in
    # training mode runs one iteration per evaluation of ``module.weight``: run as many as
    # torch does when the parametrization is registered.
    parametrizations = module.parametrizations.weight
    was_training = parametrizations.training
    parametrizations.train()
    with torch.no_grad():
        for _ in range(iterations):
            module.weight  # noqa: B018 - evaluated for its power iteration
    parametrizations.train(was_training)
