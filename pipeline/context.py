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
    """The validated config of a run and the paths derived from it (DESIGN.md section 8).

    ``workdir`` moves the outputs of the stages after ``prepare`` elsewhere: pseudo-labelling's
    earlier rounds run the translator and detector stages in ``runs/<name>/pseudo_round<r>/``,
    on the run's own manifests.
    """

    config: Config
    workdir: Path | None = None
    # Progress bars, drawn only where stderr is a terminal (tqdm's disable=None); False: none.
    progress: bool = True

    @property
    def run_dir(self) -> Path:
        return self.workdir or self.config.run.path

    @property
    def data_dir(self) -> Path:
        return self.config.run.path / "data"

    def manifest(self, split: str) -> Path:
        """The COCO manifest of ``split`` (source_train, source_val, target_train, target_val)."""
        return self.data_dir / f"{split}.json"

    def pseudo_labels(self) -> Path:
        """This context's pseudo-labelled target_train (``data.target.labels: pseudo``)."""
        return self.run_dir / "data" / "target_train.pseudo.json"

    def translator_target(self) -> Path:
        """The target manifest the translator trains on: target_train with its own boxes, with
        none, or with the pseudo labels."""
        if self.config.data.target.labels == "pseudo":
            return self.pseudo_labels()
        return self.manifest("target_train")
