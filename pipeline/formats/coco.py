"""COCO detection JSON: reading any COCO dataset into records, and manifests for the stages.

Every dataset is converted once, by the ``prepare`` stage, into a *manifest*: a COCO detection
file that the translator and the detectors read (Detectron2 registers it as it is). Manifests
are written, read and checked in one place, :mod:`detection.manifest` (the layout is described
there); :func:`read_manifest` reads one with the pipeline's :class:`DatasetError`.

:func:`read_coco` reads any COCO detection dataset (e.g. INIT) into :class:`ImageRecord` objects,
mapping category *names* through the class map like the other readers; its structure is checked
by :func:`detection.manifest.check_coco`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from detection.errors import DetectionError
from detection.manifest import Manifest, check_coco, load_manifest, write_manifest
from pipeline.formats.common import (
    BadInputLog,
    Box,
    DatasetError,
    ImageRecord,
    check_policies,
    map_label,
    read_image_size,
    read_json,
    sanitize_box,
)


def read_manifest(path: str | Path, image_root: str | Path | None = None) -> Manifest:
    """:func:`detection.manifest.load_manifest` with the pipeline's error: a manifest is read
    and checked in one place, and the stages report its problems as bad data."""
    try:
        return load_manifest(path, image_root=image_root)
    except DetectionError as exc:
        raise _dataset_error(Path(os.path.abspath(path)), exc) from None


def _dataset_error(path: Path, exc: DetectionError) -> DatasetError:
    """The same message as a :class:`DatasetError` of ``path`` (with its line, if it has one)."""
    match = re.match(rf"{re.escape(str(path))}(?::(\d+))?: (.*)", str(exc), re.DOTALL)
    if match is None:
        return DatasetError(path, str(exc))
    return DatasetError(path, match.group(2),
                        line=int(match.group(1)) if match.group(1) else None)


def read_coco(
    json_path: str | Path,
    image_root: str | Path,
    *,
    class_map: dict[str, str | None],
    on_unknown_label: str = "error",
    on_bad_box: str = "clip",
    log: BadInputLog,
    verify_images: bool = False,
    min_box_size: float = 1.0,
) -> Iterator[ImageRecord]:
    """Yield one :class:`ImageRecord` per image of a COCO detection file, in file order.

    The file is checked first: ``images``, ``annotations`` and ``categories`` lists; images
    with a unique integer ``id``, a ``file_name`` and positive integer ``width``/``height``;
    categories with a unique integer ``id`` and a ``name``; annotations whose ``image_id`` and
    ``category_id`` exist and whose ``bbox`` is 4 finite numbers.

    Category names are mapped with ``class_map``; ``iscrowd: 1`` annotations (crowd regions,
    not instances) are skipped and counted in ``log``. Image sizes come from the JSON; the image
    must exist, and with ``verify_images`` it is decoded and its size compared with the JSON.
    ``extra`` holds the dataset's own image id as ``coco_image_id``.
    """
    check_policies(on_unknown_label, on_bad_box)
    json_path = Path(os.path.abspath(json_path))
    data = read_json(json_path)
    try:
        images, annotations, categories = check_coco(data, json_path)
    except DetectionError as exc:
        raise _dataset_error(json_path, exc) from None
    return _records(
        json_path, Path(os.path.abspath(image_root)), images, annotations, categories,
        class_map, on_unknown_label, on_bad_box, log, verify_images, min_box_size,
    )


def _records(
    json_path: Path,
    image_root: Path,
    images: list[dict],
    annotations: list[dict],
    categories: list[dict],
    class_map: dict[str, str | None],
    on_unknown_label: str,
    on_bad_box: str,
    log: BadInputLog,
    verify_images: bool,
    min_box_size: float,
) -> Iterator[ImageRecord]:
    names = {category["id"]: category["name"] for category in categories}
    by_image: dict[int, list[tuple[int, dict]]] = {image["id"]: [] for image in images}
    for index, annotation in enumerate(annotations):
        by_image[annotation["image_id"]].append((index, annotation))
    for image in images:
        path = image_root / image["file_name"]   # an absolute file_name replaces the root
        width, height = image["width"], image["height"]
        if verify_images:
            actual = read_image_size(path, verify=True)
            if actual != (width, height):
                raise DatasetError(
                    json_path,
                    f"image {image['file_name']!r} (id {image['id']}) is "
                    f"{actual[0]}x{actual[1]} but the file says {width}x{height}; fix its "
                    "width and height",
                )
        elif not path.is_file():
            raise DatasetError(
                path, f"image (id {image['id']} of {json_path}) does not exist; check image_root"
            )
        boxes = []
        for index, annotation in by_image[image["id"]]:
            where = f"{json_path}: annotations[{index}]"
            if annotation.get("iscrowd", 0):
                log.add("crowd annotation ignored", where, "iscrowd=1 marks a crowd region")
                continue
            category = map_label(
                names[annotation["category_id"]], class_map, on_unknown_label, where, log
            )
            if category is None:
                continue
            x, y, w, h = annotation["bbox"]
            box = sanitize_box(
                Box(x, y, x + w, y + h, category), width, height, on_bad_box, where, log,
                min_box_size,
            )
            if box is not None:
                boxes.append(box)
        yield ImageRecord(
            path=path,
            file_name=image["file_name"],
            width=width,
            height=height,
            boxes=boxes,
            extra={"coco_image_id": image["id"]},
        )
