"""Training loop of MGUIT: optimisers, schedule, AMP, multi-process, checkpoints, logging.

Layout of ``out_dir`` (the pipeline passes ``runs/<name>/translator``)::

    checkpoints/last.pt            everything needed to resume (written atomically)
    checkpoints/iter_XXXXXX.pt     periodic snapshots
    tensorboard/                   every loss term, learning rate, image grids
    samples/iter_XXXXXX.png        the same image grids as files

Resuming is automatic: when ``checkpoints/last.pt`` exists, training continues from it, provided
it was trained on the same records (:func:`mguit.data.records_fingerprint`, kept in the
checkpoint); on other data the trainer raises, or with ``on_data_change="restart"`` starts over
in an emptied folder (the pipeline's choice: its stage reruns when its manifests changed; a
checkpoint too old to record its data counts as other data there). Since a
training item is a pure function of its index (:class:`mguit.data.UnpairedBoxDataset`) and the
checkpoint holds the torch RNG state, a resumed run computes the same iterations as one that was
never interrupted.

Multi-process training under ``torchrun`` (``gloo`` on CPU, ``nccl`` on CUDA): every rank takes
its own items of each iteration, gradients are averaged across ranks after each backward pass,
and the memory update adds the ranks' sums (see :meth:`ClassAwareMemory.update`), so all ranks
hold identical networks and memory. The gradients are reduced explicitly rather than through a
``DistributedDataParallel`` wrapper because a GAN iteration runs three optimisers over
alternating subsets of the parameters and freezes the discriminators while the generators step,
which DDP's once-per-forward gradient hooks do not express; the arithmetic is the same
(an all-reduce mean of each gradient).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from mguit.config import TranslatorConfig, translator_config_from_dict
from mguit.data import BoxImage, IterationSampler, UnpairedBoxDataset, records_fingerprint
from mguit.distributed import distributed_context, resolve_device
from mguit.model import MGUIT

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """All-reduce mean of the gradients of ``params`` over the ranks (no-op on one process)."""
    if world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def linear_decay(total: int, decay_start_fraction: float):
    """LR factor: 1 for the first ``decay_start_fraction`` of training, then linearly to 0."""
    start = int(total * decay_start_fraction)

    def factor(iteration: int) -> float:
        if iteration < start:
            return 1.0
        return max(0.0, (total - iteration) / max(1, total - start))

    return factor


# Settings that may change between a run and its resumption: length, logging, loading.
RESUMABLE_KEYS = {"iterations", "epochs", "log_every", "image_every", "checkpoint_every",
                  "snapshot_every", "num_workers", "num_style_samples", "amp"}


def config_changes(saved: dict, current: dict) -> list[str]:
    """``section.key: old -> new`` for each setting that differs and forbids resuming."""
    changes = []
    for section in current:
        for key, value in current[section].items():
            old = saved.get(section, {}).get(key)
            if section == "train" and key in RESUMABLE_KEYS:
                continue
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(old, tuple):
                old = list(old)
            if old != value:
                changes.append(f"translator.{section}.{key}: {old!r} -> {value!r}")
    return changes


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and what to do."""


class DataChangedError(CheckpointError):
    """The checkpoint was trained on other records than the trainer's."""


def atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files of :func:`atomic_save` whose process is gone (a
    kill during a write leaves them); return what was deleted."""
    removed = []
    for tmp in folder.glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_checkpoint(path: Path) -> dict:
    """``torch.load`` of a checkpoint (weights only), or :class:`CheckpointError` naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: "
                              f"{first[:200]})") from None


class Trainer:
    """Trains :class:`MGUIT` on two domains' images and boxes.

    Args:
        cfg: the translator config.
        source, target: the two training sets, a :class:`mguit.data.BoxImage` per image.
        out_dir: where checkpoints, TensorBoard logs and samples go.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``; under torchrun with CUDA each rank uses
            ``cuda:LOCAL_RANK``.
        seed: seeds the initialisation, the data order and the training noise.
        progress: show a tqdm bar (rank 0).
        target_labeled: False when the target has no boxes (its records carry none): its pixels
            then address every memory item (see :class:`mguit.data.UnpairedBoxDataset`).
        on_data_change: ``error`` or ``restart`` when ``last.pt`` was trained on other records.
        unlabeled_target: how a target without boxes trains the memory (:class:`MGUIT`).
    """

    def __init__(self, cfg: TranslatorConfig, source: Sequence[BoxImage],
                 target: Sequence[BoxImage], out_dir: str | Path, device: str = "auto",
                 seed: int = 0, progress: bool = True, target_labeled: bool = True,
                 on_data_change: str = "error", unlabeled_target: str = "single"):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.rank, self.world_size = distributed_context()
        self.device = resolve_device(device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.progress = progress and self.rank == 0
        self.seed = seed
        t = cfg.train
        groups = list(cfg.memory.items)
        if on_data_change not in ("error", "restart"):
            raise ValueError(f"on_data_change must be error or restart, got {on_data_change!r}")
        self.on_data_change = on_data_change
        self.data_id = records_fingerprint(source, target, target_labeled, unlabeled_target)
        self.dataset = UnpairedBoxDataset(source, target, groups,
                                          resize=t.resize, crop=t.crop, flip=t.flip, seed=seed,
                                          target_labeled=target_labeled)
        per_iteration = t.batch_size * self.world_size
        self.total_iterations = t.iterations or t.epochs * math.ceil(len(self.dataset)
                                                                     / per_iteration)
        torch.manual_seed(seed)
        self.model = MGUIT(cfg, unlabeled_target).to(self.device)
        self.amp = t.amp and self.device.type == "cuda"
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt_gen = torch.optim.Adam(self.model.generator_parameters(), lr=t.lr,
                                        betas=t.betas, weight_decay=t.weight_decay)
        self.opt_dis = torch.optim.Adam(self.model.discriminator_parameters(), lr=t.lr,
                                        betas=t.betas, weight_decay=t.weight_decay)
        self.opt_content = torch.optim.Adam(self.model.content_discriminator.parameters(),
                                            lr=t.content_lr or t.lr, betas=t.betas,
                                            weight_decay=t.weight_decay)
        self.optimizers = {"gen": self.opt_gen, "dis": self.opt_dis, "content": self.opt_content}
        decay = linear_decay(self.total_iterations, t.decay_start_fraction)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, decay)
                           for k, o in self.optimizers.items()}
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self._writer: SummaryWriter | None = None
        self._read_statistics: dict[str, float] = {}

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "iteration": self.iteration,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "config": asdict(self.cfg),
            "seed": self.seed,
            "total_iterations": self.total_iterations,
            "data": self.data_id,
        }

    def save(self, snapshot: bool = False) -> Path:
        """Write ``last.pt`` (and a snapshot ``iter_XXXXXX.pt``) atomically, on rank 0 only."""
        path = self.checkpoint_dir / "last.pt"
        if self.rank == 0:
            state = self.state_dict()
            atomic_save(state, path)
            if snapshot:
                atomic_save(state, self.checkpoint_dir / f"iter_{self.iteration:06d}.pt")
        return path

    def load(self, path: Path) -> None:
        """Resume from a checkpoint written by :meth:`save`; the config must match
        (:class:`CheckpointError` otherwise, or when the file cannot be read)."""
        state = read_checkpoint(path)
        if state.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not "
                                  f"{CHECKPOINT_VERSION}; start a new run directory")
        # A checkpoint from before fingerprints were kept is trusted when the caller would
        # refuse other data, and counts as other data when it would start over: the pipeline
        # reruns this stage only when its data changed or it never finished.
        known = state.get("data")
        if known is None and self.on_data_change == "restart":
            raise DataChangedError(f"{path}: the checkpoint does not record its training data")
        if known is not None and known != self.data_id:
            raise DataChangedError(f"{path}: the checkpoint was trained on other images or "
                                   "boxes")
        # A setting added since the checkpoint was written counts with the value it had then.
        saved = asdict(translator_config_from_dict(state["config"]))
        changed = config_changes(saved, asdict(self.cfg))
        if changed:
            raise CheckpointError(
                f"{path}: the checkpoint was trained with other settings ({'; '.join(changed)}); "
                "resuming would mix two experiments. Restore those settings, or delete "
                f"{self.out_dir} (or choose a new run name) to train from scratch"
            )
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.iteration = state["iteration"]

    def _resume(self) -> None:
        """Load ``last.pt`` if there is one; if it cannot be read (a truncated copy, a full
        disk), the newest snapshot that can, saying so."""
        if self.checkpoint_dir.is_dir() and self.rank == 0:
            for tmp in remove_stale_temporaries(self.checkpoint_dir):
                logger.info("removed %s, left by an interrupted checkpoint write", tmp)
        last = self.checkpoint_dir / "last.pt"
        if not last.exists():
            # Deleted by hand (or lost): the snapshots still hold the run, if one can be read.
            if not self._resume_from_snapshot(f"{last}: missing") and \
                    list(self.checkpoint_dir.glob("iter_*.pt")):
                logger.warning("%s: missing and no snapshot can be read; training from the "
                               "start", last)
            return
        try:
            self.load(last)
        except DataChangedError as exc:
            if self.on_data_change != "restart":
                raise CheckpointError(f"{exc}; delete {self.out_dir} (or choose a new run name) "
                                      "to train on the new data") from None
            self._start_over(exc)
            return
        except CheckpointError as exc:
            if "unreadable checkpoint" not in str(exc):
                raise
            if not self._resume_from_snapshot(str(exc)):
                raise CheckpointError(f"{exc}; no intact snapshot in {self.checkpoint_dir} to "
                                      f"fall back to: delete {last} to train from the start") \
                    from None
            return
        logger.info("resuming from %s at iteration %d", last, self.iteration)

    def _resume_from_snapshot(self, why: str) -> bool:
        """Load the newest snapshot that can be read in place of ``last.pt`` (``why`` says
        what is wrong with it); False when none can."""
        for snapshot in sorted(self.checkpoint_dir.glob("iter_*.pt"), reverse=True):
            try:
                self.load(snapshot)
            except CheckpointError as other:
                logger.warning("%s", other)
                continue
            logger.warning("%s; resuming from the newest intact snapshot %s instead "
                           "(iteration %d)", why, snapshot.name, self.iteration)
            return True
        return False

    def _start_over(self, reason: Exception) -> None:
        """Empty the training folder (checkpoints, logs, samples) of a training on other data."""
        logger.warning("%s; training from scratch", reason)
        if self.rank == 0:
            for name in ("checkpoints", "tensorboard", "samples"):
                shutil.rmtree(self.out_dir / name, ignore_errors=True)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()

    # ------------------------------------------------------------------ training

    def step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One iteration: discriminators, then encoders/generators, then the memory."""
        model = self.model
        clip = self.cfg.train.grad_clip
        with torch.autocast(self.device.type, enabled=self.amp):
            out = model(batch)
            d_losses = model.discriminator_losses(out, batch)
        self.opt_dis.zero_grad(set_to_none=True)
        self.opt_content.zero_grad(set_to_none=True)
        self.scaler.scale(sum(d_losses.values())).backward()
        average_gradients(model.discriminator_parameters(), self.world_size)
        average_gradients(list(model.content_discriminator.parameters()), self.world_size)
        self.scaler.unscale_(self.opt_content)
        nn.utils.clip_grad_norm_(model.content_discriminator.parameters(), clip)
        self.scaler.step(self.opt_dis)
        self.scaler.step(self.opt_content)

        frozen = [*model.discriminator_parameters(), *model.content_discriminator.parameters()]
        for p in frozen:
            p.requires_grad_(False)
        with torch.autocast(self.device.type, enabled=self.amp):
            g_losses = model.generator_losses(out, batch)
        self.opt_gen.zero_grad(set_to_none=True)
        self.scaler.scale(g_losses["total"]).backward()
        for p in frozen:
            p.requires_grad_(True)
        average_gradients(model.generator_parameters(), self.world_size)
        self.scaler.step(self.opt_gen)
        self.scaler.update()
        # Before the update, which would fit the items to this very batch.
        self._read_statistics = self._memory_statistics(out)
        model.update_memory(out)
        for s in self.schedulers.values():
            s.step()
        return {**{k: v.item() for k, v in d_losses.items()},
                **{k: v.item() for k, v in g_losses.items()}}

    def _memory_statistics(self, out: dict[str, Tensor]) -> dict[str, float]:
        """On logging iterations, how class-selective unmasked reads of this batch's content
        would be (the test-time reads), per group: ``read_mass/<g>`` and
        ``nearest_accuracy/<g>`` over both domains' pixels of that group."""
        if "m_x" not in out or not self._logs_scalars(self.iteration + 1):   # _log's iteration
            return {}
        memory = self.model.memory
        totals = [memory.read_statistics(out[f"c_{d}"].detach(), out[f"m_{d}"])
                  for d in ("x", "y") if f"m_{d}" in out]
        stats = {k: sum(t[k] for t in totals) for k in totals[0]}
        result = {}
        for g, name in enumerate(memory.groups):
            if stats["pixels"][g] > 0:
                result[f"read_mass/{name}"] = (stats["own_mass"][g] / stats["pixels"][g]).item()
                result[f"nearest_accuracy/{name}"] = (stats["nearest_correct"][g]
                                                      / stats["pixels"][g]).item()
        return result

    def loader(self, start: int, end: int) -> DataLoader:
        sampler = IterationSampler(start, self.cfg.train.batch_size, self.rank, self.world_size,
                                   end_iteration=end)
        workers = self.cfg.train.num_workers
        # Its own generator: creating a DataLoader iterator draws a seed, which must not come
        # from the global stream the training noise uses (a resume creates one more iterator).
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda",
                          prefetch_factor=2 if workers else None,
                          generator=torch.Generator().manual_seed(self.seed))

    def train(self, iterations: int | None = None) -> dict[str, float]:
        """Train until ``iterations`` (default: the configured total), resuming from last.pt.

        Returns the losses of the last iteration.
        """
        self._resume()
        end = min(iterations or self.total_iterations, self.total_iterations)
        t = self.cfg.train
        losses: dict[str, float] = {}
        bar = tqdm(total=end, initial=self.iteration, desc="train translator", unit="it",
                   disable=None if self.progress else True, dynamic_ncols=True)
        self.model.train()
        for batch in self.loader(self.iteration, end):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()
                     if isinstance(v, Tensor) and k.startswith(("image_", "mask_", "objects_"))}
            if self.device.type == "cuda":
                for k in ("image_x", "image_y"):
                    batch[k] = batch[k].contiguous(memory_format=torch.channels_last)
            losses = self.step(batch)
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"non-finite loss at iteration {self.iteration}: "
                                         f"{losses}")
            self.iteration += 1
            bar.update(1)
            bar.set_postfix({k: f"{losses[k]:.3f}" for k in ("total", "self_recon", "cycle",
                                                            "key_contrast")})
            self._log(losses, batch)
            if self.iteration % t.checkpoint_every == 0 or self.iteration == end:
                self.save(snapshot=self.iteration % t.snapshot_every == 0)
        bar.close()
        if self._writer is not None:
            self._writer.flush()
        return losses

    # ------------------------------------------------------------------ logging

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._writer

    def _logs_scalars(self, iteration: int) -> bool:
        return iteration % self.cfg.train.log_every == 0 or iteration == 1

    def _log(self, losses: dict[str, float], batch: dict[str, Tensor]) -> None:
        if self.rank != 0:
            return
        t = self.cfg.train
        if self._logs_scalars(self.iteration):
            for k, v in losses.items():
                self.writer.add_scalar(f"loss/{k}", v, self.iteration)
            for k, v in self._read_statistics.items():
                self.writer.add_scalar(f"memory/{k}", v, self.iteration)
            self.writer.add_scalar("lr", self.schedulers["gen"].get_last_lr()[0], self.iteration)
        if self.iteration % t.image_every == 0:
            grid = self.sample_grid(batch)
            self.writer.add_image("samples", grid, self.iteration)
            samples = self.out_dir / "samples"
            samples.mkdir(parents=True, exist_ok=True)
            tmp = samples / f".iter_{self.iteration:06d}.tmp.png"
            save_image(grid, tmp)
            os.replace(tmp, samples / f"iter_{self.iteration:06d}.png")

    @torch.no_grad()
    def sample_grid(self, batch: dict[str, Tensor]) -> Tensor:
        """Rows: source | translated (K styles) | self-reconstruction | a target image."""
        model = self.model
        model.eval()
        x, y = batch["image_x"][:4], batch["image_y"][:4]
        styles = model.translate(x, num_samples=self.cfg.train.num_style_samples,
                                 seed=self.iteration)
        # Logging must not consume the training's random stream (resume equality).
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            out = model({"image_x": x, "image_y": y})
        model.train()
        rows = [x, *styles, out["recon_x"], y]
        images = torch.stack(rows, dim=1).flatten(0, 1)
        return make_grid(images.float().cpu(), nrow=len(rows), normalize=True,
                         value_range=(-1, 1))
