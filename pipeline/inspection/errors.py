"""The error type of the inspection package."""

from __future__ import annotations


class InspectionError(RuntimeError):
    """A run that cannot be inspected or exported as asked (not a run directory, database that
    does not start, output folder in the way). The message names the file and what to do."""
