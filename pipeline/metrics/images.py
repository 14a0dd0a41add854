"""Image sets for the translation metrics: a folder of images or a COCO manifest.

An :class:`ImageSet` lists images (path, size, boxes) without holding pixels; pixels are
decoded when :func:`batches` groups them into uint8 tensors. A manifest written by ``translate``
also says, per image, which source image it translates and which style sample it is
(``source_image``, ``sample``), so that the several styles of one input can be grouped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from detection.images import open_image, to_rgb
from pipeline.formats import coco
from pipeline.formats.common import IMAGE_SUFFIXES, Box, DatasetError, image_files, \
    read_image_size


@dataclass(frozen=True)
class ImageItem:
    """One image: its file, size, boxes (experiment classes), and the input it translates.

    ``group`` is the source image of a translation (its own path otherwise); ``sample`` is the
    style sample index (0 for anything that is not one of several samples).
    """

    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    group: str = ""
    sample: int = 0


@dataclass(frozen=True)
class ImageSet:
    """The images of a folder or manifest, in a fixed order (sorted paths, or file order).

    ``classes`` is the manifest's class list; None for a folder, which has no boxes.
    """

    origin: Path
    items: tuple[ImageItem, ...]
    classes: tuple[str, ...] | None

    @property
    def has_boxes(self) -> bool:
        return self.classes is not None

    def first_samples(self) -> ImageSet:
        """The set with only sample 0 of each input (the whole set when it has one sample)."""
        return replace(self, items=tuple(i for i in self.items if i.sample == 0))

    def groups(self) -> list[tuple[ImageItem, ...]]:
        """The images grouped by input, in order of first appearance, each by sample index."""
        grouped: dict[str, list[ImageItem]] = {}
        for item in self.items:
            grouped.setdefault(item.group, []).append(item)
        return [tuple(sorted(g, key=lambda i: i.sample)) for g in grouped.values()]


def read_image_set(path: str | Path) -> ImageSet:
    """A folder of images (searched recursively, .png / .jpg / .jpeg) or a COCO manifest.

    Raises :class:`DatasetError` for a missing path, an unreadable manifest or an empty set.
    """
    path = Path(path).absolute()
    if path.is_dir():
        return _read_folder(path)
    if not path.exists():
        raise DatasetError(path, "does not exist: give a folder of images (.png, .jpg) or a "
                                 "COCO manifest (.json)")
    if path.suffix.lower() != ".json":
        raise DatasetError(path, "is neither a folder of images nor a COCO manifest (.json)")
    manifest = coco.read_manifest(path)
    names = {c["id"]: c["name"] for c in manifest.categories}
    by_image = manifest.annotations_by_image()
    items = []
    for image in manifest.images:
        image_path = manifest.image_path(image)
        boxes = tuple(Box(x, y, x + w, y + h, names[a["category_id"]])
                      for a in by_image[image["id"]] for x, y, w, h in [a["bbox"]])
        sample = image.get("sample", 0)
        items.append(ImageItem(image_path, image["width"], image["height"], boxes,
                               group=str(image.get("source_image", image_path)),
                               sample=sample if isinstance(sample, int) else 0))
    if not items:
        raise DatasetError(path, "lists no images")
    return ImageSet(path, tuple(items), tuple(manifest.classes))


def _read_folder(folder: Path) -> ImageSet:
    paths = image_files(folder)
    if not paths:
        raise DatasetError(folder, f"holds no images ({', '.join(IMAGE_SUFFIXES)}, searched "
                                   "recursively)")
    items = []
    for p in paths:
        width, height = read_image_size(p)
        items.append(ImageItem(p, width, height, group=str(p)))
    return ImageSet(folder, tuple(items), None)


def load_image(item: ImageItem) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; :class:`DatasetError` if unreadable or not of the listed size."""
    try:
        with open_image(item.path) as image:
            pixels = np.array(to_rgb(image))   # a writable copy, as torch wants
    except FileNotFoundError:
        raise DatasetError(item.path, "image does not exist") from None
    except (OSError, SyntaxError, ValueError) as exc:   # PIL's errors for corrupt files
        raise DatasetError(item.path, f"image cannot be read ({exc})") from None
    if pixels.shape[:2] != (item.height, item.width):
        raise DatasetError(item.path, f"image is {pixels.shape[1]} x {pixels.shape[0]} but is "
                                      f"listed as {item.width} x {item.height}")
    return pixels


def batches(items: Sequence[ImageItem], batch_size: int,
            workers: int = 2) -> Iterator[tuple[list[ImageItem], torch.Tensor]]:
    """The images in batches of one size: ``(items, (B, 3, H, W) uint8)``.

    Images are grouped by size (in order of first appearance), so a batch never needs resizing
    or padding; ``workers`` threads decode (PIL releases the GIL while decoding).
    """
    by_size: dict[tuple[int, int], list[ImageItem]] = {}
    for item in items:
        by_size.setdefault((item.height, item.width), []).append(item)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for group in by_size.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                pixels = np.stack(list(pool.map(load_image, chunk)))
                yield chunk, torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
