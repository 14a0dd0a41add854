"""The ``translate`` stage: a split (``translate.split``, default source_train) translated into
the other domain's style at native resolution -> ``runs/<name>/translated/``.

A thin wrapper over :func:`pipeline.translation.translate_dataset` (layout, resuming and
sharding are described there). The checkpoint must match the config's ``translator.model`` and
``translator.memory``. When the stage reruns because its config or checkpoint changed, the
earlier translation in ``translated/`` is stale and is replaced; an interrupted one resumes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.translation.records import ANNOTATIONS, MANIFEST, SETTINGS

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)


def checkpoint_path(ctx: RunContext) -> Path:
    """``translate.checkpoint``, or the translator stage's ``last.pt``."""
    configured = ctx.config.translate.checkpoint
    return Path(configured) if configured else \
        ctx.run_dir / "translator" / "checkpoints" / "last.pt"


def output_dir(ctx: RunContext) -> Path:
    return ctx.run_dir / "translated"


def input_paths(ctx: RunContext) -> list[Path]:
    return [ctx.manifest(ctx.config.translate.split), checkpoint_path(ctx)]


def output_paths(ctx: RunContext) -> list[Path]:
    return [output_dir(ctx) / ANNOTATIONS, output_dir(ctx) / MANIFEST]


def run(ctx: RunContext) -> dict:
    from pipeline.translation import translate_dataset  # imports torch: only when it runs

    cfg = ctx.config
    out = output_dir(ctx)
    summary = translate_dataset(
        ctx.manifest(cfg.translate.split), out, checkpoint_path(ctx), cfg.translate,
        device=cfg.run.device, expected=cfg.translator,
        # The folder is this stage's: a translation with other settings in it is stale.
        overwrite=(out / SETTINGS).exists(),
    )
    return summary.to_dict()
