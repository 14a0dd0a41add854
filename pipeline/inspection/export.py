"""One set of a run in a common detection layout, through FiftyOne's exporters.

Sets: ``translated`` (``translated/annotations.json``, every style sample) and the prepared
splits (``data/<split>.json``). Formats, each with the images copied and the experiment's
classes in the config's order:

``coco``   ``data/`` + ``labels.json`` (fo.types.COCODetectionDataset; category ids 1..K as in
           the run's manifests);
``yolo``   ``images/<train|val>/`` + ``labels/<train|val>/*.txt`` + ``dataset.yaml``
           (fo.types.YOLOv5Dataset; the split is ``val`` for the *_val sets, ``train``
           otherwise; no absolute ``path`` in the YAML, so the folder can be moved);
``voc``    ``data/`` + ``labels/*.xml`` (fo.types.VOCDetectionDataset, without absolute paths);
``kitti``  ``data/`` + ``labels/*.txt`` (fo.types.KITTIDetectionDataset): the experiment's
           classes, one 2D box a line. (``translated/`` itself is already in KITTI layout,
           ``image_2/`` + ``label_2/``, with the source's original label files byte for byte,
           KITTI types such as ``Van`` and ``DontCare`` included; the export holds only what the
           run trains on.)

The export is written to ``DIR.tmp-<random>`` beside ``DIR`` and renamed to ``DIR`` when
complete, so a failed export leaves no partial ``DIR``. An existing non-empty ``DIR`` is refused
unless ``overwrite``; it is then replaced only once the new export is complete.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from pipeline import rundir
from pipeline.context import RunContext
from pipeline.inspection import runfiles
from pipeline.inspection.database import connect
from pipeline.inspection.dataset import image_sample
from pipeline.inspection.errors import InspectionError
from pipeline.translation.records import ANNOTATIONS

logger = logging.getLogger(__name__)

PSEUDO = "target_train_pseudo"     # target_train with its pseudo labels (data.target.labels)
SETS = ("translated", "source_train", "source_val", "target_train", "target_val", PSEUDO)
FORMATS = ("coco", "yolo", "voc", "kitti")


def set_images(ctx: RunContext, set_name: str) -> list[runfiles.Image]:
    if set_name == runfiles.TRANSLATED:
        annotations = rundir.translated_dir(ctx.run_dir) / ANNOTATIONS
        if not annotations.is_file():
            raise InspectionError(f"{annotations}: missing; the translated set is complete only "
                                  "when the translate stage has finished (pipeline run "
                                  f"{rundir.resolved_config(ctx.run_dir)} --only translate)")
        return runfiles.read_translated(annotations)
    if set_name == PSEUDO:
        manifest = ctx.pseudo_labels()
        if not manifest.is_file():
            raise InspectionError(f"{manifest}: missing; pseudo labels come from a run with "
                                  "data.target.labels: pseudo (its pseudo_label stage)")
        return runfiles.read_images(manifest, split=set_name)
    manifest = ctx.manifest(set_name)
    runfiles.require_manifests(ctx, manifest)
    return runfiles.read_images(manifest, split=set_name)


def _exporter(fo, fmt: str, set_name: str, classes: list[str]) -> dict:
    if fmt == "coco":
        return {"dataset_type": fo.types.COCODetectionDataset, "classes": classes,
                "categories": [{"id": i, "name": c, "supercategory": None}
                               for i, c in enumerate(classes, start=1)]}
    if fmt == "yolo":
        return {"dataset_type": fo.types.YOLOv5Dataset, "classes": classes,
                "split": "val" if set_name.endswith("_val") else "train",
                "include_path": False}
    if fmt == "voc":
        return {"dataset_type": fo.types.VOCDetectionDataset, "include_paths": False}
    return {"dataset_type": fo.types.KITTIDetectionDataset}


def _check_out(out: Path, overwrite: bool, keep: set[Path], runs: Sequence[Path] = ()) -> None:
    """Refuse an ``out`` that is a file, that lies in what the pipeline writes in one of the
    ``runs`` directories, that is not empty (unless ``overwrite``), or that holds one of the
    ``keep`` folders (replacing it would delete them)."""
    if out.exists() and not out.is_dir():
        raise InspectionError(f"{out}: exists and is not a folder; choose another --out")
    for run_dir in runs:
        owned = rundir.run_entry_holding(run_dir, out)
        if owned is not None:
            raise InspectionError(f"{out}: {'is' if owned == out else 'lies inside'} {owned}, "
                                  "which belongs to the run (the pipeline writes it); an export "
                                  "there would replace or mix with the run's own files: choose "
                                  f"another --out (e.g. {run_dir / 'exports' / out.name})")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise InspectionError(f"{out}: the folder is not empty; choose another --out, or pass "
                              "--overwrite to replace it")
    inside = sorted(p for p in keep if p == out or out in p.parents)
    if inside:
        raise InspectionError(f"{out}: holds {inside[0]}, which the export reads or which "
                              "belongs to the run; choose another --out")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished export ``tmp`` to ``out``, replacing what is there."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f"{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def export_set(ctx: RunContext, set_name: str, fmt: str, out: str | Path,
               overwrite: bool = False) -> dict:
    """Export ``set_name`` of the run as ``fmt`` into the folder ``out`` (module doc).

    Returns ``{"out", "set", "format", "images", "boxes"}``.
    """
    if set_name not in SETS or fmt not in FORMATS:
        raise ValueError(f"set must be one of {SETS} and format one of {FORMATS}")
    out = Path(out).resolve()
    images = set_images(ctx, set_name)
    folders = {ctx.run_dir, *(image.filepath.parent for image in images)}
    _check_out(out, overwrite, {folder.resolve() for folder in folders}, [ctx.run_dir])
    classes = list(ctx.config.data.classes)
    fo = connect(ctx.config.inspect.database_dir)
    # A scratch dataset: non-persistent, so FiftyOne removes it even if this process dies.
    dataset = fo.Dataset(persistent=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{secrets.token_hex(4)}")
    try:
        dataset.add_samples([image_sample(fo, image, classes) for image in images])
        dataset.export(export_dir=str(tmp), label_field="ground_truth", export_media=True,
                       **_exporter(fo, fmt, set_name, classes))
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        dataset.delete()
    boxes = sum(len(image.boxes) for image in images)
    logger.info("exported %s of %s (%d images, %d boxes) as %s to %s", set_name, ctx.run_dir,
                len(images), boxes, fmt, out)
    return {"out": str(out), "set": set_name, "format": fmt, "images": len(images),
            "boxes": boxes}
