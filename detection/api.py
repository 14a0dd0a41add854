"""The detector interface: train on COCO manifests, predict on one, evaluate, for either backend.

::

    checkpoint = train([source_train_json], "out/source_only", cfg, device="cpu")
    predict(checkpoint, target_val_json, "out/source_only/target_val.json", cfg, device="cpu")
    metrics = evaluate(target_val_json, "out/source_only/target_val.json", classes)

Both backends read and write the same things: COCO manifests in, a checkpoint plus a
``detector.json`` card out of training, COCO results JSON out of prediction; evaluation is the
same pycocotools code (:mod:`detection.evaluate`) for both.

A training folder holds ``settings.json`` (what it is being trained with, written first) and,
once training finished, ``detector.json`` (backend, checkpoint file, classes, iterations, the
training images and boxes). Training again in the same folder continues from the last
checkpoint when the settings are unchanged (a longer ``solver.iterations`` extends it); with
other settings or other data it raises, or starts over with ``on_change="restart"``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from detection.config import BACKENDS, DetectorConfig
from detection.errors import DetectionError, require_detectron2
from detection.evaluate import evaluate
from detection.manifest import (Manifest, check_classes, check_trainable, load_manifest,
                                write_json)

logger = logging.getLogger(__name__)

CARD = "detector.json"
SETTINGS = "settings.json"
CARD_VERSION = 1
# Settings that may change between a training and its continuation: its length and logging.
RESUMABLE_SOLVER_KEYS = ("iterations", "checkpoint_every", "log_every", "keep_snapshots")

__all__ = ["train", "predict", "evaluate", "resolve_backend", "read_card", "CARD"]


def detectron2_available() -> bool:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(name: str) -> str:
    """``auto`` -> ``detectron2`` when it can be imported, else ``torchvision`` (logged)."""
    if name == "auto":
        if detectron2_available():
            import detectron2

            logger.info("detector.backend auto: Detectron2 %s is installed, using it",
                        detectron2.__version__)
            return "detectron2"
        logger.info("detector.backend auto: Detectron2 is not installed, using torchvision's "
                    "Faster R-CNN")
        return "torchvision"
    if name == "detectron2":
        require_detectron2()
        return name
    if name == "torchvision":
        return name
    close = difflib.get_close_matches(str(name), BACKENDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DetectionError(f"unknown detector backend {name!r}{hint} (backends: "
                         f"{', '.join(BACKENDS)})")


def _backend_module(name: str):
    if name == "detectron2":
        from detection import detectron2_backend
        return detectron2_backend
    from detection import torchvision_backend
    return torchvision_backend


def _validate(cfg: DetectorConfig) -> None:
    try:
        cfg.validate()
    except ValueError as exc:
        raise DetectionError(f"detector settings: {exc}") from None


def train(manifests: Sequence[str | Path], out_dir: str | Path, cfg: DetectorConfig,
          device: str = "auto", *, classes: Sequence[str] | None = None, seed: int = 0,
          on_change: str = "error", progress: bool = True) -> Path:
    """Train a detector on the union of ``manifests``; return its checkpoint.

    Args:
        manifests: COCO manifests (one or more; their images are concatenated).
        out_dir: the detector's folder (checkpoints, TensorBoard logs, ``detector.json``).
        cfg: detector settings; ``cfg.train_sets`` is not used here.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        classes: the class names, category ids 1..K in order; every manifest must have exactly
            these categories. ``None``: the first manifest's.
        seed: seeds the initialisation, the data order and the training's randomness.
        on_change: ``error`` or ``restart`` when ``out_dir`` holds a training with other
            settings or data.
    """
    _validate(cfg)
    if not manifests:
        raise DetectionError("no training manifests given")
    out_dir = Path(out_dir)
    loaded = [load_manifest(m) for m in manifests]
    classes = list(classes) if classes is not None else loaded[0].classes
    for manifest in loaded:
        _check_for_training(manifest, classes, cfg.on_missing_class)
    backend = resolve_backend(cfg.backend)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.solver.batch_size % world:
        raise DetectionError(f"detector.solver.batch_size {cfg.solver.batch_size} is the global "
                             f"batch and does not divide among {world} processes; use a "
                             f"multiple of {world}")
    if cfg.weights is not None and not Path(cfg.weights).is_file():
        raise DetectionError(f"{cfg.weights}: detector.weights does not exist; give a local file "
                             f"of ImageNet backbone weights in {backend}'s format, or null to "
                             "train from random weights")
    settings = _settings(cfg, backend, classes, seed, loaded)
    rank = 0
    if world > 1:
        from detection.distributed import distributed_context

        rank, _ = distributed_context()
    # Rank 0 alone decides whether the folder's training continues or restarts, then all agree.
    card = _resume_or_restart(out_dir, settings, on_change) if rank == 0 else None
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        card = read_card(out_dir) if rank and (out_dir / CARD).is_file() else card
    if card is not None and card["iterations"] >= cfg.solver.iterations:
        logger.info("%s: already trained for %d iterations, nothing to do", out_dir,
                    card["iterations"])
        return out_dir / card["checkpoint"]
    if cfg.weights is None:
        logger.warning("detector.weights is null: the %s backbone starts from random weights "
                       "(give a local ImageNet checkpoint for the paper's setting)", backend)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        write_json(out_dir / SETTINGS, settings)
    started = time.monotonic()
    checkpoint, iterations = _backend_module(backend).train(
        loaded, out_dir, classes, cfg, device=device, seed=seed, progress=progress)
    if rank == 0:
        _write_card(out_dir, backend, checkpoint, classes, iterations, cfg, loaded, started)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()      # the card exists for every rank once train() returns
    return checkpoint


def _write_card(out_dir: Path, backend: str, checkpoint: Path, classes: list[str],
                iterations: int, cfg: DetectorConfig, loaded: list, started: float) -> None:
    per_manifest = [{"manifest": str(m.path), **m.summary()} for m in loaded]
    write_json(out_dir / CARD, {
        "version": CARD_VERSION,
        "backend": backend,
        "checkpoint": checkpoint.relative_to(out_dir).as_posix(),
        "classes": classes,
        "iterations": iterations,
        "weights": cfg.weights,
        "train": per_manifest,
        "images": sum(m["images"] for m in per_manifest),
        "boxes": {k: sum(m["boxes"][k] for m in per_manifest) for k in (*classes, "total")},
        "seconds": round(time.monotonic() - started, 1),   # of this session (after a resume)
    })


def predict(checkpoint: str | Path, manifest: str | Path, out_json: str | Path,
            cfg: DetectorConfig, device: str = "auto", *, progress: bool = True) -> Path:
    """Detect objects in every image of ``manifest``; write COCO results JSON to ``out_json``.

    The backend is the one that wrote ``checkpoint`` (from the ``detector.json`` beside it),
    else ``cfg.backend``. Input size and test settings come from ``cfg`` (``input.min_size[-1]``,
    ``test.score_threshold``, ``test.detections_per_image``). Results are
    ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` with the manifest's ids.
    """
    _validate(cfg)
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DetectionError(f"{checkpoint}: checkpoint does not exist; train the detector first")
    card_path = checkpoint.parent / CARD
    card = read_card(checkpoint.parent) if card_path.is_file() else None
    backend = resolve_backend(card["backend"] if card else cfg.backend)
    loaded = load_manifest(manifest, card["classes"] if card else None)
    if not loaded.images:
        raise DetectionError(f"{loaded.path}: the split is empty (no images) — nothing to "
                             "predict on")
    out_json = Path(out_json)
    count = _backend_module(backend).predict(checkpoint, loaded, out_json, cfg, device=device,
                                             progress=progress)
    logger.info("%s: %d detections in %d images -> %s", checkpoint, count, len(loaded.images),
                out_json)
    return out_json


def read_card(out_dir: str | Path) -> dict:
    """The ``detector.json`` of a finished training folder."""
    path = Path(out_dir) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectionError(f"{path}: no finished detector here; train it first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DetectionError(f"{path}: unreadable detector card ({exc})") from None
    if card.get("version") != CARD_VERSION:
        raise DetectionError(f"{path}: card version {card.get('version')} is not "
                             f"{CARD_VERSION}; train the detector again")
    return card


def _check_for_training(manifest: Manifest, classes: Sequence[str], on_missing: str) -> None:
    check_classes(manifest, classes)
    missing = check_trainable(manifest, on_missing)
    if missing:
        logger.warning("%s: no boxes of class %s; the detector will not learn it",
                       manifest.path, ", ".join(missing))


def _settings(cfg: DetectorConfig, backend: str, classes: list[str], seed: int,
              manifests: list[Manifest]) -> dict:
    """What makes a training what it is (compared when training continues in a folder)."""
    return {
        "backend": backend,
        "classes": classes,
        "seed": seed,
        "weights": cfg.weights,
        "model": asdict(cfg.model),
        "input": asdict(cfg.input),
        "solver": asdict(cfg.solver),
        backend: asdict(getattr(cfg, backend)),
        "manifests": [{"path": str(m.path), "sha256": _sha256(m.path)} for m in manifests],
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(old.keys() | new.keys()):
        dotted = f"{prefix}{key}"
        if dotted in {f"solver.{k}" for k in RESUMABLE_SOLVER_KEYS}:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _differences(a, b, dotted + ".")
        elif a != b:
            changes.append(f"{dotted}: {a!r} -> {b!r}")
    return changes


def _resume_or_restart(out_dir: Path, settings: dict, on_change: str) -> dict | None:
    """Check an earlier training in ``out_dir``; return its card when it finished."""
    path = out_dir / SETTINGS
    if not path.is_file():
        return None
    changes = _differences(json.loads(path.read_text(encoding="utf-8")), settings)
    if changes:
        summary = "; ".join(changes[:3]) + (f" (and {len(changes) - 3} more)"
                                            if len(changes) > 3 else "")
        if on_change != "restart":
            raise DetectionError(
                f"{out_dir}: holds a detector trained with other settings or data ({summary}); "
                "continuing it would mix two experiments. Restore them, or delete the folder "
                "to train from scratch")
        logger.warning("%s: trained with other settings or data (%s); training from scratch",
                       out_dir, summary)
        shutil.rmtree(out_dir)
        return None
    if not (out_dir / CARD).is_file():
        return None
    card = read_card(out_dir)
    checkpoint = out_dir / card["checkpoint"]
    if not intact(checkpoint):
        # The card describes a checkpoint that is gone or cut: the training is not finished
        # any more; it resumes from what is left (the backend's newest intact checkpoint).
        logger.warning("%s: %s; training again from the newest intact checkpoint", checkpoint,
                       "missing" if not checkpoint.exists() else "truncated or corrupt")
        (out_dir / CARD).unlink()
        return None
    return card


def intact(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` (a ``torch.save`` zip archive, as both backends write) is whole:
    every member's CRC checked, which a truncated or overwritten file fails."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
