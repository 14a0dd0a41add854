"""The class-aware key-values memory of MGUIT (paper section 3.2, eq 2-6 and 8).

The memory holds N items, each a key ``k_n`` shared by both domains and one value per domain,
``v_n^x`` and ``v_n^y``, all unit vectors of C channels. Items are partitioned into groups, one
per object class plus ``background``; group sizes come from the config (the paper: 3 items for
each of person/car/truck/bicycle and 8 for background, N = 20).

Shapes: content and style maps are ``(B, C, H, W)``; a class mask is ``(B, H, W)`` (int64) holding
the group index of every pixel. Domain 0 is x (source), domain 1 is y (target).

* :meth:`ClassAwareMemory.read` (eq 2-4): per pixel, a softmax over items of the cosine between
  its content and the keys, then the weighted average of the values of the requested domain.
  To translate x -> y, read with ``c^x`` and ``domain=1``. In training a pixel addresses only
  the items of its class (the mask); at test time every pixel addresses all items and no class
  information is needed.
* :meth:`ClassAwareMemory.update` (eq 5-6): per item, a softmax over the pixels of its class of
  the same cosine, and ``k <- normalize(k + sum_p beta^x c^x_p + sum_p beta^y c^y_p)``,
  ``v^x <- normalize(v^x + sum_p beta^x s^x_p)``, likewise for y. With a batch (or several DDP
  ranks) the softmax runs over the pixels of the whole batch (of all ranks), as if the batch were
  one image: the paper trains with batch 1, where both readings agree.
* :meth:`ClassAwareMemory.feature_loss` (eq 8): the feature contrastive loss on keys and values,
  or the triplet loss of the paper's ablation.

The constructor's defaults are the paper's equations exactly (no temperatures, raw writes,
eta = 1, nearest positive, sum over pixels); :class:`mguit.config.MemoryConfig` chooses the
settings that work (docs/translator.md).

Keys and values are buffers, not parameters: no optimiser touches them, they get no gradient,
they follow ``.to(device)`` and they are saved in ``state_dict``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

DOMAINS = 2


class ClassAwareMemory(nn.Module):
    """Key-values memory with class-grouped items.

    Args:
        key_dim: channels C of keys, values, content and style features.
        items: items per group, in group order (the class mask's values index this order);
            must contain ``background``.
        variant: ``class_aware`` (the paper) or ``single`` (the ablation's class-agnostic memory:
            masks are ignored and every pixel reads and updates every item).
        loss: ``contrastive`` (eq 8) or ``triplet`` (the ablation, as in MNAD's separateness loss).
        temperature: tau of eq 8. The paper gives no value. Features and items are unit vectors
            here, so the logits ``c . k / tau`` lie in [-1/tau, 1/tau]; tau = 0.1 lets the
            positive item reach a clear majority of the softmax (e^20 spread) without the
            vanishing gradients of very small temperatures, the usual range of contrastive
            feature learning (0.07 - 0.2).
        triplet_margin: margin of the triplet variant, on squared distances of unit vectors
            (which lie in [0, 4]); 1.0 as in MNAD.
        write_features: ``raw`` (eq 5-6 as printed) or ``normalized``: the features added to
            the items by the update are first scaled to unit length, like the items.
        loss_reduction: eq 8 averaged over all pixels (``pixel``) or over each group's pixels
            and then over the groups present in the mask (``class_balanced``).
        update_temperature: T of eq 5, ``softmax_p(cos(c_p, k_n) / T)`` over the pixels that
            update item n. 1.0 is the paper: the softmax over pixels is then nearly uniform, so
            every item of a class receives the same class mean and the items of a class
            collapse into one; a low T lets each item take the pixels nearest to it.
        update_rate: eta in ``k <- normalize(k + eta * sum_p beta c_p)`` (likewise the values);
            1.0 is eq 6. Below 1 the items are slowly moving prototypes (like an EMA codebook)
            that eq 8 can pull the features towards, instead of a copy of the last batch.
        positive: eq 8's positive in training: ``nearest`` (the paper: the nearest item among
            those the pixel may address; the class's other items count as negatives) or
            ``class`` (every item of the pixel's class: ``-log sum_{n in class} softmax_n``,
            the negative log of the read mass a test-time read at temperature tau puts on the
            pixel's class). Without a mask (single memory) both are ``nearest``.
        read_temperature: T of every read of eq 2, ``softmax_n(cos(c_p, k_n) / T)``. 1.0 is the
            paper's equation exactly: cosines lie in [-1, 1], so with 20 items no item can get
            more than e / (e + 19 / e) ~ 0.28 of a pixel's weight and an unmasked read is
            always a blend of every class's styles.
    """

    def __init__(self, key_dim: int, items: dict[str, int], variant: str = "class_aware",
                 loss: str = "contrastive", temperature: float = 0.1,
                 triplet_margin: float = 1.0, read_temperature: float = 1.0,
                 write_features: str = "raw", loss_reduction: str = "pixel",
                 update_temperature: float = 1.0, update_rate: float = 1.0,
                 positive: str = "nearest", update_assignment: str = "softmax"):
        super().__init__()
        if variant not in ("class_aware", "single"):
            raise ValueError(f"variant must be class_aware or single, got {variant!r}")
        if loss not in ("contrastive", "triplet"):
            raise ValueError(f"loss must be contrastive or triplet, got {loss!r}")
        if "background" not in items:
            raise ValueError("items needs a 'background' group")
        self.groups = list(items)
        self.class_aware = variant == "class_aware"
        self.loss_kind = loss
        self.temperature = temperature
        self.triplet_margin = triplet_margin
        if read_temperature <= 0:
            raise ValueError(f"read_temperature must be > 0, got {read_temperature}")
        self.read_temperature = read_temperature
        if update_temperature <= 0:
            raise ValueError(f"update_temperature must be > 0, got {update_temperature}")
        self.update_temperature = update_temperature
        if not 0 < update_rate <= 1:
            raise ValueError(f"update_rate must be in (0, 1], got {update_rate}")
        self.update_rate = update_rate
        if positive not in ("nearest", "class"):
            raise ValueError(f"positive must be nearest or class, got {positive!r}")
        self.class_positive = positive == "class"
        if update_assignment not in ("softmax", "nearest"):
            raise ValueError(f"update_assignment must be softmax or nearest, got "
                             f"{update_assignment!r}")
        self.nearest_assignment = update_assignment == "nearest"
        if write_features not in ("raw", "normalized"):
            raise ValueError(f"write_features must be raw or normalized, got {write_features!r}")
        if loss_reduction not in ("pixel", "class_balanced"):
            raise ValueError(f"loss_reduction must be pixel or class_balanced, got "
                             f"{loss_reduction!r}")
        self.normalize_writes = write_features == "normalized"
        self.loss_reduction = loss_reduction
        num_items = sum(items.values())
        group_of_item = torch.cat([torch.full((n,), g, dtype=torch.long)
                                   for g, n in enumerate(items.values())])
        self.register_buffer("keys", F.normalize(torch.randn(num_items, key_dim), dim=1))
        self.register_buffer("values", F.normalize(torch.randn(DOMAINS, num_items, key_dim), dim=2))
        # Derived from the config, so not saved: a checkpoint of another layout fails on `keys`.
        self.register_buffer("group_of_item", group_of_item, persistent=False)

    @property
    def num_items(self) -> int:
        return self.keys.shape[0]

    @property
    def background(self) -> int:
        """Group index of the background, the value of pixels outside every box in a mask."""
        return self.groups.index("background")

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{g}={int((self.group_of_item == i).sum())}"
                          for i, g in enumerate(self.groups))
        return (f"items={self.num_items} ({sizes}), C={self.keys.shape[1]}, "
                f"class_aware={self.class_aware}, loss={self.loss_kind}, tau={self.temperature}, "
                f"read_temperature={self.read_temperature}")

    def similarity(self, features: Tensor) -> Tensor:
        """Cosine similarity (eq 3) of every pixel to every key: ``(B, C, H, W)`` -> ``(B, HW, N)``."""
        q = F.normalize(features.flatten(2).transpose(1, 2), dim=2)
        return q @ self.keys.to(q.dtype).T

    def allowed_items(self, mask: Tensor | None) -> Tensor | None:
        """``(B, HW, N)`` bool: which items each pixel may address; None when all may."""
        if mask is None or not self.class_aware:
            return None
        return mask.flatten(1).unsqueeze(2) == self.group_of_item.view(1, 1, -1)

    def read(self, content: Tensor, domain: int, mask: Tensor | None = None,
             values: Tensor | None = None) -> Tensor:
        """Style map read from the values of ``domain`` (eq 2 and 4).

        Args:
            content: ``(B, C, H, W)`` content features addressing the memory.
            domain: whose values to read (0 = x, 1 = y).
            mask: ``(B, H, W)`` group index per pixel (training), or None (test: all items).
            values: ``(N, C)`` or ``(B, N, C)`` values to read instead of the memory's (random
                style values for multimodal output); addressing still uses the keys.
        Returns:
            ``(B, C, H, W)`` style map, per pixel a convex combination of value vectors.
        """
        with record_function("memory.read"):
            b, _, h, w = content.shape
            alpha = self.read_weights(content, mask)
            items = self.values[domain] if values is None else values
            style = alpha @ items.to(alpha.dtype)
            return style.transpose(1, 2).reshape(b, -1, h, w)

    def read_weights(self, content: Tensor, mask: Tensor | None = None) -> Tensor:
        """The read weights alpha of eq 2 at the read temperature, ``(B, HW, N)``."""
        logits = self.similarity(content) / self.read_temperature
        allowed = self.allowed_items(mask)
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        return logits.softmax(dim=2)

    @torch.no_grad()
    def read_statistics(self, content: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """How class-selective the test-time (unmasked) reads of ``content`` are, per group.

        Args:
            content: ``(B, C, H, W)`` content features.
            mask: ``(B, H, W)`` int64 group index of every pixel (the training rule).
        Returns:
            ``{"own_mass", "nearest_correct", "pixels"}``, each ``(G,)`` float64 on the CPU: per
            group g, the sum over g's pixels of their read weight on g's items, the number of
            g's pixels whose nearest key (largest cosine) is one of g's items, and the number
            of g's pixels. Divide the first two by the third for the per-pixel means.
        """
        groups = len(self.groups)
        alpha = self.read_weights(content).float()                      # (B, HW, N)
        per_group = alpha.new_zeros(*alpha.shape[:2], groups)
        per_group.index_add_(2, self.group_of_item, alpha)              # (B, HW, G)
        labels = mask.flatten(1).to(alpha.device)                       # (B, HW)
        own = per_group.gather(2, labels.unsqueeze(2)).squeeze(2)
        correct = self.group_of_item[alpha.argmax(dim=2)] == labels
        flat = labels.flatten()

        def per(values: Tensor) -> Tensor:
            return torch.zeros(groups, dtype=torch.float64, device=alpha.device).index_add_(
                0, flat, values.flatten().double()).cpu()

        return {"own_mass": per(own), "nearest_correct": per(correct),
                "pixels": per(torch.ones_like(own))}

    def sample_values(self, domain: int, noise: float, generator: torch.Generator | None = None,
                      batch: int | None = None) -> Tensor:
        """Random style values near ``domain``'s: ``normalize(v + noise * N(0, I))``.

        ``generator`` must be a CPU generator (or None for the global one).

        Reading them instead of the stored values gives another plausible style for the same
        content (the multimodal output of the paper's Fig. 6). ``(N, C)``, or ``(batch, N, C)``.
        """
        base = self.values[domain]
        shape = base.shape if batch is None else (batch, *base.shape)
        # Drawn on the CPU, in float32, then moved: the same seed gives the same styles on
        # every device.
        eps = torch.randn(shape, generator=generator, dtype=torch.float32)
        return F.normalize(base + noise * eps.to(base.device, base.dtype), dim=-1)

    def _update_sums(self, content: Tensor, style: Tensor, mask: Tensor | None
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Unnormalised eq 5 sums of one domain: (sum_p e c_p, sum_p e s_p, sum_p e), with
        e = exp((d - 1) / T).

        The cosine d is at most 1, so the constant shift by 1 (which cancels in the softmax)
        keeps exp in (0, 1] at any temperature; keeping numerator and denominator apart lets
        DDP ranks add theirs before dividing, which gives exactly the softmax over the pixels
        of all ranks.
        """
        similarity = self.similarity(content.float())
        weights = ((similarity - 1) / self.update_temperature).exp()
        allowed = self.allowed_items(mask)
        if allowed is not None:
            weights = weights * allowed
        if self.nearest_assignment:
            # Each pixel writes only to its nearest allowed item (MNAD's update, by the same
            # authors): items of one class then split the class's pixels instead of all
            # taking the same softmax-weighted mean, which makes them one item.
            candidates = (similarity if allowed is None
                          else similarity.masked_fill(~allowed, float("-inf")))
            weights = weights * F.one_hot(candidates.argmax(dim=2), self.num_items)
        c = content.float().flatten(2)          # (B, C, HW)
        s = style.float().flatten(2)
        if self.normalize_writes:
            c, s = F.normalize(c, dim=1), F.normalize(s, dim=1)
        key_sum = torch.einsum("bcp,bpn->nc", c, weights)
        value_sum = torch.einsum("bcp,bpn->nc", s, weights)
        return key_sum, value_sum, weights.sum(dim=(0, 1))

    @torch.no_grad()
    def update(self, content_x: Tensor, style_x: Tensor, content_y: Tensor, style_y: Tensor,
               mask_x: Tensor | None = None, mask_y: Tensor | None = None,
               write_keys: tuple[bool, bool] = (True, True)) -> None:
        """Write both domains' features into the memory (eq 5-6), in place.

        Args:
            content_x, content_y: ``(B, C, H, W)`` content features of each domain.
            style_x, style_y: ``(B, C, H, W)`` style features of each domain.
            mask_x, mask_y: ``(B, H, W)`` group index per pixel; None lets every pixel update
                every item (single memory).
            write_keys: per domain, whether its content moves the keys; False writes only
                that domain's values (a domain without labels, whose pixels' classes are
                unknown, then cannot pull a class's keys towards other content).
        An item whose class has no pixel in the batch keeps its key and values.
        """
        with record_function("memory.update"):
            self._update(content_x, style_x, content_y, style_y, mask_x, mask_y, write_keys)

    def _update(self, content_x: Tensor, style_x: Tensor, content_y: Tensor, style_y: Tensor,
                mask_x: Tensor | None, mask_y: Tensor | None,
                write_keys: tuple[bool, bool] = (True, True)) -> None:
        kx, vx, zx = self._update_sums(content_x, style_x, mask_x)
        ky, vy, zy = self._update_sums(content_y, style_y, mask_y)
        kx, ky = (k if write else torch.zeros_like(k) for k, write in zip((kx, ky), write_keys))
        sums = torch.cat([kx, vx, ky, vy, zx[:, None], zy[:, None]], dim=1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)
        c = self.keys.shape[1]
        kx, vx, ky, vy = sums[:, :4 * c].split(c, dim=1)
        zx, zy = sums[:, 4 * c:4 * c + 1], sums[:, 4 * c + 1:]
        # An item without pixels has zero weight sums: it receives nothing (0 / 1).
        zx, zy = zx.clamp_min(1e-12), zy.clamp_min(1e-12)
        rate = self.update_rate
        keys = self.keys.float() + rate * (kx / zx + ky / zy)
        self.keys.copy_(F.normalize(keys, dim=1))
        self.values[0].copy_(F.normalize(self.values[0].float() + rate * vx / zx, dim=1))
        self.values[1].copy_(F.normalize(self.values[1].float() + rate * vy / zy, dim=1))

    def feature_loss(self, content: Tensor, style: Tensor, domain: int,
                     mask: Tensor | None = None) -> dict[str, Tensor]:
        """Eq 8 on keys (with content) and on ``domain``'s values (with style).

        The positive item of a pixel is its nearest item (cosine) among those it may address
        (its class's items in training), the negatives all other items of the memory, so items
        of different classes are pushed apart. Features are L2-normalised like the items, so
        ``c . k`` is the cosine of eq 3. The sum over pixels of eq 8 is averaged instead, which
        keeps the weights lambda_k, lambda_v independent of the image size.

        Returns ``{"key": scalar, "value": scalar}``; gradients reach the features only.
        """
        with record_function("memory.feature_loss"):
            allowed = self.allowed_items(mask)
            return {
                "key": self._reduce(self._item_loss(content, self.keys, allowed), mask),
                "value": self._reduce(self._item_loss(style, self.values[domain], allowed),
                                      mask),
            }

    def _reduce(self, loss: Tensor, mask: Tensor | None) -> Tensor:
        """Per-pixel losses ``(B, HW)`` -> a scalar, by ``self.loss_reduction``."""
        if self.loss_reduction == "pixel" or mask is None:
            return loss.mean()
        labels = mask.flatten()
        groups = len(self.groups)
        sums = loss.new_zeros(groups).index_add(0, labels, loss.flatten())
        counts = torch.bincount(labels, minlength=groups).to(loss.dtype)
        present = counts > 0
        return (sums[present] / counts[present]).mean()

    def _item_loss(self, features: Tensor, items: Tensor, allowed: Tensor | None) -> Tensor:
        """Per-pixel eq 8 (or triplet) losses, ``(B, HW)``."""
        q = F.normalize(features.float().flatten(2).transpose(1, 2), dim=2)    # (B, HW, C)
        sim = q @ items.float().T                                               # (B, HW, N)
        candidates = sim if allowed is None else sim.masked_fill(~allowed, float("-inf"))
        positive = candidates.argmax(dim=2)
        if self.loss_kind == "contrastive" and self.class_positive and allowed is not None:
            logits = sim / self.temperature
            return (logits.logsumexp(dim=2)
                    - logits.masked_fill(~allowed, float("-inf")).logsumexp(dim=2))
        if self.loss_kind == "contrastive":
            return F.cross_entropy((sim / self.temperature).flatten(0, 1), positive.flatten(),
                                   reduction="none").view(positive.shape)
        # Triplet: the negative is the nearest item other than the positive (MNAD's
        # "second nearest"); squared distances of unit vectors are 2 - 2 cos.
        others = sim.scatter(2, positive.unsqueeze(2), float("-inf"))
        pos_sim = sim.gather(2, positive.unsqueeze(2)).squeeze(2)
        neg_sim = others.max(dim=2).values
        pos_dist, neg_dist = 2 - 2 * pos_sim, 2 - 2 * neg_sim
        return F.relu(pos_dist - neg_dist + self.triplet_margin)
