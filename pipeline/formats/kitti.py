"""KITTI object detection labels: read them as :class:`ImageRecord`, write and copy label files.

On-disk layout (the ``training`` folder of the KITTI object benchmark)::

    <root>/image_2/NNNNNN.png      one image per frame (.jpg is accepted too)
    <root>/label_2/NNNNNN.txt      its objects, one per line; an empty file = no objects

A label line has 15 space-separated fields, a 16th ``score`` in detection result files::

    type truncated occluded alpha left top right bottom height width length x y z rotation_y [score]
    Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59

``type`` is one of Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc, DontCare;
``left top right bottom`` is the 2D box in 0-based pixel coordinates. ``DontCare`` regions carry
-1 / -10 / -1000 placeholders in the 3D fields. Which types become which experiment class is the
config's class map, not this module's business.

The frame id is the file name without extension (``"000042"``); frames are listed in sorted id
order, and the train/val split of the source domain is made here on frame ids.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from detection.manifest import write_bytes, write_text
from pipeline.formats.common import (
    IMAGE_SUFFIXES,
    BadInputLog,
    Box,
    DatasetError,
    ImageRecord,
    check_policies,
    map_label,
    read_image_size,
    sanitize_box,
)

IMAGE_DIR = "image_2"
LABEL_DIR = "label_2"

# Field order of a label line; "score" only exists in result files.
FIELDS = (
    "type", "truncated", "occluded", "alpha", "left", "top", "right", "bottom",
    "height", "width", "length", "x", "y", "z", "rotation_y",
)


@dataclass
class KittiObject:
    """One line of a KITTI label file. Dimensions are metres, angles radians, box pixels."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    left: float
    top: float
    right: float
    bottom: float
    height: float
    width: float
    length: float
    x: float
    y: float
    z: float
    rotation_y: float
    score: float | None = None


DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_label_line(line: str, path: str | Path, lineno: int) -> KittiObject:
    """Parse one label line; ``path`` and ``lineno`` only serve the error message."""
    tokens = line.split()
    if len(tokens) not in (len(FIELDS), len(FIELDS) + 1):
        raise DatasetError(
            path,
            f"found {len(tokens)} fields, expected 15 ({' '.join(FIELDS)}) or 16 with a "
            "trailing score; fix the line or regenerate the label file",
            line=lineno,
        )
    values: dict[str, str | float | int] = {"type": tokens[0]}
    for name, token in zip(FIELDS[1:] + ("score",), tokens[1:]):
        # Not float() alone: it also reads "1_0.00" (as 10.0), "nan" and "inf".
        if not DECIMAL.fullmatch(token):
            raise DatasetError(
                path, f"field '{name}' must be a number, found {token!r}", line=lineno
            )
        number = float(token)
        if name == "occluded":
            if not number.is_integer():
                raise DatasetError(
                    path,
                    f"field 'occluded' must be an integer (0-3, -1 for DontCare), found {token!r}",
                    line=lineno,
                )
            number = int(number)
        values[name] = number
    return KittiObject(**values)


def format_label_line(obj: KittiObject) -> str:
    """Format an object as a label line (without newline) the way the official files do.

    ``occluded`` is an integer, every other number has 2 decimals (a score, if present, 4, so
    that close detections keep their ranking). Parsing the result gives back the values rounded
    to that printed precision: a line read from an official file is written back unchanged,
    except that integer placeholders such as ``-1`` become ``-1.00``.
    """
    if not obj.type or any(c.isspace() for c in obj.type):
        raise ValueError(f"KITTI type must be one word, got {obj.type!r}")
    numbers = [getattr(obj, name) for name in FIELDS[4:]]
    text = f"{obj.type} {obj.truncated:.2f} {obj.occluded:d} {obj.alpha:.2f} " + " ".join(
        f"{v:.2f}" for v in numbers
    )
    if obj.score is not None:
        text += f" {obj.score:.4f}"
    return text


def _read_numbered(path: Path) -> list[tuple[int, KittiObject]]:
    """The objects of a label file with their 1-based line numbers; blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")   # a leading byte-order mark is dropped
    except FileNotFoundError:
        raise DatasetError(path, "label file does not exist") from None
    except UnicodeDecodeError:
        raise DatasetError(path, "is not a text file; a KITTI label file is plain text") from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror})") from None
    return [
        (lineno, parse_label_line(line, path, lineno))
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def read_label_file(path: str | Path) -> list[KittiObject]:
    """All objects of a label file, in file order. Blank lines are skipped; an empty file is an
    image without objects."""
    return [obj for _, obj in _read_numbered(Path(path))]


def write_label_file(path: str | Path, objects: Iterable[KittiObject]) -> None:
    """Write ``objects`` as a label file (one :func:`format_label_line` per line), atomically."""
    write_text(path, "".join(format_label_line(obj) + "\n" for obj in objects))


def write_kitti(out_root: str | Path, frame_id: str, objects: Iterable[KittiObject]) -> Path:
    """Write ``<out_root>/label_2/<frame_id>.txt`` (creating ``label_2``); returns its path."""
    path = Path(out_root) / LABEL_DIR / f"{frame_id}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_label_file(path, objects)
    return path


def copy_label_file(src: str | Path, dst: str | Path) -> None:
    """Copy a label file byte for byte (atomically), so translated data keeps the source labels
    exactly, formatting included. Creates the destination folder."""
    try:
        data = Path(src).read_bytes()
    except FileNotFoundError:
        raise DatasetError(src, "label file does not exist") from None
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(dst, data)


def _more(items: list[str]) -> str:
    """`` (and N more: a, b, c, ...)`` for an error message about the first of ``items``."""
    rest = items[1:]
    if not rest:
        return ""
    shown = ", ".join(rest[:5]) + (", ..." if len(rest) > 5 else "")
    return f" (and {len(rest)} more: {shown})"


def _index(root: Path) -> dict[str, Path]:
    """Map frame id -> image path after checking that images and label files pair up."""
    if not root.is_dir():
        raise DatasetError(
            root,
            "KITTI root does not exist or is not a folder; point it at the folder holding "
            f"{IMAGE_DIR}/ and {LABEL_DIR}/ (the benchmark's 'training' folder)",
        )
    image_dir, label_dir = root / IMAGE_DIR, root / LABEL_DIR
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetError(
                folder,
                f"folder is missing; a KITTI root holds {IMAGE_DIR}/ (images) and "
                f"{LABEL_DIR}/ (label files)",
            )
    images: dict[str, Path] = {}
    for path in sorted(image_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            raise DatasetError(
                path,
                f"frame {path.stem!r} has two images ({images[path.stem].name} and "
                f"{path.name}); keep one",
            )
        images[path.stem] = path
    if not images:
        raise DatasetError(
            image_dir, f"contains no images ({', '.join(IMAGE_SUFFIXES)}); check the KITTI root"
        )
    labels = {
        path.stem
        for path in label_dir.iterdir()
        if path.suffix == ".txt" and not path.name.startswith(".")
    }
    unlabelled = sorted(set(images) - labels)
    if unlabelled:
        first = unlabelled[0]
        raise DatasetError(
            images[first],
            f"image has no label file {LABEL_DIR}/{first}.txt{_more(unlabelled)}; add it (an "
            "empty file means an image without objects) or remove the image",
        )
    orphans = sorted(labels - set(images))
    if orphans:
        raise DatasetError(
            label_dir / f"{orphans[0]}.txt",
            f"label file has no image in {IMAGE_DIR}/{_more(orphans)}; add the image or remove "
            "the label file",
        )
    return images


def list_frames(root: str | Path) -> list[str]:
    """Sorted frame ids of a KITTI root, after checking that every image has a label file and
    every label file an image."""
    return sorted(_index(Path(root)))


def read_kitti(
    root: str | Path,
    frame_ids: Iterable[str] | None = None,
    *,
    class_map: dict[str, str | None],
    on_unknown_label: str = "error",
    on_bad_box: str = "clip",
    log: BadInputLog,
    verify_images: bool = False,
    min_box_size: float = 1.0,
) -> Iterator[ImageRecord]:
    """Yield one :class:`ImageRecord` per frame, in the order of ``frame_ids`` (default: all
    frames, sorted).

    Object types are mapped with ``class_map`` (see :func:`map_label`; objects mapped to ``None``
    are skipped), their ``left top right bottom`` boxes checked against the image size with
    :func:`sanitize_box`. ``file_name`` is ``image_2/<file>`` relative to ``root``;
    ``extra`` holds ``frame_id`` and ``label_path`` (absolute, as a string).

    The layout is checked when this function is called; a frame's label file and image header
    are read when the iterator reaches it, and errors in them are raised then.
    """
    check_policies(on_unknown_label, on_bad_box)
    root = Path(os.path.abspath(root))
    images = _index(root)
    frames = sorted(images) if frame_ids is None else list(frame_ids)
    unknown = [frame for frame in frames if frame not in images]
    if unknown:
        raise DatasetError(
            root / IMAGE_DIR,
            f"frame {unknown[0]!r} was asked for but has no image{_more(unknown)}; "
            "frame ids are image file names without extension",
        )
    return _records(
        root, images, frames, class_map, on_unknown_label, on_bad_box, log, verify_images,
        min_box_size,
    )


def _records(
    root: Path,
    images: dict[str, Path],
    frames: list[str],
    class_map: dict[str, str | None],
    on_unknown_label: str,
    on_bad_box: str,
    log: BadInputLog,
    verify_images: bool,
    min_box_size: float,
) -> Iterator[ImageRecord]:
    for frame in frames:
        image = images[frame]
        label_path = root / LABEL_DIR / f"{frame}.txt"
        width, height = read_image_size(image, verify=verify_images)
        boxes = []
        for lineno, obj in _read_numbered(label_path):
            category = map_label(
                obj.type, class_map, on_unknown_label, str(label_path), log, line=lineno
            )
            if category is None:
                continue
            box = sanitize_box(
                Box(obj.left, obj.top, obj.right, obj.bottom, category),
                width, height, on_bad_box, f"{label_path}:{lineno}", log, min_box_size,
            )
            if box is not None:
                boxes.append(box)
        yield ImageRecord(
            path=image,
            file_name=image.relative_to(root).as_posix(),
            width=width,
            height=height,
            boxes=boxes,
            extra={"frame_id": frame, "label_path": str(label_path)},
        )


def split_frames(
    frame_ids: Iterable[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split frame ids into sorted ``(train, val)`` lists, reproducibly.

    Each frame is ranked by a hash of ``(seed, frame id)`` and the lowest ``val_fraction * n``
    (rounded half up) go to val, so the split depends on the seed and the set of ids only, not
    on their order or on the platform. With ``val_fraction > 0`` and at least two frames, val
    gets at least one frame and train keeps at least one.
    """
    ids = sorted(frame_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("frame ids must be unique")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(ids)
    if n < 2 or val_fraction == 0.0:
        n_val = 0
    else:
        n_val = min(max(math.floor(val_fraction * n + 0.5), 1), n - 1)
    ranked = sorted(ids, key=lambda frame: hashlib.sha256(f"{seed}\0{frame}".encode()).digest())
    val = set(ranked[:n_val])
    return [f for f in ids if f not in val], [f for f in ids if f in val]


def _parse_frame_list(path: Path) -> list[tuple[int, str]]:
    """``(line number, frame id)`` of a frame list file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(path, "frame list file does not exist") from None
    except (UnicodeDecodeError, OSError):
        raise DatasetError(path, "frame list cannot be read as text") from None
    entries: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 1:
            raise DatasetError(
                path, f"found {len(words)} words, expected one frame id per line", line=lineno
            )
        frame = words[0]
        if frame in seen:
            raise DatasetError(
                path, f"frame {frame!r} is already listed on line {seen[frame]}", line=lineno
            )
        seen[frame] = lineno
        entries.append((lineno, frame))
    return entries


def read_frame_list(path: str | Path) -> list[str]:
    """Frame ids of a list file: one id per line; blank lines and ``#`` comments are ignored."""
    return [frame for _, frame in _parse_frame_list(Path(path))]


def split_by_list(
    frame_ids: Iterable[str], val_ids: Iterable[str], list_path: str | Path
) -> tuple[list[str], list[str]]:
    """Sorted ``(train, val)``: ``val_ids`` (read from ``list_path``) and the rest.

    Raises :class:`DatasetError` naming the list file and line for an id that is not a frame of
    the dataset, and when the list is empty or leaves no frame for training.
    """
    known = set(frame_ids)
    val = set(val_ids)
    if val - known:
        lines = {frame: lineno for lineno, frame in _parse_frame_list(Path(list_path))}
        unknown = sorted(val - known, key=lambda frame: (lines.get(frame, 0), frame))
        bad = unknown[0]
        hint = ""
        for guess in (Path(bad).stem, bad.zfill(6)):
            if guess != bad and guess in known:
                hint = f" (did you mean {guess!r}?)"
        example = f" such as {min(known)!r}" if known else ""
        raise DatasetError(
            list_path,
            f"frame {bad!r} is not in the dataset{hint}{_more(unknown)}; list frame ids, i.e. "
            f"image file names without extension{example}",
            line=lines.get(bad),
        )
    if not val:
        raise DatasetError(list_path, "the validation frame list is empty")
    if val == known:
        raise DatasetError(
            list_path, "the validation list holds every frame; none would be left for training"
        )
    return sorted(known - val), sorted(val)
