"""Loss terms of the MGUIT objective (eq 7 and 9; DRIT's adversarial, KL and latent terms).

Each function takes tensors and returns a scalar; weighting happens in the model, from
:class:`mguit.config.LossConfig`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gan_loss(logits: Tensor | list[Tensor], target_is_real: bool, mode: str) -> Tensor:
    """GAN loss of one side, averaged over the scales of a multi-scale discriminator.

    ``vanilla`` is the non-saturating binary cross-entropy of DRIT, ``lsgan`` the least-squares
    loss; ``logits`` are raw discriminator outputs.
    """
    maps = logits if isinstance(logits, (list, tuple)) else [logits]
    losses = []
    for out in maps:
        target = torch.full_like(out, 1.0 if target_is_real else 0.0)
        if mode == "vanilla":
            losses.append(F.binary_cross_entropy_with_logits(out, target))
        elif mode == "lsgan":
            losses.append(F.mse_loss(out, target))
        else:
            raise ValueError(f"gan mode must be vanilla or lsgan, got {mode!r}")
    return torch.stack(losses).mean()


def discriminator_loss(real: Tensor | list[Tensor], fake: Tensor | list[Tensor],
                       mode: str) -> Tensor:
    """A discriminator's loss: real towards 1, fake towards 0."""
    return gan_loss(real, True, mode) + gan_loss(fake, False, mode)


def class_balanced_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of per-pixel class logits, averaged over each label's pixels, then over the
    labels present (OASIS's class balancing: a class of few pixels weighs as much as the
    background).

    ``logits (B, K, h, w)``, ``labels (B, h, w)`` integers in ``[0, K)`` -> scalar, in float32
    whatever the autocast dtype of ``logits``.
    """
    per_pixel = F.cross_entropy(logits.float(), labels, reduction="none").flatten()
    labels = labels.flatten()
    sums = per_pixel.new_zeros(logits.shape[1]).index_add(0, labels, per_pixel)
    counts = torch.bincount(labels, minlength=logits.shape[1])
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def content_confusion_loss(logits: Tensor) -> Tensor:
    """The encoders' side of the content adversarial loss (DRIT).

    The content discriminator is trained to tell the domain of a content map; the encoders are
    trained to make it answer 0.5 for both domains, i.e. to carry no domain information.
    """
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))


def kl_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), averaged over every element of the style map."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
                   ) -> Tensor:
    """A sample of N(mu, exp(logvar)) that lets gradients reach mu and logvar."""
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + noise * (0.5 * logvar).exp()


def l1(prediction: Tensor, target: Tensor) -> Tensor:
    return F.l1_loss(prediction, target)


def mode_seeking_loss(image_a: Tensor, image_b: Tensor, style_a: Tensor, style_b: Tensor,
                      eps: float = 1e-5) -> Tensor:
    """Mode-seeking regularisation (Mao et al., CVPR 2019; DRIT++): the inverse of how far two
    outputs of one content lie apart per unit of distance between their styles,
    ``1 / (mean|I_a - I_b| / mean|s_a - s_b| + eps)``. Minimising it stops a generator from
    mapping every style to the same image; images ``(B, 3, H, W)``, styles ``(B, C, h, w)``."""
    ratio = (image_a - image_b).abs().mean() / (style_a - style_b).abs().mean().clamp_min(eps)
    return 1 / (ratio + eps)
