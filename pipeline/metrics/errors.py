"""The metrics package's error."""


class MetricsError(RuntimeError):
    """A metric cannot be computed as asked: an unusable weights file, nothing to compute."""
