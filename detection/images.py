"""Images as 8-bit RGB, decoded the same way by every reader of a manifest.

``PIL.Image.convert("RGB")`` is right for every 8-bit mode (1, L, LA, P, PA, RGBA, CMYK,
YCbCr, ...) but clips higher bit depths: a 16-bit greyscale PNG (mode ``I;16`` or ``I``) comes
out all white. Those are scaled to 8 bits instead (0..65535 -> 0..255); float images (mode
``F``) have no agreed range and are refused.

Every reader opens its files with :func:`open_image` and decodes with :func:`to_rgb`, so all of
them see the same pixels: the frame the file's EXIF orientation shows (the frame viewers,
FiftyOne and a dataset's boxes use), and no image past Pillow's decompression-bomb limit.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


ORIENTATION_TAG = 0x0112
#: How to turn the stored pixels upright, per EXIF orientation (2-8; 1 is upright).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
#: EXIF orientations that swap width and height (rotated by 90 or 270 degrees).
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def open_image(source: str | Path | BinaryIO) -> Image.Image:
    """``Image.open(source)``, with an image larger than ``PIL.Image.MAX_IMAGE_PIXELS`` (a
    decompression bomb, or more pixels than a dataset image should have) refused as
    :class:`ValueError` saying the limit, instead of Pillow's warning or its own error type."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"too many pixels to decode safely ({exc}); resize the image "
                             "below the limit (PIL.Image.MAX_IMAGE_PIXELS)") from None


def orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when it has none or an invalid one.

    Read from the EXIF block the header carries (JPEG's APP1, PNG's eXIf before the pixel data),
    never by decoding: ``Image.getexif`` decodes a whole PNG to look for a late eXIf chunk, and
    the size a dataset is prepared with must come from the header alone.
    """
    raw = image.info.get("exif")
    if not isinstance(raw, bytes | bytearray) or not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(bytes(raw))
    except Exception:   # noqa: BLE001 - a malformed EXIF block is no orientation, as viewers read it
        return 1
    value = exif.get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and value in UPRIGHT else 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as the image is shown: its stored size, swapped for EXIF orientations
    5-8 (read from the header; nothing is decoded)."""
    width, height = image.size
    return (height, width) if orientation(image) in TRANSPOSING_ORIENTATIONS else (width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as a new 8-bit RGB image (a copy: the file may be closed after this), turned
    to the frame its EXIF orientation shows; :class:`ValueError` for a float image."""
    turn = UPRIGHT.get(orientation(image))
    if turn is not None:
        image = image.transpose(turn)
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        raise ValueError("32-bit float image (PIL mode F) has no 8-bit range: save it as an 8- "
                         "or 16-bit image")
    return image.convert("RGB")
