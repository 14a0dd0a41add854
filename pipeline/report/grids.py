"""Image grids: one row per selected image, ``source (with its ground-truth boxes) |
translated | style samples | a target image``.

Every thumbnail is scaled to one height (``report.thumbnail_height``), keeping its aspect
ratio. A column is as wide as its widest thumbnail, thumbnails are centred in their cells, and
cells are :data:`GAP` pixels apart. The PNG holds the thumbnails only (column titles, row names
and the box legend are text in the page), so its size is
``(sum of column widths + GAP * (columns - 1), rows * height + GAP * (rows - 1))``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from detection.images import to_rgb
from pipeline.report.figures import PALETTE

if TYPE_CHECKING:
    import torch

GAP = 4
BACKGROUND = (255, 255, 255)

Box = tuple[str, Sequence[float]]   # (class name, COCO [x, y, w, h] in pixels)


def select(names: Iterable[str], count: int, seed: int) -> list[str]:
    """``count`` of ``names`` picked by ``seed``, in sorted order.

    Each name is ranked by a hash of ``(seed, name)``: the pick depends neither on the order
    the names come in nor on Python's random module, and images added to a dataset later can
    only displace picked ones, not reshuffle them.
    """
    ranked = sorted(set(names), key=lambda n: hashlib.sha256(f"{seed}\0{n}".encode()).digest())
    return sorted(ranked[:count])


def class_colour(classes: Sequence[str], name: str) -> str:
    """The colour of a class's boxes (and of its legend entry), by the class's position."""
    return PALETTE[list(classes).index(name) % len(PALETTE)]


def thumbnail(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return to_rgb(image).resize((width, height), Image.Resampling.LANCZOS)


def with_boxes(image: Image.Image, boxes: Iterable[Box], classes: Sequence[str],
               height: int) -> Image.Image:
    """The thumbnail of ``image`` with its boxes drawn in their classes' colours, one pixel
    wide so that small objects stay visible under them."""
    thumb = thumbnail(image, height)
    sx, sy = thumb.width / image.width, thumb.height / image.height
    draw = ImageDraw.Draw(thumb)
    for name, (x, y, w, h) in boxes:
        draw.rectangle([x * sx, y * sy, (x + w) * sx, (y + h) * sy],
                       outline=class_colour(classes, name), width=1)
    return thumb


def compose(rows: Sequence[Sequence[Image.Image]]) -> Image.Image:
    """The grid of ``rows`` (each a list of same-height thumbnails, all rows the same
    length) as one RGB image; see the module docstring for its size."""
    height = rows[0][0].height
    widths = [max(row[c].width for row in rows) for c in range(len(rows[0]))]
    canvas = Image.new("RGB", (sum(widths) + GAP * (len(widths) - 1),
                               len(rows) * height + GAP * (len(rows) - 1)), BACKGROUND)
    for r, row in enumerate(rows):
        x = 0
        for width, thumb in zip(widths, row):
            canvas.paste(thumb, (x + (width - thumb.width) // 2, r * (height + GAP)))
            x += width + GAP
    return canvas


def generate_styles(checkpoint: Path, device: str | torch.device, direction: str,
                    images: dict[str, Image.Image], samples: int, seed: int, amp: bool,
                    batch_size: int) -> dict[str, list[Image.Image]]:
    """Style samples ``1..samples`` of each image (by key), from the trained translator.

    Image ``key``'s sample k reads random style values seeded with ``(style_seed(seed, key),
    k)``, the translate stage's scheme, in the precision ``amp`` selects there: they are the
    samples ``translate`` would write with ``seed`` and more samples per image (up to the float
    rounding of other batches). Images of one size are translated together, up to
    ``batch_size`` at a time (one at a time is several times slower on a CPU).
    """
    import torch

    from mguit import load_translator
    from pipeline.translation.methods.translator import autocast_dtype, to_uint8
    from pipeline.translation.plan import style_seed

    model = load_translator(checkpoint, device)
    on = next(model.parameters()).device
    dtype = autocast_dtype(on) if amp else None
    by_size: dict[tuple[int, int], list[str]] = {}
    for key, image in images.items():
        by_size.setdefault(image.size, []).append(key)
    batches = [keys[i:i + batch_size] for keys in by_size.values()
               for i in range(0, len(keys), batch_size)]
    styles = {}
    with torch.inference_mode(), torch.autocast(on.type, dtype=dtype, enabled=dtype is not None):
        for keys in batches:
            pixels = torch.from_numpy(np.stack([np.asarray(to_rgb(images[k]))
                                                for k in keys]))
            x = pixels.permute(0, 3, 1, 2).float().div(127.5).sub(1)
            out = model.translate(x.to(on), direction, num_samples=samples + 1,
                                  seeds=[style_seed(seed, k) for k in keys])
            results = to_uint8(out[1:]).numpy()          # (samples, B, H, W, 3)
            for i, key in enumerate(keys):
                styles[key] = [Image.fromarray(p) for p in results[:, i]]
    return styles
