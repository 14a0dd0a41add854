"""The ``evaluate`` stage: every trained detector on ``evaluate.split`` (target_val), per class.

Writes, under ``runs/<name>/eval/``:

* ``predictions/<set>.json``: each detector's COCO results on the split;
* ``metrics.json``: per detector, AP at IoU 0.5 per class, their mean (mAP), COCO AP@[.5:.95],
  the training set's size, backend and iterations, and the gap it recovers,
  ``(set - source_only) / (oracle - source_only)`` on the mean AP50 of
  ``evaluate.gap_classes`` (null without both reference detectors); and the split's images and
  boxes. AP values are fractions in [0, 1], computed by pycocotools (:mod:`detection.evaluate`);
* ``table.md``: the same numbers (in %) as a table shaped like the paper's Table 3, followed by
  the paper's published KITTI -> Cityscapes rows, quoted for reference and marked as such (they
  were not measured by this run and, on other data, are not comparable with it).

A split without labels (``info.labeled: false``: an unlabeled target, see
:mod:`pipeline.stages.prepare`) cannot be scored: ``metrics.json`` then holds ``skipped`` (the
reason) and no detectors, ``table.md`` says so, and the report shows the translation figures.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detection.api import CARD
from pipeline.context import StageError
from pipeline.paper import PAPER_TABLE3, PAPER_TABLE3_CLASSES, ROW_NAMES
from pipeline.rundir import detection_metrics, detector_dir, eval_dir

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)

METRICS_VERSION = 1


def manifest_labeled(manifest: Path) -> bool:
    """Whether a manifest's split has labels (``info.labeled`` is only written when false)."""
    if not manifest.is_file():
        return True
    info = json.loads(manifest.read_text(encoding="utf-8")).get("info", {})
    return info.get("labeled", True) is not False


def input_paths(ctx: RunContext) -> list[Path]:
    return [ctx.manifest(ctx.config.evaluate.split),
            *(detector_dir(ctx.run_dir, s) / CARD for s in ctx.config.train_sets)]


def output_paths(ctx: RunContext) -> list[Path]:
    out = eval_dir(ctx.run_dir)
    if not manifest_labeled(ctx.manifest(ctx.config.evaluate.split)):
        return [detection_metrics(ctx.run_dir), out / "table.md"]
    return [detection_metrics(ctx.run_dir), out / "table.md",
            *(out / "predictions" / f"{s}.json" for s in ctx.config.train_sets)]


def run(ctx: RunContext) -> dict:
    # Under torchrun, rank 0 alone predicts and scores: a few minutes where training takes hours,
    # and pycocotools evaluates in one process.
    if int(os.environ.get("RANK", "0")) != 0:
        return {}
    from detection import DetectionError, evaluate, predict, read_card
    from detection.manifest import load_manifest, write_bytes, write_json

    cfg = ctx.config
    split, classes = cfg.evaluate.split, cfg.data.classes
    manifest = ctx.manifest(split)
    out = eval_dir(ctx.run_dir)
    if not manifest_labeled(manifest):
        return _unlabeled(ctx, manifest)
    detectors = {}
    try:
        summary = load_manifest(manifest, classes).summary()
        for train_set in cfg.train_sets:
            folder = detector_dir(ctx.run_dir, train_set)
            card = read_card(folder)
            predictions = out / "predictions" / f"{train_set}.json"
            predict(folder / card["checkpoint"], manifest, predictions, cfg.detector,
                    cfg.run.device, progress=ctx.progress)
            metrics = evaluate(manifest, predictions, classes)
            detectors[train_set] = {
                "backend": card["backend"],
                "iterations": card["iterations"],
                "train_manifests": [t["manifest"] for t in card["train"]],
                "train_images": card["images"],
                "train_boxes": card["boxes"],
                "ap50": metrics["ap50"],
                "map50": metrics["map50"],
                "ap": metrics["ap"],
                "ap_per_class": metrics["ap_per_class"],
                "detections": metrics["detections"],
                "predictions": predictions.relative_to(ctx.run_dir).as_posix(),
            }
    except DetectionError as exc:
        raise StageError(f"evaluate: {exc}") from None
    gap_classes = cfg.evaluate.gap_classes or classes
    add_gap_recovered(detectors, gap_classes)
    document = {
        "version": METRICS_VERSION,
        "run": cfg.run.name,
        "split": split,
        "manifest": str(manifest),
        "classes": classes,
        **summary,
        "metric": "COCO-style AP from pycocotools (101-point interpolation, all sizes, up to "
                  f"{cfg.detector.test.detections_per_image} detections per image), fractions "
                  "in [0, 1]: ap50 per class at IoU 0.5, map50 their mean over the classes "
                  "with boxes, ap at IoU 0.5:0.95",
        "gap_classes": gap_classes,
        "detectors": detectors,
    }
    table = format_table(document)
    write_json(detection_metrics(ctx.run_dir), document)
    write_bytes(out / "table.md", table.encode("utf-8"))
    logger.info("detection on %s (AP at IoU 0.5, %%) -> %s\n%s", split,
                detection_metrics(ctx.run_dir), table)
    return {s: {"map50": round(d["map50"], 4) if d["map50"] is not None else None,
                "ap": round(d["ap"], 4) if d["ap"] is not None else None}
            for s, d in detectors.items()}


def mean_ap50(ap50: dict[str, float | None], classes: Sequence[str]) -> float | None:
    values = [ap50.get(c) for c in classes]
    return None if not values or None in values else sum(values) / len(values)


def gap_recovered(translated: float | None, source_only: float | None,
                  oracle: float | None) -> float | None:
    """``(translated - source_only) / (oracle - source_only)``; None when undefined."""
    if None in (translated, source_only, oracle) or oracle == source_only:
        return None
    return (translated - source_only) / (oracle - source_only) + 0.0    # -0.0 -> 0.0


def add_gap_recovered(detectors: dict[str, dict], classes: Sequence[str]) -> None:
    """Set each detector's ``gap_recovered`` on the mean AP50 of ``classes``: 0 for
    source_only, 1 for the oracle, None for all when either is missing."""
    means = {s: mean_ap50(d["ap50"], classes) for s, d in detectors.items()}
    for train_set, d in detectors.items():
        d["gap_recovered"] = gap_recovered(means[train_set], means.get("source_only"),
                                           means.get("oracle"))


def _unlabeled(ctx: RunContext, manifest: Path) -> dict:
    """metrics.json and table.md of a split without labels: what was skipped and why."""
    from detection.manifest import load_manifest, write_bytes, write_json

    cfg = ctx.config
    reason = (f"{cfg.evaluate.split} has no labels ({manifest}), so the detectors cannot be "
              "scored; give the target's validation boxes in data.target to evaluate them "
              "(the translation figures are in eval/translation.json)")
    logger.warning("evaluate: %s", reason)
    document = {"version": METRICS_VERSION, "run": cfg.run.name, "split": cfg.evaluate.split,
                "manifest": str(manifest), "classes": cfg.data.classes,
                "images": len(load_manifest(manifest).images), "skipped": reason,
                "detectors": {}}
    write_json(detection_metrics(ctx.run_dir), document)
    write_bytes(eval_dir(ctx.run_dir) / "table.md", f"Detection not evaluated: {reason}.\n"
                .encode("utf-8"))
    return {"skipped": reason}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def format_table(metrics: dict) -> str:
    """A markdown table shaped like the paper's Table 3: this run's detectors (AP at IoU 0.5
    per class, mAP, AP@[.5:.95], in %), then the paper's rows, quoted and marked."""
    classes = metrics["classes"]
    header = ["Training set", *(c.capitalize() for c in classes), "mAP", "AP@[.5:.95]",
              "Iterations", "Gap recovered"]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    for train_set, d in metrics["detectors"].items():
        gap = d.get("gap_recovered")
        rows.append([f"{ROW_NAMES.get(train_set, train_set)}, this run",
                     *(_percent(d["ap50"][c]) for c in classes), _percent(d["map50"]),
                     _percent(d["ap"]), str(d["iterations"]),
                     "–" if gap is None else f"{gap:.2f}"])
    quoted = [c for c in classes if c in PAPER_TABLE3_CLASSES]
    if quoted:
        same_classes = list(classes) == list(PAPER_TABLE3_CLASSES)
        for name, values in PAPER_TABLE3:
            per_class = dict(zip(PAPER_TABLE3_CLASSES, values))
            rows.append([f"*{name}, quoted from the paper*",
                         *(f"*{per_class[c]:.1f}*" if c in per_class else "–" for c in classes),
                         f"*{values[-1]:.1f}*" if same_classes else "–", "–", "–", "–"])
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    first = next(iter(metrics["detectors"].values()))
    title = (f"Detection on {metrics['split']} of run {metrics['run']}: {metrics['images']} "
             f"images, {metrics['boxes']['total']} boxes; AP at IoU 0.5 (%), "
             f"backend {first['backend']}.")
    gap_classes = metrics.get("gap_classes") or classes
    title += (" Gap recovered: (set - source only) / (oracle - source only) on the mean AP50 of "
              f"{', '.join(gap_classes)}.")
    note = ("Rows in *italics* are quoted from Jeong et al., CVPR 2021, Table 3 (KITTI -> "
            "Cityscapes, Faster R-CNN) for reference: they were not measured by this run and "
            "are comparable with it only on the same data and detector.") if quoted else ""
    return "\n".join([title, "", *lines, "", note]).rstrip() + "\n"
