"""The one exception type of this package, and the short form of other libraries' errors."""

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


def brief(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut at ``limit`` characters: torch's load errors
    run to pages (every key of a state dict, or a paragraph on ``weights_only``)."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return text if len(text) <= limit else text[:limit] + " ..."
