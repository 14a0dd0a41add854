"""The files of a run that the report reads, as paths derived from the run's config.

*Required* files are outputs of earlier stages (manifests, the data summary, the translation,
``eval/metrics.json``): the runner checks that they exist and names the stage that makes them.
*Optional* files (TensorBoard logs, the translator's sample grids, ``eval/translation.json``
from the ``metrics`` stage) are shown when present and skipped otherwise; the stage lists them
as inputs only while they exist, so one appearing or changing later makes the report stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import rundir
from pipeline.translation.records import ANNOTATIONS, MANIFEST

if TYPE_CHECKING:
    from pipeline.context import RunContext

@dataclass(frozen=True)
class RunFiles:
    """Paths of one run's files, for the report."""

    ctx: RunContext

    @property
    def report_dir(self) -> Path:
        return rundir.report_dir(self.ctx.run_dir)

    @property
    def index(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def summary(self) -> Path:
        return self.ctx.data_dir / "summary.json"

    @property
    def style_split(self) -> str:
        """The split of the translation's output domain that the grids show an image of: the
        validation split, which every run has and no model was trained on."""
        forward = self.ctx.config.translate.direction == "source_to_target"
        return "target_val" if forward else "source_val"

    @property
    def style_manifest(self) -> Path:
        return self.ctx.manifest(self.style_split)

    @property
    def translated_dir(self) -> Path:
        return rundir.translated_dir(self.ctx.run_dir)

    @property
    def translated_annotations(self) -> Path:
        return self.translated_dir / ANNOTATIONS

    @property
    def translated_manifest(self) -> Path:
        return self.translated_dir / MANIFEST

    @property
    def checkpoint(self) -> Path:
        return rundir.checkpoint_path(self.ctx)

    @property
    def metrics(self) -> Path:
        return rundir.detection_metrics(self.ctx.run_dir)

    @property
    def translation_metrics(self) -> Path:
        return rundir.translation_metrics(self.ctx.run_dir)

    @property
    def state(self) -> Path:
        return rundir.state_file(self.ctx.run_dir)

    @property
    def translator_tensorboard(self) -> Path:
        return rundir.translator_dir(self.ctx.run_dir) / "tensorboard"

    @property
    def translator_samples(self) -> Path:
        return rundir.translator_dir(self.ctx.run_dir) / "samples"

    def detector_tensorboard(self, train_set: str) -> Path:
        return rundir.detector_dir(self.ctx.run_dir, train_set) / "tensorboard"

    def needs_checkpoint(self) -> bool:
        """Whether the grids need style samples that ``translated/`` does not hold: sample 0
        is the translation, samples 1..K-1 are extra styles."""
        cfg = self.ctx.config
        return cfg.report.grid_samples > cfg.translate.num_samples - 1

    def required(self) -> list[Path]:
        paths = [self.summary, self.style_manifest, self.translated_annotations,
                 self.translated_manifest, self.metrics]
        if self.needs_checkpoint():
            paths.append(self.checkpoint)
        return paths

    def optional(self) -> list[Path]:
        # state.json is not among them: the runner rewrites it after every stage, the report's
        # own included, so as an input it would make the report stale forever.
        return [self.translation_metrics, self.translator_tensorboard, self.translator_samples,
                *(self.detector_tensorboard(s) for s in self.ctx.config.train_sets),
                self.ctx.pseudo_labels()]
