"""COCO manifests as the detectors read them: loading, image paths, checks with clear errors.

A manifest is a COCO detection JSON file (the pipeline's ``prepare`` and ``translate`` stages
write them) with the folder its ``file_name`` entries are relative to in ``info.image_root``;
a relative ``image_root`` (``"."`` for a translated set) is relative to the manifest's folder.
Category ids are 1..K in the order of the experiment's classes, in every manifest of a run.
This module reads them with :mod:`json` only, so the package stays independent of the pipeline.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detection.errors import DetectionError


@dataclass
class Manifest:
    """A loaded manifest: its lists as in the JSON, and its absolute image root."""

    path: Path
    image_root: Path
    images: list[dict]
    annotations: list[dict]
    categories: list[dict]

    @property
    def classes(self) -> list[str]:
        """Category names in category id order."""
        return [c["name"] for c in sorted(self.categories, key=lambda c: c["id"])]

    def image_path(self, image: dict) -> Path:
        """Absolute path of an entry of :attr:`images` (an absolute ``file_name`` is kept)."""
        return self.image_root / image["file_name"]

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


def load_manifest(path: str | Path, classes: Sequence[str] | None = None) -> Manifest:
    """Read a manifest; with ``classes``, check that its categories are exactly those, as ids
    1..K in that order. Raises :class:`DetectionError` naming the file."""
    path = Path(os.path.abspath(path))
    data = read_json(path, "manifest does not exist", "not a readable COCO JSON file")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise DetectionError(f"{path}: not a COCO detection file (needs lists 'images', "
                             "'annotations' and 'categories')")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    root = info.get("image_root")
    if not isinstance(root, str):
        raise DetectionError(f"{path}: has no info.image_root (the folder that file names are "
                             "relative to); write manifests with the pipeline's prepare stage")
    _check_entries(path, data)
    manifest = Manifest(path=path, image_root=path.parent / root, images=data["images"],
                        annotations=data["annotations"], categories=data["categories"])
    if classes is not None:
        check_classes(manifest, classes)
    return manifest


def _check_entries(path: Path, data: dict) -> None:
    """Every entry has the fields a reader relies on, of the right type; ids are unique and
    referenced ids exist; boxes are four finite numbers of non-negative size."""
    category_ids = set()
    for index, category in enumerate(data["categories"]):
        where = f"categories[{index}]"
        category_ids.add(_field(category, "id", int, path, where))
        _field(category, "name", str, path, where)
    image_ids = set()
    for index, image in enumerate(data["images"]):
        where = f"images[{index}]"
        image_id = _field(image, "id", int, path, where)
        _field(image, "file_name", str, path, where)
        if _field(image, "width", int, path, where) <= 0 or \
                _field(image, "height", int, path, where) <= 0:
            raise DetectionError(f"{path}: {where}: width and height must be positive")
        if image_id in image_ids:
            raise DetectionError(f"{path}: {where}: image id {image_id} appears twice")
        image_ids.add(image_id)
    for index, annotation in enumerate(data["annotations"]):
        where = f"annotations[{index}]"
        if _field(annotation, "image_id", int, path, where) not in image_ids:
            raise DetectionError(f"{path}: {where}: image_id {annotation['image_id']} is not in "
                                 "'images'")
        if _field(annotation, "category_id", int, path, where) not in category_ids:
            raise DetectionError(f"{path}: {where}: category_id {annotation['category_id']} is "
                                 "not in 'categories'")
        bbox = _field(annotation, "bbox", list, path, where)
        if (len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) for v in bbox)
                or bbox[2] < 0 or bbox[3] < 0):
            raise DetectionError(f"{path}: {where}: bbox must be [x, y, width, height] with "
                                 f"width, height >= 0, got {str(bbox)[:60]}")


def _field(entry: object, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(entry, dict):
        raise DetectionError(f"{path}: {where} must be a JSON object")
    if key not in entry:
        raise DetectionError(f"{path}: {where}: {key!r} is missing")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DetectionError(f"{path}: {where}: {key!r} must be a {kind.__name__}, got "
                             f"{str(value)[:60]!r}")
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DetectionError(f"{path}: {unreadable} ({exc})") from None


def temporary_path(path: Path) -> Path:
    """Where a write of ``path`` goes first: the same folder (``os.replace`` is atomic only
    within one file system), a hidden name ending ``.tmp`` that no two writers share."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: to a temporary file flushed to disk, then renamed
    over ``path`` (its folder is created if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    # os.open with 0o666 lets the umask decide the permissions, like a plain open() would;
    # tempfile.mkstemp would leave every output readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
