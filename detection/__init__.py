"""Faster R-CNN detectors trained and evaluated on COCO manifests (paper Table 3).

The interface (:mod:`detection.api`)::

    from detection import DetectorConfig, train, predict, evaluate

    cfg = DetectorConfig(backend="torchvision")
    checkpoint = train(["runs/demo/translated/annotations.json"], "out/translated", cfg)
    predict(checkpoint, "runs/demo/data/target_val.json", "out/predictions.json", cfg)
    evaluate("runs/demo/data/target_val.json", "out/predictions.json", ["person", "car", ...])

Two backends behind it: Detectron2 (:mod:`detection.detectron2_backend`, an optional install)
and torchvision (:mod:`detection.torchvision_backend`). :func:`register_run` registers a
pipeline run's manifests as Detectron2 datasets for training any Detectron2 model on them.
This package knows COCO manifests, not the pipeline: it never imports ``pipeline`` or ``mguit``.
"""

from __future__ import annotations

from detection.api import predict, read_card, resolve_backend, train
from detection.config import DetectorConfig
from detection.errors import DetectionError
from detection.evaluate import evaluate
from detection.registry import register_run

__all__ = ["DetectorConfig", "DetectionError", "train", "predict", "evaluate", "read_card",
           "resolve_backend", "register_run"]
