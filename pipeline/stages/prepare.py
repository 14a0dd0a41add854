"""The ``prepare`` stage: both domains on disk -> four COCO manifests.

Writes ``runs/<name>/data/{source_train,source_val,target_train,target_val}.json`` and
``summary.json``. Each manifest is a COCO detection JSON whose ``file_name`` entries are relative
to the dataset root stored in ``info.image_root`` (absolute), so a manifest stays valid when the
run folder moves but the dataset does not. Category ids are 1..K in the order of
``data.classes``, identical in all four manifests.

Splits: KITTI has no official validation split, so ``val_list`` (a file of frame ids) or a
seeded ``val_fraction`` of the frames makes one; Cityscapes uses its ``train``/``val`` folders;
COCO datasets bring one JSON per split.

With ``data.target.labels`` ``none`` or ``pseudo`` the target's training images are listed
without opening a label file (:mod:`pipeline.formats.unlabeled`), and its validation split keeps
its boxes where the dataset has them. Each manifest's ``info.labeled`` says whether its split has
labels (written only when false, so labeled manifests keep the bytes they always had);
``evaluate`` scores only labeled splits.

With ``data.source.perfect_translations`` (KITTI ``training`` folders, each holding a perfect
translation of the source with the same file names and sizes) it also writes
``source_train.perfect_<k>.json``: source_train with its images taken from the k-th folder,
after checking that every one is there at its source image's size. The first is the training
set of the ``perfect_translation`` detector, a ceiling for any translation; the first two give
the ceilings of the translation metrics.

All manifests are written to a temporary folder and moved into place only when every split
has been read and every image verified: a failed prepare leaves the previous manifests (or none),
never a mix.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from joblib import Parallel, delayed
from tqdm import tqdm

from detection.manifest import write_text
from pipeline.config import DataConfig, DomainConfig
from pipeline.formats import cityscapes, coco, kitti, unlabeled
from pipeline.formats.common import BadInputLog, DatasetError, ImageRecord, read_image_size
from pipeline.rundir import perfect_translation_manifest

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)

SPLITS = ("source_train", "source_val", "target_train", "target_val")
VERIFY_CHUNK = 64


def input_paths(ctx: RunContext) -> list[Path]:
    """The files and folders whose change makes ``prepare`` stale."""
    paths = []
    for domain in (ctx.config.data.source, ctx.config.data.target):
        paths.append(Path(domain.root))
        for extra in (domain.val_list, domain.train_annotations, domain.val_annotations):
            if extra:
                paths.append(Path(extra))
    paths += [Path(p) for p in ctx.config.data.source.perfect_translations]
    return paths


TEMP_PREFIX = ".prepare-"


def output_paths(ctx: RunContext) -> list[Path]:
    paths = [ctx.manifest(s) for s in SPLITS] + [ctx.data_dir / "summary.json"]
    paths += [perfect_translation_manifest(ctx.config.run.path, k)
              for k in range(len(ctx.config.data.source.perfect_translations))]
    return paths


def split_labeled(domain: DomainConfig, split: str) -> bool:
    """Whether the records of ``split`` (``train`` or ``val``) of ``domain`` carry its boxes."""
    if domain.labels == "boxes":
        return True
    if split == "train":
        return False
    return unlabeled.has_labels(domain.format, domain.root, domain.val_split,
                                domain.val_annotations)


def read_domain(domain: DomainConfig, data: DataConfig, split: str,
                log: BadInputLog) -> Iterator[ImageRecord]:
    """Yield the records of one split (``train`` or ``val``) of one domain, lazily."""
    if not split_labeled(domain, split):
        paths = unlabeled.list_split(
            domain.format, domain.root, split, train_split=domain.train_split,
            val_split=domain.val_split, val_fraction=domain.val_fraction,
            split_seed=domain.split_seed, val_list=domain.val_list,
            annotations=domain.train_annotations if split == "train" else domain.val_annotations)
        return unlabeled.read_images(paths, domain.root)
    common = dict(class_map=domain.class_map, on_unknown_label=domain.on_unknown_label,
                  on_bad_box=data.on_bad_box, log=log, verify_images=False,
                  min_box_size=data.min_box_size)
    if domain.format == "kitti":
        train_ids, val_ids = kitti_split(domain)
        return kitti.read_kitti(domain.root, train_ids if split == "train" else val_ids,
                                **common)
    if domain.format == "cityscapes":
        folder = domain.train_split if split == "train" else domain.val_split
        return cityscapes.read_cityscapes(domain.root, folder, **common)
    annotations = domain.train_annotations if split == "train" else domain.val_annotations
    return coco.read_coco(annotations, domain.root, **common)


def kitti_split(domain: DomainConfig) -> tuple[list[str], list[str]]:
    """KITTI frame ids of (train, val): from ``val_list`` if given, else a seeded fraction."""
    frames = kitti.list_frames(domain.root)
    if domain.val_list:
        return kitti.split_by_list(frames, kitti.read_frame_list(domain.val_list),
                                   domain.val_list)
    return kitti.split_frames(frames, domain.val_fraction, domain.split_seed)


def verify_images(paths: list[str], workers: int, progress: bool = True) -> None:
    """Decode every image fully (in ``workers`` processes); the first bad one raises."""
    chunks = [paths[i:i + VERIFY_CHUNK] for i in range(0, len(paths), VERIFY_CHUNK)]
    with tqdm(total=len(paths), desc="verify images", unit="img", leave=False,
              disable=None if progress else True) as bar:
        for done in Parallel(n_jobs=max(workers, 1), return_as="generator")(
            delayed(_verify_chunk)(chunk) for chunk in chunks
        ):
            bar.update(done)


def _verify_chunk(paths: list[str]) -> int:
    for p in paths:
        read_image_size(Path(p), verify=True)
    return len(paths)


def write_perfect_translation(source_train: Path, folder: Path, out: Path) -> list[str]:
    """Write ``source_train``'s manifest to ``out`` with its images taken from ``folder`` (the
    same file names, relative to it); return the images' paths. Raises :class:`DatasetError`
    naming an image that is missing there or whose size differs from its source image's."""
    document = json.loads(source_train.read_text(encoding="utf-8"))
    source_root = Path(document["info"]["image_root"])
    paths = []
    for image in document["images"]:
        path = folder / image["file_name"]
        source = source_root / image["file_name"]
        try:
            size = read_image_size(path)
        except DatasetError as exc:
            raise DatasetError(path, f"{exc.reason}; data.source.perfect_translations must "
                                     f"hold a translation of every source image ({source})"
                               ) from None
        if size != (image["width"], image["height"]):
            raise DatasetError(path, f"image is {size[0]}x{size[1]} but its source image "
                                     f"{source} is {image['width']}x{image['height']}; a "
                                     "perfect translation keeps every image's size")
        paths.append(str(path))
    document["info"] = {**document["info"], "image_root": folder.as_posix(),
                        "description": f"{document['info'].get('description', 'source_train')}"
                                       f", images from the perfect translation {folder}"}
    write_text(out, json.dumps(document, allow_nan=False))
    return paths


def format_summary(counts: dict[str, dict], classes: list[str]) -> str:
    """A plain-text table: images and boxes per class, one row per split."""
    header = ["split", "images", *classes, "boxes"]
    rows = [header]
    for split, c in counts.items():
        per_class = c["boxes_per_class"]
        if not c.get("labeled", True):
            rows.append([split, str(c["images"]), *("-" for _ in classes), "no labels"])
            continue
        rows.append([split, str(c["images"]), *(str(per_class.get(k, 0)) for k in classes),
                     str(sum(per_class.values()))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                       enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(ctx: RunContext) -> dict:
    data = ctx.config.data
    created = not ctx.data_dir.exists()
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    log = BadInputLog()
    counts: dict[str, dict] = {}
    # A killed prepare leaves its folder behind; the run directory is this process's (locked).
    for leftover in ctx.data_dir.glob(f"{TEMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=ctx.data_dir))
    finished = False
    try:
        image_paths: list[str] = []
        for split in SPLITS:
            side, part = split.split("_")
            domain: DomainConfig = getattr(data, side)
            labeled = split_labeled(domain, part)
            records = read_domain(domain, data, part, log)
            records = _collect_paths(tqdm(records, desc=f"read {split}", unit="img",
                                          leave=False, disable=None if ctx.progress else True),
                                     image_paths)
            counts[split] = coco.write_manifest(
                tmp / f"{split}.json", records, data.classes, domain.root,
                info={"description": f"{split} of run {ctx.config.run.name}",
                      "format": domain.format, "split": split,
                      **({} if labeled else {"labeled": False})},
            )
            counts[split]["labeled"] = labeled
            if counts[split]["images"] == 0:
                raise DatasetError(domain.root, f"split {split} has no images; check "
                                   f"data.{side} (root, split names, val_fraction)")
        perfect = [perfect_translation_manifest(ctx.config.run.path, k)
                   for k in range(len(data.source.perfect_translations))]
        for folder, out in zip(data.source.perfect_translations, perfect):
            image_paths += write_perfect_translation(tmp / "source_train.json", Path(folder),
                                                     tmp / out.name)
        if data.verify_images:
            verify_images(image_paths, ctx.config.run.workers, ctx.progress)
        summary = {"splits": counts, "bad_input": log.to_dict(), "classes": data.classes}
        write_text(tmp / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
        for name in (*SPLITS, "summary"):
            (tmp / f"{name}.json").replace(ctx.data_dir / f"{name}.json")
        for stale in ctx.data_dir.glob("source_train.perfect_*.json"):
            if stale not in perfect:    # of an earlier config: no longer this data's
                stale.unlink()
        for out in perfect:
            (tmp / out.name).replace(out)
        finished = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not finished and not any(ctx.data_dir.iterdir()):
            ctx.data_dir.rmdir()
    table = format_summary(counts, data.classes)
    logger.info("prepared manifests in %s\n%s", ctx.data_dir, table)
    warnings = log.summary_lines()
    if warnings:
        logger.warning("bad input repaired or skipped:\n  %s", "\n  ".join(warnings))
    if log.quiet:
        logger.info("ignored as configured: %s", log.quiet_summary())
    return {"images": {s: c["images"] for s, c in counts.items()}, "bad_input": log.to_dict()}


def _collect_paths(records: Iterator[ImageRecord], sink: list[str]) -> Iterator[ImageRecord]:
    for record in records:
        sink.append(str(record.path))
        yield record
