"""Images as 8-bit RGB, decoded the same way by every reader of a manifest.

``PIL.Image.convert("RGB")`` is right for every 8-bit mode (1, L, LA, P, PA, RGBA, CMYK,
YCbCr, ...) but clips higher bit depths: a 16-bit greyscale PNG (mode ``I;16`` or ``I``) comes
out all white. Those are scaled to 8 bits instead (0..65535 -> 0..255); float images (mode
``F``) have no agreed range and are refused.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as a new 8-bit RGB image (a copy: the file may be closed after this);
    :class:`ValueError` for a float image."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        raise ValueError("32-bit float image (PIL mode F) has no 8-bit range: save it as an 8- "
                         "or 16-bit image")
    return image.convert("RGB")
