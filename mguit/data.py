"""Unpaired two-domain training data over in-memory records, with class masks from boxes.

The translator reads no files but images: the caller (the pipeline's ``train_translator``
stage) builds a :class:`BoxImage` per training image (its path, size, boxes and class names) from
its manifests, so this package stays independent of :mod:`pipeline` and of file formats.

Class masks (paper section 3.2): during training every pixel reads and updates only the memory
items of its class. The class of a pixel is the class of the ground-truth box that contains it,
``background`` outside every box; see :func:`class_mask` for the pixel rule and the overlap rule.

Sampling is a pure function of ``(seed, k)`` (see :class:`UnpairedBoxDataset`), so resuming at an
iteration reproduces exactly the batches an uninterrupted run would have drawn, and distributed
ranks draw disjoint items without any shared state (see :class:`IterationSampler`).
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

BACKGROUND = "background"


@dataclass
class BoxImage:
    """One training image.

    ``boxes`` is ``(K, 4)`` float64 ``x0, y0, x1, y1`` in pixels of the ``width x height`` image
    (continuous pixel edges, as COCO); ``labels`` holds the K class names.
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: list[str]


def records_fingerprint(source: Sequence[BoxImage], target: Sequence[BoxImage],
                        target_labeled: bool = True, unlabeled_target: str = "single") -> str:
    """A hash of what a training sees of its records: paths, sizes, boxes (to 1/1000 pixel),
    labels, in order, whether the target has labels and, if not, how it trains the memory."""
    rule = "" if target_labeled else f" {unlabeled_target}"
    digest = hashlib.sha256(f"target_labeled={target_labeled}{rule}\n".encode())
    for domain, images in (("source", source), ("target", target)):
        digest.update(f"{domain} {len(images)}\n".encode())
        for image in images:
            boxes = np.round(np.asarray(image.boxes, dtype=np.float64).reshape(-1, 4), 3)
            digest.update(f"{image.path}\0{image.width}\0{image.height}\0"
                          f"{boxes.tolist()}\0{list(image.labels)}\n".encode())
    return digest.hexdigest()


def class_mask(
    height: int,
    width: int,
    boxes: np.ndarray | Sequence[Sequence[float]],
    labels: Sequence[str],
    group_index: dict[str, int],
    background: int,
) -> np.ndarray:
    """Memory-group index of every pixel of a ``height x width`` image, ``(H, W)`` int64.

    ``boxes`` is ``(K, 4)`` ``x0, y0, x1, y1`` in continuous pixel coordinates (pixel ``(i, j)``
    covers ``[j, j+1) x [i, i+1)``); ``labels`` the K class names, mapped to groups by
    ``group_index``. Pixels outside every box get ``background``.

    Pixel rule: pixel ``(i, j)`` belongs to a box when its centre ``(j + 0.5, i + 0.5)`` lies in
    ``[x0, x1) x [y0, y1)``; the half-open interval gives two boxes that share an edge no common
    pixel. Along an axis where a box covers no pixel centre (it is thinner than a pixel), it
    marks the pixel containing its centre instead, so that no object vanishes from the mask.

    Overlap rule: where boxes overlap, the SMALLER box (by area) wins; among equal areas the later
    box wins. Without depth order there is no way to know which object is visible, so the rule
    minimises the damage: giving an overlap of area O to the larger box (area A) would take O/a
    of the smaller box's pixels (area a <= A), giving it to the smaller box takes only
    O/A <= O/a of the larger one's. In particular a box lying inside a larger one, e.g. a person
    in front of a car, keeps all its pixels instead of disappearing, and the small classes
    (person, bicycle) are the rare ones whose memory items need every pixel they can get. In
    street scenes it is also usually right: a box inside a larger box is more often an object in
    front of it than an object hidden behind it, which would hardly have been annotated.

    The mask is the ``[0, H) x [0, W)`` window of the mask of an unbounded canvas: boxes are not
    clipped before the rules above are applied. Hence the mask of a crop at offset ``(oy, ox)``
    equals ``class_mask(h, w, boxes - [ox, oy, ox, oy], ...)``, which is how the dataset builds
    masks at crop size without painting the whole image.
    """
    count = len(np.asarray(boxes).reshape(-1, 4))
    if len(labels) != count:
        raise ValueError(f"{count} boxes but {len(labels)} labels")
    groups = [group_index[label] for label in labels]  # KeyError names an unmapped class
    return _paint_boxes(height, width, boxes, groups, background)


def object_mask(height: int, width: int,
                boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Which box every pixel belongs to, ``(H, W)`` int64: ``k + 1`` for the ``k``-th box of
    ``boxes`` ``(K, 4)``, 0 outside every box; the pixel and overlap rules of
    :func:`class_mask`, so an object's pixels are those its class takes there."""
    count = len(np.asarray(boxes).reshape(-1, 4))
    return _paint_boxes(height, width, boxes, range(1, count + 1), 0)


def _paint_boxes(height: int, width: int, boxes: np.ndarray | Sequence[Sequence[float]],
                 values: Sequence[int], fill: int) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ValueError("boxes must be finite x0, y0, x1, y1 with x0 <= x1 and y0 <= y1")
    mask = np.full((height, width), fill, dtype=np.int64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # Painting in decreasing area lets smaller boxes overwrite larger ones; the stable sort on
    # -area keeps file order among equal areas, so the later box wins there.
    for index in np.argsort(-areas, kind="stable"):
        x0, y0, x1, y1 = boxes[index]
        j0, j1 = _pixel_span(x0, x1, width)
        i0, i1 = _pixel_span(y0, y1, height)
        if j0 < j1 and i0 < i1:
            mask[i0:i1, j0:j1] = values[index]
    return mask


def _pixel_span(low: float, high: float, size: int) -> tuple[int, int]:
    """Pixels ``[start, stop)`` of ``[0, size)`` whose centres lie in ``[low, high)``; the pixel
    containing the centre of ``[low, high)`` where no centre does."""
    # centre c + 0.5 in [low, high)  <=>  ceil(low - 0.5) <= c < ceil(high - 0.5)
    start, stop = math.ceil(low - 0.5), math.ceil(high - 0.5)
    if stop <= start:
        start = math.floor((low + high) / 2)
        stop = start + 1
    return max(start, 0), min(stop, size)


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(width, height)`` after scaling so that the short side is exactly ``short_side``."""
    if width <= height:
        return short_side, max(short_side, round(height * short_side / width))
    return max(short_side, round(width * short_side / height)), short_side


class UnpairedBoxDataset(Dataset):
    """Unpaired source (x) / target (y) images with their class masks, for translator training.

    ``groups`` are the memory's group names in order, ``"background"`` included; the mask value
    of a pixel is the index of its group there. Every class of either domain's boxes must be a
    group (a class without memory items is a configuration error, not something to drop).

    Item ``k`` is a pure function of ``(seed, k)``: with ``n_x`` source images, ``k`` falls in the
    source's epoch ``e = k // n_x`` and takes image ``perm(e)[k % n_x]``, where ``perm(e)`` is a
    permutation drawn from ``np.random.default_rng([seed, 0, e])``; the target does the same
    with its own ``n_y`` and ``[seed, 1, e]``. The two domains are thus shuffled independently
    and every image of a domain is seen exactly once per epoch of that domain. Crop offsets and
    flips come from ``np.random.default_rng([seed, 2, k])``.

    ``len()`` is ``max(n_x, n_y)``, one epoch of the larger domain, but any ``k >= 0`` is valid:
    the trainer draws an unbounded index stream (:class:`IterationSampler`).

    Each domain: decode RGB -> resize so the short side is ``resize`` (bilinear, antialiased) ->
    random ``crop x crop`` window -> random horizontal flip, the mask going through the same
    window and flip. The mask is built from the boxes scaled to the resized image rather than
    resampled, so it is exact.

    Item: ``image_x``, ``image_y``: ``(3, crop, crop)`` float32 in ``[-1, 1]``; ``mask_x``,
    ``mask_y``: ``(crop, crop)`` int64 group indices; ``objects_x``, ``objects_y``: the same
    pixels' box numbers (:func:`object_mask`, 0 outside every box); ``index_x``, ``index_y``: the
    image's position in its domain's list.

    ``target_labeled=False`` (a target without boxes): items have no ``mask_y`` and no
    ``objects_y``, and the model
    lets the target's pixels address every memory item (the single-memory rule on that side).
    The target's records must then carry no boxes: an empty box list would otherwise be read as
    "all background".
    """

    def __init__(
        self,
        source: Sequence[BoxImage],
        target: Sequence[BoxImage],
        groups: Sequence[str],
        *,
        resize: int = 360,
        crop: int = 360,
        flip: bool = True,
        seed: int = 0,
        target_labeled: bool = True,
    ):
        if BACKGROUND not in groups:
            raise ValueError(f"groups {list(groups)} need a {BACKGROUND!r} group")
        if len(set(groups)) != len(groups):
            raise ValueError(f"group names must be unique, got {list(groups)}")
        if not 1 <= crop <= resize:
            raise ValueError(f"need 1 <= crop <= resize, got crop {crop} and resize {resize}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.groups = list(groups)
        self.group_index = {name: index for index, name in enumerate(self.groups)}
        self.background = self.group_index[BACKGROUND]
        self.resize = resize
        self.crop = crop
        self.flip = flip
        self.seed = seed
        self.source, self.target = list(source), list(target)
        self.target_labeled = target_labeled
        if not target_labeled and any(len(image.labels) for image in self.target):
            raise ValueError("target_labeled is False but target records carry boxes")
        for name, images in (("source", self.source), ("target", self.target)):
            if not images:
                raise ValueError(f"the {name} domain has no images")
            unknown = sorted({label for image in images for label in image.labels}
                             - set(self.group_index))
            if unknown:
                raise ValueError(
                    f"{name} class {unknown[0]!r} has no memory group; the groups are "
                    f"{self.groups} (memory.items must list every class of the data)"
                )

    def __len__(self) -> int:
        return max(len(self.source), len(self.target))

    def __getitem__(self, k: int) -> dict[str, torch.Tensor | int]:
        k = operator.index(k)
        if k < 0:
            raise IndexError(f"item index must be >= 0, got {k}")
        augment = np.random.default_rng([self.seed, 2, k])
        item: dict[str, torch.Tensor | int] = {}
        for domain, images, stream in (("x", self.source, 0), ("y", self.target, 1)):
            n = len(images)
            index = int(np.random.default_rng([self.seed, stream, k // n]).permutation(n)[k % n])
            image, mask, objects = self._load(images[index], augment)
            item[f"image_{domain}"] = image
            if domain == "x" or self.target_labeled:
                item[f"mask_{domain}"] = mask
                item[f"objects_{domain}"] = objects
            item[f"index_{domain}"] = index
        return item

    def _load(self, entry: BoxImage, augment: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width, height = resized_size(entry.width, entry.height, self.resize)
        crop = self.crop
        left = int(augment.integers(0, width - crop + 1))
        top = int(augment.integers(0, height - crop + 1))
        flip = self.flip and bool(augment.integers(0, 2))

        with Image.open(entry.path) as image:
            transposed = _orientation(image) in (5, 6, 7, 8)
            shown = image.size[::-1] if transposed else image.size
            if shown != (entry.width, entry.height):
                raise ValueError(
                    f"{entry.path}: image is {shown[0]}x{shown[1]} but its record says "
                    f"{entry.width}x{entry.height}; re-run prepare"
                )
            # JPEG only: decode at a reduced DCT scale that is still >= the resized size
            # (in the stored frame).
            image.draft("RGB", (height, width) if transposed else (width, height))
            if image.mode != "RGB" or _orientation(image) != 1:
                image = _to_rgb(image)
            # Resampling only the crop window gives the pixels of resize-then-crop (Pillow keeps
            # the full-image filter scale and clamps at the image border, not the window's)
            # at a fraction of the cost.
            scale_x, scale_y = image.size[0] / width, image.size[1] / height
            window = (
                left * scale_x, top * scale_y, (left + crop) * scale_x, (top + crop) * scale_y
            )
            pixels = np.asarray(image.resize((crop, crop), Image.Resampling.BILINEAR, box=window))

        scale = np.array([width / entry.width, height / entry.height] * 2)
        boxes = entry.boxes * scale - [left, top, left, top]
        mask = class_mask(crop, crop, boxes, entry.labels, self.group_index, self.background)
        objects = object_mask(crop, crop, boxes)
        if flip:
            pixels, mask, objects = pixels[:, ::-1], mask[:, ::-1], objects[:, ::-1]
        image_tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        image_tensor = image_tensor.to(torch.float32).div_(127.5).sub_(1.0)
        return (image_tensor, torch.from_numpy(np.ascontiguousarray(mask)),
                torch.from_numpy(np.ascontiguousarray(objects)))


def iteration_indices(
    iteration: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> list[int]:
    """Dataset indices of one rank's batch at ``iteration``:
    ``k = (iteration * world_size + rank) * batch_size + j`` for ``j < batch_size``.

    Consecutive ranks take consecutive blocks, so the union over ranks of iterations ``[0, n)``
    is the single-process stream of iterations ``[0, n * world_size)`` of the same batch size.
    """
    first = (iteration * world_size + rank) * batch_size
    return list(range(first, first + batch_size))


class IterationSampler(Sampler[list[int]]):
    """Batch sampler of one rank: yields :func:`iteration_indices` for iterations
    ``start_iteration, start_iteration + 1, ...`` up to ``end_iteration`` (exclusive), without
    end when it is ``None``.

    Use it as ``DataLoader(dataset, batch_sampler=IterationSampler(...), num_workers=...)``;
    since items are pure functions of their index, resuming at iteration ``i`` only needs
    ``start_iteration=i``, and the number of workers does not change the batches.
    """

    def __init__(
        self,
        start_iteration: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        end_iteration: int | None = None,
    ):
        if start_iteration < 0:
            raise ValueError(f"start_iteration must be >= 0, got {start_iteration}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world {world_size}")
        if end_iteration is not None and end_iteration < start_iteration:
            raise ValueError(f"end_iteration {end_iteration} is before start {start_iteration}")
        self.start_iteration = start_iteration
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.end_iteration = end_iteration

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while self.end_iteration is None or iteration < self.end_iteration:
            yield iteration_indices(iteration, self.batch_size, self.rank, self.world_size)
            iteration += 1

    def __len__(self) -> int:
        if self.end_iteration is None:
            raise TypeError("an IterationSampler without end_iteration has no length")
        return self.end_iteration - self.start_iteration


_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _orientation(image: Image.Image) -> int:
    """EXIF orientation from the header's EXIF block, as ``detection.images.orientation``."""
    raw = image.info.get("exif")
    if not isinstance(raw, bytes | bytearray) or not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(bytes(raw))
    except Exception:   # noqa: BLE001 - a malformed EXIF block is no orientation
        return 1
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB in the frame the EXIF orientation shows; 16-bit greyscale (modes I, I;16...)
    scaled to 8 bits, not clipped to white.

    The rule of ``detection.images.to_rgb``, which mguit may not import (DESIGN.md section 2).
    """
    turn = _UPRIGHT.get(_orientation(image))
    if turn is not None:
        image = image.transpose(turn)
    if image.mode.startswith("I"):
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255)
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")

