"""Faster R-CNN with Detectron2: its model zoo config, its trainer, its COCO evaluation.

Detectron2 is optional (it is not on PyPI; install it following
https://detectron2.readthedocs.io/en/latest/tutorials/install.html) and imported only when this
backend runs. The manifests are registered with ``register_coco_instances`` (see
:mod:`detection.registry`); the config starts from the model zoo file
``detector.detectron2.config`` (default ``COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml``), takes
our settings (:func:`build_config`), then ``detector.detectron2.overrides``.

Files in ``out_dir`` are Detectron2's own: ``model_final.pth``, ``model_NNNNNNN.pth`` every
``solver.checkpoint_every`` iterations, ``last_checkpoint`` (what
``DefaultTrainer.resume_or_load(resume=True)`` continues from), ``metrics.json`` and TensorBoard
event files. Prediction runs ``inference_on_dataset`` with ``COCOEvaluator`` (whose AP table is
logged) and writes its COCO results; the numbers the pipeline reports come from
:mod:`detection.evaluate`, the same code for both backends.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from detection.config import DetectorConfig
from detection.errors import DetectionError, require_detectron2
from detection.manifest import Manifest, write_bytes, write_json
from detection.registry import register_manifest

logger = logging.getLogger(__name__)

FINAL = "model_final.pth"
CONFIG = "config.yaml"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DetectionError(f"device {name!r} was asked for but CUDA is not available")
    return name


def build_config(cfg: DetectorConfig, num_classes: int, out_dir: Path, device: str = "auto",
                 seed: int = 0, train_datasets: Sequence[str] = ()):
    """A frozen Detectron2 ``CfgNode`` for our settings (see the module doc for the order)."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    try:
        zoo_file = model_zoo.get_config_file(cfg.detectron2.config)
    except RuntimeError as exc:
        raise DetectionError(f"detector.detectron2.config: {exc}") from None
    c = get_cfg()
    c.merge_from_file(zoo_file)
    c.MODEL.DEVICE = _device(device)
    c.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    # Never the zoo's detectron2:// URL: nothing is downloaded. "" is random initialisation.
    c.MODEL.WEIGHTS = cfg.weights or ""
    if not cfg.weights:
        # From scratch, a frozen stem and frozen batch norm would keep random features.
        c.MODEL.BACKBONE.FREEZE_AT = 0
        c.MODEL.RESNETS.NORM = "BN"
    c.MODEL.ANCHOR_GENERATOR.SIZES = [[s] for s in cfg.model.anchor_sizes]
    c.MODEL.FPN.OUT_CHANNELS = cfg.model.fpn_channels
    c.MODEL.ROI_BOX_HEAD.FC_DIM = cfg.model.box_head_dim
    c.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = cfg.model.roi_batch_size_per_image
    if cfg.model.rpn_pre_nms_topk_train is not None:
        c.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.model.rpn_pre_nms_topk_train
    if cfg.model.rpn_post_nms_topk_train is not None:
        c.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.model.rpn_post_nms_topk_train
    c.MODEL.ROI_HEADS.SCORE_THRESH_TEST = cfg.test.score_threshold
    c.TEST.DETECTIONS_PER_IMAGE = cfg.test.detections_per_image
    c.INPUT.MIN_SIZE_TRAIN = tuple(cfg.input.min_size)
    c.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    c.INPUT.MIN_SIZE_TEST = cfg.input.min_size[-1]
    c.INPUT.MAX_SIZE_TRAIN = c.INPUT.MAX_SIZE_TEST = cfg.input.max_size
    c.INPUT.RANDOM_FLIP = "horizontal" if cfg.input.flip else "none"
    s = cfg.solver
    c.SOLVER.MAX_ITER = s.iterations
    c.SOLVER.IMS_PER_BATCH = s.batch_size
    c.SOLVER.BASE_LR = s.lr
    c.SOLVER.MOMENTUM = s.momentum
    c.SOLVER.WEIGHT_DECAY = s.weight_decay
    c.SOLVER.WARMUP_ITERS = s.warmup_iterations
    c.SOLVER.WARMUP_FACTOR = s.warmup_factor
    # Detectron2 rejects a step at or after the end (a short run can round onto it).
    c.SOLVER.STEPS = tuple(step for step in (round(f * s.iterations) for f in s.lr_steps)
                           if 0 < step < s.iterations)
    c.SOLVER.GAMMA = s.gamma
    c.SOLVER.CHECKPOINT_PERIOD = s.checkpoint_every
    c.DATALOADER.NUM_WORKERS = cfg.num_workers
    c.DATASETS.TRAIN = tuple(train_datasets)
    c.DATASETS.TEST = ()
    c.TEST.EVAL_PERIOD = 0
    c.SEED = seed
    c.OUTPUT_DIR = str(out_dir)
    overrides = [item for key, value in cfg.detectron2.overrides.items()
                 for item in (key, value)]
    try:
        c.merge_from_list(overrides)
    except (KeyError, AssertionError, ValueError) as exc:
        raise DetectionError(f"detector.detectron2.overrides: {exc}") from None
    c.freeze()
    return c


def _trainer_class(keep_snapshots: bool):
    from detectron2.engine import DefaultTrainer, hooks
    from detectron2.evaluation import COCOEvaluator

    class Trainer(DefaultTrainer):
        """``DefaultTrainer`` with COCO evaluation (when ``overrides`` set ``DATASETS.TEST`` and
        ``TEST.EVAL_PERIOD``) and, without ``keep_snapshots``, only the latest checkpoint kept."""

        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            return COCOEvaluator(dataset_name, output_dir=output_folder
                                 or os.path.join(cfg.OUTPUT_DIR, "inference"))

        def build_hooks(self):
            built = super().build_hooks()
            if keep_snapshots:
                return built
            return [hooks.PeriodicCheckpointer(self.checkpointer, self.cfg.SOLVER.CHECKPOINT_PERIOD,
                                               max_to_keep=1)
                    if isinstance(h, hooks.PeriodicCheckpointer) else h for h in built]

    return Trainer


def train(manifests: Sequence[Manifest], out_dir: Path, classes: Sequence[str],
          cfg: DetectorConfig, device: str = "auto", seed: int = 0,
          progress: bool = True) -> tuple[Path, int]:
    """Train with ``DefaultTrainer``, resuming from ``out_dir``'s last checkpoint; see
    :func:`detection.train`. Returns ``(model_final.pth, iterations)``."""
    require_detectron2()
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng

    _join_torchrun(comm)
    names = [register_manifest(f"{out_dir.name}_train_{i}", m.path)
             for i, m in enumerate(manifests)]
    d2cfg = build_config(cfg, len(classes), out_dir, device, seed, names)
    seed_all_rng(seed)
    # Under torchrun DefaultTrainer does what Detectron2's launch() sets up: it wraps the model
    # in DistributedDataParallel, shards the data (IMS_PER_BATCH is the global batch) and lets
    # the main process alone write checkpoints and logs.
    trainer = _build_trainer(_trainer_class(cfg.solver.keep_snapshots), d2cfg, comm)
    trainer.resume_or_load(resume=True)
    if comm.is_main_process():
        # What predict rebuilds the model from (Detectron2's own tools read it too).
        write_bytes(out_dir / CONFIG, d2cfg.dump().encode("utf-8"))
    logger.info("training Detectron2 %s on %s: iterations %d -> %d, batch %d; TensorBoard: "
                "tensorboard --logdir %s", cfg.detectron2.config, d2cfg.MODEL.DEVICE,
                trainer.start_iter, d2cfg.SOLVER.MAX_ITER, d2cfg.SOLVER.IMS_PER_BATCH, out_dir)
    trainer.train()
    comm.synchronize()
    return out_dir / FINAL, d2cfg.SOLVER.MAX_ITER


def _build_trainer(trainer_class, d2cfg, comm):
    """``trainer_class(d2cfg)``. DefaultTrainer pins its DistributedDataParallel to the process's
    GPU (``device_ids=[local rank]``); CPU processes (gloo) must not pass a device, so there its
    ``create_ddp_model`` gets ``device_ids=None`` while the trainer is built."""
    if comm.get_world_size() == 1 or d2cfg.MODEL.DEVICE != "cpu":
        return trainer_class(d2cfg)
    import functools

    from detectron2.engine import defaults

    original = defaults.create_ddp_model
    defaults.create_ddp_model = functools.partial(original, device_ids=None)
    try:
        return trainer_class(d2cfg)
    finally:
        defaults.create_ddp_model = original


def _join_torchrun(comm) -> None:
    """Under torchrun: the process group (gloo on CPUs, NCCL on GPUs), each process's GPU, and
    Detectron2's per-machine group, as its ``launch()`` would have made them."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    from detection.distributed import distributed_context

    distributed_context()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if comm._LOCAL_PROCESS_GROUP is None:
        comm.create_local_process_group(int(os.environ.get("LOCAL_WORLD_SIZE",
                                                           dist.get_world_size())))


def _prediction_config(checkpoint: Path, cfg: DetectorConfig, num_classes: int, device: str):
    """The training's config (``config.yaml`` beside the checkpoint) with ``cfg``'s test
    settings; ``cfg`` alone for a checkpoint trained elsewhere."""
    saved = checkpoint.parent / CONFIG
    if not saved.is_file():
        return build_config(cfg, num_classes, checkpoint.parent, device)
    from detectron2.config import get_cfg

    c = get_cfg()
    c.merge_from_file(str(saved))
    c.MODEL.DEVICE = _device(device)
    c.MODEL.ROI_HEADS.SCORE_THRESH_TEST = cfg.test.score_threshold
    c.TEST.DETECTIONS_PER_IMAGE = cfg.test.detections_per_image
    c.INPUT.MIN_SIZE_TEST = cfg.input.min_size[-1]
    c.INPUT.MAX_SIZE_TEST = cfg.input.max_size
    c.DATALOADER.NUM_WORKERS = cfg.num_workers
    c.freeze()
    return c


def predict(checkpoint: Path, manifest: Manifest, out_json: Path, cfg: DetectorConfig,
            device: str = "auto", progress: bool = True) -> int:
    """COCO results of the model in ``checkpoint`` on every image of ``manifest``."""
    require_detectron2()
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import build_detection_test_loader
    from detectron2.evaluation import COCOEvaluator, inference_on_dataset
    from detectron2.modeling import build_model

    name = register_manifest(f"predict_{manifest.path.stem}", manifest.path)
    d2cfg = _prediction_config(checkpoint, cfg, len(manifest.classes), device)
    model = build_model(d2cfg)
    DetectionCheckpointer(model).load(str(checkpoint))
    model.eval()
    with tempfile.TemporaryDirectory(prefix=".predict-", dir=out_json.parent if
                                     out_json.parent.exists() else None) as tmp:
        evaluator = COCOEvaluator(name, tasks=("bbox",), distributed=False, output_dir=tmp)
        inference_on_dataset(model, build_detection_test_loader(d2cfg, name), evaluator)
        results = json.loads((Path(tmp) / "coco_instances_results.json").read_text())
    results = [{"image_id": r["image_id"], "category_id": r["category_id"],
                "bbox": [round(v, 2) for v in r["bbox"]], "score": round(r["score"], 5)}
               for r in results]
    write_json(out_json, results, indent=None)
    return len(results)
