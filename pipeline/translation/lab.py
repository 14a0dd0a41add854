"""sRGB <-> CIE L*a*b* (D65 white), in numpy: the colour space of Reinhard colour transfer.

The standard definitions (IEC 61966-2-1 for sRGB, CIE 15 for L*a*b*): sRGB values are
linearised, mapped to XYZ by the sRGB primaries' matrix, divided by the D65 white point and
compressed by the cube-root function ``f``. White ``(255, 255, 255)`` is ``L = 100, a = b = 0``;
pure red ``(255, 0, 0)`` is about ``(53.24, 80.09, 67.20)``. Computed in float32, a conversion
there and back returns every 8-bit colour unchanged.
"""

from __future__ import annotations

import numpy as np

# Linear sRGB -> XYZ (D65), and the D65 white point in XYZ (Y = 1).
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29     # where f switches from the cube root to its linear toe


def srgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 sRGB -> ``(..., 3)`` float32 ``(L, a, b)``; L in [0, 100]."""
    rgb = pixels.astype(np.float32) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ (RGB_TO_XYZ / WHITE_D65[:, None]).T.astype(np.float32)
    f = np.where(xyz > _DELTA ** 3, np.cbrt(xyz), xyz / (3 * _DELTA ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1).astype(np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """``(..., 3)`` float ``(L, a, b)`` -> ``(..., 3)`` uint8 sRGB, colours outside the sRGB
    gamut clipped, rounded to the nearest value."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4 / 29)) * WHITE_D65
    linear = np.clip(xyz @ XYZ_TO_RGB.T, 0, 1)
    rgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
