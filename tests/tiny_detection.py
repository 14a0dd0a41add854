"""Tiny COCO manifests with real PNGs, for the detection tests (written by the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["person", "car", "truck", "bicycle"]
COLOURS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (40, 60, 220), 4: (230, 200, 30)}

# (category id, x, y, w, h) per image: every class present, 1-3 boxes per 64 x 48 image.
DEFAULT_BOXES = [
    [(1, 4, 6, 10, 20), (2, 30, 20, 24, 14)],
    [(3, 10, 10, 30, 24)],
    [(4, 20, 8, 16, 16), (1, 44, 20, 8, 18), (2, 2, 30, 20, 12)],
    [],
]


def write_manifest(folder: Path, name: str, boxes: list[list[tuple]] | None = None,
                   classes: list[str] | None = None, size: tuple[int, int] = (64, 48)) -> Path:
    """Write ``folder/<name>.json`` and its images ``folder/<name>/NNN.png`` (coloured boxes on
    grey noise); ``boxes[i]`` are image i's ``(category_id, x, y, w, h)``."""
    boxes = DEFAULT_BOXES if boxes is None else boxes
    classes = CLASSES if classes is None else classes
    width, height = size
    rng = np.random.default_rng(len(name))
    images, annotations = [], []
    for i, image_boxes in enumerate(boxes):
        pixels = rng.integers(90, 140, (height, width, 3)).astype(np.uint8)
        for category, x, y, w, h in image_boxes:
            pixels[y:y + h, x:x + w] = COLOURS[category]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": category, "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0})
        path = folder / name / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        images.append({"id": i + 1, "file_name": f"{name}/{i:03d}.png", "width": width,
                       "height": height})
    manifest = folder / f"{name}.json"
    manifest.write_text(json.dumps({
        "info": {"image_root": str(folder)}, "images": images, "annotations": annotations,
        "categories": [{"id": k, "name": c} for k, c in enumerate(classes, start=1)],
    }))
    return manifest


def perfect_results(manifest: Path) -> list[dict]:
    """Every ground-truth box as a detection with score 1."""
    data = json.loads(manifest.read_text())
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in data["annotations"]]
