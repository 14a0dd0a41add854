"""The one exception type of this package."""

from __future__ import annotations

DETECTRON2_MISSING = (
    "Detectron2 is not installed; install it following "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html "
    "or set detector.backend: torchvision"
)


class DetectionError(ValueError):
    """Input a detector cannot use (a manifest, a checkpoint, a setting, a missing backend).

    The message names the file and says what to do.
    """


def require_detectron2() -> None:
    """Raise :class:`DetectionError` with installation advice when Detectron2 cannot be imported."""
    try:
        import detectron2  # noqa: F401
    except ImportError:
        raise DetectionError(DETECTRON2_MISSING) from None
