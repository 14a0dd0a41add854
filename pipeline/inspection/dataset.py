"""The FiftyOne dataset of a run: source images beside their translations, and the target.

A persistent *grouped* dataset named ``inspect.dataset_name`` (default: the run's name). Group
field ``group``; slices:

``source``          an image of ``translate.split`` (default source_train), as prepared;
``translated``      its translation (style sample 0: the memory's target values);
``translated_s<k>`` its style sample k >= 1 (``translate.num_samples`` > 1);
``target``          an image of ``evaluate.split`` (target_val), in a group of its own.

One group per source image holds its source and translated slices, so the App flips between an
image and its translations; FiftyOne allows missing slices, so a target group has only
``target``. Fields of every sample: ``ground_truth`` (the manifest's boxes; a translation has
its source's boxes), ``split``, ``image_id`` (the id in its manifest), ``key`` (the frame id,
which names the translations' files), ``num_<class>`` (boxes per class, filterable in the App)
and image ``metadata``. Translated samples add ``sample_index``, ``translation_seed``,
``style_seed`` and ``source_filepath`` (from ``translated/manifest.jsonl``). Target samples
carry ``predictions_<detector>`` for every detector the evaluate stage ran (its
``eval/predictions/<set>.json``) and FiftyOne's COCO evaluation under eval key
``eval_<detector>`` (matching at IoU ``inspect.iou``), as ``evaluate_detections`` stores it: per
sample ``eval_<detector>_tp`` / ``_fp`` / ``_fn``, per box ``eval_<detector>`` = tp / fp / fn
with ``_id`` and ``_iou``, and the results the App's evaluation panel shows. The matching runs
on each sample before it is stored (:class:`Evaluations`), and samples are added in bounded
batches (``ADD_BATCH``): time grows with the run's images, and memory holds one batch.

**Refreshing.** The dataset stores a fingerprint of the files and settings it was built from
(``dataset.info["fingerprint"]``). When they change, it is rebuilt from scratch under a
temporary, non-persistent name, then swapped in for the old one (deleted) and made persistent:
a rebuild never duplicates or leaves stale samples, and one that fails or is killed leaves the
old dataset as it was (FiftyOne deletes non-persistent datasets left by dead processes). Sample
tags set in the App are carried over to the same images of the new dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from pipeline.context import RunContext
from pipeline.inspection import runfiles
from pipeline.inspection.database import connect
from pipeline.inspection.errors import InspectionError
from pipeline.inspection.runfiles import Image, RunFiles
from pipeline.rundir import fingerprint as file_fingerprint

logger = logging.getLogger(__name__)

# Part of the fingerprint: bump it when the dataset's layout changes, so old ones are rebuilt.
LAYOUT_VERSION = 1
GROUP_FIELD = "group"
SOURCE, TRANSLATED, TARGET = "source", "translated", "target"
# The most samples, and boxes, of one add_samples call: a batch is what memory holds.
ADD_BATCH, ADD_BATCH_LABELS = 128, 5000


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    rebuilt: bool
    groups: int
    slices: dict[str, int]          # slice -> samples
    evaluations: list[str]          # eval keys

    def to_dict(self) -> dict:
        return {"dataset": self.name, "rebuilt": self.rebuilt, "groups": self.groups,
                "slices": self.slices, "evaluations": self.evaluations}


def dataset_name(ctx: RunContext) -> str:
    return ctx.config.inspect.dataset_name or ctx.config.run.name


def slice_name(sample_index: int) -> str:
    """The group slice of a translation: ``translated`` for style sample 0, ``translated_s<k>``
    for the others."""
    return TRANSLATED if sample_index == 0 else f"{TRANSLATED}_s{sample_index}"


def count_field(class_name: str) -> str:
    """The sample field counting the boxes of a class (``num_traffic_sign``)."""
    return "num_" + re.sub(r"\W", "_", class_name)


def fingerprint(ctx: RunContext, files: RunFiles) -> str:
    """Changes when anything the dataset is built from changes: its input files' contents and
    the settings that shape it."""
    cfg = ctx.config
    document = {
        "layout": LAYOUT_VERSION, "classes": cfg.data.classes, "iou": cfg.inspect.iou,
        "source_split": cfg.translate.split, "target_split": cfg.evaluate.split,
        "inputs": {str(p): file_fingerprint(p) for p in files.inputs},
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def image_sample(fo: ModuleType, image: Image, classes: list[str], **fields: object):
    """A FiftyOne sample of ``image``: its boxes as ``ground_truth`` (relative coordinates),
    per-class counts, metadata, ``image.fields`` and ``fields``."""
    w, h = image.width, image.height
    detections = [fo.Detection(label=name, bounding_box=[x / w, y / h, bw / w, bh / h])
                  for name, (x, y, bw, bh) in image.boxes]
    counts = {count_field(c): sum(name == c for name, _ in image.boxes) for c in classes}
    return fo.Sample(filepath=str(image.filepath), metadata=fo.ImageMetadata(width=w, height=h),
                     ground_truth=fo.Detections(detections=detections), key=image.key,
                     **counts, **image.fields, **fields)


def _predictions(fo: ModuleType, boxes: list[tuple], width: int, height: int):
    return fo.Detections(detections=[
        fo.Detection(label=name, bounding_box=[x / width, y / height, w / width, h / height],
                     confidence=score)
        for name, (x, y, w, h), score in boxes])


def build_dataset(ctx: RunContext) -> DatasetSummary:
    """Build the run's dataset, or leave it as it is when it is up to date (module doc)."""
    files = runfiles.find_files(ctx)
    runfiles.require_manifests(ctx, files.source, files.target)
    fo = connect(ctx.config.inspect.database_dir)
    name = dataset_name(ctx)
    stamp = fingerprint(ctx, files)
    old = fo.load_dataset(name) if fo.dataset_exists(name) else None
    if old is not None:
        if "fingerprint" not in old.info:
            raise InspectionError(
                f"the FiftyOne database holds a dataset {name!r} that pipeline inspect did not "
                "build; choose another name (inspect.dataset_name) or delete it "
                f"(fiftyone.delete_dataset({name!r}))")
        if old.info.get("fingerprint") == stamp:
            logger.info("FiftyOne dataset %r is up to date with %s", name, ctx.run_dir)
            return _summary(old, rebuilt=False)
        if old.info.get("run_dir") != str(ctx.run_dir):
            logger.warning("FiftyOne dataset %r of run %s is replaced by that of %s (set "
                           "inspect.dataset_name to keep both)", name, old.info.get("run_dir"),
                           ctx.run_dir)
    for note in files.notes:
        logger.info("inspect: %s", note)
    building = fo.Dataset(f"{name}.building-{secrets.token_hex(4)}", persistent=False)
    try:
        _fill(fo, building, ctx, files)
        building.info = {"run_dir": str(ctx.run_dir), "fingerprint": stamp}
        building.save()
        if old is not None:
            _carry_tags(old, building)
            old.delete()
        building.name = name
        building.persistent = True
    except BaseException:
        building.delete()
        raise
    summary = _summary(building, rebuilt=True)
    logger.info("FiftyOne dataset %r: %d groups, samples per slice %s, evaluations %s",
                name, summary.groups, summary.slices, summary.evaluations or "none")
    return summary


def _fill(fo: ModuleType, dataset, ctx: RunContext, files: RunFiles) -> None:
    cfg = ctx.config
    classes = list(cfg.data.classes)
    dataset.add_group_field(GROUP_FIELD, default=SOURCE)
    dataset.default_classes = classes
    groups: dict[str, object] = {}

    def source_side():
        for image in runfiles.read_images(files.source, split=cfg.translate.split):
            group = groups.setdefault(image.key, fo.Group())
            yield image_sample(fo, image, classes, group=group.element(SOURCE))
        if files.translated is not None:
            for image in runfiles.read_translated(files.translated):
                group = groups.setdefault(image.key, fo.Group())
                slice_ = slice_name(image.fields["sample_index"])
                yield image_sample(fo, image, classes, group=group.element(slice_))

    _add_in_batches(fo, dataset, source_side())
    predictions = {detector: runfiles.read_predictions(path, files.target)
                   for detector, path in files.predictions.items()}
    evaluations = Evaluations(fo, dataset, list(predictions), cfg.inspect.iou, classes)

    def target_side():
        for image in runfiles.read_images(files.target, split=cfg.evaluate.split):
            fields = {f"predictions_{detector}": _predictions(
                fo, found.pop(image.fields["image_id"]), image.width, image.height)
                for detector, found in predictions.items()}
            sample = image_sample(fo, image, classes, group=fo.Group().element(TARGET),
                                  **fields)
            evaluations.evaluate(sample)
            yield sample

    _add_in_batches(fo, dataset, target_side())
    evaluations.save()


def _add_in_batches(fo: ModuleType, dataset, samples: Iterator) -> None:
    """Add ``samples`` in batches of at most ``ADD_BATCH`` samples and ``ADD_BATCH_LABELS``
    boxes: memory holds one batch, whatever the run's size (a target sample with six detectors'
    predictions holds 600 boxes, ~5 KB each once evaluated)."""
    batch, labels = [], 0
    for sample in samples:
        batch.append(sample)
        labels += sum(len(value.detections) for _, value in sample.iter_fields()
                      if isinstance(value, fo.Detections))
        if len(batch) == ADD_BATCH or labels >= ADD_BATCH_LABELS:
            dataset.add_samples(batch, progress=False)
            batch, labels = [], 0
    if batch:
        dataset.add_samples(batch, progress=False)


class Evaluations:
    """FiftyOne's COCO evaluation of every detector (what ``evaluate_detections`` stores under
    ``eval_<detector>``), computed on each target sample before it is added.

    ``evaluate_detections`` on samples already in the database saves each sample again after
    matching it, and MongoEngine walks every label of the sample to find what changed: 0.6-0.9 s
    per sample and detector once a detector returns 100 boxes, growing with the number of
    detectors (docs/benchmarks.md, Scale). The same matching code
    (:meth:`COCOEvaluation.evaluate`) run on the samples in memory costs milliseconds, and the
    samples are then written once.
    """

    def __init__(self, fo: ModuleType, dataset, detectors: list[str], iou: float,
                 classes: list[str]):
        from fiftyone.utils.eval.coco import COCOEvaluationConfig

        self.classes = classes
        self.methods = {}
        self.matches: dict[str, list] = {}      # what generate_results needs: a tuple a box
        self.target = None
        if not detectors:
            return
        dataset.add_group_slice(TARGET, "image")
        labels = dict(ftype=fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
        dataset.add_sample_field("ground_truth", **labels)
        self.target = dataset.select_group_slices(TARGET)
        for detector in detectors:
            field, key = f"predictions_{detector}", f"eval_{detector}"
            dataset.add_sample_field(field, **labels)
            method = COCOEvaluationConfig(field, "ground_truth", iou=iou, classwise=True).build()
            method.ensure_requirements()
            method.register_run(self.target, key)
            method.register_samples(self.target, key)
            self.methods[key], self.matches[key] = method, []

    def evaluate(self, sample) -> None:
        """Match ``sample``'s predictions of every detector to its ground truth: the boxes'
        ``eval_<detector>`` (tp / fp / fn), ``_id`` and ``_iou``, the sample's counts."""
        for key, method in self.methods.items():
            matches = method.evaluate(sample, eval_key=key)
            self.matches[key].extend(matches)
            sample[f"{key}_tp"] = sum(m[0] is not None and m[0] == m[1] for m in matches)
            sample[f"{key}_fp"] = sum(m[1] is not None and m[0] != m[1] for m in matches)
            sample[f"{key}_fn"] = sum(m[0] is not None and m[0] != m[1] for m in matches)

    def save(self) -> None:
        """Store each evaluation's results, as ``evaluate_detections`` does at its end."""
        for key, method in self.methods.items():
            results = method.generate_results(self.target, self.matches.pop(key), eval_key=key,
                                              classes=self.classes)
            method.save_run_results(self.target, key, results)
            method.add_fields_to_sidebar_group(
                self.target, key, omit_fields=(method.config.pred_field, "ground_truth"))


def _carry_tags(old, new) -> None:
    """Give the samples of ``new`` the tags their image had in ``old`` (same slice and file)."""
    old_all = old.select_group_slices()
    slices, paths, tags = old_all.values([f"{GROUP_FIELD}.name", "filepath", "tags"])
    tagged = {(s, p): t for s, p, t in zip(slices, paths, tags) if t}
    if not tagged:
        return
    new_all = new.select_group_slices()
    slices, paths = new_all.values([f"{GROUP_FIELD}.name", "filepath"])
    new_all.set_values("tags", [tagged.get((s, p), []) for s, p in zip(slices, paths)])
    logger.info("kept the tags of %d samples", len(tagged))


def _summary(dataset, rebuilt: bool) -> DatasetSummary:
    every = dataset.select_group_slices()
    return DatasetSummary(name=dataset.name, rebuilt=rebuilt,
                          groups=len(every.distinct(f"{GROUP_FIELD}.id")),
                          slices=dict(sorted(every.count_values(f"{GROUP_FIELD}.name").items())),
                          evaluations=sorted(dataset.list_evaluations()))
