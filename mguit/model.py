"""MGUIT: the DRIT-style translation networks around the class-aware memory.

Domain x is the source (index 0), y the target (index 1). One training iteration is

1. ``forward(batch)``: encode both images, read styles from the memory (class-restricted),
   translate, reconstruct, translate back (cycle), and translate with random style values for
   the latent regression; returns every tensor the losses need, in a dict;
2. ``discriminator_losses(out, batch)``: image discriminators and content discriminator, on
   detached fakes;
3. ``generator_losses(out)``: eq 9 for the encoders and generators (weights from the config);
4. ``update_memory(out)``: eq 5-6 with the iteration's features (no gradient).

The trainer owns the optimisers and the order of these steps. At test time,
:meth:`MGUIT.translate` needs only images: the memory is read with every item, no mask.

Where the paper defers to DRIT and DRIT's choices do not carry over to a spatial style map, the
choices made here are:

* the styles of eq 7's self- and cycle reconstructions are ``loss.self_recon_style`` and
  ``loss.cycle_style``: the memory read (the paper), the image's own style sample, or that
  sample averaged over each memory group of the image (``region``, the default: a memory read
  is a function of the content, so reconstructing from it obliges the content to carry each
  object's colours, and a translation keeps them) or over each object's box (``object``);
* with ``model.detail: luma`` every image rendered from an input's content gets that input's
  fine luminance detail (:mod:`mguit.networks.detail`; a cycle reconstruction that of the
  translation it starts from);
* the style encoder is a VAE (KL term): its mean updates the values (eq 6), its samples are
  pulled to their items by eq 8;
* latent regression: a translation made with random style values (``MemoryConfig.sample_noise``)
  is re-encoded by the target's style encoder, whose per-pixel direction must match the style
  read that produced it (L1 between unit vectors, the memory's own geometry);
* with ``loss.random_style_adv`` the domain discriminators also judge those random-style
  translations (DRIT's practice), and with ``loss.mode_seeking`` a second random-style
  translation of the same content enters DRIT++'s mode-seeking term, so that the generator
  must render the style it reads (docs/translator.md, cause 6);
* with ``loss.class_adv`` a class discriminator per domain (OASIS's, not the paper's) judges
  every memory group's pixels of the same images: real pixels are to be told as their group,
  translated ones as "translated", and the generators are trained to have their pixels told
  as the group the boxes of their input give (docs/translator.md, cause 17). It needs both
  domains' boxes and is off (no term, no network) for a target without them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mguit import losses
from mguit.config import TranslatorConfig
from mguit.memory import ClassAwareMemory
from mguit.networks import (ClassDiscriminator, ContentDiscriminator, ContentEncoder,
                            Generator, MultiScaleDiscriminator, StyleEncoder)
from mguit.networks.detail import add_detail, chroma, luma_detail

X, Y = 0, 1
DIRECTIONS = {"source_to_target": (X, Y), "target_to_source": (Y, X)}


# How a target without class masks trains the memory (MGUIT's unlabeled_target).
UNLABELED_RULES = ("single", "values")


class MGUIT(nn.Module):
    """Encoders, generators, discriminators and the memory of MGUIT, built from the config.

    Every network initialises its weights with ``cfg.model.init_std`` (the paper's
    N(0, 0.001)); the memory's keys and values start as random unit vectors.
    """

    def __init__(self, cfg: TranslatorConfig, unlabeled_target: str = "single"):
        super().__init__()
        self.cfg = cfg
        # How a target without class masks trains the memory (the pipeline's
        # data.target.unlabeled_rule): "single", the single memory's rule (every item read,
        # written and eq 8's candidates); "values" (every item read, only the target values
        # written, no eq 8 on the target: the keys and the content's class structure learn
        # from labeled pixels alone).
        if unlabeled_target not in UNLABELED_RULES:
            raise ValueError(f"unlabeled_target must be one of {', '.join(UNLABELED_RULES)}, "
                             f"got {unlabeled_target!r}")
        self.unlabeled_target = unlabeled_target
        m = cfg.model
        self.content_encoder = ContentEncoder(m)
        self.style_encoders = nn.ModuleList([StyleEncoder(m), StyleEncoder(m)])
        self.generators = nn.ModuleList([Generator(m), Generator(m)])
        self.discriminators = nn.ModuleList([MultiScaleDiscriminator(m),
                                             MultiScaleDiscriminator(m)])
        self.content_discriminator = ContentDiscriminator(m)
        mem = cfg.memory
        self.memory = ClassAwareMemory(mem.key_dim, mem.items, variant=mem.variant,
                                       loss=mem.loss, temperature=mem.temperature,
                                       triplet_margin=mem.triplet_margin,
                                       read_temperature=mem.read_temperature,
                                       write_features=mem.write_features,
                                       loss_reduction=mem.loss_reduction,
                                       update_temperature=mem.update_temperature,
                                       update_rate=mem.update_rate,
                                       positive=mem.positive,
                                       update_assignment=mem.update_assignment)
        self.class_discriminators = (
            nn.ModuleList([ClassDiscriminator(m, len(mem.items)) for _ in range(2)])
            if cfg.loss.class_adv > 0 else None)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of eq 9's minimising side: encoders and generators."""
        return [*self.content_encoder.parameters(), *self.style_encoders.parameters(),
                *self.generators.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the image (and class) discriminators; the content discriminator has
        its own optimiser."""
        params = list(self.discriminators.parameters())
        if self.class_discriminators is not None:
            params += self.class_discriminators.parameters()
        return params

    def detail(self, images: Tensor) -> Tensor | None:
        """What of ``images`` ``(B, 3, H, W)`` the generators add to what they render from
        their content: ``(B, 1, H, W)`` luminance detail, or None (``model.detail: none``)."""
        if self.cfg.model.detail == "none":
            return None
        return luma_detail(images, self.cfg.model.detail_sigma)

    def render(self, domain: int, content: Tensor, style: Tensor,
               detail: Tensor | None) -> Tensor:
        """``G^domain(content, style)`` plus the detail of the image the content came from."""
        return add_detail(self.generators[domain](content, style), detail)

    def feature_mask(self, mask: Tensor | None, size: tuple[int, int]) -> Tensor | None:
        """Class mask ``(B, H, W)`` at image resolution -> ``(B, h, w)`` at feature resolution
        (:func:`feature_map`); ``None`` for a single memory, which reads every item."""
        if mask is None or not self.memory.class_aware:
            return None
        return feature_map(mask, size)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One training forward pass.

        Args:
            batch: ``image_x``, ``image_y`` ``(B, 3, H, W)`` in [-1, 1]; ``mask_x``, ``mask_y``
                ``(B, H, W)`` memory-group index per pixel (from the ground-truth boxes). A
                domain without a mask (a target without labels) reads, updates and is trained
                on every item, as in the single memory.
        Returns:
            a dict of tensors: content ``c_x, c_y`` and style statistics ``mu_*, logvar_*``,
            sampled styles ``s_*``, feature masks ``m_*``, translations ``fake_x`` (y -> x) and
            ``fake_y`` (x -> y), reconstructions ``recon_*``, cycle reconstructions ``cycle_*``,
            random-style translations ``random_*`` with their targets ``random_style_*`` and
            re-encodings ``random_mu_*``, the translations' content ``c_fake_x``
            (of ``fake_x``) and ``c_fake_y``; with ``loss.mode_seeking`` a second random-style
            translation ``random2_*`` with its style ``random2_style_*``.
        """
        mem, render = self.memory, self.render
        image_x, image_y = batch["image_x"], batch["image_y"]
        out: dict[str, Tensor] = {}
        c_x = self.content_encoder(image_x, X)
        c_y = self.content_encoder(image_y, Y)
        size = tuple(c_x.shape[-2:])
        m_x = self.feature_mask(batch.get("mask_x"), size)
        m_y = self.feature_mask(batch.get("mask_y"), size)
        o_x = feature_map(batch.get("objects_x"), size)
        o_y = feature_map(batch.get("objects_y"), size)
        out.update(c_x=c_x, c_y=c_y)
        out.update({f"m_{d}": m for d, m in (("x", m_x), ("y", m_y)) if m is not None})
        for d, name, image in ((X, "x", image_x), (Y, "y", image_y)):
            stats = self.style_encoders[d](image)
            out[f"mu_{name}"], out[f"logvar_{name}"] = stats["mu"], stats["logvar"]
            out[f"s_{name}"] = losses.reparameterize(stats["mu"], stats["logvar"])
        d_x, d_y = self.detail(image_x), self.detail(image_y)

        out["fake_y"] = render(Y, c_x, mem.read(c_x, Y, m_x), d_x)
        out["fake_x"] = render(X, c_y, mem.read(c_y, X, m_y), d_y)
        recon = self.cfg.loss.self_recon_style
        out["recon_x"] = render(X, c_x, self._own_style(recon, out, X, c_x, m_x, o_x), d_x)
        out["recon_y"] = render(Y, c_y, self._own_style(recon, out, Y, c_y, m_y, o_y), d_y)
        # Translating keeps the geometry, so the masks of the inputs hold for the fakes.
        c_fake_y = self.content_encoder(out["fake_y"], Y)
        c_fake_x = self.content_encoder(out["fake_x"], X)
        out.update(c_fake_x=c_fake_x, c_fake_y=c_fake_y)
        cycle = self.cfg.loss.cycle_style
        out["cycle_x"] = render(X, c_fake_y, self._own_style(cycle, out, X, c_fake_y, m_x, o_x),
                                self.detail(out["fake_y"]))
        out["cycle_y"] = render(Y, c_fake_x, self._own_style(cycle, out, Y, c_fake_x, m_y, o_y),
                                self.detail(out["fake_x"]))

        noise = self.cfg.memory.sample_noise
        for dst, name, content, m, detail in ((X, "x", c_y, m_y, d_y), (Y, "y", c_x, m_x, d_x)):
            values = mem.sample_values(dst, noise, batch=content.shape[0])
            style = mem.read(content, dst, m, values=values)
            out[f"random_{name}"] = render(dst, content, style, detail)
            out[f"random_style_{name}"] = style
            out[f"random_mu_{name}"] = self.style_encoders[dst](out[f"random_{name}"])["mu"]
            if self.cfg.loss.mode_seeking > 0:
                values = mem.sample_values(dst, noise, batch=content.shape[0])
                style = mem.read(content, dst, m, values=values)
                out[f"random2_{name}"] = render(dst, content, style, detail)
                out[f"random2_style_{name}"] = style
        return out

    def _own_style(self, kind: str, out: dict[str, Tensor], domain: int, content: Tensor,
                   mask: Tensor | None, objects: Tensor | None) -> Tensor:
        """The style a reconstruction of domain ``domain``'s image is rendered with: a memory
        read with ``content`` (eq 7), the image's own style sample, or that sample averaged
        per memory group or per object (``loss.self_recon_style`` / ``loss.cycle_style``)."""
        if kind == "memory":
            return self.memory.read(content, domain, mask)
        prefix = "s" if self.cfg.loss.own_style == "sample" else "mu"
        style = out[f"{prefix}_{'x' if domain == X else 'y'}"]
        if kind == "encoder":
            return style
        if kind == "object" and objects is not None:
            return region_mean(style, objects, int(objects.max()) + 1)
        return region_mean(style, mask, len(self.memory.groups))

    def discriminator_losses(self, out: dict[str, Tensor], batch: dict[str, Tensor]
                             ) -> dict[str, Tensor]:
        """Losses of the image discriminators (per domain) and of the content discriminator."""
        mode = self.cfg.loss.gan_mode
        D = self.discriminators
        result = {}
        for d, name in ((X, "x"), (Y, "y")):
            real = D[d](batch[f"image_{name}"])
            loss = losses.discriminator_loss(real, D[d](out[f"fake_{name}"].detach()), mode)
            if self.cfg.loss.random_style_adv:
                loss = loss + losses.gan_loss(D[d](out[f"random_{name}"].detach()), False, mode)
            result[f"disc_{name}"] = loss
        # The content discriminator tells x's content (label 1) from y's (label 0).
        result["disc_content"] = losses.discriminator_loss(
            self.content_discriminator(out["c_x"].detach()),
            self.content_discriminator(out["c_y"].detach()), "vanilla")
        if self._judges_classes(batch):
            result["disc_class"] = self._class_discriminator_loss(out, batch)
        return result

    def _judges_classes(self, batch: dict[str, Tensor]) -> bool:
        return (self.class_discriminators is not None
                and "mask_x" in batch and "mask_y" in batch)

    def _class_discriminator_loss(self, out: dict[str, Tensor], batch: dict[str, Tensor]
                                  ) -> Tensor:
        """Each class discriminator: real pixels told as their group (class-balanced
        cross-entropy), every judged translation's pixels as "translated" (index 0)."""
        loss = 0
        for d, name in ((X, "x"), (Y, "y")):
            real = self.class_discriminators[d](batch[f"image_{name}"])
            loss = loss + losses.class_balanced_cross_entropy(
                real, group_labels(batch[f"mask_{name}"], real))
        for d, key in self._adversarial_fakes():
            fake = self.class_discriminators[d](out[key].detach())
            loss = loss + F.cross_entropy(fake.float(), fake.new_zeros(
                (fake.shape[0], *fake.shape[2:]), dtype=torch.long))
        return loss

    def _class_generator_loss(self, out: dict[str, Tensor], batch: dict[str, Tensor]
                              ) -> Tensor:
        """The generators' side: every judged translation's pixels told as the group of its
        input's pixels (a translation keeps its input's geometry, so its input's boxes)."""
        loss = 0
        for d, key in self._adversarial_fakes():
            fake = self.class_discriminators[d](out[key])
            mask = batch["mask_y" if d == X else "mask_x"]
            loss = loss + losses.class_balanced_cross_entropy(fake, group_labels(mask, fake))
        return loss

    def generator_losses(self, out: dict[str, Tensor], batch: dict[str, Tensor]
                         ) -> dict[str, Tensor]:
        """Eq 9 for the encoders and generators: each weighted term and their sum ``total``."""
        w = self.cfg.loss
        mode = w.gan_mode
        D = self.discriminators
        image_x, image_y = batch["image_x"], batch["image_y"]
        terms = {
            "self_recon": losses.l1(out["recon_x"], image_x) + losses.l1(out["recon_y"], image_y),
            "cycle": losses.l1(out["cycle_x"], image_x) + losses.l1(out["cycle_y"], image_y),
            "domain_adv": sum(losses.gan_loss(D[d](out[key]), True, mode)
                              for d, key in self._adversarial_fakes()),
            "content_adv": (losses.content_confusion_loss(self.content_discriminator(out["c_x"]))
                            + losses.content_confusion_loss(self.content_discriminator(out["c_y"]))),
            "kl": (losses.kl_loss(out["mu_x"], out["logvar_x"])
                   + losses.kl_loss(out["mu_y"], out["logvar_y"])),
            "latent": sum(losses.l1(F.normalize(out[f"random_mu_{n}"], dim=1),
                                    F.normalize(out[f"random_style_{n}"], dim=1))
                          for n in ("x", "y")),
        }
        if w.mode_seeking > 0:
            terms["mode_seeking"] = sum(
                losses.mode_seeking_loss(out[f"random_{n}"], out[f"random2_{n}"],
                                         out[f"random_style_{n}"], out[f"random2_style_{n}"])
                for n in ("x", "y"))
        if w.chroma_recon > 0:
            terms["chroma_recon"] = sum(
                losses.l1(chroma(out[f"{kind}_{n}"]), chroma(image))
                for kind in ("recon", "cycle") for n, image in (("x", image_x), ("y", image_y)))
        if self._judges_classes(batch):
            terms["class_adv"] = self._class_generator_loss(out, batch)
        if w.content_recon > 0:
            terms["content_recon"] = (losses.l1(out["c_fake_y"], out["c_x"])
                                      + losses.l1(out["c_fake_x"], out["c_y"]))
        fx = self.memory.feature_loss(out["c_x"], out["s_x"], X, out.get("m_x"))
        terms["key_contrast"], terms["value_contrast"] = fx["key"], fx["value"]
        if not self._values_only_target(out):
            fy = self.memory.feature_loss(out["c_y"], out["s_y"], Y, out.get("m_y"))
            terms["key_contrast"] = terms["key_contrast"] + fy["key"]
            terms["value_contrast"] = terms["value_contrast"] + fy["value"]
        weighted = {k: getattr(w, k) * v for k, v in terms.items()}
        weighted["total"] = sum(weighted.values())
        return weighted

    def _adversarial_fakes(self) -> list[tuple[int, str]]:
        """(domain, output key) of every translation the domain discriminators judge."""
        fakes = [(X, "fake_x"), (Y, "fake_y")]
        if self.cfg.loss.random_style_adv:
            fakes += [(X, "random_x"), (Y, "random_y")]
        return fakes

    @torch.no_grad()
    def update_memory(self, out: dict[str, Tensor]) -> None:
        """Eq 5-6 with this iteration's content and style features.

        The style written is the encoder's mean ``mu``, not a sample: the memory keeps a running
        estimate of each item's style, and the VAE's sampling noise (which eq 8 and the KL term
        need) would only add variance to it.
        """
        self.memory.update(out["c_x"].detach(), out["mu_x"].detach(), out["c_y"].detach(),
                           out["mu_y"].detach(), out.get("m_x"), out.get("m_y"),
                           write_keys=(True, not self._values_only_target(out)))

    def _values_only_target(self, out: dict[str, Tensor]) -> bool:
        """Whether this batch's target has no class masks and trains only its values."""
        return (self.memory.class_aware and "m_y" not in out
                and self.unlabeled_target == "values")

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "source_to_target",
                  num_samples: int = 1, seed: int = 0,
                  seeds: Sequence[int] | None = None, values: Tensor | None = None) -> Tensor:
        """Translate a batch of same-size images; no class information is used.

        Args:
            images: ``(B, 3, H, W)`` in [-1, 1], any H, W (padded to the stride, cropped back).
            direction: ``source_to_target`` (x -> y) or ``target_to_source``.
            num_samples: K styles per image. Sample 0 reads the memory's values; sample k > 0
                reads random style values drawn from a generator seeded with ``(seed, k)``, so
                each sample is reproducible and independent of the batch it is in.
            seed: seed of the random style values, shared by the whole batch.
            seeds: ``B`` seeds, one per image, replacing ``seed``: image i's sample k then
                reads values seeded with ``(seeds[i], k)``, the same values as a call on that
                image alone with ``seed=seeds[i]``. Batch-wide datasets use this so that an
                image's styles depend on the image, not on its neighbours in the batch.
            values: ``(K, B, N, C)``: the values sample k of image i reads, in place of the
                memory's and of random ones (e.g. :meth:`exemplar_values` of a target image);
                the keys still address them.
        Returns:
            ``(K, B, 3, H, W)`` in [-1, 1].
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        if seeds is not None and len(seeds) != images.shape[0]:
            raise ValueError(f"seeds must give one seed per image: {len(seeds)} seeds for "
                             f"{images.shape[0]} images")
        expected = (num_samples, images.shape[0], *self.memory.keys.shape)
        if values is not None and tuple(values.shape) != expected:
            raise ValueError(f"values must be (K, B, N, C) = {expected}, got "
                             f"{tuple(values.shape)}")
        src, dst = DIRECTIONS[direction]
        h, w = images.shape[-2:]
        images = self._pad_to_stride(images)
        content = self.content_encoder(images, src)
        detail = self.detail(images)
        outputs = []
        for k in range(num_samples):
            read_values = None if values is None else values[k]
            if read_values is None and k > 0:
                read_values = self._style_values(dst, k, [seed] if seeds is None else seeds)
                if seeds is None:
                    read_values = read_values[0]
            style = self.memory.read(content, dst, values=read_values)
            outputs.append(self.render(dst, content, style, detail)[..., :h, :w])
        return torch.stack(outputs)

    @torch.no_grad()
    def exemplar_values(self, image: Tensor, mask: Tensor | None, domain: int = Y,
                        groups: Sequence[int] | None = None) -> Tensor:
        """The values of one image of ``domain``: ``(N, C)``, each item's value replaced by
        its group's style in the image (the style encoder's mean averaged over the group's
        pixels, unit length, as eq 6 writes values); items of groups absent from the image keep
        the memory's values. Read in place of the memory's values (:meth:`translate`), they
        render another image in this image's style, class by class (DRIT's example-guided
        translation, through the memory's keys).

        ``image (1, 3, H, W)`` in [-1, 1], any H, W; ``mask (1, H, W)`` memory-group indices
        (:func:`mguit.data.class_mask`), or None: the whole image one group, which gives every
        item the image's mean style. ``groups``: the memory groups whose items take the image's
        style (None: all); the others keep the memory's values (e.g. the background alone: the
        image's scene and light, the objects' styles from the memory).
        """
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"expected one image (1, 3, H, W), got {tuple(image.shape)}")
        mu = self.style_encoders[domain](self._pad_to_stride(image))["mu"].float()
        item_group = self.memory.group_of_item
        chosen = range(len(self.memory.groups)) if groups is None else groups
        values = self.memory.values[domain].clone()
        if mask is None or not self.memory.class_aware:
            items = torch.isin(item_group, torch.as_tensor(list(chosen),
                                                           device=item_group.device))
            values[items] = F.normalize(mu.mean(dim=(0, 2, 3)), dim=0)
            return values
        mask = self._pad_to_stride(mask[:, None].float(), "replicate")[:, 0].long()
        fmask = feature_map(mask, tuple(mu.shape[-2:]))[0]
        for group in chosen:
            pixels = fmask == group
            if pixels.any():
                values[item_group == group] = F.normalize(mu[0][:, pixels].mean(dim=1), dim=0)
        return values

    def _pad_to_stride(self, images: Tensor, mode: str | None = None) -> Tensor:
        """``(B, C, H, W)`` padded at the bottom and right to multiples of the stride, and to at
        least two strides (the smallest input the networks take: ``check_image``)."""
        h, w = images.shape[-2:]
        stride = self.cfg.model.stride
        pad_h = max(h + (-h) % stride, 2 * stride) - h
        pad_w = max(w + (-w) % stride, 2 * stride) - w
        if not (pad_h or pad_w):
            return images
        if mode is None:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)

    def _style_values(self, domain: int, k: int, seeds: Sequence[int]) -> Tensor:
        """Random style values of sample ``k``, one ``(N, C)`` draw per seed: ``(len(seeds), N, C)``."""
        noise = self.cfg.memory.sample_noise
        return torch.stack([
            self.memory.sample_values(domain, noise,
                                      generator=torch.Generator().manual_seed(_sample_seed(s, k)))
            for s in seeds
        ])


def feature_map(labels: Tensor | None, size: tuple[int, int]) -> Tensor | None:
    """Integer labels ``(B, H, W)`` at image resolution -> ``(B, h, w)`` at feature resolution:
    nearest sampling at the centre of each stride x stride block, the pixel whose receptive
    field the feature is centred on."""
    if labels is None:
        return None
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


def group_labels(mask: Tensor, logits: Tensor) -> Tensor:
    """A group mask ``(B, H, W)`` as the class discriminator's targets for ``logits
    (B, G + 1, h, w)``: :func:`feature_map` to ``(h, w)``, plus 1 (index 0 is "translated")."""
    return feature_map(mask, tuple(logits.shape[-2:])) + 1


def region_mean(style: Tensor, mask: Tensor | None, groups: int) -> Tensor:
    """Each pixel's style replaced by the mean over the pixels of its region in its image.

    ``style (B, C, h, w)``, ``mask (B, h, w)`` region indices (memory groups, or objects) in
    ``[0, groups)`` -> ``(B, C, h, w)``; without a mask (a target without boxes) the whole image
    is one region.
    """
    if mask is None:
        return style.mean(dim=(2, 3), keepdim=True).expand_as(style)
    onehot = F.one_hot(mask, groups).permute(0, 3, 1, 2).to(style.dtype)     # (B, G, h, w)
    sums = torch.einsum("bchw,bghw->bcg", style, onehot)
    means = sums / onehot.sum(dim=(2, 3)).clamp(min=1)[:, None]
    return torch.einsum("bcg,bghw->bchw", means, onehot)


def _sample_seed(seed: int, k: int) -> int:
    """A 63-bit seed per (seed, sample index), so samples never share a random stream."""
    return (seed * 1_000_003 + k) % (2**63 - 1)

