"""Build a run's report: gather its files, draw the figures and grids, write the page.

Everything is written into a fresh temporary folder ``runs/<name>/.report-*`` that then
replaces ``report/`` by renaming, so a failure or a kill leaves the previous report (or none),
never a mix; temporary folders of a killed build are removed by the next one.

The report folder holds ``index.html``, its PNG figures, and copies of ``eval/metrics.json``
(and ``eval/translation.json``) so that the numbers travel with the page.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from detection.images import open_image, to_rgb
from pipeline import __version__
from pipeline.config import dump_config
from pipeline.formats.coco import read_manifest
from pipeline.formats.common import read_json
from pipeline.report import figures, grids, html
from pipeline.report.files import RunFiles
from pipeline.report.scalars import read_scalars
from pipeline.paper import ROW_NAMES
from pipeline.rundir import baseline_dir, perfect_translation_manifest
from pipeline.translation.records import read_log

if TYPE_CHECKING:
    import torch

    from pipeline.context import RunContext

logger = logging.getLogger(__name__)

_TEMP_PREFIX = ".report-"


def build_report(ctx: RunContext) -> dict:
    """Write ``runs/<name>/report/``; returns what the runner records in ``state.json``."""
    files = RunFiles(ctx)
    run_dir = ctx.run_dir
    for leftover in run_dir.glob(_TEMP_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    # Not tempfile.mkdtemp: its folders are private (0700), the report is for others to read.
    tmp = run_dir / f"{_TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        page = _gather(ctx, files, tmp)
        (tmp / "index.html").write_text(html.render(page), encoding="utf-8")
        written = sorted(p for p in tmp.iterdir() if p.is_file())
        _replace(tmp, files.report_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in files.report_dir.iterdir() if p.is_file())
    images = sum(p.suffix == ".png" for p in written)
    logger.info("report: %s (%d files, %d PNG images, %.1f MB)", files.index, len(written),
                images, size / 2**20)
    return {"report": str(files.index), "files": len(written), "images": images,
            "bytes": size}


def _replace(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, replacing the folder there. A folder cannot be renamed
    over a non-empty one, so the old one is first moved aside (under the temporary prefix,
    so that a kill between the two renames leaves it to be cleaned up)."""
    old = None
    if target.exists():
        old = target.with_name(f"{_TEMP_PREFIX}old-{secrets.token_hex(4)}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _gather(ctx: RunContext, files: RunFiles, out: Path) -> html.Page:
    cfg = ctx.config
    metrics = read_json(files.metrics)
    translation = read_json(files.translation_metrics) \
        if files.translation_metrics.exists() else None
    state = read_json(files.state) if files.state.exists() else {}
    device = _device(cfg.run.device)

    ap_chart = None
    if "skipped" not in metrics:
        figures.ap_chart(metrics, out / "ap50.png")
        ap_chart = html.Picture(
            "ap50.png", "Bar chart of AP at IoU 0.5 per class and mAP, one bar per training set",
            "AP at IoU 0.5 (%) per class and its mean, one bar per detector's training set "
            "(eval/metrics.json).")
    losses, absent = _loss_figures(ctx, files, out)

    shutil.copyfile(files.metrics, out / "metrics.json")
    copied = [("metrics.json", "the detection metrics of this run (eval/metrics.json)")]
    if translation is not None:
        shutil.copyfile(files.translation_metrics, out / "translation.json")
        copied.append(("translation.json",
                       "the translation quality metrics (eval/translation.json)"))

    return html.Page(
        run=cfg.run.name,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=__version__,
        settings=_settings(ctx, metrics, device),
        summary=_data_summary(ctx, files),
        config_yaml=dump_config(cfg),
        metrics=metrics,
        ap_chart=ap_chart,
        translation=translation,
        grid=_grid(ctx, files, out, device),
        training_samples=_training_samples(ctx, files, out),
        losses=losses,
        losses_absent=absent,
        stages=[{"name": name, **state["stages"][name]} for name in _stage_order(state)
                if name != "report"],
        machine=_machine(device),
        files=copied,
    )


def _device(name: str) -> torch.device:
    """The configured device, or the CPU where it is not available: a report may be built on
    another machine than the one that trained."""
    from mguit.distributed import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as exc:
        import torch

        logger.warning("report: %s; generating style samples on the CPU", exc)
        return torch.device("cpu")


def _settings(ctx: RunContext, metrics: dict, device: torch.device) -> list[tuple[str, str]]:
    cfg = ctx.config
    d, t, tr, det = cfg.data, cfg.translator, cfg.translate, cfg.detector
    length = (f"{t.train.iterations} iterations" if t.train.iterations is not None
              else f"{t.train.epochs} epochs")
    items = ", ".join(f"{k} {v}" for k, v in t.memory.items.items())
    used = sorted({str(m.get("backend")) for m in metrics["detectors"].values()})
    backbone = f", {det.torchvision.backbone}" if "torchvision" in used else ""
    return [
        ("Run", f"{cfg.run.name} ({ctx.run_dir})"),
        ("Device", f"{cfg.run.device} (here: {device})"),
        ("Seed", str(cfg.run.seed)),
        ("Classes", ", ".join(d.classes)),
        ("Source data", f"{d.source.format} at {d.source.root}"),
        ("Target data", f"{d.target.format} at {d.target.root}"),
        ("Translator training", f"{length}, batch {t.train.batch_size}, resize "
                                f"{t.train.resize}, crop {t.train.crop}, lr {t.train.lr}"),
        ("Translator memory", f"{t.memory.variant}, {t.memory.loss} loss, items: {items}; "
                              f"key dim {t.memory.key_dim}"),
        ("Translation", f"{tr.split}, {tr.direction}, {tr.num_samples} sample(s) per image, "
                        f"seed {tr.seed}"),
        ("Detectors", f"{det.backend} (used: {', '.join(used)}{backbone}), "
                      f"{det.solver.iterations} iterations, batch {det.solver.batch_size}, "
                      f"lr {det.solver.lr}, weights {det.weights or 'none (random init)'}; "
                      f"training sets {', '.join(cfg.train_sets)}"),
        ("Target labels", _target_labels(cfg)),
        ("Evaluation", f"{cfg.evaluate.split}"),
    ]


def _data_summary(ctx: RunContext, files: RunFiles) -> dict:
    """data/summary.json, with the pseudo labels' boxes per class as one more split."""
    summary = read_json(files.summary)
    path = ctx.pseudo_labels()
    if ctx.config.data.target.labels == "pseudo" and path.is_file():
        from detection.manifest import load_manifest

        manifest = load_manifest(path)
        threshold = manifest.info["pseudo_labels"]["score_threshold"]
        summary["splits"][f"target_train, pseudo labels (score >= {threshold})"] = {
            "images": len(manifest.images), "boxes_per_class": manifest.boxes_per_class()}
    return summary


def _target_labels(cfg) -> str:
    """How the translator's target boxes were obtained (data.target.labels)."""
    mode = cfg.data.target.labels
    if mode == "boxes":
        return "boxes: the target's own"
    if mode == "none":
        return "none: the target side of the memory trains without class masks"
    p = cfg.pseudo_labels
    source = p.checkpoint or p.detector
    return (f"pseudo: boxes of {source} scoring >= {p.score_threshold}, {p.rounds} round(s) "
            "(data/target_train.pseudo.json)")


def _loss_figures(ctx: RunContext, files: RunFiles,
                  out: Path) -> tuple[list[html.Picture], list[str]]:
    pictures, absent = [], []
    translator = read_scalars(files.translator_tensorboard)
    if translator:
        figures.loss_curves({"translator": translator}, "Translator (MGUIT) training",
                            out / "losses_translator.png")
        pictures.append(html.Picture(
            "losses_translator.png", "Line plots of the translator's training losses",
            "The translator's logged losses (raw, faint, and smoothed) and learning rate by "
            "iteration (translator/tensorboard)."))
    else:
        absent.append("translator")
    detectors = {}
    for train_set in ctx.config.train_sets:
        series = read_scalars(files.detector_tensorboard(train_set))
        if series:
            detectors[ROW_NAMES.get(train_set, train_set)] = series
        else:
            absent.append(f"detector {train_set}")
    if detectors:
        figures.loss_curves(detectors, "Detector training", out / "losses_detectors.png")
        pictures.append(html.Picture(
            "losses_detectors.png", "Line plots of the detectors' training losses, one line "
                                    "per training set",
            "Each detector's logged losses (raw, faint, and smoothed) and learning rate by "
            "iteration (detector/<set>/tensorboard), one colour per training set."))
    return pictures, absent


def _stage_order(state: dict) -> list[str]:
    """The finished stages in pipeline order (the runner records it; older state files are
    ordered by when each stage started)."""
    done = state.get("stages", {})
    order = state.get("order") or sorted(done, key=lambda name: done[name]["started_at"])
    return [name for name in order if name in done]


def _open(path: str | Path) -> Image.Image:
    with open_image(path) as image:
        return to_rgb(image)


def _grid(ctx: RunContext, files: RunFiles, out: Path,
          device: torch.device) -> html.Grid | None:
    """Rows ``source (boxes) | translated | style samples | baselines | perfect translation |
    target`` for ``report.grid_images`` images of the translated split, picked by
    ``report.seed``; the baselines and the perfect translation where the run has them."""
    cfg, rcfg = ctx.config, ctx.config.report
    done = {(e["key"], e["sample"]): e for e in read_log(files.translated_manifest)
            if e.get("status") == "done"}
    keys = grids.select((k for k, s in done if s == 0), rcfg.grid_images, rcfg.seed)
    if not keys:
        return None
    translated = read_manifest(files.translated_annotations)
    classes = translated.classes
    names = {c["id"]: c["name"] for c in translated.categories}
    boxes = translated.annotations_by_image()
    image_ids = {image["file_name"]: image["id"] for image in translated.images}
    stored = max(s for _, s in done) + 1           # samples per image in translated/
    from_files = min(rcfg.grid_samples, stored - 1)
    sources = {key: _open(done[(key, 0)]["source"]) for key in keys}
    generated = {}
    if rcfg.grid_samples > from_files:
        generated = grids.generate_styles(files.checkpoint, device, cfg.translate.direction,
                                          sources, rcfg.grid_samples, rcfg.seed,
                                          cfg.translate.amp, cfg.translate.batch_size)
    target = read_manifest(files.style_manifest)
    target_names = grids.select((image["file_name"] for image in target.images), len(keys),
                                rcfg.seed)
    target_files = {image["file_name"]: target.image_path(image) for image in target.images}
    beside = _beside_columns(ctx, {key: done[(key, 0)]["image"] for key in keys})

    height = rcfg.thumbnail_height
    rows, row_names = [], []
    for i, key in enumerate(keys):
        first = done[(key, 0)]["image"]
        source_boxes = [(names[a["category_id"]], a["bbox"])
                        for a in boxes[image_ids[first]]]
        samples = [_open(files.translated_dir / done[(key, k)]["image"])
                   for k in range(1, from_files + 1)]
        samples += generated.get(key, [])[from_files:]
        # A target split smaller than the grid shows its images again.
        target_name = target_names[i % len(target_names)]
        rows.append([grids.with_boxes(sources[key], source_boxes, classes, height),
                     grids.thumbnail(_open(files.translated_dir / first), height),
                     *(grids.thumbnail(s, height) for s in samples),
                     *(grids.thumbnail(_open(paths[key]), height) for paths in beside.values()),
                     grids.thumbnail(_open(target_files[target_name]), height)])
        row_names.append((key, target_name))
    grids.compose(rows).save(out / "grid.png")

    notes = [f"{len(keys)} images of {cfg.translate.split} picked by report.seed "
             f"{rcfg.seed} (sorted by id), each beside a {files.style_split} image; thumbnails "
             f"{height} px high."]
    if from_files:
        notes.append(f"{_samples(1, from_files)}: the translate stage's outputs "
                     f"(translated/image_2/<id>_s<k>.png, translate.seed {cfg.translate.seed}).")
    if rcfg.grid_samples > from_files:
        notes.append(f"{_samples(from_files + 1, rcfg.grid_samples)}: generated for this "
                     f"report by the trained translator ({files.checkpoint.name}) with "
                     f"report.seed {rcfg.seed}; sample k of an image reads random style values "
                     "seeded by (report.seed, image id, k).")
    columns = ["source with its ground-truth boxes", "translated (sample 0)",
               *(f"style sample {k}" for k in range(1, rcfg.grid_samples + 1)),
               *beside, f"a {files.style_split.split('_')[0]} image ({files.style_split})"]
    picture = html.Picture(
        "grid.png", f"Grid of {len(keys)} rows: a source image with its boxes, its "
                    f"translation, {rcfg.grid_samples} more styles of it, "
                    + "".join(f"{title.lower()}, " for title in beside)
                    + f"and a {files.style_split} image",
        " ".join(notes))
    return html.Grid(picture, columns, row_names, files.style_split, classes,
                     [grids.class_colour(classes, c) for c in classes])


def _beside_columns(ctx: RunContext, images: dict[str, str]) -> dict[str, dict[str, Path]]:
    """The grid's columns of the run's other translations of the same images (``images``: key
    -> the translation's file name, relative to its folder): each baseline the run trained a
    detector on, and the perfect translation (draw 0) where the data has one; a column whose
    files are not all there is left out."""
    cfg = ctx.config
    columns = {ROW_NAMES[m]: {k: baseline_dir(ctx.run_dir, m) / name for k, name in images.items()}
               for m in ("colour_transfer", "fda") if m in cfg.train_sets}
    perfect = perfect_translation_manifest(ctx.run_dir)
    if cfg.data.source.perfect_translations and perfect.is_file():
        manifest = read_manifest(perfect)
        by_stem = {Path(image["file_name"]).stem: manifest.image_path(image)
                   for image in manifest.images}
        columns[ROW_NAMES["perfect_translation"]] = {
            k: by_stem.get(Path(name).stem) for k, name in images.items()}
    return {title: paths for title, paths in columns.items()
            if all(p is not None and p.is_file() for p in paths.values())}


def _samples(first: int, last: int) -> str:
    return f"Style sample {first}" if first == last else f"Style samples {first} to {last}"


def _training_samples(ctx: RunContext, files: RunFiles, out: Path) -> html.Picture | None:
    """The translator's latest sample grid (written during training), copied."""
    latest = max(files.translator_samples.glob("iter_*.png"), default=None)
    if latest is None:
        return None
    name = f"translator_{latest.name}"
    shutil.copyfile(latest, out / name)
    iteration = latest.stem.removeprefix("iter_").lstrip("0") or "0"
    k = ctx.config.translator.train.num_style_samples
    return html.Picture(
        name, f"The translator's sample grid at training iteration {iteration}",
        f"The translator's sample grid at iteration {iteration} (translator/samples/"
        f"{latest.name}), written during training: each row a training source image, its "
        f"translation in {k} styles, its self-reconstruction and a target image.")


def _machine(device: torch.device) -> list[tuple[str, str]]:
    import torch

    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return [("Platform", platform.platform()),
            ("Processor", platform.processor() or platform.machine()),
            ("CPU cores", str(os.cpu_count())),
            ("Python", platform.python_version()),
            ("torch", torch.__version__),
            ("Device", name),
            ("mguit-pipeline", __version__)]
