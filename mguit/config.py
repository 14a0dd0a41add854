"""Typed settings of the MGUIT translator: networks, memory, losses, training.

Plain dataclasses with the paper's values as defaults (section 4.1; DRIT's loss weights where
the paper defers to DRIT). The pipeline embeds :class:`TranslatorConfig` as the ``translator``
section of the experiment YAML and validates it; this package never reads YAML itself.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """Widths and depths of the DRIT-style networks.

    The content and style encoders downsample by ``2 ** num_downsample``; their last width is the
    memory's channel count C, so ``base_channels * 2 ** num_downsample`` must equal
    ``MemoryConfig.key_dim``. The paper: 64 * 2**2 = 256.
    """

    base_channels: int = 64
    num_downsample: int = 2
    content_res_blocks: int = 3       # per-domain residual blocks of the content encoder
    shared_res_blocks: int = 1        # deepest content block, shared by both domains (DRIT)
    style_res_blocks: int = 2
    generator_res_blocks: int = 4
    discriminator_channels: int = 64
    discriminator_layers: int = 4
    discriminator_scales: int = 3     # multi-scale image discriminators (DRIT's MultiScaleDis)
    content_discriminator_channels: int = 256
    spectral_norm: bool = True        # on discriminators, as DRIT
    # Paper 4.1: N(0, 0.001) for every layer's weights. 0.02 (the usual GAN init): with 0.001
    # the layers before a normalisation take relative steps of ~20 % per Adam step and the last
    # layers start ~50x too small; measured on the demo, edges kept 0.26 -> 0.36 inside boxes.
    init_std: float = 0.02
    # How the style encoder's layers start: "normal", N(0, init_std) as every other layer (the
    # paper), or "kaiming" (He's fan-in init for ReLU layers). The style encoder has no
    # normalisation, so at N(0, 0.02) its activations shrink ~2x per layer (mu ~ 3e-4 against
    # the sample's noise of 1) while Adam moves every bias by ~lr per step whatever the scale:
    # biases overtake the signal and its ReLUs die (docs/translator.md, cause 14). Default
    # "kaiming" with the two settings below (memory.update_assignment, modulation_init): on
    # the demo's seeds 0 / 1 / 2 the K = 3 samples differ 12.8 / 18.1 / 13.9 grey levels
    # instead of 5.1 / 8.2 / 4.4, the worst seed's style distance is 146 instead of 164, the
    # mean gap recovered is the same (0.15).
    style_init: Literal["normal", "kaiming"] = "kaiming"
    # How the generator's style -> (gamma, beta) MLPs start: "normal", N(0, init_std) (the
    # paper), or "kaiming" (He's fan-in init for the ReLU layer, unit-gain fan-in for the
    # output), so that a style moves the normalised features by O(1) from the first step.
    # Product of two N(0, 0.02) layers, gamma and beta start at ~0.02 and are still 0.015-0.03
    # after the demo's 1000 iterations: a style changes a feature by 2 %, and an object's
    # colour by 1.5 grey levels where its look differs by 28 (docs/translator.md, cause 16).
    # "kaiming": 7.9 grey levels, samples 2x further apart (default; see style_init).
    modulation_init: Literal["normal", "kaiming"] = "kaiming"
    # The style encoder's mean, per image and channel, taken off its style map: "none" (the
    # paper) or "image". Its maps share one large direction at every pixel (class means at
    # cosine 1.000), so unit-vector values written from them are one vector; what tells a car's
    # style from a pedestrian's within an image is the rest (docs/translator.md).
    style_centering: Literal["none", "image"] = "image"
    # What of the input reaches the output besides its content map: "none" (the paper) or
    # "luma", the input's luminance detail finer than ``detail_sigma`` pixels added to every
    # image rendered from its content (mguit/networks/detail.py), so that a stride-4 generator
    # need not redraw edges it has no resolution for. Paper: none, with which the demo's
    # objects came out blurred (edges kept inside boxes 0.41 / 0.46 / 0.37 on seeds 0 / 1 / 2;
    # with luma 0.96 / 0.96 / 0.87, the perfect translation's 0.59; docs/translator.md).
    detail: Literal["none", "luma"] = "luma"
    detail_sigma: float = 1.5
    # What the content encoders see: "rgb" (the paper) or "luma" (the image's luminance on all
    # three channels), so that no colour can reach a translation through the content and an
    # object's colours come from its style (a memory read) alone (docs/translator.md).
    content_input: Literal["rgb", "luma"] = "rgb"

    def validate(self) -> None:
        for name in ("base_channels", "num_downsample", "discriminator_channels",
                     "discriminator_layers", "discriminator_scales",
                     "content_discriminator_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1")
        if self.init_std <= 0:
            raise ValueError("model.init_std must be > 0")
        if not (math.isfinite(self.detail_sigma) and self.detail_sigma > 0):
            raise ValueError(f"model.detail_sigma must be a number > 0, got {self.detail_sigma}")

    @property
    def feature_channels(self) -> int:
        return self.base_channels * 2 ** self.num_downsample

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this; inference pads to it and crops back."""
        return 2 ** self.num_downsample


@dataclass
class MemoryConfig:
    """The class-aware key-values memory (paper section 3.2).

    ``items`` gives the number of items per class, in class order, with ``background`` for the
    pixels outside every box; its total is N (the paper: 20 = 3 x 4 classes + 8 background for
    KITTI -> Cityscapes). ``variant: single`` is the ablation's class-agnostic memory (all items
    one group, no class masks); ``loss`` selects eq 8 (``contrastive``) or the triplet loss of
    the ablation.
    """

    key_dim: int = 256
    items: dict[str, int] = field(default_factory=lambda: {
        "person": 3, "car": 3, "truck": 3, "bicycle": 3, "background": 8})
    variant: Literal["class_aware", "single"] = "class_aware"
    loss: Literal["contrastive", "triplet"] = "contrastive"
    temperature: float = 0.1
    triplet_margin: float = 1.0
    # The defaults below make the memory work; each comment gives the paper's setting, which
    # stays available. README "What deviates from the paper" has the measurements.
    # T of every read of eq 2 (training's masked reads and test reads). Paper: 1.0, with which
    # no item can get more than e / (e + 19/e) ~ 0.28 of a pixel's weight (N = 20). 0.1 = tau,
    # so a test-time read is the distribution eq 8 trains.
    read_temperature: float = 0.1
    # T of eq 5's softmax over pixels. Paper: 1.0 (nearly uniform over pixels, so the items of
    # a class all receive the same class mean).
    update_temperature: float = 0.1
    # eta in eq 6, k <- normalize(k + eta * sum_p beta c_p) (values alike). Paper: 1.0, with
    # which the items are a copy of the last batch; 0.05 makes them slowly moving prototypes.
    update_rate: float = 0.05
    # What eq 5-6 add to the items. Paper: "raw" features (content maps have norm ~sqrt(C),
    # so an item is all but replaced at every update); "normalized" unit features.
    write_features: Literal["raw", "normalized"] = "normalized"
    # Eq 8's positive. Paper: the "nearest" item of the pixel's class (its other items count
    # as negatives); "class": all the class's items, i.e. -log of the test-time read mass.
    positive: Literal["nearest", "class"] = "class"
    # Which items a pixel writes to in eq 5-6. Paper: "softmax", every item of its class, by
    # eq 5's softmax over the pixels; then all items of a class receive nearly the same mean
    # and become one (within-class key cosine 1.00 in every run, docs/translator.md, cause 15).
    # "nearest": only its nearest item of its class, as the same authors' MNAD memory
    # (default: a class's keys end at cosine 0.44-0.72; model.style_init gives the figures).
    update_assignment: Literal["softmax", "nearest"] = "nearest"
    # Eq 8's sum over pixels. Paper: "pixel" (the background's pixels dominate);
    # "class_balanced": the mean over each group's pixels, then over the groups present.
    loss_reduction: Literal["pixel", "class_balanced"] = "class_balanced"
    # Random style values for multimodal output and the latent regression loss:
    # normalize(v + sample_noise * N(0, I)). 0 would give one output per image. In C = 256
    # dimensions 0.5 draws a vector of norm 8 around a unit value, a style unrelated to it;
    # 0.2 keeps samples near the stored styles.
    sample_noise: float = 0.2

    def validate(self) -> None:
        if "background" not in self.items:
            raise ValueError("memory.items needs a 'background' group for pixels outside boxes")
        if any(n < 1 for n in self.items.values()):
            raise ValueError(f"memory.items must all be >= 1, got {self.items}")
        if self.temperature <= 0:
            raise ValueError("memory.temperature must be > 0")
        if self.read_temperature <= 0:
            raise ValueError("memory.read_temperature must be > 0")
        if self.update_temperature <= 0:
            raise ValueError("memory.update_temperature must be > 0")
        if not 0 < self.update_rate <= 1:
            raise ValueError("memory.update_rate must be in (0, 1]")


@dataclass
class LossConfig:
    """Weights of eq 9. DRIT's values for the translation terms, the paper's for eq 8."""

    self_recon: float = 10.0
    cycle: float = 10.0
    content_adv: float = 1.0
    domain_adv: float = 1.0
    kl: float = 0.01
    latent: float = 10.0
    # lambda_k. Paper: 1.0, with which the content features did not learn to tell the classes
    # apart in the whole model (test-time nearest-key accuracy car 0.36, truck 0.17 on the
    # demo); 5.0: 0.63 / 0.36 (docs/translator.md).
    key_contrast: float = 5.0
    value_contrast: float = 0.5
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    # The domain discriminators also judge the translations made with random style values, as
    # DRIT does with its random attributes, so that a random style must still look like the
    # domain. The paper does not say; False: only the memory-read translations are judged.
    random_style_adv: bool = True
    # Mode seeking (DRIT++): weight of 1 / (image distance / style distance) between two random
    # style samples of one content. Paper: 0 (no such term). 1.0 gave the demo's samples 5-25
    # grey levels of difference but lost the content (edges in boxes 0.09-0.29); 0.1 keeps it.
    mode_seeking: float = 0.1
    # The style of eq 7's self-reconstruction: "memory" (the paper: G^x(c^x, s_hat^x), a read
    # that is a function of the content alone, so an object's own colours can only come back
    # through the content, and a translation keeps them), "encoder" (DRIT: the style encoder's
    # sample of the image itself) or "region" (that sample averaged over each memory group's
    # pixels of the image: the image's own style per class, no finer than a memory read) or
    # "object" (averaged over each box's pixels instead, the background over its own: an
    # object's own look, which a per-class mean averages with its class's other objects).
    # Default "region": the reconstructions must be rendered from a style with the spatial
    # grain of a memory read, but the image's own, so that nothing obliges the content to
    # carry each object's colours (docs/translator.md, cause 11).
    self_recon_style: Literal["memory", "encoder", "region", "object"] = "region"
    # The style of eq 7's cycle reconstruction G^x(c_hat^y, .): "memory" (the paper: a read
    # with the translation's content) or "encoder" / "region" / "object" as above, of the
    # original image.
    cycle_style: Literal["memory", "encoder", "region", "object"] = "region"
    # What "encoder", "region" and "object" take of the style encoder's Gaussian: its
    # "sample" (a VAE's reconstruction) or its "mean". The sample's noise keeps unit variance (std 1.0-1.1 per
    # channel, with or without the KL term) around a mean that varies ~0.05 across pixels
    # (docs/translator.md, cause 12), so a reconstruction from it is one from noise.
    own_style: Literal["sample", "mean"] = "sample"
    # MUNIT's content reconstruction: L1 between the content of a translation and that of its
    # input, ||E_c^y(G^y(c^x, s_hat^y)) - c^x||. Paper: 0 (not a term of eq 9), with which one
    # demo seed in three translated into shapes no detector learns from (gap recovered -0.02);
    # 1.0: gap 0.36 / 0.44 / 0.20 on seeds 0 / 1 / 2, against 0.45 / -0.02 / 0.12
    # (docs/translator.md).
    content_recon: float = 1.0
    # Colour reconstruction: L1 between the chroma (each pixel minus its luma) of the self- and
    # cycle reconstructions and that of their inputs. Paper: 0 (no such term). The L1 terms of
    # eq 7 are dominated by luminance, which the content alone restores (docs/translator.md,
    # cause 12); this term weighs what only a style can restore.
    chroma_recon: float = 0.0
    # Class discriminator (OASIS's per-pixel segmentation discriminator, one per domain): real
    # pixels are told as their memory group, translated ones as "translated"; the generators
    # are trained to have a translation's pixels told as their input's groups. Paper: 0 (its
    # discriminators judge whole images, where an object is a few percent of a patch, and the
    # translations keep each object's source colours: docs/translator.md, cause 17). Measured
    # on the demo, it makes them worse: the generator answers with stripes and fringes that the
    # classifier reads as a class (style distance 194 at weight 1, 244 at 5, against 88).
    # Needs boxes in both domains; without target boxes there is no such term.
    class_adv: float = 0.0

    def validate(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} is a weight: it must be >= 0, got {value}")


@dataclass
class TrainConfig:
    """Optimisation (paper 4.1): Adam, lr 1e-4 constant for the first half, then linearly to 0.

    ``betas``: the paper states (0.9, 0.999); DRIT and the authors' code use (0.5, 0.999).
    Length is ``iterations`` if set, else ``epochs`` over the larger of the two domains.
    """

    iterations: int | None = None
    epochs: int = 60
    decay_start_fraction: float = 0.5
    batch_size: int = 1
    lr: float = 1.0e-4
    content_lr: float | None = None   # content discriminator lr; None = lr
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1.0e-4
    grad_clip: float = 5.0            # content discriminator gradient norm clip (DRIT)
    resize: int = 360                 # short side before cropping
    crop: int = 360
    flip: bool = True
    amp: bool = True                  # used on CUDA only
    num_workers: int = 2
    log_every: int = 50               # TensorBoard scalars
    image_every: int = 500            # TensorBoard image grids and samples/*.png
    checkpoint_every: int = 500       # last.pt (what an interrupted run resumes from)
    snapshot_every: int = 5000        # iter_XXXXXX.pt kept for later
    num_style_samples: int = 3        # style samples per image in the TensorBoard grids

    def validate(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise ValueError("train.iterations must be >= 1 (or null to use epochs)")
        if self.crop > self.resize:
            raise ValueError(f"train.crop {self.crop} is larger than train.resize {self.resize}")
        if not 0.0 <= self.decay_start_fraction <= 1.0:
            raise ValueError("train.decay_start_fraction must be in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("train.batch_size must be >= 1")
        for name in ("epochs", "resize", "crop", "log_every", "image_every", "checkpoint_every",
                     "snapshot_every", "num_style_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "content_lr", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"train.{name} must be a number > 0, got {value}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must be in [0, 1), got {list(self.betas)}")
        if self.num_workers < 0:
            raise ValueError("train.num_workers must be >= 0")


@dataclass
class TranslatorConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        stride = self.model.stride
        if self.train.crop % stride or self.train.crop < 2 * stride:
            raise ValueError(
                f"train.crop {self.train.crop} must be a multiple of the networks' stride "
                f"{stride} (2**model.num_downsample) and at least {2 * stride}")
        if self.model.feature_channels != self.memory.key_dim:
            raise ValueError(
                f"memory.key_dim {self.memory.key_dim} must equal the encoders' output width "
                f"model.base_channels * 2**model.num_downsample = {self.model.feature_channels}"
            )


# Settings added after checkpoints were first written, with how those older checkpoints were
# trained (the paper's equations); a default that deviates from the paper must not be applied
# to a model that never had it.
_BEFORE_KEY_EXISTED = {
    "model": {"style_centering": "none", "detail": "none", "content_input": "rgb",
              "style_init": "normal", "modulation_init": "normal"},
    "memory": {"read_temperature": 1.0, "update_temperature": 1.0, "update_rate": 1.0,
               "write_features": "raw", "positive": "nearest", "loss_reduction": "pixel",
               "update_assignment": "softmax"},
    "loss": {"random_style_adv": False, "mode_seeking": 0.0, "self_recon_style": "memory",
             "cycle_style": "memory", "own_style": "sample", "content_recon": 0.0,
             "chroma_recon": 0.0},
}


def translator_config_from_dict(data: dict) -> TranslatorConfig:
    """Rebuild a :class:`TranslatorConfig` from ``dataclasses.asdict`` output (checkpoints).

    Keys missing from an older checkpoint take the value that checkpoint was trained with.
    """
    sections = {name: {**_BEFORE_KEY_EXISTED.get(name, {}), **data[name]}
                for name in ("model", "memory", "loss", "train")}
    sections["train"]["betas"] = tuple(sections["train"]["betas"])
    return TranslatorConfig(model=ModelConfig(**sections["model"]),
                            memory=MemoryConfig(**sections["memory"]),
                            loss=LossConfig(**sections["loss"]),
                            train=TrainConfig(**sections["train"]))
