"""COCO manifests, the project's one interchange format: written, read and checked here.

A manifest is a COCO detection JSON file (the pipeline's ``prepare`` and ``translate`` stages
write them with :func:`write_manifest`)::

    {"info": {"image_root": "/abs/path", ...},
     "images": [{"id": 1, "file_name": "image_2/000000.png", "width": 1242, "height": 375,
                 ...extra fields of the record, e.g. "frame_id"}],
     "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [x, y, w, h],
                      "area": w * h, "iscrowd": 0}],
     "categories": [{"id": 1, "name": "person"}, ...]}

``bbox`` is ``[x, y, width, height]`` in pixels. An image is at ``image_root / file_name``; an
absolute ``file_name`` is used as it is, and a relative ``image_root`` (``"."`` for a translated
set) is relative to the manifest's folder. Category ids are 1..K in the order of the
experiment's classes, in every manifest of a run, so every detector trained on one agrees on
them. This module reads them with :mod:`json` only, so the package stays independent of the
pipeline.

It is also the one home of atomic file writes (:func:`write_bytes`, :func:`write_text`,
:func:`write_json`, :func:`torch_save`): a reader sees the old file or the new one, never a part
of one. Every package that may import ``detection`` writes through them.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection.errors import DetectionError

# Decimals kept in bbox and area: enough for any pixel grid, and it keeps float noise such as
# 26.110000000000014 out of the files.
_DECIMALS = 4


@dataclass
class Manifest:
    """A loaded manifest: its lists as in the JSON, and its absolute image root."""

    path: Path
    image_root: Path
    images: list[dict]
    annotations: list[dict]
    categories: list[dict]
    info: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Category names in category id order."""
        return [c["name"] for c in sorted(self.categories, key=lambda c: c["id"])]

    def image_path(self, image: dict) -> Path:
        """Absolute path of an entry of :attr:`images` (an absolute ``file_name`` is kept)."""
        return self.image_root / image["file_name"]

    def annotations_by_image(self) -> dict[int, list[dict]]:
        """Image id -> its annotations (in file order); every image has an entry."""
        grouped: dict[int, list[dict]] = {image["id"]: [] for image in self.images}
        for annotation in self.annotations:
            grouped[annotation["image_id"]].append(annotation)
        return grouped

    def boxes_of_images(self) -> list[tuple[list[list[float]], list[str]]]:
        """Per entry of :attr:`images`, in order: its boxes as ``[x0, y0, x1, y1]`` in pixels and
        their class names (crowd annotations included: a crowd is still pixels of its class)."""
        names = {c["id"]: c["name"] for c in self.categories}
        per_image: dict[int, tuple[list[list[float]], list[str]]] = {
            image["id"]: ([], []) for image in self.images}
        for annotation in self.annotations:
            x, y, w, h = annotation["bbox"]
            boxes, labels = per_image[annotation["image_id"]]
            boxes.append([x, y, x + w, y + h])
            labels.append(names[annotation["category_id"]])
        return [per_image[image["id"]] for image in self.images]

    def boxes_per_class(self) -> dict[str, int]:
        """Number of (non-crowd) boxes of each class, every class listed."""
        names = {c["id"]: c["name"] for c in self.categories}
        counts = Counter(names[a["category_id"]] for a in self.annotations
                         if not a.get("iscrowd", 0))
        return {name: counts.get(name, 0) for name in self.classes}

    def summary(self) -> dict:
        """``{"images": N, "boxes": {class: n, ..., "total": n}}`` (for metrics and logs)."""
        per_class = self.boxes_per_class()
        return {"images": len(self.images),
                "boxes": {**per_class, "total": sum(per_class.values())}}


def load_manifest(path: str | Path, classes: Sequence[str] | None = None,
                  image_root: str | Path | None = None) -> Manifest:
    """Read and check a manifest (:func:`check_coco`, and boxes of non-negative size); with
    ``classes``, check that its categories are exactly those, as ids 1..K in that order.
    ``image_root`` replaces the one stored in ``info``. Raises :class:`DetectionError` naming
    the file and the entry."""
    path = Path(os.path.abspath(path))
    data = read_json(path, "manifest does not exist", "not a readable COCO JSON file")
    images, annotations, categories = check_coco(data, path)
    for index, annotation in enumerate(annotations):
        if annotation["bbox"][2] < 0 or annotation["bbox"][3] < 0:
            raise DetectionError(f"{path}: annotations[{index}]: bbox must be [x, y, width, "
                                 f"height] with width, height >= 0, got {annotation['bbox']}")
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise DetectionError(f"{path}: 'info' must be a JSON object")
    root = info.get("image_root") if image_root is None else str(image_root)
    if not isinstance(root, str):
        raise DetectionError(f"{path}: has no info.image_root (the folder that file names are "
                             "relative to); write manifests with write_manifest (the pipeline's "
                             "prepare stage does)")
    manifest = Manifest(path=path, image_root=path.parent / root, images=images,
                        annotations=annotations, categories=categories, info=info)
    if classes is not None:
        check_classes(manifest, classes)
    return manifest


def check_coco(data: object, path: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Check the structure of any COCO detection document; return its images, annotations and
    categories. Images: unique integer ``id``, ``file_name``, positive integer ``width`` and
    ``height``; categories: unique integer ``id`` and a ``name``; annotations: an existing
    ``image_id`` and ``category_id`` and a ``bbox`` of 4 finite numbers. Raises
    :class:`DetectionError` naming the file and the entry."""
    if not isinstance(data, dict):
        raise DetectionError(f"{path}: is not a COCO detection file: the top level must be an "
                             "object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DetectionError(f"{path}: is not a COCO detection file: {key!r} is missing or "
                                 "not a list")
    images, annotations, categories = data["images"], data["annotations"], data["categories"]
    category_ids: set[int] = set()
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        _field(category, "name", str, path, where)
        if _field(category, "id", int, path, where) in category_ids:
            raise DetectionError(f"{path}: {where}: category id {category['id']} appears twice")
        category_ids.add(category["id"])
    image_ids: set[int] = set()
    for index, image in enumerate(images):
        where = f"images[{index}]"
        _field(image, "file_name", str, path, where)
        for key in ("width", "height"):
            if _field(image, key, int, path, where) <= 0:
                raise DetectionError(f"{path}: {where}: {key!r} must be positive, got "
                                     f"{image[key]}")
        if _field(image, "id", int, path, where) in image_ids:
            raise DetectionError(f"{path}: {where}: image id {image['id']} appears twice")
        image_ids.add(image["id"])
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if _field(annotation, "image_id", int, path, where) not in image_ids:
            raise DetectionError(f"{path}: {where}: image_id {annotation['image_id']} is not in "
                                 "'images'")
        if _field(annotation, "category_id", int, path, where) not in category_ids:
            raise DetectionError(f"{path}: {where}: category_id {annotation['category_id']} is "
                                 f"not in 'categories' (ids there: {sorted(category_ids)})")
        bbox = _field(annotation, "bbox", list, path, where)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v) for v in bbox):
            raise DetectionError(f"{path}: {where}: 'bbox' must be 4 finite numbers [x, y, "
                                 f"width, height], got {str(bbox)[:60]}")
    return images, annotations, categories


def _field(entry: object, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(entry, dict):
        raise DetectionError(f"{path}: {where} must be a JSON object")
    if key not in entry:
        raise DetectionError(f"{path}: {where}: {key!r} is missing")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DetectionError(f"{path}: {where}: {key!r} must be of type {kind.__name__}, got "
                             f"{str(value)[:60]!r}")
    return value


def write_manifest(
    path: str | Path,
    records: Iterable[Any],
    classes: Sequence[str],
    image_root: str | Path,
    info: dict | None = None,
    stored_root: str | None = None,
) -> dict:
    """Write ``records`` as a manifest at ``path`` (atomically) and return counts.

    A record has ``path``, ``width``, ``height``, ``boxes`` (each with ``x0, y0, x1, y1`` in
    pixels and a ``category`` name) and ``extra`` (a dict of fields for its image entry), as the
    pipeline's ``ImageRecord``.

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
            x, y, w, h = (round(v, _DECIMALS) for v in
                          (box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0))
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


def check_classes(manifest: Manifest, classes: Sequence[str]) -> None:
    """The manifest's categories must be ``classes`` with ids 1..K in that order: detectors
    trained on different manifests, and the evaluation, rely on one class numbering."""
    expected = list(enumerate(classes, start=1))
    found = sorted(((c.get("id"), c.get("name")) for c in manifest.categories),
                   key=lambda c: c[0] if isinstance(c[0], int) else -1)
    if found != expected:
        raise DetectionError(
            f"{manifest.path}: its categories {found} (id, name) do not match the classes "
            f"{list(classes)} (expected ids 1..{len(classes)} in that order); use the classes "
            "the manifests were prepared with, or prepare them again"
        )


def check_trainable(manifest: Manifest, on_missing_class: str = "error") -> list[str]:
    """A training manifest needs images and at least one box of every class.

    Returns the classes without boxes (when ``on_missing_class`` is ``"warn"``); raises
    :class:`DetectionError` for an empty split, a manifest without boxes, or (with ``"error"``)
    a class without boxes.
    """
    if not manifest.images:
        raise DetectionError(f"{manifest.path}: the split is empty (no images); check the "
                             "dataset and run prepare again")
    per_class = manifest.boxes_per_class()
    if not any(per_class.values()):
        raise DetectionError(f"{manifest.path}: no boxes in {len(manifest.images)} images; a "
                             "detector cannot be trained without boxes")
    missing = [name for name, n in per_class.items() if n == 0]
    if missing and on_missing_class == "error":
        raise DetectionError(
            f"{manifest.path}: no boxes of class {', '.join(map(repr, missing))}; a detector "
            "trained on it cannot learn that class. Add images with it, remove it from the "
            "classes, or set detector.on_missing_class: warn"
        )
    return missing


# ------------------------------------------------------------------ files


def read_json(path: Path, missing: str, unreadable: str) -> Any:
    """The JSON document at ``path``; :class:`DetectionError` ``"<path>: <missing>"`` when the
    file does not exist, ``"<path>: <unreadable> (<why>)"`` when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectionError(f"{path}: {missing}") from None
    except json.JSONDecodeError as exc:
        raise DetectionError(f"{path}:{exc.lineno}: is not valid JSON: {exc.msg} (column "
                             f"{exc.colno}); fix the file or write it again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectionError(f"{path}: {unreadable} ({exc})") from None


def temporary_path(path: Path) -> Path:
    """Where a write of ``path`` goes first: the same folder (``os.replace`` is atomic only
    within one file system), a hidden name ending ``.tmp`` that no two writers share."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_bytes(path: str | Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` to ``path`` atomically: to a temporary file flushed to disk, then renamed
    over ``path`` (its folder is created if needed). ``data`` may be chunks, written as they
    come, so a long file need not be held whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    # os.open with 0o666 lets the umask decide the permissions, like a plain open() would;
    # tempfile.mkstemp would leave every output readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """:func:`write_bytes` for text: UTF-8, line ends written as given (no translation)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    write_bytes(path, (json.dumps(obj, indent=indent, allow_nan=False) + "\n").encode("utf-8"))


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
