"""COCO manifests as torch datasets for torchvision's detection models, and the training order.

:class:`ManifestDataset` yields what ``torchvision.models.detection`` models take: an image
``(3, H, W)`` float32 in [0, 1] and a target ``{"boxes": (N, 4) float32 x0, y0, x1, y1 in
pixels, "labels": (N,) int64 category ids 1..K, "image_id": int}``. Images without boxes give
``(0, 4)`` boxes, which the models treat as background-only images.

Items are pure functions of their key ``(index, flip)``, and :class:`IterationBatchSampler`
makes the keys of iteration ``i`` a pure function of ``(seed, i)``: a training run resumed at
iteration ``i`` sees exactly the batches an uninterrupted one would have, whatever the number
of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from detection.errors import DetectionError
from detection.images import open_image, to_rgb
from detection.manifest import Manifest, load_manifest

Item = tuple[Tensor, dict[str, Tensor | int]]


class ManifestDataset(Dataset):
    """The images of one or more COCO manifests (concatenated, in file order) with their boxes.

    Args:
        manifests: manifest paths (or loaded :class:`Manifest` objects).
        classes: if given, every manifest's categories must be these (ids 1..K in order).

    Index with an ``int`` or with ``(index, flip)``; ``flip`` mirrors the image and its boxes
    horizontally. Crowd annotations (``iscrowd: 1``) and boxes without area are left out, as
    torchvision's detection models reject them.
    """

    def __init__(self, manifests: Sequence[str | Path | Manifest],
                 classes: Sequence[str] | None = None):
        loaded = [m if isinstance(m, Manifest) else load_manifest(m, classes)
                  for m in manifests]
        self.manifests = loaded
        self.entries: list[tuple[Path, int, np.ndarray, np.ndarray]] = []
        for manifest in loaded:
            by_image = manifest.annotations_by_image()
            for image in manifest.images:
                anns = [a for a in by_image[image["id"]] if not a.get("iscrowd", 0)]
                xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
                boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                labels = np.array([a["category_id"] for a in anns], dtype=np.int64)
                keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
                self.entries.append((manifest.image_path(image), image["id"], boxes[keep],
                                     labels[keep]))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, bool]) -> Item:
        index, flip = key if isinstance(key, tuple) else (key, False)
        path, image_id, boxes, labels = self.entries[index]
        try:
            with open_image(path) as im:
                array = np.array(to_rgb(im))
        except (OSError, ValueError) as exc:
            raise DetectionError(f"{path}: cannot read the image ({exc})") from None
        image = torch.from_numpy(array).permute(2, 0, 1).float().div_(255)
        boxes_t = torch.from_numpy(boxes.copy())
        if flip:
            image = image.flip(-1)
            width = image.shape[-1]
            boxes_t = torch.stack([width - boxes_t[:, 2], boxes_t[:, 1],
                                   width - boxes_t[:, 0], boxes_t[:, 3]], dim=1)
        return image, {"boxes": boxes_t, "labels": torch.from_numpy(labels.copy()),
                       "image_id": image_id}


def collate(batch: list[Item]) -> tuple[list[Tensor], list[dict]]:
    """Lists of images and targets (detection models take images of different sizes)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


class IterationBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Batches of keys ``(index, flip)`` for iterations ``start .. end - 1``.

    The images are visited in epochs, each a seeded permutation of all ``num_images``;
    iteration ``i`` takes positions ``i * batch_size ...`` of that endless sequence. ``flip`` is
    drawn per position with probability 0.5 when ``flip`` is on. With ``world_size`` ranks the
    ``batch_size`` is the global batch: rank ``r`` gets its ``r``-th contiguous share of it, so
    the ranks of one step see different images and together the single-process batch.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int, start: int, end: int,
                 flip: bool = True, rank: int = 0, world_size: int = 1):
        if num_images < 1:
            raise ValueError("no images to sample from")
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} does not divide among {world_size} ranks")
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self.start, self.end, self.flip = start, end, flip
        share = batch_size // world_size
        self.share = slice(rank * share, (rank + 1) * share)

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        epoch, order, flips = -1, np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
        for iteration in range(self.start, self.end):
            batch = []
            for position in range(iteration * self.batch_size,
                                  (iteration + 1) * self.batch_size):
                if position // self.num_images != epoch:
                    epoch = position // self.num_images
                    rng = np.random.default_rng([self.seed, epoch])
                    order = rng.permutation(self.num_images)
                    flips = rng.random(self.num_images) < 0.5
                offset = position % self.num_images
                batch.append((int(order[offset]), bool(self.flip and flips[offset])))
            yield batch[self.share]
