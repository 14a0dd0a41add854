"""The error type of the translation engine."""

from __future__ import annotations


class TranslationError(RuntimeError):
    """A translation that cannot run as asked: unreadable image, checkpoint that does not match
    the config, output folder holding another run. The message names the file and what to do."""
