"""COCO detection JSON: the project's manifest format, and a reader for any COCO dataset.

Every dataset is converted once, by the ``prepare`` stage, into a *manifest*: a COCO detection
file that the translator and the detectors read (Detectron2 registers it as it is). Layout::

    {"info": {"image_root": "/abs/path", ...},
     "images": [{"id": 1, "file_name": "image_2/000000.png", "width": 1242, "height": 375,
                 ...extra fields of the record, e.g. "frame_id"}],
     "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [x, y, w, h],
                      "area": w * h, "iscrowd": 0}],
     "categories": [{"id": 1, "name": "person"}, ...]}

``bbox`` is ``[x, y, width, height]`` in pixels. An image is at ``image_root / file_name``;
an absolute ``file_name`` is used as it is. ``image_root`` is stored absolute (a relative one,
written by hand, is taken relative to the manifest's folder). Category ids are 1..K in the order
of the experiment's class list, so every manifest of a run, and every detector trained on one,
agrees on them.

:func:`read_coco` reads any COCO detection dataset (e.g. INIT) into :class:`ImageRecord` objects,
mapping category *names* through the class map like the other readers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detection.manifest import write_text
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

# Decimals kept in bbox and area: enough for any pixel grid, and it keeps float noise such as
# 26.110000000000014 out of the files.
_DECIMALS = 4


@dataclass
class Manifest:
    """A checked COCO detection file: its lists as they are in the JSON, and the image root."""

    path: Path
    image_root: Path
    images: list[dict]
    annotations: list[dict]
    categories: list[dict]
    info: dict = field(default_factory=dict)

    def image_path(self, image: dict) -> Path:
        """Absolute path of an entry of :attr:`images`."""
        return _resolve(self.image_root, image["file_name"])

    def annotations_by_image(self) -> dict[int, list[dict]]:
        """Image id -> its annotations (in file order); every image has an entry."""
        grouped: dict[int, list[dict]] = {image["id"]: [] for image in self.images}
        for annotation in self.annotations:
            grouped[annotation["image_id"]].append(annotation)
        return grouped

    @property
    def class_names(self) -> list[str]:
        """Category names in category id order (the experiment's class list)."""
        return [c["name"] for c in sorted(self.categories, key=lambda c: c["id"])]


def _resolve(image_root: Path, file_name: str) -> Path:
    path = Path(file_name)
    return path if path.is_absolute() else image_root / path


def write_manifest(
    path: str | Path,
    records: Iterable[ImageRecord],
    classes: Sequence[str],
    image_root: str | Path,
    info: dict | None = None,
    stored_root: str | None = None,
) -> dict:
    """Write ``records`` as a manifest at ``path`` (atomically) and return counts.

    Records are consumed one at a time and only their small dicts are kept. Image ids are
    1..N in record order. ``file_name`` is the record's path relative to ``image_root``, or
    absolute when it lies outside it. The record's ``extra`` fields are added to its image entry
    (``Path`` values as strings). ``info`` is stored with ``image_root`` added: the absolute
    ``image_root``, or ``stored_root`` when given (e.g. ``"."`` for a dataset whose images live
    beside the manifest, which keeps the folder movable). Nothing time-dependent is written, so
    the same input gives the same bytes (stage hashes rely on it).

    Returns ``{"images": N, "annotations": M, "boxes_per_class": {class: count}}``.
    """
    if len(set(classes)) != len(classes):
        raise ValueError(f"class names must be unique, got {list(classes)}")
    category_ids = {name: index for index, name in enumerate(classes, start=1)}
    image_root = Path(os.path.abspath(image_root))
    images: list[dict] = []
    annotations: list[dict] = []
    per_class = dict.fromkeys(classes, 0)
    for image_id, record in enumerate(records, start=1):
        entry = {
            "id": image_id,
            "file_name": _file_name(Path(os.path.abspath(record.path)), image_root),
            "width": record.width,
            "height": record.height,
        }
        for key, value in record.extra.items():
            if key in entry:
                raise ValueError(f"{record.path}: extra field {key!r} clashes with a COCO field")
            entry[key] = _json_value(key, value)
        images.append(entry)
        for box in record.boxes:
            if box.category not in category_ids:
                raise ValueError(
                    f"{record.path}: box class {box.category!r} is not one of the classes "
                    f"{list(classes)}; every class map value must be one of them (or null)"
                )
            x, y, w, h = (round(v, _DECIMALS) for v in box.to_xywh())
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[box.category],
                "bbox": [x, y, w, h],
                "area": round(w * h, _DECIMALS),
                "iscrowd": 0,
            })
            per_class[box.category] += 1
    document = {
        "info": {**(info or {}), "image_root": stored_root or image_root.as_posix()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in category_ids.items()],
    }
    write_text(path, json.dumps(document, allow_nan=False))
    return {"images": len(images), "annotations": len(annotations), "boxes_per_class": per_class}


def _file_name(path: Path, image_root: Path) -> str:
    if path.is_relative_to(image_root):
        return path.relative_to(image_root).as_posix()
    return path.as_posix()


def _json_value(key: str, value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise TypeError(f"extra field {key!r} is not JSON-serialisable: {value!r}") from None
    return value


def read_manifest(path: str | Path, image_root: str | Path | None = None) -> Manifest:
    """Read and check a manifest. ``image_root`` overrides the one stored in ``info``.

    Raises :class:`DatasetError` naming the file and the offending entry for anything that is
    not a well-formed COCO detection file (see :func:`read_coco` for the checks).
    """
    path = Path(os.path.abspath(path))
    data = read_json(path)
    images, annotations, categories = _check(data, path)
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise DatasetError(path, "'info' must be a JSON object")
    if image_root is None:
        image_root = info.get("image_root")
        if not isinstance(image_root, str):
            raise DatasetError(
                path,
                "has no info.image_root (the folder file names are relative to); write it with "
                "write_manifest, or read it with an explicit image root",
            )
    return Manifest(
        path=path,
        image_root=path.parent / image_root,  # an absolute root replaces path.parent
        images=images,
        annotations=annotations,
        categories=categories,
        info=info,
    )


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
    images, annotations, categories = _check(data, json_path)
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
        path = _resolve(image_root, image["file_name"])
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


def _check(data: object, path: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Check the structure of a COCO detection file; return its images, annotations, categories."""
    if not isinstance(data, dict):
        raise DatasetError(path, "is not a COCO detection file: the top level must be an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(
                path, f"is not a COCO detection file: {key!r} is missing or not a list"
            )
    images, annotations, categories = data["images"], data["annotations"], data["categories"]

    category_ids: set[int] = set()
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        _require(category, "id", int, path, where)
        _require(category, "name", str, path, where)
        if category["id"] in category_ids:
            raise DatasetError(path, f"{where}: category id {category['id']} appears twice")
        category_ids.add(category["id"])

    image_ids: set[int] = set()
    for index, image in enumerate(images):
        where = f"images[{index}]"
        _require(image, "id", int, path, where)
        _require(image, "file_name", str, path, where)
        for key in ("width", "height"):
            _require(image, key, int, path, where)
            if image[key] <= 0:
                raise DatasetError(path, f"{where}: {key!r} must be positive, got {image[key]}")
        if image["id"] in image_ids:
            raise DatasetError(path, f"{where}: image id {image['id']} appears twice")
        image_ids.add(image["id"])

    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        _require(annotation, "image_id", int, path, where)
        _require(annotation, "category_id", int, path, where)
        _require(annotation, "bbox", list, path, where)
        if annotation["image_id"] not in image_ids:
            raise DatasetError(
                path, f"{where}: image_id {annotation['image_id']} is not in 'images'"
            )
        if annotation["category_id"] not in category_ids:
            raise DatasetError(
                path,
                f"{where}: category_id {annotation['category_id']} is not in 'categories' "
                f"(ids there: {sorted(category_ids)})",
            )
        bbox = annotation["bbox"]
        if len(bbox) != 4 or not all(_is_number(v) and math.isfinite(v) for v in bbox):
            raise DatasetError(
                path, f"{where}: 'bbox' must be 4 finite numbers [x, y, width, height], got {bbox}"
            )
    return images, annotations, categories


def _require(entry: object, key: str, kind: type, path: Path, where: str) -> None:
    if not isinstance(entry, dict):
        raise DatasetError(path, f"{where} must be a JSON object, got {entry!r:.60}")
    if key not in entry:
        raise DatasetError(path, f"{where}: {key!r} is missing")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(
            path, f"{where}: {key!r} must be of type {kind.__name__}, got {value!r:.60}"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
