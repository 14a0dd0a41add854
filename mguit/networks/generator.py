"""The generator ``G^x`` / ``G^y`` (paper eq 1): content map + spatial style map -> image."""

from __future__ import annotations

from torch import Tensor, nn

from mguit.config import ModelConfig
from mguit.networks.blocks import ConvNormAct, init_weights


def pixel_norm(style: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale every pixel's style vector to unit root-mean-square over channels.

    ``(B, C, H, W) -> (B, C, H, W)``. Keeps the direction, which is what the memory encodes
    (values are unit vectors addressed by cosine), and drops the magnitude, which depends on
    where the style came from: a memory read is a convex combination of unit vectors (norm <= 1,
    about 1/sqrt(C) per channel), a sample of the style encoder's Gaussian has norm ~sqrt(C).
    """
    # In float32: under autocast a float16 square overflows above 256 and eps underflows.
    style32 = style.float()
    return (style32 * (style32.square().mean(dim=1, keepdim=True) + eps).rsqrt()).to(style.dtype)


class StyleModulation(nn.Module):
    """Per-pixel modulation of instance-normalised features by a style map (SPADE-like).

    ``norm(x) * (1 + gamma(s)) + beta(s)``, with ``gamma, beta`` predicted per pixel from the
    style by a 1x1 two-layer MLP. ``x (B, channels, H, W)``, ``s (B, style_channels, H, W)``.
    """

    def __init__(self, channels: int, style_channels: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp = nn.Sequential(
            nn.Conv2d(style_channels, style_channels, 1),
            nn.ReLU(),
            nn.Conv2d(style_channels, 2 * channels, 1),
        )

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.mlp(style).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class ModulatedResBlock(nn.Module):
    """Pre-activation residual block, modulated by the style before each 3x3 conv:
    ``x + conv(relu(mod(conv(relu(mod(x, s))), s)))``; ``(B, C, H, W)``."""

    def __init__(self, channels: int, style_channels: int):
        super().__init__()
        self.mod1 = StyleModulation(channels, style_channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.mod2 = StyleModulation(channels, style_channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.act = nn.ReLU()

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        h = self.conv1(self.act(self.mod1(x, style)))
        h = self.conv2(self.act(self.mod2(h, style)))
        return x + h


class Generator(nn.Module):
    """The generator of one domain (the model holds two).

    ``generator_res_blocks`` style-modulated residual blocks at the content resolution ->
    ``num_downsample`` stages of nearest-neighbour 2x upsampling + conv3x3 + LayerNorm + ReLU,
    halving the width (upsample-then-convolve has no checkerboard artefacts, unlike strided
    transposed convolutions) -> conv7x7 to RGB -> tanh.

    How the style enters: the style is a spatial map read from the memory, different at every
    pixel (objects and background read different items), so it modulates the normalised
    features per pixel, SPADE-like, in every residual block, rather than being concatenated to
    the block inputs as in DRIT's concat generator. Modulation acts multiplicatively on unit-
    scale (instance-normalised) features, so a style cannot be drowned by the content
    however small it is; concatenation would mix a ~1/sqrt(C)-per-channel signal with O(1)
    content activations. The style is first :func:`pixel_norm`-ed, so memory reads, random
    unit-vector values and encoder samples all arrive at the same scale. The upsampling stages
    use LayerNorm, not InstanceNorm, which would wipe out the per-channel statistics that the
    modulation has just set (as MUNIT's decoder).

    ``forward(content (B, C, h, w), style (B, C, h, w)) -> image (B, 3, h * s, w * s)`` in
    [-1, 1], with ``C = cfg.feature_channels``, ``s = cfg.stride``, ``h, w >= 2``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.generator_res_blocks < 1:
            raise ValueError("model.generator_res_blocks must be >= 1: the style enters the "
                             "generator through its residual blocks")
        self.channels = cfg.feature_channels
        self.blocks = nn.ModuleList(
            ModulatedResBlock(self.channels, self.channels)
            for _ in range(cfg.generator_res_blocks)
        )
        layers: list[nn.Module] = []
        width = self.channels
        for _ in range(cfg.num_downsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       ConvNormAct(width, width // 2, 3, norm="layer")]
            width //= 2
        layers += [nn.Conv2d(width, 3, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)
        init_weights(self, cfg.init_std)
        if cfg.modulation_init == "kaiming":
            for block in self.blocks:
                for modulation in (block.mod1, block.mod2):
                    hidden, head = modulation.mlp[0], modulation.mlp[2]
                    nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
                    nn.init.kaiming_normal_(head.weight, nonlinearity="linear")

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        if (content.ndim != 4 or content.shape[1] != self.channels
                or style.shape != content.shape or min(content.shape[-2:]) < 2):
            raise ValueError(
                f"expected content and style maps of the same shape (B, {self.channels}, h, w) "
                f"with h, w >= 2, got {tuple(content.shape)} and {tuple(style.shape)}"
            )
        style = pixel_norm(style)
        x = content
        for block in self.blocks:
            x = block(x, style)
        return self.decoder(x)
