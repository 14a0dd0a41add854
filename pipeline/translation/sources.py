"""What to translate: the images of a COCO manifest or a KITTI root, with their boxes and labels.

Every source image gets a *key*, the stem of its output files and the name its random styles
are derived from (:func:`pipeline.translation.plan.style_seed`): the KITTI frame id
(``000042``) when the input is KITTI, otherwise the image file's stem. Keys must be unique, so
that outputs never overwrite each other.

Labels: a KITTI source image's label file is copied byte for byte (every line, DontCare
included). An image from another format (COCO, Cityscapes) has no KITTI label file, so one is
written from its boxes: the class name as type, the 2D box, and KITTI's placeholders for values
it does not know (``truncated -1, occluded -1, alpha -10``, dimensions ``-1``, location
``-1000``, ``rotation_y -10``, as on KITTI's DontCare lines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.config import KITTI_CLASS_MAP
from pipeline.formats import coco, kitti
from pipeline.formats.common import BadInputLog, Box, DatasetError
from pipeline.translation.errors import TranslationError

# The experiment classes of KITTI_CLASS_MAP, in the order of the paper (and of DataConfig).
KITTI_CLASSES = list(dict.fromkeys(c for c in KITTI_CLASS_MAP.values() if c is not None))


@dataclass(frozen=True)
class SourceImage:
    """One image to translate. ``boxes`` are in experiment classes, as in the manifest."""

    key: str
    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]
    label_path: Path | None     # KITTI label file copied as it is; None: written from boxes


@dataclass(frozen=True)
class SourceSet:
    """The images of one input, in input order, and the class list of their boxes."""

    input: Path
    images: list[SourceImage]
    classes: list[str]


def read_sources(input_path: str | Path) -> SourceSet:
    """The images of a COCO manifest (a ``.json`` file) or of a KITTI root (a folder).

    A manifest is typically ``runs/<name>/data/<split>.json`` written by ``prepare``; its KITTI
    images carry ``frame_id`` and ``label_path``. A KITTI root is read with the paper's class
    map (:data:`pipeline.config.KITTI_CLASS_MAP`) and clipped boxes, as ``prepare`` would.
    Raises :class:`DatasetError` for an unreadable input, :class:`TranslationError` for keys
    that clash.
    """
    path = Path(os.path.abspath(input_path))
    if path.is_dir():
        images = _kitti_images(path)
        classes = KITTI_CLASSES
    elif path.is_file():
        manifest = coco.read_manifest(path)
        images = _manifest_images(manifest)
        classes = manifest.classes
    else:
        raise DatasetError(path, "input does not exist; give a KITTI root (a folder holding "
                                 "image_2/ and label_2/) or a COCO manifest (.json)")
    _check_keys(images)
    for name in classes:
        if not name or any(ch.isspace() for ch in name):
            raise TranslationError(f"{path}: class name {name!r} cannot be a KITTI label type "
                                   "(it must be one word); rename the class")
    return SourceSet(path, images, classes)


def _kitti_images(root: Path) -> list[SourceImage]:
    records = kitti.read_kitti(root, class_map=KITTI_CLASS_MAP, on_unknown_label="error",
                               on_bad_box="clip", log=BadInputLog())
    return [SourceImage(r.extra["frame_id"], r.path, r.width, r.height, tuple(r.boxes),
                        Path(r.extra["label_path"])) for r in records]


def _manifest_images(manifest: coco.Manifest) -> list[SourceImage]:
    names = {c["id"]: c["name"] for c in manifest.categories}
    by_image = manifest.annotations_by_image()
    images = []
    for image in manifest.images:
        boxes = tuple(Box(x, y, x + w, y + h, names[a["category_id"]])
                      for a in by_image[image["id"]] for x, y, w, h in [a["bbox"]])
        frame = image.get("frame_id")
        key = frame if isinstance(frame, str) else PurePosixPath(image["file_name"]).stem
        label = image.get("label_path")
        images.append(SourceImage(key, manifest.image_path(image), image["width"],
                                  image["height"], boxes,
                                  Path(label) if isinstance(label, str) else None))
    return images


def _check_keys(images: list[SourceImage]) -> None:
    seen: dict[str, Path] = {}
    for image in images:
        if not image.key or image.key.startswith(".") or "/" in image.key:
            raise TranslationError(f"{image.path}: {image.key!r} cannot name an output file")
        if image.key in seen:
            raise TranslationError(
                f"{image.path}: its output name {image.key!r} is also that of {seen[image.key]}; "
                "translated images are named by frame id (KITTI) or file stem, which must be "
                "unique across the input")
        seen[image.key] = image.path


def label_bytes(image: SourceImage) -> bytes:
    """The label file of ``image``'s translations: the KITTI file's bytes, or lines written
    from its boxes (see the module doc)."""
    if image.label_path is not None:
        try:
            return image.label_path.read_bytes()
        except FileNotFoundError:
            raise DatasetError(image.label_path, "label file does not exist (it is listed as "
                                                 f"the label of {image.path})") from None
    lines = [kitti.format_label_line(kitti.KittiObject(
        type=box.category, truncated=-1.0, occluded=-1, alpha=-10.0,
        left=box.x0, top=box.y0, right=box.x1, bottom=box.y1,
        height=-1.0, width=-1.0, length=-1.0, x=-1000.0, y=-1000.0, z=-1000.0,
        rotation_y=-10.0)) + "\n" for box in image.boxes]
    return "".join(lines).encode("utf-8")


def output_names(key: str, sample: int, num_samples: int) -> tuple[str, str]:
    """``(image, label)`` paths relative to the output folder: ``image_2/<key>.png`` and
    ``label_2/<key>.txt``, with ``_s<k>`` after the key when there are several samples."""
    stem = key if num_samples == 1 else f"{key}_s{sample}"
    return f"{kitti.IMAGE_DIR}/{stem}.png", f"{kitti.LABEL_DIR}/{stem}.txt"
