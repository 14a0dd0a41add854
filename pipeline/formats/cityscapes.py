"""Cityscapes fine annotations (``gtFine`` polygons) read as boxes.

On-disk layout (``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` unpacked into
one root)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json

A polygons file is ``{"imgHeight": H, "imgWidth": W, "objects": [{"label": "car",
"polygon": [[x, y], ...]}, ...]}``; vertices are integer pixel coordinates. Each object becomes
the tight box of its polygon (:func:`polygon_to_box`). Objects whose label ends in ``group``
(``cargroup``, ``persongroup``, ...) mark crowds of instances too close to separate; they are
never boxes, whatever the class map says. Objects flagged ``"deleted"`` by the annotation tool
are skipped, as Cityscapes' own scripts do.

Annotators place vertices on or past the image border on purpose, so polygons are always
clipped to the image (and counted in the summary, without a warning); ``on_bad_box`` applies to
what is left: a polygon of fewer than three vertices, one with nothing inside the image, or a
box smaller than ``min_box_size``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.formats.common import (
    BadInputLog,
    Box,
    DatasetError,
    ImageRecord,
    by_frame,
    check_policies,
    image_files,
    map_label,
    read_image_size,
    read_json,
    sanitize_box,
)

IMAGE_DIR = "leftImg8bit"
ANNOTATION_DIR = "gtFine"
IMAGE_TAG = "_leftImg8bit"
POLYGONS_TAG = "_gtFine_polygons.json"


def polygon_to_box(
    polygon: Sequence[Sequence[float]], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """Tight box ``(x0, y0, x1, y1)`` of a polygon, clipped to a ``width x height`` image.

    A vertex ``(x, y)`` names a pixel, and pixel ``x`` covers ``[x, x + 1)`` (Cityscapes'
    rasteriser fills the vertex pixels), so the box of the pixels the polygon covers is
    ``x0 = min x``, ``x1 = max x + 1`` (and the same for y): vertices at x = 10 and 20 give a
    box 11 pixels wide, and a single vertex a 1x1 box. Returns ``None`` for an empty polygon or
    one with nothing inside the image.
    """
    if len(polygon) == 0:
        return None
    xs = [vertex[0] for vertex in polygon]
    ys = [vertex[1] for vertex in polygon]
    x0, x1 = _clamp(min(xs), width), _clamp(max(xs) + 1, width)
    y0, y1 = _clamp(min(ys), height), _clamp(max(ys) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _crosses_border(polygon: Sequence[Sequence[float]], width: int, height: int) -> bool:
    """Whether a vertex names a pixel outside the image (``x`` outside ``[0, width)``...)."""
    return any(not (0 <= x < width and 0 <= y < height) for x, y, *_ in polygon)


def _clamp(value: float, upper: int) -> float:
    return float(min(max(value, 0), upper))


def _index(root: Path, split: str) -> list[tuple[Path, Path]]:
    """Sorted ``(image, polygons json)`` pairs of a split, after checking that they pair up."""
    if not root.is_dir():
        raise DatasetError(
            root,
            "Cityscapes root does not exist or is not a folder; point it at the folder holding "
            f"{IMAGE_DIR}/ and {ANNOTATION_DIR}/",
        )
    image_dir, annotation_dir = root / IMAGE_DIR / split, root / ANNOTATION_DIR / split
    for folder in (image_dir, annotation_dir):
        if not folder.is_dir():
            raise DatasetError(
                folder,
                f"folder is missing; a Cityscapes root holds {IMAGE_DIR}/{split}/<city>/ "
                f"(from leftImg8bit_trainvaltest.zip) and {ANNOTATION_DIR}/{split}/<city>/ "
                "(from gtFine_trainvaltest.zip)",
            )
    # Keyed by "<city>/<city>_<seq>_<frame>", the part both file names share. Hidden files
    # are skipped: archives unpacked from macOS carry "._<name>" companions of every file.
    images = by_frame(city_images(image_dir),
                      lambda path: f"{path.parent.name}/{path.stem[: -len(IMAGE_TAG)]}")
    if not images:
        raise DatasetError(
            image_dir, f"contains no <city>/*{IMAGE_TAG}.png images; check the Cityscapes root"
        )
    annotations = {
        f"{path.parent.name}/{path.name[: -len(POLYGONS_TAG)]}": path
        for path in annotation_dir.glob(f"*/*{POLYGONS_TAG}")
        if not path.name.startswith(".")
    }
    unannotated = sorted(set(images) - set(annotations))
    if unannotated:
        key = unannotated[0]
        raise DatasetError(
            images[key],
            f"image has no polygons file {annotation_dir / (key + POLYGONS_TAG)}"
            f"{_and_more(len(unannotated))}; add it or remove the image",
        )
    orphans = sorted(set(annotations) - set(images))
    if orphans:
        key = orphans[0]
        raise DatasetError(
            annotations[key],
            f"polygons file has no image {image_dir / (key + IMAGE_TAG)}.png"
            f"{_and_more(len(orphans))}; add the image or remove the file",
        )
    return [(images[key], annotations[key]) for key in sorted(images)]


def city_images(image_dir: Path) -> list[Path]:
    """The ``<city>/*_leftImg8bit.<png|jpg>`` images of a split folder; :class:`DatasetError`
    for an image anywhere else under it (it would be left out without a word)."""
    images = []
    for path in image_files(image_dir):
        if len(path.relative_to(image_dir).parts) != 2:
            raise DatasetError(path, f"image is not in a city folder ({image_dir}/<city>/); "
                                     "move it into one or remove it")
        if path.stem.endswith(IMAGE_TAG):
            images.append(path)
    return images


def _and_more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


def list_frames(root: str | Path, split: str) -> list[Path]:
    """Sorted absolute image paths of a split, after checking that every image has a polygons
    file and every polygons file an image."""
    return [image for image, _ in _index(Path(os.path.abspath(root)), split)]


def read_cityscapes(
    root: str | Path,
    split: str,
    *,
    class_map: dict[str, str | None],
    on_unknown_label: str = "ignore",
    on_bad_box: str = "clip",
    log: BadInputLog,
    verify_images: bool = False,
    min_box_size: float = 1.0,
) -> Iterator[ImageRecord]:
    """Yield one :class:`ImageRecord` per image of ``split``, sorted by city and name.

    Labels are mapped with ``class_map`` (unknown ones ignored by default: Cityscapes has some
    30 labels and a detection experiment wants a few). The image size is read from the image
    header and must agree with ``imgWidth``/``imgHeight`` of the polygons file. ``file_name`` is
    relative to ``root``; ``extra`` holds ``frame_id`` (``<city>_<seq>_<frame>``) and
    ``polygons_path`` (absolute, as a string).

    The layout is checked when this function is called; a frame's files are read when the
    iterator reaches it, and errors in them are raised then.
    """
    check_policies(on_unknown_label, on_bad_box)
    root = Path(os.path.abspath(root))
    pairs = _index(root, split)
    return _records(
        root, pairs, class_map, on_unknown_label, on_bad_box, log, verify_images, min_box_size
    )


def _records(
    root: Path,
    pairs: list[tuple[Path, Path]],
    class_map: dict[str, str | None],
    on_unknown_label: str,
    on_bad_box: str,
    log: BadInputLog,
    verify_images: bool,
    min_box_size: float,
) -> Iterator[ImageRecord]:
    for image, polygons_path in pairs:
        objects = _read_objects(polygons_path, image, verify_images)
        width, height = objects.width, objects.height
        boxes = []
        for index, label, polygon in objects.items:
            if label.endswith("group"):
                continue
            where = f"{polygons_path}: object {index} ({label})"
            category = map_label(label, class_map, on_unknown_label, where, log)
            if category is None:
                continue
            if 0 < len(polygon) < 3:
                problem = (f"polygon has {len(polygon)} vertices: an object outline needs at "
                           "least 3")
                if on_bad_box == "error":
                    raise DatasetError(
                        where, problem + "; fix it or set data.on_bad_box to clip or drop")
                log.add("degenerate polygon dropped", where, problem)
                continue
            coords = polygon_to_box(polygon, width, height)
            if coords is not None and _crosses_border(polygon, width, height):
                # Annotators draw past the border on purpose: counted, not warned about.
                log.add("polygon clipped to the image", where,
                        f"vertices outside the image {width}x{height}", warn=False)
            if coords is None:
                problem = f"polygon is empty or lies outside the image {width}x{height}"
                if on_bad_box == "error":
                    raise DatasetError(
                        where, problem + "; fix it or set data.on_bad_box to clip or drop"
                    )
                log.add("empty polygon dropped", where, problem)
                continue
            box = sanitize_box(
                Box(*coords, category), width, height, on_bad_box, where, log, min_box_size
            )
            if box is not None:
                boxes.append(box)
        yield ImageRecord(
            path=image,
            file_name=image.relative_to(root).as_posix(),
            width=width,
            height=height,
            boxes=boxes,
            extra={
                "frame_id": image.stem[: -len(IMAGE_TAG)],
                "polygons_path": str(polygons_path),
            },
        )


@dataclass
class _Objects:
    """The checked content of a polygons file: image size and ``(index, label, polygon)``."""

    width: int
    height: int
    items: list[tuple[int, str, list]]


def _read_objects(path: Path, image: Path, verify_image: bool) -> _Objects:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise DatasetError(path, "is not a Cityscapes polygons file: it needs an 'objects' list")
    size = []
    for key in ("imgWidth", "imgHeight"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise DatasetError(path, f"'{key}' must be a positive integer, got {value!r}")
        size.append(value)
    width, height = read_image_size(image, verify=verify_image)
    if (width, height) != tuple(size):
        raise DatasetError(
            path,
            f"says the image is {size[0]}x{size[1]} (imgWidth x imgHeight) but {image} is "
            f"{width}x{height}; the image and its polygons do not belong together "
            "(unpack both from the same Cityscapes release)",
        )
    items = []
    for index, obj in enumerate(data["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            raise DatasetError(path, f"object {index} has no 'label' string")
        polygon = obj.get("polygon")
        if not _is_polygon(polygon):
            raise DatasetError(
                path,
                f"object {index} ({obj['label']}): 'polygon' must be a list of [x, y] number "
                f"pairs, got {_short(polygon)}",
            )
        if not obj.get("deleted"):
            items.append((index, obj["label"], polygon))
    return _Objects(width, height, items)


def _is_polygon(polygon: object) -> bool:
    return isinstance(polygon, list) and all(
        isinstance(vertex, list)
        and len(vertex) == 2
        and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in vertex
        )
        for vertex in polygon
    )


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
