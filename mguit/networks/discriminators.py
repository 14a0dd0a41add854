"""Discriminators: the multi-scale image discriminator ``D^x`` / ``D^y``, the content
discriminator ``D_c`` (paper section 3.1, DRIT's MultiScaleDis and content discriminator) and
the class discriminator (not in the paper; ``loss.class_adv``).

All output raw logits; the losses are applied by the caller.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mguit.config import ModelConfig
from mguit.networks.blocks import init_weights, maybe_spectral_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN at one scale: ``layers`` conv4x4/2 + LeakyReLU(0.2), the width doubling from
    ``channels``, then a 1x1 conv to one logit per patch.

    ``(B, 3, H, W) -> (B, 1, H / 2**layers, W / 2**layers)`` (floor at each layer). Zero padding
    and no normalisation (as DRIT): the coarsest scales see small images, and spectral norm
    already controls the Lipschitz constant.
    """

    def __init__(self, channels: int, layers: int, spectral: bool):
        super().__init__()
        modules: list[nn.Module] = []
        in_channels = 3
        for i in range(layers):
            out_channels = channels * 2 ** i
            conv = nn.Conv2d(in_channels, out_channels, 4, 2, 1)
            modules += [maybe_spectral_norm(conv, spectral), nn.LeakyReLU(0.2)]
            in_channels = out_channels
        modules.append(maybe_spectral_norm(nn.Conv2d(in_channels, 1, 1), spectral))
        self.net = nn.Sequential(*modules)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


class MultiScaleDiscriminator(nn.Module):
    """``discriminator_scales`` PatchGANs, the k-th on the image average-pooled k times by 2.

    ``forward(image (B, 3, H, W)) -> list`` of ``discriminator_scales`` logit maps, finest
    first; map k is ``(B, 1, h_k // 2**L, w_k // 2**L)`` with ``h_0 = H``,
    ``h_k = ceil(h_{k-1} / 2)`` and ``L = discriminator_layers``. Any ``H, W`` works as long as
    the coarsest image is at least ``2**L`` pixels on each side.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = cfg.discriminator_layers
        self.scales = nn.ModuleList(
            PatchDiscriminator(cfg.discriminator_channels, cfg.discriminator_layers,
                               cfg.spectral_norm)
            for _ in range(cfg.discriminator_scales)
        )
        init_weights(self, cfg.init_std)

    def forward(self, image: Tensor) -> list[Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(image.shape)}")
        self._check_size(*image.shape[-2:])
        logits = []
        for k, discriminator in enumerate(self.scales):
            if k:
                image = F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)
            logits.append(discriminator(image))
        return logits

    def _check_size(self, height: int, width: int) -> None:
        coarse_h, coarse_w = height, width
        for _ in range(len(self.scales) - 1):
            coarse_h, coarse_w = -(-coarse_h // 2), -(-coarse_w // 2)
        if min(coarse_h, coarse_w) < 2 ** self.layers:
            raise ValueError(
                f"image size {height}x{width} is too small for {len(self.scales)} scales of "
                f"{self.layers} stride-2 layers: the coarsest scale is {coarse_h}x{coarse_w}, "
                f"it needs at least {2 ** self.layers} pixels a side"
            )


class ContentDiscriminator(nn.Module):
    """``D_c``: tells x's content codes from y's, pushing both into one content space.

    Three conv7x7/2 layers of width ``content_discriminator_channels`` with LeakyReLU(0.2)
    (DRIT's layout, zero padding 3 so that any map size, down to 1x1, halves by ceil), a 1x1
    conv to a logit map, and the mean over positions. No InstanceNorm (DRIT has it): it would
    hide the per-channel statistics of the codes, which are exactly a domain's tell-tale; the
    layers are spectral-normalised instead when ``cfg.spectral_norm``.

    ``forward(content (B, C, h, w)) -> (B,)`` logits, positive meaning "domain x" or "domain y"
    as the caller's loss defines.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.content_discriminator_channels
        modules: list[nn.Module] = []
        in_channels = cfg.feature_channels
        for _ in range(3):
            modules += [maybe_spectral_norm(nn.Conv2d(in_channels, width, 7, 2, 3),
                                            cfg.spectral_norm),
                        nn.LeakyReLU(0.2)]
            in_channels = width
        modules.append(maybe_spectral_norm(nn.Conv2d(width, 1, 1), cfg.spectral_norm))
        self.net = nn.Sequential(*modules)
        self.in_channels = cfg.feature_channels
        init_weights(self, cfg.init_std)

    def forward(self, content: Tensor) -> Tensor:
        if content.ndim != 4 or content.shape[1] != self.in_channels:
            raise ValueError(f"expected content maps of shape (B, {self.in_channels}, h, w), "
                             f"got {tuple(content.shape)}")
        return self.net(content).mean(dim=(1, 2, 3))


class ClassDiscriminator(nn.Module):
    """Tells, at every pixel, which memory group a real image of its domain shows there, or
    that the image is a translation (OASIS's segmentation discriminator, at half resolution).

    The image discriminators judge whole patches, where a 10-pixel car is a few percent of the
    evidence; this one is asked about each group's pixels separately, so a translated car that
    keeps its source paint is told apart from the target's cars (docs/translator.md, cause 17).

    Layers: conv3x3 + LeakyReLU(0.2), conv4x4/2, conv3x3, conv3x3 dilated 2 (each + LeakyReLU,
    width ``2 * discriminator_channels`` after the first), then a 1x1 conv to ``groups + 1``
    logits: index 0 "translated", index ``g + 1`` group ``g``. Receptive field 18 pixels: an
    object and its surroundings at the demo's size, colour and texture at a street image's.

    ``forward(image (B, 3, H, W)) -> (B, groups + 1, H // 2, W // 2)``.
    """

    def __init__(self, cfg: ModelConfig, groups: int):
        super().__init__()
        width, spectral = cfg.discriminator_channels, cfg.spectral_norm
        convs = [nn.Conv2d(3, width, 3, 1, 1, padding_mode="reflect"),
                 nn.Conv2d(width, 2 * width, 4, 2, 1),
                 nn.Conv2d(2 * width, 2 * width, 3, 1, 1, padding_mode="reflect"),
                 nn.Conv2d(2 * width, 2 * width, 3, 1, 2, dilation=2, padding_mode="reflect")]
        modules: list[nn.Module] = []
        for conv in convs:
            modules += [maybe_spectral_norm(conv, spectral), nn.LeakyReLU(0.2)]
        modules.append(maybe_spectral_norm(nn.Conv2d(2 * width, groups + 1, 1), spectral))
        self.net = nn.Sequential(*modules)
        self.groups = groups
        init_weights(self, cfg.init_std)

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3 or min(image.shape[-2:]) < 8:
            raise ValueError(f"expected images of shape (B, 3, H, W) with H, W >= 8, got "
                             f"{tuple(image.shape)}")
        return self.net(image)
