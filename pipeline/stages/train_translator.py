"""The ``train_translator`` stage: MGUIT on source_train + target_train.

Writes ``runs/<name>/translator/`` (checkpoints, TensorBoard logs, sample grids; see
:mod:`mguit.trainer`). An interrupted stage resumes from ``checkpoints/last.pt`` when run again;
raising ``translator.train.iterations`` continues a finished training to the new length.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)


def run(ctx: RunContext) -> dict:
    from mguit.trainer import CheckpointError, Trainer  # torch only when a stage needs it
    from pipeline.context import StageError
    from pipeline.rundir import translator_dir

    cfg = ctx.config
    out_dir = translator_dir(ctx.run_dir)
    trainer = Trainer(cfg.translator, ctx.manifest("source_train"), ctx.manifest("target_train"),
                      out_dir, device=cfg.run.device, seed=cfg.run.seed)
    logger.info("training MGUIT for %d iterations on %s (batch %d, %d source / %d target "
                "images); TensorBoard: tensorboard --logdir %s", trainer.total_iterations,
                trainer.device, cfg.translator.train.batch_size, len(trainer.dataset.source),
                len(trainer.dataset.target), out_dir / "tensorboard")
    try:
        losses = trainer.train()
    except CheckpointError as exc:
        raise StageError(f"train_translator: {exc}") from None
    return {"iterations": trainer.iteration,
            "final_losses": {k: round(v, 5) for k, v in losses.items()}}
