"""The ``train_detector`` stage: one Faster R-CNN per entry of ``detector.train_sets``.

* ``source_only``: ``data/source_train.json`` (the source domain as it is);
* ``translated``: ``translated/annotations.json`` (the translate stage's output);
* ``oracle``: ``data/target_train.json`` (the target domain's own labels; left out when
  ``data.target.labels`` is ``none`` or ``pseudo``, which means those labels are not to be used);
* ``source_plus_translated``: both source sets;
* ``colour_transfer``, ``fda``: ``baselines/<method>/annotations.json`` (the
  ``translate_baselines`` stage's output: Reinhard colour transfer, Fourier domain adaptation);
* ``perfect_translation``: ``data/source_train.perfect_<k>.json`` for the first
  ``translate.num_samples`` draws k (source_train's boxes on the perfect translations of its
  images in ``data.source.perfect_translations``, written by ``prepare``): a ceiling for any
  translation with as many images per source image.

Each goes to ``runs/<name>/detector/<set>/`` (checkpoints, TensorBoard logs, ``detector.json``;
see :mod:`detection.api`). An interrupted training resumes; a detector whose settings and data
are unchanged is not trained again, and one whose settings or data changed (a new translation,
another lr) is trained again from scratch.

``detector.parallel`` > 1 trains that many detectors at once, each in a process of its own
with its share of the threads (their log lines are prefixed with the set's name): on a
2-core CPU two of the demo's detectors side by side take about 0.7x the time of one after the
other. A detector's numbers depend on its thread count (the order of float sums), not on what
trains beside it. Under torchrun the detectors are trained one after the other (the processes
are the ranks).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detection.api import CARD
from pipeline.context import StageError
from pipeline.rundir import (baseline_dir, detector_dir, perfect_translation_manifest,
                             translated_dir)
from pipeline.weights import WeightsError, local_path, resolve
from pipeline.translation.records import ANNOTATIONS

if TYPE_CHECKING:
    from detection.config import DetectorConfig
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)


def train_manifests(ctx: RunContext, train_set: str) -> list[Path]:
    """The manifests a training set is made of."""
    translated = translated_dir(ctx.run_dir) / ANNOTATIONS
    return {
        "source_only": [ctx.manifest("source_train")],
        "translated": [translated],
        "oracle": [ctx.manifest("target_train")],
        "source_plus_translated": [ctx.manifest("source_train"), translated],
        "colour_transfer": [baseline_dir(ctx.run_dir, "colour_transfer") / ANNOTATIONS],
        "fda": [baseline_dir(ctx.run_dir, "fda") / ANNOTATIONS],
        "perfect_translation": [perfect_translation_manifest(ctx.config.run.path, k)
                                for k in range(ctx.config.translate.num_samples)],
    }[train_set]


def input_paths(ctx: RunContext) -> list[Path]:
    paths: list[Path] = []
    for train_set in ctx.config.train_sets:
        paths += [p for p in train_manifests(ctx, train_set) if p not in paths]
    weights = local_path(ctx.config, "detector.weights", ctx.config.detector.weights)
    if weights is not None:
        paths.append(weights)
    return paths


def output_paths(ctx: RunContext) -> list[Path]:
    """Each detector's card and the checkpoint it names: a checkpoint deleted or cut after the
    stage makes it stale, and the rerun trains from the newest intact checkpoint."""
    paths = []
    for train_set in ctx.config.train_sets:
        folder = detector_dir(ctx.run_dir, train_set)
        paths.append(folder / CARD)
        try:
            paths.append(folder / json.loads((folder / CARD).read_text())["checkpoint"])
        except (OSError, ValueError, KeyError, TypeError):
            pass        # no card (yet), or one that fails: the card itself is reported
    return paths


def run(ctx: RunContext) -> dict:
    # A missing translated/annotations.json is reported by the runner before this runs: it is
    # the translate stage's output, so the message says to run that stage first.
    from detection import read_card

    detector_cfg = resolved_config(ctx)
    if "oracle" in ctx.config.detector.train_sets and "oracle" not in ctx.config.train_sets:
        logger.info("detector oracle left out: data.target.labels is %s, so the target's own "
                    "training labels are not used", ctx.config.data.target.labels)
    sets = ctx.config.train_sets
    parallel = min(ctx.config.detector.parallel, len(sets))
    if parallel > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logger.info("detector.parallel %d: under torchrun the detectors train one after the "
                    "other", parallel)
        parallel = 1
    if parallel > 1:
        _train_side_by_side(ctx, sets, detector_cfg, parallel)
    else:
        for train_set in sets:
            train_one(ctx, train_set, detector_cfg)
    results = {}
    for train_set in sets:
        card = read_card(detector_dir(ctx.run_dir, train_set))
        results[train_set] = {k: card[k] for k in ("backend", "iterations", "images", "seconds")}
    return results


def resolved_config(ctx: RunContext) -> DetectorConfig:
    """``detector`` with its weights resolved to a local file (fetched when named)."""
    cfg = ctx.config
    try:
        weights = resolve(cfg, "detector.weights", cfg.detector.weights)
    except WeightsError as exc:
        raise StageError(f"train_detector: {exc}") from None
    return dataclasses.replace(cfg.detector, weights=weights)


def train_one(ctx: RunContext, train_set: str, detector_cfg: DetectorConfig) -> Path:
    """Train (or resume, or find done) the detector of ``train_set`` in
    ``runs/<name>/detector/<set>/``; return its checkpoint."""
    from detection import DetectionError, train

    cfg = ctx.config
    out_dir = detector_dir(ctx.run_dir, train_set)
    logger.info("detector %s: training on %s", train_set,
                ", ".join(str(p) for p in train_manifests(ctx, train_set)))
    try:
        return train(train_manifests(ctx, train_set), out_dir, detector_cfg, cfg.run.device,
                     classes=cfg.data.classes, seed=cfg.run.seed, on_change="restart",
                     progress=ctx.progress)
    except DetectionError as exc:
        raise StageError(f"train_detector {train_set}: {exc}") from None


@dataclass(frozen=True)
class _Job:
    """One detector's training in a process of its own (picklable)."""

    name: str
    manifests: tuple[Path, ...]
    out_dir: Path
    cfg: DetectorConfig
    device: str
    classes: tuple[str, ...]
    seed: int
    threads: int


def _train_job(job: _Job) -> Path:
    """A worker process's training (see :func:`_train_side_by_side`)."""
    import torch

    from detection import train

    torch.set_num_threads(job.threads)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(levelname)s [detector {job.name}] %(message)s")
    return train(job.manifests, job.out_dir, job.cfg, job.device, classes=list(job.classes),
                 seed=job.seed, on_change="restart", progress=False)


def _train_side_by_side(ctx: RunContext, sets: list[str], detector_cfg: DetectorConfig,
                        parallel: int) -> None:
    """Train the detectors of ``sets``, ``parallel`` at a time, each in a fresh (spawned)
    process with ``threads // parallel`` threads. The first failure stops the stage (the
    detectors still training finish their current one; every one resumes on a rerun)."""
    import torch

    from detection import DetectionError

    cfg = ctx.config
    threads = max(1, torch.get_num_threads() // parallel)
    jobs = [_Job(s, tuple(train_manifests(ctx, s)), detector_dir(ctx.run_dir, s), detector_cfg,
                 cfg.run.device, tuple(cfg.data.classes), cfg.run.seed, threads) for s in sets]
    logger.info("training %d detectors, %d at a time with %d thread(s) each: %s", len(jobs),
                parallel, threads, ", ".join(sets))
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_job, job): job.name for job in jobs}
        try:
            for future in as_completed(futures):
                name = futures[future]
                try:
                    future.result()
                except DetectionError as exc:
                    raise StageError(f"train_detector {name}: {exc}") from None
                logger.info("detector %s: trained", name)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
