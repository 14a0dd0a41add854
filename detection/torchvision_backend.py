"""Faster R-CNN from ``torchvision.models.detection``: training with resume, and prediction.

The model is torchvision's ``FasterRCNN`` over a ResNet-FPN backbone (R50-FPN by default, the
same network as ``fasterrcnn_resnet50_fpn``), built with ``weights=None`` so that nothing is
ever downloaded. ImageNet weights for the backbone come from a local file
(``detector.weights``: a torchvision classification state dict, e.g. ``resnet50-0676ba61.pth``);
then, as in torchvision, batch norm is frozen and the first stages are not trained. Without
weights every layer trains, with ordinary batch norm.

Training mirrors Detectron2's defaults: SGD with momentum, no weight decay on normalisation
layers, linear warmup then step decay, counted in iterations. Files in ``out_dir``::

    last.pt               model, optimizer, iteration, RNG state (written atomically; an
                          interrupted training resumes from it; the lr schedule is a function
                          of the iteration)
    model_NNNNNNN.pt      a copy of last.pt at each checkpoint (``solver.keep_snapshots``):
                          what a training resumes from, exactly, when last.pt is lost or cut
    tensorboard/          losses and learning rate

Checkpoints are plain dicts of tensors and builtins, read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from tqdm import tqdm

from detection.config import DetectorConfig, SolverConfig
from detection.data import IterationBatchSampler, ManifestDataset, collate
from detection.distributed import distributed_context
from detection.errors import DetectionError, brief
from detection.manifest import Manifest, torch_save, write_json

logger = logging.getLogger(__name__)

FORMAT = "detection.torchvision"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device, which must exist
    here (:class:`DetectionError` otherwise)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DetectionError(f"device {name!r} is not a device name (cpu, cuda, cuda:N, "
                             "mps)") from None
    if device.type == "cuda" and torch.cuda.device_count() <= (device.index or 0):
        raise DetectionError(f"device {name!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA devices")
    return device


# ---------------------------------------------------------------------------------- the model

def architecture(cfg: DetectorConfig, num_classes: int) -> dict:
    """What :func:`build_model` needs, as stored in the checkpoint (so predict rebuilds it)."""
    pretrained = cfg.weights is not None
    trainable = cfg.torchvision.trainable_layers
    if trainable is None:  # torchvision's rule
        trainable = 3 if pretrained else 5
    return {"backbone": cfg.torchvision.backbone, "num_classes": num_classes,
            "frozen_bn": pretrained, "trainable_layers": trainable, **asdict(cfg.model),
            "min_size": list(cfg.input.min_size), "max_size": cfg.input.max_size}


def build_model(arch: dict, weights: str | Path | None = None) -> FasterRCNN:
    """A Faster R-CNN for ``arch["num_classes"]`` classes (plus background, label 0).

    The backbone is a torchvision ResNet whose stages C2-C5 (strides 4-32) feed an FPN with
    levels P2-P6, as ``fasterrcnn_resnet50_fpn``, with the widths of ``arch``. ``weights``: a
    local ImageNet state dict of the ResNet (its ``fc`` is not used).
    """
    norm = misc_nn_ops.FrozenBatchNorm2d if arch["frozen_bn"] else nn.BatchNorm2d
    resnet = getattr(torchvision.models, arch["backbone"].removesuffix("_fpn"))(
        weights=None, norm_layer=norm)
    if weights is not None:
        _load_backbone(resnet, Path(weights))
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:arch["trainable_layers"]]
    if arch["trainable_layers"] == 5:
        trainable.append("bn1")
    for name, parameter in resnet.named_parameters():
        if not name.startswith(tuple(trainable)):
            parameter.requires_grad_(False)
    c2 = resnet.inplanes // 8  # C2 width: 64 (BasicBlock) or 256 (Bottleneck)
    channels = arch["fpn_channels"]
    backbone = BackboneWithFPN(resnet, {f"layer{k}": str(k - 1) for k in range(1, 5)},
                               [c2 * 2 ** i for i in range(4)], channels,
                               extra_blocks=LastLevelMaxPool())
    sizes = tuple((s,) for s in arch["anchor_sizes"])
    resolution = 7  # RoIAlign output, Detectron2's POOLER_RESOLUTION
    # Checkpoints from before these keys existed were trained with torchvision's defaults.
    rpn_topk = {f"rpn_{stage}_nms_top_n_train": arch[f"rpn_{stage}_nms_topk_train"]
                for stage in ("pre", "post") if arch.get(f"rpn_{stage}_nms_topk_train")}
    return FasterRCNN(
        backbone, rpn_anchor_generator=AnchorGenerator(sizes, (ASPECT_RATIOS,) * len(sizes)),
        box_head=TwoMLPHead(channels * resolution ** 2, arch["box_head_dim"]),
        box_predictor=FastRCNNPredictor(arch["box_head_dim"], arch["num_classes"] + 1),
        box_batch_size_per_image=arch["roi_batch_size_per_image"],
        min_size=tuple(arch["min_size"]), max_size=arch["max_size"], **rpn_topk)


def _load_backbone(resnet: nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "wrong file"
        raise DetectionError(f"{path}: cannot read backbone weights ({brief(exc)}); give a "
                             "torchvision ResNet state dict saved with torch.save") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict", state.get("model")), dict):
        state = state.get("state_dict", state.get("model"))
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise DetectionError(
            f"{path}: not ImageNet weights of this ResNet in torchvision's format (missing "
            f"{missing[:3]}, unexpected {unexpected[:3]}); a Detectron2 .pkl needs "
            "detector.backend: detectron2")
    logger.info("backbone initialised from %s", path)


# ---------------------------------------------------------------------------------- training

def lr_factor(solver: SolverConfig):
    """Detectron2's WarmupMultiStepLR as a LambdaLR factor of the iteration."""
    steps = [round(f * solver.iterations) for f in solver.lr_steps]

    def factor(iteration: int) -> float:
        warmup = 1.0
        if iteration < solver.warmup_iterations:
            alpha = iteration / solver.warmup_iterations
            warmup = solver.warmup_factor * (1 - alpha) + alpha
        return warmup * solver.gamma ** bisect.bisect_right(steps, iteration)

    return factor


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Detectron2 (SOLVER.WEIGHT_DECAY_NORM = 0): decaying a norm layer's scale fights the
    # normalisation itself.
    norm, other = [], []
    for module in model.modules():
        target = norm if isinstance(module, nn.modules.batchnorm._BatchNorm) else other
        target.extend(p for p in module.parameters(recurse=False) if p.requires_grad)
    return [{"params": other, "weight_decay": weight_decay},
            {"params": norm, "weight_decay": 0.0}]


def train(manifests: Sequence[Manifest], out_dir: Path, classes: Sequence[str],
          cfg: DetectorConfig, device: str = "auto", seed: int = 0,
          progress: bool = True) -> tuple[Path, int]:
    """Train (or continue training) until ``cfg.solver.iterations``; see :func:`detection.train`.

    Returns ``(path of last.pt, iterations done)``.
    """
    solver = cfg.solver
    rank, world = distributed_context()
    if solver.batch_size % world:
        raise DetectionError(f"detector.solver.batch_size {solver.batch_size} does not divide "
                             f"among {world} processes; use a multiple of {world}")
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    arch = architecture(cfg, len(classes))
    torch.manual_seed(seed)
    model = build_model(arch, cfg.weights).to(dev)
    optimizer = torch.optim.SGD(_param_groups(model, solver.weight_decay), lr=solver.lr,
                                momentum=solver.momentum)
    iteration = 0
    last = out_dir / LAST
    state = _resume_state(out_dir)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        iteration = state["iteration"]
        logger.info("resuming from %s at iteration %d", out_dir, iteration)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", solver.lr)
    # The lr is a function of the iteration, recomputed here rather than restored: a longer
    # solver.iterations stretches the schedule of a training that continues.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(solver),
                                                  last_epoch=iteration - 1)
    end = solver.iterations
    if iteration >= end:
        return last, iteration

    dataset = ManifestDataset(manifests, classes)
    # Data-parallel: every rank draws the same global batch and takes its own share of it;
    # DistributedDataParallel averages the gradients, so the step is that of the global batch.
    net = model if world == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None)
    loader = DataLoader(
        dataset, batch_sampler=IterationBatchSampler(len(dataset), solver.batch_size, seed,
                                                     iteration, end, cfg.input.flip,
                                                     rank=rank, world_size=world),
        num_workers=cfg.num_workers, collate_fn=collate, pin_memory=dev.type == "cuda",
        # Its own generator: creating the loader's iterator draws a seed, which must not come
        # from the global stream the model's sampling uses (a resume would shift it).
        generator=torch.Generator().manual_seed(seed))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tensorboard")) if rank == 0 else None
    logger.info("training torchvision Faster R-CNN %s on %s: %d images, iterations %d -> %d, "
                "batch %d%s; TensorBoard: tensorboard --logdir %s", arch["backbone"], dev,
                len(dataset), iteration, end, solver.batch_size,
                f" ({solver.batch_size // world} on each of {world} processes)" if world > 1
                else "", out_dir / "tensorboard")
    bar = tqdm(total=end, initial=iteration, desc=f"train detector {out_dir.name}", unit="it",
               disable=None if progress and rank == 0 else True, dynamic_ncols=True)
    model.train()
    try:
        for images, targets in loader:
            images = [im.to(dev, non_blocking=True) for im in images]
            targets = [{k: v.to(dev) for k, v in t.items() if isinstance(v, torch.Tensor)}
                       for t in targets]
            losses = net(images, targets)
            loss = sum(losses.values())
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"loss became {loss.item()} at iteration {iteration} "
                    f"({ {k: round(v.item(), 4) for k, v in losses.items()} }); lower "
                    "detector.solver.lr or lengthen the warmup")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            iteration += 1
            bar.update(1)
            if writer is not None and (iteration % solver.log_every == 0
                                       or iteration in (1, end)):
                bar.set_postfix(loss=f"{loss.item():.3f}")
                for k, v in losses.items():
                    writer.add_scalar(f"loss/{k}", v.item(), iteration)
                writer.add_scalar("loss/total", loss.item(), iteration)
                writer.add_scalar("lr", scheduler.get_last_lr()[0], iteration)
            if rank == 0 and (iteration % solver.checkpoint_every == 0 or iteration == end):
                _save(model, optimizer, iteration, arch, classes, out_dir,
                      snapshot=solver.keep_snapshots)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if world > 1:
        dist.barrier()      # the last checkpoint is written before any rank goes on
    return last, iteration


def _save(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, arch: dict,
          classes: Sequence[str], out_dir: Path, snapshot: bool) -> None:
    state = {
        "format": FORMAT,
        "version": CHECKPOINT_VERSION,
        "iteration": iteration,
        "arch": arch,
        "classes": list(classes),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    torch_save(state, out_dir / LAST)
    if snapshot:
        torch_save(state, out_dir / f"model_{iteration:07d}.pt")


def _resume_state(out_dir: Path) -> dict | None:
    """The state a training in ``out_dir`` continues from: ``last.pt``, or when it is missing
    or cannot be read (a kill during a copy, a full disk), the newest snapshot that can, saying
    so; None when there is neither (a fresh start). :class:`DetectionError` when checkpoints
    exist and none of them can be resumed from."""
    last = out_dir / LAST
    snapshots = sorted(out_dir.glob("model_*.pt"), reverse=True)
    if not last.exists() and not snapshots:
        return None
    problem = f"{last}: missing"
    if last.exists():
        try:
            return _load_checkpoint(last)
        except DetectionError as exc:
            problem = str(exc)
    for snapshot in snapshots:
        try:
            state = _load_checkpoint(snapshot)
        except DetectionError:
            continue
        if "optimizer" in state:        # older snapshots hold the weights only
            logger.warning("%s; resuming from the newest intact snapshot %s instead (iteration "
                           "%d), which replaces it", problem, snapshot.name, state["iteration"])
            torch_save(state, last)
            return state
    if not last.exists():
        return None
    raise DetectionError(f"{problem}; no intact snapshot in {out_dir} to fall back to: delete "
                         f"{last.name} to train from scratch")


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise DetectionError(f"{path}: cannot read the checkpoint ({brief(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DetectionError(f"{path}: not a checkpoint of the torchvision backend")
    if state.get("version") != CHECKPOINT_VERSION:
        raise DetectionError(f"{path}: checkpoint version {state.get('version')} is not "
                             f"{CHECKPOINT_VERSION}; train the detector again")
    return state


# ---------------------------------------------------------------------------------- prediction

@torch.inference_mode()
def predict(checkpoint: Path, manifest: Manifest, out_json: Path, cfg: DetectorConfig,
            device: str = "auto", progress: bool = True) -> int:
    """Write COCO results for every image of ``manifest``; return the number of detections."""
    dev = resolve_device(device)
    state = _load_checkpoint(checkpoint)
    model = build_model(state["arch"])
    model.load_state_dict(state["model"])
    model.transform.min_size = (cfg.input.min_size[-1],)
    model.transform.max_size = cfg.input.max_size
    model.roi_heads.score_thresh = cfg.test.score_threshold
    model.roi_heads.detections_per_img = cfg.test.detections_per_image
    model.to(dev).eval()
    dataset = ManifestDataset([manifest], state["classes"])
    loader = DataLoader(dataset, batch_size=cfg.test.batch_size, num_workers=cfg.num_workers,
                        collate_fn=collate)
    results = []
    for images, targets in tqdm(loader, desc=f"predict {manifest.path.name}", unit="batch",
                                disable=None if progress else True, dynamic_ncols=True):
        outputs = model([im.to(dev) for im in images])
        for out, target in zip(outputs, targets):
            boxes = out["boxes"].cpu()
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
            for box, label, score in zip(xywh.tolist(), out["labels"].tolist(),
                                         out["scores"].tolist()):
                results.append({"image_id": target["image_id"], "category_id": int(label),
                                "bbox": [round(v, 2) for v in box],
                                "score": round(score, 5)})
    write_json(out_json, results, indent=None)
    return len(results)
