"""The ``train_translator`` stage: MGUIT on source_train + target_train.

The target's class masks come from its own boxes (``data.target.labels: boxes``), from the
``pseudo_label`` stage's ``data/target_train.pseudo.json`` (``pseudo``), or from nowhere
(``none``: the target's pixels read, update and are trained on every memory item, the single
memory's rule, while the source keeps its class masks).

Writes ``runs/<name>/translator/`` (checkpoints, TensorBoard logs, sample grids; see
:mod:`mguit.trainer`). An interrupted stage resumes from ``checkpoints/last.pt`` when run again;
raising ``translator.train.iterations`` continues a finished training to the new length.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detection.manifest import Manifest
    from pipeline.config import Config
    from mguit.data import BoxImage
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)


def more_config_keys(config: Config) -> tuple[str, ...]:
    """A target without boxes trains by data.target.unlabeled_rule."""
    return ("data.target.unlabeled_rule",) if config.data.target.labels == "none" else ()


def input_paths(ctx: RunContext) -> list[Path]:
    return [ctx.manifest("source_train"), ctx.translator_target()]


def run(ctx: RunContext) -> dict:
    from detection.errors import DetectionError
    from detection.manifest import load_manifest
    from mguit.trainer import CheckpointError, Trainer  # torch only when a stage needs it
    from pipeline.context import StageError
    from pipeline.rundir import translator_dir

    cfg = ctx.config
    out_dir = translator_dir(ctx.run_dir)
    groups = set(cfg.translator.memory.items)
    domains = []
    for path in input_paths(ctx):
        try:
            manifest = load_manifest(path)
        except DetectionError as exc:
            raise StageError(f"train_translator: {exc}") from None
        if not manifest.images:
            raise StageError(f"{manifest.path}: has no images to train on")
        unknown = [name for name in manifest.classes if name not in groups]
        if unknown:
            raise StageError(f"{manifest.path}: class {unknown[0]!r} has no memory items; "
                             "translator.memory.items must list every class of data.classes")
        domains.append(box_images(manifest))
    labeled = cfg.data.target.labels != "none"
    # The stage reruns when its manifests changed: a checkpoint trained on the old ones is
    # then replaced rather than continued.
    trainer = Trainer(cfg.translator, *domains, out_dir, device=cfg.run.device,
                      seed=cfg.run.seed, target_labeled=labeled, on_data_change="restart",
                      unlabeled_target=cfg.data.target.unlabeled_rule, progress=ctx.progress)
    logger.info("training MGUIT for %d iterations on %s (batch %d, %d source / %d target "
                "images, target boxes: %s); TensorBoard: tensorboard --logdir %s",
                trainer.total_iterations, trainer.device, cfg.translator.train.batch_size,
                len(trainer.dataset.source), len(trainer.dataset.target),
                cfg.data.target.labels, out_dir / "tensorboard")
    try:
        losses = trainer.train()
    except CheckpointError as exc:
        raise StageError(f"train_translator: {exc}") from None
    return {"iterations": trainer.iteration,
            "final_losses": {k: round(v, 5) for k, v in losses.items()}}


def box_images(manifest: Manifest) -> list[BoxImage]:
    """The translator's training records of a manifest: image path, size, boxes, class names."""
    import numpy as np

    from mguit.data import BoxImage

    return [BoxImage(manifest.image_path(image), image["width"], image["height"],
                     np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels)
            for image, (boxes, labels) in zip(manifest.images, manifest.boxes_of_images())]
