"""Per-class detection AP with pycocotools: the numbers of the paper's Table 3.

:func:`evaluate` runs ``COCOeval`` (bounding boxes, all object sizes, up to 100 detections per
image) and reads the per-class AP out of its ``precision`` array, of shape
``(T=10 IoU thresholds 0.50:0.95, R=101 recall points, K classes, A=4 area ranges, M=3 max
detections)``. AP@0.5 of class k is the mean of ``precision[0, :, k, 0, -1]`` (the 101-point
interpolated area under the precision-recall curve at IoU 0.5, as Detectron2 and the COCO API
report it); AP@[.5:.95] averages over the ten IoU thresholds too. mAP is the mean over the
classes that have ground-truth boxes; a class without any has no AP (``None``), since nothing
can be found or missed.

All values are fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detection.errors import DetectionError
from detection.manifest import load_manifest, read_json

logger = logging.getLogger(__name__)

IOU_50 = 0      # index of IoU 0.5 in COCOeval's iouThrs
AREA_ALL = 0    # index of the "all" area range
MAX_DETS = -1   # index of maxDets = 100


def load_results(path: str | Path) -> list[dict]:
    """Read a COCO results JSON file (a list of ``{image_id, category_id, bbox, score}``)."""
    path = Path(path)
    results = read_json(path, "results file does not exist; run predict first",
                        "not a readable COCO results file")
    if not isinstance(results, list):
        raise DetectionError(f"{path}: a COCO results file is a JSON list of detections")
    return results


def evaluate(gt_manifest: str | Path, results: str | Path | list[dict],
             classes: Sequence[str]) -> dict:
    """Evaluate detections against a manifest's boxes.

    Args:
        gt_manifest: COCO manifest with the ground truth; its categories must be ``classes``.
        results: COCO results (a JSON file or the list itself): ``image_id`` and
            ``category_id`` of the manifest, ``bbox`` ``[x, y, w, h]`` in pixels, ``score``.
        classes: class names, category ids 1..K in this order.

    Returns:
        ``{"ap50": {class: AP or None}, "map50": mean AP@0.5, "ap": AP@[.5:.95],
        "ap_per_class": {class: AP@[.5:.95] or None}, "images": N, "boxes": {class: n,
        "total": n}, "detections": D}``; the means are over classes with boxes (``None`` when
        no class has any).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    manifest = load_manifest(gt_manifest, classes)
    detections = load_results(results) if isinstance(results, (str, Path)) else list(results)
    where = results if isinstance(results, (str, Path)) else "results"
    _check_results(detections, manifest.images, len(classes), where)

    dataset = {
        "images": [{"id": im["id"], "width": im["width"], "height": im["height"]}
                   for im in manifest.images],
        # COCOeval reads `area` (size ranges) and `iscrowd`; fill them for hand-made files.
        "annotations": [{**a, "area": a.get("area", a["bbox"][2] * a["bbox"][3]),
                         "iscrowd": a.get("iscrowd", 0)} for a in manifest.annotations],
        "categories": manifest.categories,
    }
    # pycocotools prints progress to stdout; keep it out of the pipeline's output.
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        gt = _coco_from(COCO, dataset)
        if detections:
            dt = gt.loadRes(copy.deepcopy(detections))
        else:
            # loadRes rejects an empty list; an empty result set is simply "nothing found".
            dt = _coco_from(COCO, {**dataset, "annotations": []})
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.catIds = list(range(1, len(classes) + 1))
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug("pycocotools: %s", printed.getvalue().strip())

    precision = evaluator.eval["precision"]
    boxes = manifest.boxes_per_class()
    ap50: dict[str, float | None] = {}
    ap: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        if boxes[name] == 0:
            ap50[name] = ap[name] = None
            continue
        ap50[name] = _mean_valid(precision[IOU_50, :, k, AREA_ALL, MAX_DETS])
        ap[name] = _mean_valid(precision[:, :, k, AREA_ALL, MAX_DETS])
    with_boxes = [n for n in classes if boxes[n] > 0]
    without = [n for n in classes if boxes[n] == 0]
    if without:
        logger.warning("%s: no boxes of class %s: no AP for it, and mAP is over the other "
                       "classes", manifest.path, ", ".join(without))
    return {
        "ap50": ap50,
        "map50": float(np.mean([ap50[n] for n in with_boxes])) if with_boxes else None,
        "ap": float(np.mean([ap[n] for n in with_boxes])) if with_boxes else None,
        "ap_per_class": ap,
        **manifest.summary(),
        "detections": len(detections),
    }


def _coco_from(coco_cls: type, dataset: dict):
    coco = coco_cls()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries COCOeval filled (-1 marks "no ground truth")."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0


def _check_results(detections: list, images: list[dict], num_classes: int, where: object) -> None:
    image_ids = {im["id"] for im in images}
    for i, d in enumerate(detections):
        if not (isinstance(d, dict) and {"image_id", "category_id", "bbox", "score"} <= d.keys()):
            raise DetectionError(f"{where}: detection [{i}] must have image_id, category_id, "
                                 f"bbox and score, got {d!r:.80}")
        if d["image_id"] not in image_ids:
            raise DetectionError(f"{where}: detection [{i}] is for image_id {d['image_id']}, "
                                 "which is not in the ground-truth manifest; predictions and "
                                 "ground truth must come from the same manifest")
        if d["category_id"] not in range(1, num_classes + 1):
            raise DetectionError(f"{where}: detection [{i}] has category_id "
                                 f"{d['category_id']}, not one of 1..{num_classes}")
        if len(d["bbox"]) != 4:
            raise DetectionError(f"{where}: detection [{i}]: bbox must be [x, y, w, h]")
