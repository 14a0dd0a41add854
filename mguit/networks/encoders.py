"""Content and style encoders (paper section 3.1, DRIT's E_c and E_s with spatial styles).

Domain 0 is x (source), domain 1 is y (target). Both encoders map ``(B, 3, H, W)`` images to
``(B, C, H / s, W / s)`` maps with ``C = cfg.feature_channels`` (the memory's width, 256 in
the paper) and ``s = cfg.stride`` (4 in the paper); ``H`` and ``W`` must be multiples of ``s``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mguit.config import ModelConfig
from mguit.networks.blocks import ResBlock, check_image, downsampling_layers, init_weights
from mguit.networks.detail import luma


class ContentEncoder(nn.Module):
    """The coupled content encoders ``E_c = {E_c^x, E_c^y}``.

    Each domain has its own stem, conv7x7 -> ``num_downsample`` conv4x4/2 -> ``content_res_blocks``
    residual blocks, all with InstanceNorm and ReLU (as DRIT); then ``shared_res_blocks``
    residual blocks whose weights both domains share (DRIT's sharing of the deepest block),
    which pushes both domains' codes into one content space.

    ``forward(image, domain)``: ``image (B, 3, H, W)``; ``domain`` an int (0 = x, 1 = y) for a
    single-domain batch, or an int64 tensor ``(B,)`` of 0/1 for a mixed batch (each sample goes
    through its own domain's stem; InstanceNorm is per-sample, so this equals two separate
    calls, with the shared blocks run once). Returns the content map ``(B, C, H/s, W/s)``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.stride = cfg.stride
        self.luma_input = cfg.content_input == "luma"
        channels = cfg.feature_channels
        self.stems = nn.ModuleList(
            nn.Sequential(
                *downsampling_layers(cfg.base_channels, cfg.num_downsample, "instance"),
                *(ResBlock(channels, "instance") for _ in range(cfg.content_res_blocks)),
            )
            for _ in range(2)
        )
        self.shared = nn.Sequential(
            *(ResBlock(channels, "instance") for _ in range(cfg.shared_res_blocks)))
        init_weights(self, cfg.init_std)

    def forward(self, image: Tensor, domain: int | Tensor) -> Tensor:
        check_image(image, self.stride)
        if self.luma_input:
            image = luma(image).expand_as(image)
        if isinstance(domain, Tensor):
            features = self._mixed_stems(image, domain)
        elif domain in (0, 1):
            features = self.stems[domain](image)
        else:
            raise ValueError(f"domain must be 0 (x) or 1 (y), got {domain!r}")
        return self.shared(features)

    def _mixed_stems(self, image: Tensor, domain: Tensor) -> Tensor:
        if domain.shape != image.shape[:1] or domain.dtype != torch.long:
            raise ValueError(f"a domain tensor must be int64 of shape ({image.shape[0]},), got "
                             f"{domain.dtype} {tuple(domain.shape)}")
        if ((domain != 0) & (domain != 1)).any():
            raise ValueError("domain values must be 0 (x) or 1 (y)")
        features: Tensor | None = None
        for index, stem in enumerate(self.stems):
            rows = (domain == index).nonzero().flatten()
            if rows.numel() == 0:
                continue
            out = stem(image.index_select(0, rows))
            if features is None:
                features = out.new_empty((image.shape[0], *out.shape[1:]))
            # Out of place, so autograd sees one differentiable op per domain.
            features = features.index_copy(0, rows, out)
        assert features is not None  # the batch is non-empty and every value is 0 or 1
        return features


class StyleEncoder(nn.Module):
    """The style encoder of one domain, ``E_s^x`` or ``E_s^y`` (the model holds two).

    MGUIT's style is spatial: conv7x7 -> ``num_downsample`` conv4x4/2 -> ``style_res_blocks``
    residual blocks -> two 1x1 heads, the mean and log-variance of a diagonal Gaussian per pixel
    (a VAE, for the KL loss), each ``(B, C, H/s, W/s)`` — one 1x1xC style vector per content
    pixel, as the memory stores and reads them.

    No normalisation anywhere, as DRIT's attribute encoder and MUNIT's style encoder: the style
    *is* the per-channel first and second moments of the features (AdaIN's premise), which
    InstanceNorm removes at every layer it sits in; BatchNorm at the paper's batch size 1 is
    InstanceNorm in training and a different function at test time; LayerNorm would drop the
    global intensity scale, which tells night from day. The price is that activations are not
    rescaled: with the paper's N(0, 0.001) init ``mu`` and ``logvar`` start near zero (see
    :func:`~mguit.networks.blocks.init_weights`).

    With ``cfg.style_centering == "image"`` the mean of ``mu`` over each image's pixels is
    subtracted, per channel: what is left is how each pixel's style differs from the image's.

    ``forward(image (B, 3, H, W)) -> {"mu": (B, C, H/s, W/s), "logvar": (B, C, H/s, W/s)}``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.stride = cfg.stride
        channels = cfg.feature_channels
        self.body = nn.Sequential(
            *downsampling_layers(cfg.base_channels, cfg.num_downsample, "none"),
            *(ResBlock(channels, "none") for _ in range(cfg.style_res_blocks)),
        )
        self.mu = nn.Conv2d(channels, channels, 1)
        self.logvar = nn.Conv2d(channels, channels, 1)
        self.centred = cfg.style_centering == "image"
        init_weights(self, cfg.init_std)
        if cfg.style_init == "kaiming":
            # The log-variance head keeps N(0, init_std): the sample starts with unit noise
            # around a mean that now carries the image.
            for conv in (*self.body.modules(), self.mu):
                if isinstance(conv, nn.Conv2d):
                    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        check_image(image, self.stride)
        features = self.body(image)
        mu = self.mu(features)
        if self.centred:
            mu = mu - mu.mean(dim=(2, 3), keepdim=True)
        return {"mu": mu, "logvar": self.logvar(features)}
