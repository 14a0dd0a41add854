"""The ``translate`` stage: a split (``translate.split``, default source_train) translated into
the other domain's style at native resolution -> ``runs/<name>/translated/``.

A thin wrapper over :func:`pipeline.translation.translate_dataset` (layout, resuming and
sharding are described there). The checkpoint must match the config's ``translator.model`` and
``translator.memory``. When the stage reruns because its config or checkpoint changed, the
earlier translation in ``translated/`` is stale and is replaced; an interrupted one resumes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import TranslateConfig
from pipeline.rundir import checkpoint_path, translated_dir
from pipeline.translation import BASELINE_OPTIONS
from pipeline.translation.records import ANNOTATIONS, MANIFEST, SETTINGS

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)

# The translate section but the keys only the baselines read (translate_baselines): changing
# FDA's beta does not redo MGUIT's translation.
_BASELINE_ONLY = {"reference_split", *(o for opts in BASELINE_OPTIONS.values() for o in opts)}
CONFIG_KEYS = tuple(f"translate.{f.name}" for f in dataclasses.fields(TranslateConfig)
                    if f.name not in _BASELINE_ONLY)


def input_paths(ctx: RunContext) -> list[Path]:
    return [ctx.manifest(ctx.config.translate.split), checkpoint_path(ctx),
            *([reference_manifest(ctx)] if ctx.config.translate.uses_reference else [])]


def reference_manifest(ctx: RunContext) -> Path:
    """The split whose images lend MGUIT their styles (``translate.style`` exemplar, scene)."""
    return ctx.manifest(ctx.config.translate.reference_split)


def output_paths(ctx: RunContext) -> list[Path]:
    return [translated_dir(ctx.run_dir) / ANNOTATIONS, translated_dir(ctx.run_dir) / MANIFEST]


def check_outputs(ctx: RunContext) -> str | None:
    from pipeline.translation.records import missing_output

    return missing_output(translated_dir(ctx.run_dir))


def run(ctx: RunContext) -> dict:
    from pipeline.translation import translate_dataset  # imports torch: only when it runs

    cfg = ctx.config
    out = translated_dir(ctx.run_dir)
    summary = translate_dataset(
        ctx.manifest(cfg.translate.split), out, checkpoint_path(ctx), cfg.translate,
        device=cfg.run.device, expected=cfg.translator, progress=ctx.progress,
        reference=reference_manifest(ctx) if cfg.translate.uses_reference else None,
        # The folder is this stage's: a translation with other settings in it is stale.
        overwrite=(out / SETTINGS).exists(),
    )
    return summary.to_dict()
