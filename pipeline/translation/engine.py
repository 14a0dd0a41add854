"""The translation loop: plan, resume, decode -> translate -> encode, shard merge.

:func:`translate_dataset` is what the ``translate`` and ``translate_baselines`` stages and
``pipeline translate`` call, with MGUIT or another translation method
(:mod:`pipeline.translation.methods`); :func:`merge_outputs` is ``pipeline translate --merge``.
See :mod:`pipeline.translation` for the folder layout and the guarantees.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from detection.manifest import write_bytes
from mguit.config import TranslatorConfig
from mguit.distributed import distributed_context, resolve_device
from pipeline.config import TranslateConfig
from pipeline.formats import kitti
from pipeline.formats.common import DatasetError
from pipeline.lock import LOCK_NAME, exclusive
from pipeline.translation.errors import TranslationError
from pipeline.translation.methods import TranslationMethod
from pipeline.translation.methods.translator import TranslatorMethod
from pipeline.translation.plan import Shard, plan_batches, style_seed
from pipeline.translation.records import (ANNOTATIONS, SETTINGS_VERSION, EntryLog, OutputId,
                                          check_output_dir, done_candidates, entry_is_valid,
                                          prepare_output_dir, read_settings, shard_log_name,
                                          skipped_entries, write_final)
from pipeline.translation.sources import (SourceImage, SourceSet, label_bytes, output_names,
                                          read_sources)
from pipeline.translation.workers import DecodeDataset, WriteJob, collate, write_outputs

logger = logging.getLogger(__name__)

# Batches whose files are still being written when the next one is computed; bounds memory to
# a few batches of pixels whatever the dataset size.
MAX_PENDING_BATCHES = 2


@dataclass
class TranslationSummary:
    """What one call did. ``outputs`` counts files written (images x samples), ``reused`` the
    outputs of earlier runs found intact; ``complete``: manifest.jsonl and annotations.json
    are written (every shard is done)."""

    output: Path
    shard: str
    images: int
    translated: int = 0
    outputs: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False

    @property
    def images_per_second(self) -> float:
        return self.translated / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"output": str(self.output), "shard": self.shard, "images": self.images,
                "translated": self.translated, "outputs": self.outputs, "reused": self.reused,
                "skipped": len(self.skipped), "seconds": round(self.seconds, 3),
                "images_per_second": round(self.images_per_second, 3),
                "complete": self.complete}


def translate_dataset(
    input_path: str | Path,
    output: str | Path,
    checkpoint: str | Path | None = None,
    options: TranslateConfig | None = None,
    *,
    method: TranslationMethod | None = None,
    device: str = "auto",
    shard: Shard | None = None,
    overwrite: bool = False,
    expected: TranslatorConfig | None = None,
    reference: str | Path | None = None,
    progress: bool = True,
) -> TranslationSummary:
    """Translate every image of ``input_path`` into ``output`` (see :mod:`pipeline.translation`).

    Args:
        input_path: a COCO manifest (``.json``) or a KITTI root (folder).
        output: the output folder; resumed when it holds this translation's settings.
        checkpoint: an MGUIT training checkpoint (``checkpoints/last.pt``) to translate with;
            or None and ``method``.
        options: the ``translate`` config section (``split`` and ``checkpoint`` are unused).
        method: a translation method (:mod:`pipeline.translation.methods`), such as a
            baseline, instead of ``checkpoint``; it computes on its own device.
        device: MGUIT's device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``; under torchrun
            ``cuda:LOCAL_RANK``.
        shard: this process's share; None: the whole input, or under torchrun (WORLD_SIZE > 1)
            the rank's shard, rank 0 merging when all ranks are done.
        overwrite: delete a translation with other settings found in ``output``.
        expected: the run's translator config; the checkpoint's must match it (model, memory).
        reference: the COCO manifest (images and boxes) that lends MGUIT its styles under
            ``options.style`` exemplar or scene.
        progress: show a progress bar.
    Raises:
        TranslationError: unreadable image (``on_bad_image: error``), checkpoint that cannot
            be loaded or does not match ``expected``, output folder of another run.
        DatasetError: unreadable input manifest or KITTI folder.
    """
    if (checkpoint is None) == (method is None):
        raise TypeError("translate_dataset: give either a checkpoint (MGUIT) or a method")
    # Without options, the paper's memory reads: the only styles that need no reference.
    options = options or TranslateConfig(style="memory")
    started = time.monotonic()
    out_dir = Path(os.path.abspath(output))
    shard, distributed = _resolve_shard(shard)
    if distributed:
        progress = progress and shard.index == 0
    if method is None:
        dev = _translator_device(device, distributed)
        method = TranslatorMethod.load(Path(checkpoint), dev, options, expected,
                                       None if reference is None else Path(reference))
    sources = read_sources(input_path)
    settings = make_settings(sources, method, options)
    check_output_dir(out_dir)
    lock = LOCK_NAME if shard.whole else f"{LOCK_NAME}.shard-{shard.index}-of-{shard.count}"
    with exclusive(out_dir, f"translation output (shard {shard})", lock):
        _on_rank_zero(distributed, lambda: _prepare(out_dir, settings, method, overwrite))

        images, k = sources.images, options.num_samples
        batches = list(shard.take(plan_batches([(im.height, im.width) for im in images],
                                               options.batch_size)))
        mine = [images[i] for batch in batches for i in batch]
        final = verify_outputs(out_dir, mine, k, done_candidates(out_dir), options.writers)
        pending = {i for b in batches for i in b
                   if any((images[i].key, s) not in final for s in range(k))}
        todo = [b for b in batches if pending.intersection(b)]
        summary = TranslationSummary(out_dir, str(shard), len(images), reused=len(final))
        logger.info("translate %s -> %s: %d images%s, %d to translate in %d batches, %d outputs "
                    "reused; %s on %s", sources.input, out_dir, len(images),
                    "" if shard.whole else f" (shard {shard}: {len(mine)})",
                    len(pending), len(todo), len(final), method.description,
                    method.device)
        if todo:
            (out_dir / ANNOTATIONS).unlink(missing_ok=True)
            (out_dir / kitti.IMAGE_DIR).mkdir(exist_ok=True)
            (out_dir / kitti.LABEL_DIR).mkdir(exist_ok=True)
            with EntryLog(out_dir / shard_log_name(shard)) as log:
                _Loop(method, images, out_dir, options, log, final, summary, progress).run(todo)
        summary.complete = _finish(out_dir, sources, settings, shard, distributed, final,
                                   options.writers)
    summary.seconds = time.monotonic() - started
    logger.info("translated %d images (%d files) in %.1f s, %.2f images/s; %d outputs reused, "
                "%d images skipped%s", summary.translated, summary.outputs, summary.seconds,
                summary.images_per_second, summary.reused, len(summary.skipped),
                "" if summary.complete else "; other shards are still to finish")
    if summary.skipped:
        logger.warning("skipped unreadable images (listed in the manifest):\n  %s",
                       "\n  ".join(summary.skipped[:10]))
    return summary


def merge_outputs(output: str | Path, threads: int = 4) -> TranslationSummary:
    """Write ``manifest.jsonl`` and ``annotations.json`` of a folder whose shards ran apart
    (e.g. on several machines, their folders copied together), after checking every output's
    hash. Raises :class:`TranslationError` naming what is missing."""
    started = time.monotonic()
    out_dir = Path(os.path.abspath(output))
    settings = read_settings(out_dir)
    if not settings:
        raise TranslationError(f"{out_dir}: no readable translate.json; is this the output "
                               "folder of pipeline translate?")
    sources = read_sources(settings["input"])
    if make_input_digest(sources) != settings.get("input_sha256"):
        raise TranslationError(f"{settings['input']}: the input changed since the shards ran; "
                               "translate it again")
    with exclusive(out_dir, "translation output", f"{LOCK_NAME}.merge", wait=True):
        entries, missing = collect_final(out_dir, sources, settings["num_samples"], {}, threads)
        if missing:
            raise TranslationError(
                f"{out_dir}: {len(missing)} outputs are missing or do not match their recorded "
                f"hash, e.g. {missing[0][0]} sample {missing[0][1]}; run the shard that holds "
                "them again (or copy its folder here), then merge")
        write_final(out_dir, sources, settings["num_samples"], entries, settings)
    skipped = [f"{e['source']}: {e['error']}" for e in entries.values()
               if e["status"] == "skipped" and e["sample"] == 0]
    done = sum(e["status"] == "done" for e in entries.values())
    return TranslationSummary(out_dir, "merge", len(sources.images), reused=done,
                              skipped=skipped, seconds=time.monotonic() - started,
                              complete=True)


# ------------------------------------------------------------------ settings and checks

def make_input_digest(sources: SourceSet) -> str:
    """A hash of the images to translate: keys, paths and sizes, in input order."""
    digest = hashlib.sha256()
    for image in sources.images:
        digest.update(f"{image.key}\0{image.path}\0{image.width}\0{image.height}\n".encode())
    return digest.hexdigest()


def make_settings(sources: SourceSet, method: TranslationMethod,
                  options: TranslateConfig) -> dict:
    """What decides the output bytes; stored as ``translate.json``. Batch size, workers, AMP
    and the device are not in it: they change the speed and, at most, float rounding."""
    return {"version": SETTINGS_VERSION, "input": str(sources.input),
            "input_sha256": make_input_digest(sources), "images": len(sources.images),
            **method.settings(), "num_samples": options.num_samples, "seed": options.seed,
            "png_compress_level": options.png_compress_level}


def _prepare(out_dir: Path, settings: dict, method: TranslationMethod, overwrite: bool) -> None:
    """The output folder ready for ``settings`` (:func:`prepare_output_dir`), with the
    method's own files in it."""
    prepare_output_dir(out_dir, settings, overwrite)
    for name, data in method.files().items():
        path = out_dir / name
        if not path.is_file() or path.read_bytes() != data:
            write_bytes(path, data)


def _translator_device(device: str, distributed: bool) -> torch.device:
    """MGUIT's device: ``device`` resolved; a torchrun rank's own GPU under torchrun."""
    try:
        dev = resolve_device(device)
    except RuntimeError as exc:
        raise TranslationError(f"--device: {exc}") from None
    if distributed and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


# ------------------------------------------------------------------ resume and merge

def verify_outputs(out_dir: Path, images: Sequence[SourceImage], num_samples: int,
                   candidates: Mapping[OutputId, list[dict]], threads: int
                   ) -> dict[OutputId, dict]:
    """The outputs of ``images`` whose logged files are intact: ``(key, k) -> entry``.

    An output is intact when a logged entry's image and label files exist with the recorded
    hashes and its label equals the source's label now. Files are hashed in ``threads``
    threads (hashlib releases the GIL).
    """
    def check(image: SourceImage) -> list[tuple[OutputId, dict]]:
        wanted = [(image.key, k) for k in range(num_samples) if (image.key, k) in candidates]
        if not wanted:
            return []
        try:
            label_sha256 = hashlib.sha256(label_bytes(image)).hexdigest()
        except DatasetError:
            return []       # the run reports the missing label when it gets to this image
        valid = []
        for output in wanted:
            name = output_names(image.key, output[1], num_samples)[0]
            entry = next((e for e in candidates[output]
                          if entry_is_valid(out_dir, e, name, label_sha256)), None)
            if entry is not None:
                valid.append((output, entry))
        return valid

    with ThreadPoolExecutor(max(threads, 1)) as pool:
        return dict(pair for pairs in pool.map(check, images) for pair in pairs)


def collect_final(out_dir: Path, sources: SourceSet, num_samples: int,
                  known: Mapping[OutputId, dict], threads: int
                  ) -> tuple[dict[OutputId, dict], list[OutputId]]:
    """The final entry of every output from all logs of ``out_dir`` (``known`` ones trusted,
    the others verified), and the outputs that have none."""
    candidates = done_candidates(out_dir)
    unknown = [im for im in sources.images
               if any((im.key, k) not in known for k in range(num_samples))]
    entries = {**verify_outputs(out_dir, unknown, num_samples, candidates, threads), **known}
    skipped = skipped_entries(out_dir)
    missing = []
    for image in sources.images:
        for k in range(num_samples):
            output = (image.key, k)
            if output not in entries:
                if output in skipped:
                    entries[output] = skipped[output]
                else:
                    missing.append(output)
    return entries, missing


def _finish(out_dir: Path, sources: SourceSet, settings: dict, shard: Shard,
            distributed: bool, final: dict[OutputId, dict], threads: int) -> bool:
    """Write the final manifests when every shard is done; True when written."""
    k = settings["num_samples"]
    if shard.whole:
        write_final(out_dir, sources, k, final, settings)
        return True
    if distributed:
        parts: list | None = [None] * shard.count if shard.index == 0 else None
        dist.gather_object(final, parts, dst=0)

        def merge() -> None:
            merged: dict[OutputId, dict] = {}
            for part in parts or []:
                merged.update(part)
            write_final(out_dir, sources, k, merged, settings)

        _on_rank_zero(True, merge)
        return True
    # Shards run by hand: the last one to finish merges, under a lock in case two finish at
    # the same time.
    with exclusive(out_dir, "translation output", f"{LOCK_NAME}.merge", wait=True):
        entries, missing = collect_final(out_dir, sources, k, final, threads)
        if missing:
            logger.info("shard %s done; %d outputs belong to shards still running or not run "
                        "yet; the last shard to finish writes manifest.jsonl and "
                        "annotations.json (or run pipeline translate --merge)", shard,
                        len(missing))
            return False
        write_final(out_dir, sources, k, entries, settings)
    return True


def _resolve_shard(shard: Shard | None) -> tuple[Shard, bool]:
    """The shard to run and whether it is a torchrun rank (then rank 0 merges)."""
    if shard is not None:
        return shard, False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        rank, world = distributed_context()
        return Shard(rank, world), True
    return Shard(), False


def _on_rank_zero(distributed: bool, work) -> None:
    """Run ``work`` (on rank 0 only when distributed); every rank raises its error, if any."""
    if not distributed:
        work()
        return
    message = [None]
    if dist.get_rank() == 0:
        try:
            work()
        except (TranslationError, DatasetError, OSError) as exc:
            message = [str(exc)]
    dist.broadcast_object_list(message, src=0)
    if message[0] is not None:
        raise TranslationError(message[0])


# ------------------------------------------------------------------ the hot loop

class _Loop:
    """Decode (DataLoader workers) -> translate (this thread) -> encode and write (threads)."""

    def __init__(self, method: TranslationMethod, images: list[SourceImage], out_dir: Path,
                 options: TranslateConfig, log: EntryLog, final: dict[OutputId, dict],
                 summary: TranslationSummary, progress: bool):
        self.method, self.images, self.out_dir = method, images, out_dir
        self.options, self.log, self.final, self.summary = options, log, final, summary
        self.progress = progress
        self.pending: deque[list[Future]] = deque()

    def run(self, batches: list[list[int]]) -> None:
        o = self.options
        loader = DataLoader(DecodeDataset(self.images), batch_sampler=batches,
                            num_workers=o.workers, collate_fn=collate,
                            pin_memory=self.method.device.type == "cuda",
                            prefetch_factor=2 if o.workers else None)
        bar = tqdm(total=sum(len(b) for b in batches), desc="translate", unit="img",
                   disable=None if self.progress else True, dynamic_ncols=True, leave=False)
        with ThreadPoolExecutor(o.writers, thread_name_prefix="translate-write") as pool, \
                torch.inference_mode(), bar:
            try:
                for batch in loader:
                    self._submit(pool, batch)
                    bar.update(len(batch["index"]))
                    self._drain(wait_all=False)
                self._drain(wait_all=True)
            except BaseException:
                for futures in self.pending:
                    for future in futures:
                        future.cancel()
                self._drain(wait_all=True, keep_going=True)   # log what did finish
                raise

    def _submit(self, pool: ThreadPoolExecutor, batch: dict) -> None:
        o, images, k = self.options, self.images, self.options.num_samples
        rows = batch["index"]
        # A resumed batch is recomputed whole (same batch, same bytes), but only its missing
        # outputs are written; an image whose outputs are all done needs no pixels.
        missing = [[s for s in range(k) if (images[i].key, s) not in self.final] for i in rows]
        for row, error in enumerate(batch["error"]):
            if error is not None and missing[row]:
                self._bad_image(images[rows[row]], error)
        seeds = [style_seed(o.seed, images[i].key) for i in rows]
        pixels = self.method.translate(batch["pixels"], k, seeds)     # (K, B, H, W, 3)
        futures = []
        for row, (i, samples) in enumerate(zip(rows, missing)):
            if batch["error"][row] is not None or not samples:
                continue
            job = WriteJob(images[i], samples, [pixels[s, row] for s in samples],
                           batch["sha256"][row], o.seed, seeds[row])
            futures.append(pool.submit(write_outputs, self.out_dir, job, k,
                                       o.png_compress_level))
        self.pending.append(futures)

    def _bad_image(self, image: SourceImage, error: str) -> None:
        if self.options.on_bad_image == "error":
            raise TranslationError(
                f"{image.path}: {error}; replace the image or set translate.on_bad_image: skip "
                "(--on-bad-image skip); the images translated so far are kept and a rerun "
                "resumes")
        entries = [{"key": image.key, "sample": k, "status": "skipped",
                    "source": str(image.path), "error": error}
                   for k in range(self.options.num_samples)]
        self.log.append(entries)
        self.final.update(((e["key"], e["sample"]), e) for e in entries)
        self.summary.skipped.append(f"{image.path}: {error}")
        logger.warning("%s: %s; skipped (on_bad_image: skip)", image.path, error)

    def _drain(self, wait_all: bool, keep_going: bool = False) -> None:
        """Log the entries of finished batches, oldest first. Waits for the oldest while more
        than ``MAX_PENDING_BATCHES`` are pending, or for all with ``wait_all``. The first write
        error is raised after logging the rest (unless ``keep_going``: an error is already on
        its way)."""
        error: BaseException | None = None
        while self.pending:
            head = self.pending[0]
            if not (wait_all or len(self.pending) > MAX_PENDING_BATCHES
                    or all(f.done() for f in head)):
                break
            self.pending.popleft()
            entries = []
            for future in head:
                if future.cancelled():
                    continue
                try:
                    entries += future.result()
                except Exception as exc:  # noqa: BLE001 - raised below, after logging
                    error = error or exc
            self.log.append(entries)
            self.final.update(((e["key"], e["sample"]), e) for e in entries)
            self.summary.outputs += len(entries)
            self.summary.translated += len({e["key"] for e in entries})
        if error is not None and not keep_going:
            raise error
