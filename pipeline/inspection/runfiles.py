"""What a run directory holds, read without FiftyOne (DESIGN.md section 8).

* the config: ``runs/<name>/config.resolved.yaml``, written by ``pipeline run`` when it starts;
* the images and boxes of a split: ``data/<split>.json`` (COCO manifests);
* the translated set: ``translated/annotations.json`` (COCO, the source's boxes) joined with
  ``translated/manifest.jsonl`` (per output: source image key, style sample index, seeds);
* the detectors' predictions on ``evaluate.split``: ``eval/predictions/<set>.json`` (COCO
  results), listed in ``eval/metrics.json``.

The translated set and the predictions are optional: a run that stopped before ``translate`` or
``evaluate`` simply has none (:attr:`RunFiles.notes` says what is absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline import rundir
from pipeline.config import load_config
from pipeline.context import RunContext
from pipeline.formats import coco
from pipeline.formats.common import DatasetError, read_json
from pipeline.inspection.errors import InspectionError
from pipeline.translation.records import ANNOTATIONS, MANIFEST, read_log

TRANSLATED = "translated"     # the name of the translated set


@dataclass(frozen=True)
class Image:
    """One image of a set: where it is, its boxes (class name, ``[x, y, w, h]`` in pixels) and
    the fields its FiftyOne sample gets besides its labels."""

    filepath: Path
    width: int
    height: int
    key: str                    # the frame id: the name translate gives its outputs
    boxes: tuple[tuple[str, list[float]], ...]
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunFiles:
    """The files of a run the dataset is built from; optional ones are ``None`` / empty when
    absent, and :attr:`notes` says why."""

    source: Path                          # manifest of translate.split
    target: Path                          # manifest of evaluate.split
    translated: Path | None               # translated/annotations.json
    predictions: dict[str, Path]          # detector (training set) -> COCO results
    metrics: Path | None                  # eval/metrics.json
    notes: tuple[str, ...] = ()

    @property
    def inputs(self) -> list[Path]:
        """Every file the dataset depends on (those present)."""
        paths = [self.source, self.target]
        if self.translated is not None:
            paths += [self.translated, self.translated.parent / MANIFEST]
        if self.metrics is not None:
            paths.append(self.metrics)
        return paths + list(self.predictions.values())


def load_run(run_dir: str | Path) -> RunContext:
    """The run at ``run_dir`` (``runs/<name>``), with its resolved config.

    The folder given wins over the one recorded in the config (``run.dir`` / ``run.name``), so a
    run directory that was moved or copied is read where it is now.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InspectionError(f"{run_dir}: no such run directory; give the folder of a run, "
                              "runs/<name>, made by pipeline run")
    resolved = rundir.resolved_config(run_dir)
    if not resolved.is_file():
        raise InspectionError(f"{resolved}: missing, so {run_dir} is not a run directory "
                              "(pipeline run writes this file when it starts a run)")
    config = load_config(resolved)
    run_dir = run_dir.resolve()
    config.run.dir, config.run.name = str(run_dir.parent), run_dir.name
    try:
        config.run.validate()
    except ValueError as exc:
        raise InspectionError(f"{run_dir}: {exc}; rename the folder") from None
    return RunContext(config)


def find_files(ctx: RunContext) -> RunFiles:
    """The run's files for the dataset; raises nothing for absent ones (the stage runner reports
    missing manifests, :func:`require_manifests` the commands)."""
    cfg = ctx.config
    notes = []
    translated = rundir.translated_dir(ctx.run_dir) / ANNOTATIONS
    if not translated.is_file():
        notes.append(f"no translated set ({translated} is missing: the translate stage has not "
                     "finished)")
        translated = None
    metrics = rundir.detection_metrics(ctx.run_dir)
    predictions: dict[str, Path] = {}
    if not metrics.is_file():
        notes.append(f"no predictions ({metrics} is missing: the evaluate stage has not "
                     "finished)")
        metrics = None
    else:
        document = read_json(metrics)
        if not isinstance(document, dict) or not isinstance(document.get("detectors"), dict):
            raise DatasetError(metrics, "has no 'detectors' mapping; rerun the evaluate stage")
        if document.get("split") != cfg.evaluate.split:
            notes.append(f"no predictions: {metrics} is about split {document.get('split')!r}, "
                         f"the config's evaluate.split is {cfg.evaluate.split!r} (rerun "
                         "evaluate)")
        else:
            for name, detector in document["detectors"].items():
                path = ctx.run_dir / str(detector.get("predictions", ""))
                if path.is_file():
                    predictions[name] = path
                else:
                    notes.append(f"no predictions of detector {name} ({path} is missing)")
    return RunFiles(source=ctx.manifest(cfg.translate.split),
                    target=ctx.manifest(cfg.evaluate.split), translated=translated,
                    predictions=predictions, metrics=metrics, notes=tuple(notes))


def require_manifests(ctx: RunContext, *paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise InspectionError(f"{path}: missing; run the prepare stage first "
                                  f"(pipeline run {rundir.resolved_config(ctx.run_dir)} --only "
                                  "prepare)")


def _key(image: dict) -> str:
    # The name the translate stage gives an image's outputs (pipeline.translation.sources).
    frame = image.get("frame_id")
    return frame if isinstance(frame, str) else PurePosixPath(image["file_name"]).stem


def read_images(manifest_path: Path, **fields: object) -> list[Image]:
    """The images of a COCO manifest, each with ``image_id`` and ``fields`` as sample fields."""
    manifest = coco.read_manifest(manifest_path)
    names = {c["id"]: c["name"] for c in manifest.categories}
    by_image = manifest.annotations_by_image()
    return [Image(filepath=manifest.image_path(image), width=image["width"],
                  height=image["height"], key=_key(image),
                  boxes=tuple((names[a["category_id"]], a["bbox"]) for a in by_image[image["id"]]),
                  fields={"image_id": image["id"], **fields})
            for image in manifest.images]


def read_translated(annotations: Path) -> list[Image]:
    """The translated images, each keyed by its source image's key, with the style sample index
    and the seeds from ``manifest.jsonl``."""
    log = annotations.parent / MANIFEST
    entries = {e["image"]: e for e in read_log(log) if e.get("status") == "done"}
    images = []
    for image in read_images(annotations, split=TRANSLATED):
        name = image.filepath.relative_to(annotations.parent).as_posix()
        entry = entries.get(name)
        if entry is None:
            raise DatasetError(annotations, f"{name} is not listed as done in {log}; rerun the "
                                             "translate stage to repair the folder")
        images.append(Image(
            filepath=image.filepath, width=image.width, height=image.height, key=entry["key"],
            boxes=image.boxes,
            fields={**image.fields, "sample_index": entry["sample"],
                    "translation_seed": entry["seed"], "style_seed": entry["style_seed"],
                    "source_filepath": entry["source"]}))
    return images


def read_predictions(results: Path, manifest_path: Path) -> dict[int, list[tuple]]:
    """COCO results on a manifest's images: image id -> ``(class, [x, y, w, h], score)``
    (every image of the manifest has an entry, possibly empty)."""
    manifest = coco.read_manifest(manifest_path)
    names = {c["id"]: c["name"] for c in manifest.categories}
    found: dict[int, list[tuple]] = {image["id"]: [] for image in manifest.images}
    detections = read_json(results)
    if not isinstance(detections, list):
        raise DatasetError(results, "is not a list of COCO results; rerun the evaluate stage")
    for n, d in enumerate(detections):
        try:
            bbox = [float(v) for v in d["bbox"]]
            entry = (names[d["category_id"]], bbox, float(d["score"]))
            boxes = found[d["image_id"]]
        except (KeyError, TypeError, ValueError):
            raise DatasetError(results, f"result {n} is not a detection of an image and class "
                                        f"of {manifest_path} ({d!r:.200}); rerun the evaluate "
                                        "stage") from None
        if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
            raise DatasetError(results, f"result {n} has a bad bbox {bbox}")
        boxes.append(entry)
    return found
