"""FDA: Fourier Domain Adaptation (Yang and Soatto, CVPR 2020), as in the authors' code.

For each source image and style sample, one reference (target) image is drawn by the source
image's style seed and the sample index
(:meth:`~pipeline.translation.methods.reference.ReferenceSet.pick`) and resized to the source's
size (bilinear). Per colour channel, both are Fourier transformed; the source's amplitude in
the low-frequency window is replaced by the target's while the source's phase is kept; the
inverse transform, clipped to [0, 255] and rounded, is the output. So the target lends its
global colour and illumination (the lowest frequencies) and the source keeps its content.

The window, after ``fftshift``, is the square of half-width ``b = floor(min(H, W) * beta)``
around the zero frequency at ``(H // 2, W // 2)``: rows and columns ``centre - b`` to
``centre + b``, ``2b + 1`` wide, as in the authors' ``low_freq_mutate_np``. ``beta`` =
``translate.fda_beta`` (0.01 by default; the paper uses 0.01 to 0.09). With ``b = 0`` only the
zero frequency is swapped: each channel's mean becomes the target's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.translation.methods.reference import ReferenceSet


def window_half_width(height: int, width: int, beta: float) -> int:
    """``floor(min(H, W) * beta)``."""
    return int(np.floor(min(height, width) * beta))


def swap_low_frequencies(source: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """``(H, W, C)`` source and target (any real dtype, the same shape) -> ``(H, W, C)``
    float64: the source with the target's low-frequency amplitude (unclipped)."""
    height, width = source.shape[:2]
    spectrum = np.fft.fftshift(np.fft.fft2(source, axes=(0, 1)), axes=(0, 1))
    target_amplitude = np.abs(np.fft.fftshift(np.fft.fft2(target, axes=(0, 1)), axes=(0, 1)))
    amplitude, phase = np.abs(spectrum), np.angle(spectrum)
    b = window_half_width(height, width, beta)
    rows = slice(max(height // 2 - b, 0), height // 2 + b + 1)
    cols = slice(max(width // 2 - b, 0), width // 2 + b + 1)
    amplitude[rows, cols] = target_amplitude[rows, cols]
    mixed = np.fft.ifftshift(amplitude * np.exp(1j * phase), axes=(0, 1))
    return np.real(np.fft.ifft2(mixed, axes=(0, 1)))


class FourierDomainAdaptation:
    """The ``fda`` baseline (a translation method: :mod:`~pipeline.translation.methods`)."""

    name = "fda"
    device = torch.device("cpu")

    def __init__(self, reference: ReferenceSet, beta: float):
        self.reference, self.beta = reference, beta
        self.description = f"FDA (beta {beta})"

    def settings(self) -> dict:
        return {"method": self.name, "beta": self.beta, "reference": str(self.reference.manifest),
                "reference_sha256": self.reference.sha256}

    def files(self) -> dict[str, bytes]:
        return {}

    def translate(self, pixels: torch.Tensor, num_samples: int, seeds: Sequence[int]
                  ) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 -> ``(K, B, H, W, 3)`` uint8, image by image."""
        images = pixels.numpy()
        out = np.empty((num_samples, *images.shape), np.uint8)
        height, width = images.shape[1:3]
        for row, (image, seed) in enumerate(zip(images, seeds)):
            for k in range(num_samples):
                target = self.reference.load(self.reference.pick(seed, k), (width, height))
                mixed = swap_low_frequencies(image, target, self.beta)
                out[k, row] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return out
