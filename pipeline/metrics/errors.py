"""The metrics package's error, and a short form of the errors of the libraries it calls."""


class MetricsError(RuntimeError):
    """A metric cannot be computed as asked: an unusable weights file, nothing to compute."""


def brief(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut at ``limit`` characters: torch's load errors
    run to pages (every key of a state dict)."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return text if len(text) <= limit else text[:limit] + " ..."
