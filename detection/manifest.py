"""COCO manifests as the detectors read them: loading, image paths, checks with clear errors.

A manifest is a COCO detection JSON file (the pipeline's ``prepare`` and ``translate`` stages
write them) with the folder its ``file_name`` entries are relative to in ``info.image_root``;
a relative ``image_root`` (``"."`` for a translated set) is relative to the manifest's folder.
Category ids are 1..K in the order of the experiment's classes, in every manifest of a run.
This module reads them with :mod:`json` only, so the package stays independent of the pipeline.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detection.errors import DetectionError
from detection.files import read_json


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
    manifest = Manifest(path=path, image_root=path.parent / root, images=data["images"],
                        annotations=data["annotations"], categories=data["categories"])
    if classes is not None:
        check_classes(manifest, classes)
    return manifest


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
