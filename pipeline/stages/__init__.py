"""The pipeline's stages, in the order ``pipeline run`` executes them.

A :class:`Stage` is data: its name, the config sections it depends on, the files it reads and
writes (as functions of the run), and the function that does the work. The runner
(:mod:`pipeline.runner`) uses the config sections and input files to decide whether a stage is
done, stale or to do; a stage's function never has to check that itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.rundir import last_checkpoint
from pipeline.stages import (evaluate, inspect, metrics, prepare, pseudo_label, report,
                             train_detector, train_translator, translate, translate_baselines)


def _always(config: Config) -> bool:
    return True


def _no_keys(config: Config) -> tuple[str, ...]:
    return ()


def _nothing_wrong(ctx: RunContext) -> str | None:
    return None


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    config_keys: tuple[str, ...]
    inputs: Callable[[RunContext], list[Path]]
    outputs: Callable[[RunContext], list[Path]]
    run: Callable[[RunContext], dict]
    # Config keys that change only speed or logging, not the stage's outputs: changing them
    # does not make a finished stage stale.
    speed_keys: tuple[str, ...] = ()
    # Computes on run.device (checked before the stage starts).
    uses_device: bool = True
    # Whether the stage belongs to a run of this config (pseudo_label only with pseudo labels).
    active: Callable[[Config], bool] = _always
    # Config keys the stage depends on beyond ``config_keys`` under this config.
    more_config_keys: Callable[[Config], tuple[str, ...]] = _no_keys
    # What is wrong with the stage's outputs beyond its output files (e.g. an image a
    # translation manifest lists is gone), or None: a reason makes a finished stage stale.
    check_outputs: Callable[[RunContext], str | None] = _nothing_wrong

    def keys(self, config: Config) -> tuple[str, ...]:
        """Every config key whose change makes the stage stale under ``config``."""
        return self.config_keys + self.more_config_keys(config)


STAGES: tuple[Stage, ...] = (
    Stage(
        name="prepare",
        description="convert source and target datasets to COCO manifests (runs/<name>/data/)",
        config_keys=("data",),
        inputs=prepare.input_paths,
        outputs=prepare.output_paths,
        run=prepare.run,
        uses_device=False,
    ),
    Stage(
        name="pseudo_label",
        description="boxes for target_train from a detector (data.target.labels: pseudo) "
                    "-> runs/<name>/data/target_train.pseudo.json",
        config_keys=pseudo_label.CONFIG_KEYS,
        inputs=pseudo_label.input_paths,
        outputs=pseudo_label.output_paths,
        run=pseudo_label.run,
        speed_keys=pseudo_label.SPEED_KEYS,
        active=pseudo_label.active,
        more_config_keys=pseudo_label.round_config_keys,
    ),
    Stage(
        name="train_translator",
        description="train MGUIT on source_train + target_train (its boxes, none, or pseudo)",
        config_keys=("translator", "run.seed"),
        more_config_keys=train_translator.more_config_keys,
        inputs=train_translator.input_paths,
        outputs=lambda ctx: [last_checkpoint(ctx.run_dir)],
        run=train_translator.run,
        speed_keys=("translator.train.num_workers", "translator.train.log_every"),
    ),
    Stage(
        name="translate",
        description="translate source_train into the target style (runs/<name>/translated/)",
        config_keys=translate.CONFIG_KEYS,
        inputs=translate.input_paths,
        outputs=translate.output_paths,
        check_outputs=translate.check_outputs,
        run=translate.run,
        speed_keys=("translate.workers", "translate.writers"),
    ),
    Stage(
        name="translate_baselines",
        description="the baselines' translations of source_train (colour_transfer, fda in "
                    "detector.train_sets) -> runs/<name>/baselines/<method>/",
        config_keys=translate_baselines.CONFIG_KEYS,
        more_config_keys=translate_baselines.more_config_keys,
        inputs=translate_baselines.input_paths,
        outputs=translate_baselines.output_paths,
        check_outputs=translate_baselines.check_outputs,
        run=translate_baselines.run,
        uses_device=False,
        active=translate_baselines.active,
    ),
    Stage(
        name="train_detector",
        description="train Faster R-CNN on source, translated and target sets "
                    "(runs/<name>/detector/<set>/)",
        config_keys=("detector", "data.classes", "run.seed"),
        inputs=train_detector.input_paths,
        outputs=train_detector.output_paths,
        run=train_detector.run,
        speed_keys=("detector.num_workers", "detector.solver.log_every", "detector.parallel"),
    ),
    Stage(
        name="evaluate",
        description="evaluate each detector on target_val, per class (paper Table 3)",
        config_keys=("evaluate", "detector", "data.classes"),
        inputs=evaluate.input_paths,
        outputs=evaluate.output_paths,
        run=evaluate.run,
    ),
    Stage(
        name="metrics",
        description="translation quality: FID/KID, LPIPS diversity, IS/CIS, per-class style "
                    "distance (runs/<name>/eval/translation.json)",
        config_keys=("metrics", "data.classes", "data.source.perfect_translations",
                     "translate.split", "translate.direction", "translate.style"),
        inputs=metrics.input_paths,
        outputs=metrics.output_paths,
        run=metrics.run,
    ),
    Stage(
        name="report",
        description="HTML report with tables, image grids and plots "
                    "(runs/<name>/report/index.html)",
        config_keys=report.CONFIG_KEYS,
        inputs=report.input_paths,
        outputs=report.output_paths,
        run=report.run,
    ),
    Stage(
        name="inspect",
        description="FiftyOne dataset: source / translated / target, ground truth and predictions",
        config_keys=inspect.CONFIG_KEYS,
        inputs=inspect.input_paths,
        outputs=lambda ctx: [],     # the dataset lives in FiftyOne's database, not in the run
        run=inspect.run,
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def active_stages(config: Config) -> tuple[Stage, ...]:
    """The stages of a run of ``config``, in order."""
    return tuple(s for s in STAGES if s.active(config))


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(name)
