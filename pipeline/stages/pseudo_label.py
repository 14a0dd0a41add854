"""The ``pseudo_label`` stage (``data.target.labels: pseudo``): boxes for target_train from a
detector, for a target domain that has no labels of its own.

Round 1 labels target_train with ``pseudo_labels.checkpoint`` when it is set, else with the
detector ``pseudo_labels.detector`` names:

* ``translated_unlabeled``: a detector trained on the source translated by a translator that
  used no target labels (``data.target.labels: none``), all trained by this stage in
  ``runs/<name>/pseudo_unlabeled/``. It has seen target-styled images, so it labels the target
  far better than a source-only detector under domain shift;
* ``source_only``: the run's own source-only detector, trained by this stage in
  ``runs/<name>/detector/source_only/`` (where ``train_detector`` later finds it done).

With ``pseudo_labels.rounds`` R > 1, each round r < R
trains a translator on round r's labels, translates, and trains the translated detector, all in
``runs/<name>/pseudo_round<r>/`` (interrupted rounds resume; a round whose labels changed
starts over), and that detector labels round r + 1: a detector that has seen target-styled
images labels the target better than one that has not.

The last round's labels are ``runs/<name>/data/target_train.pseudo.json``: target_train's images,
and as annotations every detection scoring at least ``pseudo_labels.score_threshold``, with its
``score``; ``info.pseudo_labels`` records the detector, the threshold and the round. Detections
below ``detector.test.score_threshold`` are never made, so that is the lowest useful threshold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.context import RunContext, StageError
from pipeline.stages.translate import CONFIG_KEYS as TRANSLATE_KEYS
from pipeline.weights import local_path

if TYPE_CHECKING:
    from detection.config import DetectorConfig

logger = logging.getLogger(__name__)

# The detector settings that change which boxes come out (not train_sets, not evaluate).
CONFIG_KEYS = ("pseudo_labels", "data.classes", "run.seed", "detector.backend",
               "detector.weights", "detector.on_missing_class", "detector.model",
               "detector.solver", "detector.input", "detector.test", "detector.torchvision",
               "detector.detectron2")
SPEED_KEYS = ("detector.solver.log_every", "detector.parallel")


def active(config: Config) -> bool:
    return config.data.target.labels == "pseudo"


def round_config_keys(config: Config) -> tuple[str, ...]:
    """Rounds before the last, and the translated_unlabeled detector, train a translator and
    translate: their settings count too."""
    p = config.pseudo_labels
    unlabeled = p.checkpoint is None and p.detector == "translated_unlabeled"
    keys = ("translator", *TRANSLATE_KEYS) if p.rounds > 1 or unlabeled else ()
    return keys + (("data.target.unlabeled_rule",) if unlabeled else ())


def input_paths(ctx: RunContext) -> list[Path]:
    paths = [ctx.manifest("source_train"), ctx.manifest("target_train")]
    cfg = ctx.config
    if cfg.pseudo_labels.checkpoint:
        paths.append(Path(cfg.pseudo_labels.checkpoint))
    weights = local_path(cfg, "detector.weights", cfg.detector.weights)
    if weights is not None:
        paths.append(weights)
    return paths


def output_paths(ctx: RunContext) -> list[Path]:
    return [ctx.pseudo_labels()]


def run(ctx: RunContext) -> dict:
    from pipeline.stages import train_detector

    cfg = ctx.config
    settings = cfg.pseudo_labels
    detector_cfg = train_detector.resolved_config(ctx)
    if settings.checkpoint:
        checkpoint, origin = Path(settings.checkpoint), "pseudo_labels.checkpoint"
    elif settings.detector == "source_only":
        checkpoint = train_detector.train_one(ctx, "source_only", detector_cfg)
        origin = "source_only"
    else:
        unlabeled = _derived_context(ctx, "pseudo_unlabeled", labels="none")
        logger.info("pseudo labels: translator without target labels, translation and "
                    "detector in %s", unlabeled.run_dir)
        checkpoint = _translated_detector(unlabeled, detector_cfg)
        origin = "translated_unlabeled"
    rounds = []
    for r in range(1, settings.rounds + 1):
        last = r == settings.rounds
        round_ctx = ctx if last else _derived_context(ctx, f"pseudo_round{r}")
        rounds.append(label(round_ctx, checkpoint, detector_cfg, round_number=r, origin=origin))
        if last:
            break
        logger.info("pseudo labels, round %d of %d: translator, translation and detector in %s",
                    r, settings.rounds, round_ctx.run_dir)
        checkpoint = _translated_detector(round_ctx, detector_cfg)
        origin = f"translated detector of round {r}"
    return {"rounds": rounds}


def _translated_detector(ctx: RunContext, detector_cfg: DetectorConfig) -> Path:
    """Train (or resume, or find done) ctx's translator, translation and translated detector;
    return the detector's checkpoint."""
    from pipeline.stages import train_detector, train_translator, translate

    train_translator.run(ctx)
    translate.run(ctx)
    return train_detector.train_one(ctx, "translated", detector_cfg)


def _derived_context(ctx: RunContext, folder: str, labels: str | None = None) -> RunContext:
    """The stages of an earlier round in ``runs/<name>/<folder>/``, on the run's manifests;
    ``labels`` replaces data.target.labels there. The round translates with its own
    translator, whatever translate.checkpoint says."""
    cfg = ctx.config
    data = cfg.data
    if labels is not None:
        data = dataclasses.replace(data, target=dataclasses.replace(data.target, labels=labels))
    config = dataclasses.replace(
        cfg, data=data, translate=dataclasses.replace(cfg.translate, checkpoint=None))
    return RunContext(config, workdir=ctx.run_dir / folder, progress=ctx.progress)


def label(ctx: RunContext, checkpoint: Path, detector_cfg: DetectorConfig, *,
          round_number: int, origin: str) -> dict:
    """Detect on target_train with ``checkpoint`` and write ``ctx.pseudo_labels()``; return the
    number of images, boxes per class and the score threshold."""
    from detection import DetectionError, predict
    from detection.manifest import load_manifest, write_json

    cfg = ctx.config
    threshold = cfg.pseudo_labels.score_threshold
    target = ctx.manifest("target_train")
    out = ctx.pseudo_labels()
    out.parent.mkdir(parents=True, exist_ok=True)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".predictions-") as tmp:
            predictions = Path(tmp) / "predictions.json"
            try:
                manifest = load_manifest(target, cfg.data.classes)
                predict(checkpoint, target, predictions, detector_cfg, cfg.run.device,
                        progress=ctx.progress)
            except DetectionError as exc:
                raise StageError(f"pseudo_label: {exc}") from None
            detections = json.loads(predictions.read_text(encoding="utf-8"))
        images = {"info": manifest.info, "images": manifest.images, "annotations": [],
                  "categories": manifest.categories}
        document = pseudo_manifest(images, detections, threshold, {
            "detector": str(checkpoint), "origin": origin, "round": round_number,
            "score_threshold": threshold})
        write_json(out, document)
    _barrier()
    if not main:
        document = json.loads(out.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in document["categories"]}
    per_class = dict.fromkeys(cfg.data.classes, 0)
    for annotation in document["annotations"]:
        per_class[names[annotation["category_id"]]] += 1
    logger.info("pseudo labels, round %d (%s, score >= %.2f): %d boxes in %d images %s -> %s",
                round_number, origin, threshold, len(document["annotations"]),
                len(document["images"]), per_class, out)
    return {"round": round_number, "origin": origin, "images": len(document["images"]),
            "boxes_per_class": per_class}


def pseudo_manifest(manifest: dict, detections: list[dict], threshold: float,
                    provenance: dict) -> dict:
    """The manifest ``manifest`` (a COCO dict without annotations) with every detection scoring
    at least ``threshold`` as an annotation: COCO fields plus ``score``, in the order of the
    detections, ids 1..M."""
    annotations = []
    for detection in detections:
        if detection["score"] < threshold:
            continue
        x, y, w, h = detection["bbox"]
        annotations.append({"id": len(annotations) + 1, "image_id": detection["image_id"],
                            "category_id": detection["category_id"], "bbox": [x, y, w, h],
                            "area": w * h, "iscrowd": 0, "score": detection["score"]})
    info = {**manifest.get("info", {}), "labeled": True, "pseudo_labels": provenance}
    return {**manifest, "info": info, "annotations": annotations}


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
