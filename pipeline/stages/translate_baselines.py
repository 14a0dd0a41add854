"""The ``translate_baselines`` stage: the baselines' translations of ``translate.split``
(source_train) -> ``runs/<name>/baselines/<method>/``, for each baseline listed in
``detector.train_sets`` (``colour_transfer``, ``fda``).

The same engine and layout as the ``translate`` stage (:mod:`pipeline.translation`), with a
baseline method (:mod:`pipeline.translation.methods`) in place of MGUIT: ``image_2/``,
``label_2/`` (byte-identical to the source's labels), ``annotations.json``, ``manifest.jsonl``,
``translate.json``. The baselines take their style from ``translate.reference_split``
(target_train) and never read the translator, so a retrained translator does not redo them.
An interrupted translation resumes; one whose settings changed is replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.rundir import baseline_dir
from pipeline.translation import BASELINE_OPTIONS, BASELINES
from pipeline.translation.records import ANNOTATIONS, MANIFEST, SETTINGS

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)

# What decides the baselines' outputs (and which run: detector.train_sets). Not the translator,
# not MGUIT's own translate keys (checkpoint, direction, amp, channels_last).
CONFIG_KEYS = ("translate.split", "translate.reference_split", "translate.num_samples",
               "translate.seed", "translate.png_compress_level", "translate.on_bad_image",
               "detector.train_sets")


def methods(config: Config) -> list[str]:
    """The baselines this run trains a detector on, in ``detector.train_sets`` order."""
    return [s for s in config.train_sets if s in BASELINES]


def active(config: Config) -> bool:
    return bool(methods(config))


def more_config_keys(config: Config) -> tuple[str, ...]:
    return tuple(f"translate.{option}" for method in methods(config)
                 for option in BASELINE_OPTIONS[method])


def input_paths(ctx: RunContext) -> list[Path]:
    return [ctx.manifest(ctx.config.translate.split),
            ctx.manifest(ctx.config.translate.reference_split)]


def output_paths(ctx: RunContext) -> list[Path]:
    return [baseline_dir(ctx.run_dir, m) / name for m in methods(ctx.config)
            for name in (ANNOTATIONS, MANIFEST)]


def check_outputs(ctx: RunContext) -> str | None:
    from pipeline.translation.records import missing_output

    for method in methods(ctx.config):
        problem = missing_output(baseline_dir(ctx.run_dir, method))
        if problem:
            return problem
    return None


def run(ctx: RunContext) -> dict:
    # Both import torch: only when the stage runs.
    from pipeline.translation import translate_dataset
    from pipeline.translation.methods import build_baseline

    cfg = ctx.config
    results = {}
    for name in methods(cfg):
        out = baseline_dir(ctx.run_dir, name)
        method = build_baseline(name, ctx.manifest(cfg.translate.reference_split), cfg.translate,
                                out, ctx.progress)
        logger.info("baseline %s: %s", name, method.description)
        summary = translate_dataset(
            ctx.manifest(cfg.translate.split), out, options=cfg.translate, method=method,
            progress=ctx.progress,
            # The folder is this stage's: a translation with other settings in it is stale.
            overwrite=(out / SETTINGS).exists(),
        )
        results[name] = summary.to_dict()
    return results
