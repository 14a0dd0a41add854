"""Records and policies shared by every dataset format.

Every reader in :mod:`pipeline.formats` yields :class:`ImageRecord` objects: one image with its
size and its boxes already mapped to the experiment's class names. The ``prepare`` stage turns a
stream of them into a COCO manifest (:mod:`pipeline.formats.coco`). Readers never hold pixels:
they read image headers only, so a dataset of any size costs the memory of its annotations.

Bad input is handled in one place so that all formats behave alike:

* :class:`DatasetError` is raised for anything that cannot be repaired. Its message names the
  file (and line, for text label files), says what is wrong and what to do.
* :class:`BadInputLog` counts what was repaired or dropped under a lenient policy
  (``on_bad_box: clip | drop``, ``on_unknown_label: ignore``) so the summary can report it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import UnidentifiedImageError

from detection.images import displayed_size, open_image

logger = logging.getLogger(__name__)

BAD_BOX_POLICIES = ("clip", "drop", "error")
UNKNOWN_LABEL_POLICIES = ("error", "ignore")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """Invalid dataset content; the message names the file and, where it applies, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Worker processes (run.workers > 1) send the error back pickled; the default rebuilds
        # it from ``args``, the formatted text alone, which does not fit ``__init__``.
        return type(self), (self.path, self.reason, self.line)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates, ``x0 <= x1``, ``y0 <= y1`` (exclusive of nothing:
    KITTI and COCO both describe the box by its extreme coordinates)."""

    x0: float
    y0: float
    x1: float
    y1: float
    category: str

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def to_xywh(self) -> list[float]:
        return [self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0]


@dataclass
class ImageRecord:
    """One image of a dataset and its boxes, as every reader yields it.

    ``file_name`` is relative to the dataset root (POSIX separators), ``path`` is absolute.
    ``extra`` carries format-specific fields a writer may need (e.g. the KITTI label file).
    """

    path: Path
    file_name: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass
class BadInputLog:
    """Counts repaired/skipped input by kind and keeps a few examples for the summary."""

    max_examples: int = 3
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    quiet: set[str] = field(default_factory=set)

    def add(self, kind: str, where: str, message: str, warn: bool = True) -> None:
        """Count one case. The first ``max_examples`` of a kind are kept and logged as warnings;
        ``warn=False`` marks a kind the config asked for (e.g. ignoring unlisted labels), which
        is only counted."""
        self.counts[kind] += 1
        if not warn:
            self.quiet.add(kind)
        shown = self.examples.setdefault(kind, [])
        if len(shown) < self.max_examples:
            shown.append(f"{where}: {message}")
            if warn:
                logger.warning("%s: %s", where, message)

    def summary_lines(self) -> list[str]:
        """Repairs and skips worth a warning, each with its examples."""
        lines = []
        for kind, n in sorted(self.counts.items()):
            if kind in self.quiet:
                continue
            lines.append(f"{kind}: {n}")
            lines.extend(f"    e.g. {ex}" for ex in self.examples.get(kind, []))
        return lines

    def quiet_summary(self) -> str:
        """One line for the kinds that were only counted: ``kind n, kind n``."""
        return ", ".join(f"{k} {self.counts[k]}" for k in sorted(self.quiet))

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def check_policies(on_unknown_label: str, on_bad_box: str) -> None:
    """Raise ``ValueError`` for a policy name no reader knows (a programming or config error)."""
    if on_unknown_label not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(
            f"on_unknown_label must be one of {UNKNOWN_LABEL_POLICIES}, got {on_unknown_label!r}"
        )
    if on_bad_box not in BAD_BOX_POLICIES:
        raise ValueError(f"on_bad_box must be one of {BAD_BOX_POLICIES}, got {on_bad_box!r}")


def sanitize_box(
    box: Box,
    width: int,
    height: int,
    policy: str,
    where: str,
    log: BadInputLog,
    min_size: float = 1.0,
) -> Box | None:
    """Apply the ``on_bad_box`` policy to a box against its image of size ``width x height``.

    A box is bad when a coordinate is not finite, when it extends outside the image, or when it
    is narrower or lower than ``min_size`` pixels. ``clip`` clips it to the image (and drops it
    if nothing of ``min_size`` remains), ``drop`` drops it, ``error`` raises
    :class:`DatasetError`. Returns the box to keep, or ``None``.
    """
    if policy not in BAD_BOX_POLICIES:
        raise ValueError(f"on_bad_box must be one of {BAD_BOX_POLICIES}, got {policy!r}")
    coords = (box.x0, box.y0, box.x1, box.y1)
    if not all(math.isfinite(c) for c in coords):
        problem = f"box {coords} of class {box.category!r} has a non-finite coordinate"
        if policy == "error":
            raise DatasetError(where, problem + "; fix the label or set data.on_bad_box: drop")
        log.add("non-finite box dropped", where, problem)
        return None
    outside = box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height
    too_small = box.width < min_size or box.height < min_size
    if not outside and not too_small:
        return box
    problem = (
        f"box [{box.x0:g}, {box.y0:g}, {box.x1:g}, {box.y1:g}] of class {box.category!r} "
        + ("lies (partly) outside the image" if outside else "has (nearly) zero area")
        + f" {width}x{height}"
    )
    if policy == "error":
        raise DatasetError(
            where, problem + "; fix the label or set data.on_bad_box to clip or drop"
        )
    if policy == "drop":
        log.add("bad box dropped", where, problem)
        return None
    clipped = Box(
        min(max(box.x0, 0.0), width),
        min(max(box.y0, 0.0), height),
        min(max(box.x1, 0.0), width),
        min(max(box.y1, 0.0), height),
        box.category,
    )
    if clipped.width < min_size or clipped.height < min_size:
        log.add("bad box dropped", where, problem + " and nothing is left after clipping")
        return None
    log.add("box clipped", where, problem)
    return clipped


def map_label(
    raw: str,
    class_map: dict[str, str | None],
    policy: str,
    where: str,
    log: BadInputLog,
    line: int | None = None,
) -> str | None:
    """Map a dataset's own label to an experiment class, or ``None`` to ignore the object.

    ``class_map`` maps raw labels to class names; a raw label mapped to ``None`` is ignored on
    purpose (e.g. KITTI ``DontCare``). A raw label absent from the map is an error under
    ``on_unknown_label: error`` and is ignored (and counted) under ``ignore``.
    """
    if raw in class_map:
        return class_map[raw]
    if policy == "error":
        known = ", ".join(sorted(class_map))
        raise DatasetError(
            where,
            f"unknown label {raw!r} (the class map knows: {known}); add it to the class map "
            "(map it to a class, or to null to ignore it) or set on_unknown_label: ignore",
            line=line,
        )
    # Ignoring unlisted labels was asked for (Cityscapes has ~30 stuff labels): count, don't warn.
    log.add(f"unmapped label ignored ({raw})", where if line is None else f"{where}:{line}",
            f"label {raw!r} is not in the class map", warn=False)
    return None


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` at any depth, sorted, following symlinked folders (once
    each: a link back up the tree is not walked again); hidden files and folders (macOS ``._``
    companions, ``.cache``) skipped."""
    found, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / f for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def by_frame(paths: Iterable[Path], frame_of: Callable[[Path], str]) -> dict[str, Path]:
    """``{frame: path}``; :class:`DatasetError` naming both files when two images are one frame
    (``a.png`` beside ``a.jpg``): which one the labels describe is the user's to say."""
    frames: dict[str, Path] = {}
    for path in paths:
        frame = frame_of(path)
        if frame in frames:
            raise DatasetError(path, f"frame {frame!r} has two images ({frames[frame].name} and "
                                     f"{path.name}); keep one")
        frames[frame] = path
    return frames


def read_image_size(path: Path, verify: bool = False) -> tuple[int, int]:
    """Return ``(width, height)`` of an image file as it is shown (its EXIF orientation
    applied, as every reader decodes it: :func:`detection.images.to_rgb`), reading only its
    header unless ``verify``.

    With ``verify`` the whole image is decoded, which is what catches truncated files.
    Raises :class:`DatasetError` naming the file when it is missing, unreadable, truncated or
    past the decompression-bomb limit.
    """
    try:
        with open_image(path) as im:
            size = displayed_size(im)
            if verify:
                im.load()
    except FileNotFoundError:
        raise DatasetError(path, "image file does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            path, f"image cannot be read ({exc}); the file is corrupt or truncated: "
            "replace it or remove it together with its labels"
        ) from None
    return size


def read_json(path: str | Path) -> object:
    """Parse a JSON file, raising :class:`DatasetError` with the line of a syntax error."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")   # a byte-order mark is not JSON
    except FileNotFoundError:
        raise DatasetError(path, "file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            path, f"is not UTF-8 text ({exc.reason} at byte {exc.start}); is it really JSON?"
        ) from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path,
            f"is not valid JSON: {exc.msg} (column {exc.colno}); fix the file or export it again",
            line=exc.lineno,
        ) from None
