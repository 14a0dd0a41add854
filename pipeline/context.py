"""What the runner and the stages share: the context every stage function receives and the
error a stage raises."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config


class StageError(RuntimeError):
    """A stage cannot run as asked (inputs missing, unknown name, bad data)."""


@dataclass(frozen=True)
class RunContext:
    """The validated config of a run and the paths derived from it (DESIGN.md section 8)."""

    config: Config

    @property
    def run_dir(self) -> Path:
        return self.config.run.path

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def manifest(self, split: str) -> Path:
        """The COCO manifest of ``split`` (source_train, source_val, target_train, target_val)."""
        return self.data_dir / f"{split}.json"
