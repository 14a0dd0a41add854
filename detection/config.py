"""Typed settings of the detectors: backend, training sets, schedule, input scale, model.

Plain dataclasses; the pipeline embeds :class:`DetectorConfig` as the ``detector`` section of
the experiment YAML and validates it, and library users build one in Python. This package never
reads YAML itself.

The defaults are sensible for KITTI -> Cityscapes at full resolution. They follow Detectron2's
Cityscapes recipe (``configs/Cityscapes/mask_rcnn_R_50_FPN.yaml``: batch 8, lr 0.01, 24k
iterations with one decay at 18k, shorter side 800-1024 in training and 1024 at test, longer
side at most 2048) on the R50-FPN Faster R-CNN of ``COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml``,
with Detectron2's solver defaults (SGD momentum 0.9, weight decay 1e-4, linear warmup over
1000 iterations from 0.001 x lr, decay by 0.1, a checkpoint every 5000 iterations) and its test
settings (score threshold 0.05, at most 100 detections per image). MGUIT's paper gives no
detector settings beyond "Faster R-CNN".
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

BACKENDS = ("auto", "detectron2", "torchvision")


@dataclass
class SolverConfig:
    """SGD with linear warmup and step decay, counted in iterations (Detectron2's
    ``WarmupMultiStepLR``). ``lr_steps`` are fractions of ``iterations`` at which the lr is
    multiplied by ``gamma``, so that a shorter run keeps the shape of the schedule."""

    iterations: int = 24000
    batch_size: int = 8                 # images per iteration
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1.0e-4
    warmup_iterations: int = 1000
    warmup_factor: float = 0.001        # lr starts at warmup_factor * lr
    lr_steps: list[float] = field(default_factory=lambda: [0.75])
    gamma: float = 0.1
    checkpoint_every: int = 5000        # last checkpoint (what an interrupted run resumes from)
    keep_snapshots: bool = True         # also keep each checkpoint (model_NNNNNNN.*): resumable
    log_every: int = 20                 # TensorBoard scalars and the progress bar's loss

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"solver.{name} must be >= 1")
        if self.lr <= 0:
            raise ValueError("solver.lr must be > 0")
        if self.warmup_iterations < 0 or not 0 < self.warmup_factor <= 1:
            raise ValueError("solver.warmup_iterations must be >= 0 and warmup_factor in (0, 1]")
        if any(not 0 < s < 1 for s in self.lr_steps) or self.lr_steps != sorted(self.lr_steps):
            raise ValueError(f"solver.lr_steps must be increasing fractions of the iterations in "
                             f"(0, 1), got {self.lr_steps}")


@dataclass
class InputConfig:
    """Input scale and augmentation, read the same way by both backends.

    Each training image is resized so that its shorter side is one of ``min_size`` (chosen at
    random per image) and its longer side at most ``max_size``; at test time the shorter side is
    ``min_size[-1]``. ``flip``: random horizontal flips in training.
    """

    min_size: list[int] = field(default_factory=lambda: list(range(800, 1025, 32)))
    max_size: int = 2048
    flip: bool = True

    def validate(self) -> None:
        if not self.min_size or any(s < 1 for s in self.min_size):
            raise ValueError(f"input.min_size must be a non-empty list of sizes, got "
                             f"{self.min_size}")
        if self.max_size < max(self.min_size):
            raise ValueError(f"input.max_size {self.max_size} is smaller than input.min_size "
                             f"{max(self.min_size)}")


@dataclass
class InferenceConfig:
    """Inference settings (Detectron2's ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` and
    ``TEST.DETECTIONS_PER_IMAGE``). The low score threshold keeps the low-confidence detections
    that the precision-recall curve of AP needs."""

    score_threshold: float = 0.05
    detections_per_image: int = 100
    batch_size: int = 4

    def validate(self) -> None:
        if not 0 <= self.score_threshold < 1:
            raise ValueError("test.score_threshold must be in [0, 1)")
        if self.detections_per_image < 1 or self.batch_size < 1:
            raise ValueError("test.detections_per_image and test.batch_size must be >= 1")


@dataclass
class ModelConfig:
    """The shape of the Faster R-CNN R-FPN, read by both backends (Detectron2's key in
    brackets). The defaults are both libraries' R50-FPN; smaller values make the demo's
    detector fast on a CPU."""

    # One size per FPN level P2-P6, three aspect ratios each [MODEL.ANCHOR_GENERATOR.SIZES].
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    fpn_channels: int = 256              # [MODEL.FPN.OUT_CHANNELS]
    box_head_dim: int = 1024             # its two fully connected layers [ROI_BOX_HEAD.FC_DIM]
    # Proposals sampled per image to train the box head [MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE].
    roi_batch_size_per_image: int = 512
    # While training, the RPN keeps the best pre_nms_topk_train proposals of each FPN level
    # before NMS and the best post_nms_topk_train of the image after it
    # [MODEL.RPN.PRE_NMS_TOPK_TRAIN, MODEL.RPN.POST_NMS_TOPK_TRAIN]; null: the backend's
    # default (both 2000 in torchvision; 2000 and 1000 in Detectron2).
    rpn_pre_nms_topk_train: Optional[int] = None
    rpn_post_nms_topk_train: Optional[int] = None

    def validate(self) -> None:
        if len(self.anchor_sizes) != 5 or any(s < 1 for s in self.anchor_sizes):
            raise ValueError(f"model.anchor_sizes must be 5 positive sizes, one per FPN level "
                             f"P2-P6, got {self.anchor_sizes}")
        for name in ("fpn_channels", "box_head_dim", "roi_batch_size_per_image"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1")
        for name in ("rpn_pre_nms_topk_train", "rpn_post_nms_topk_train"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1 (or null)")


@dataclass
class TorchvisionConfig:
    """``torchvision.models.detection.FasterRCNN`` over a ResNet-FPN backbone.

    ``trainable_layers``: ResNet stages trained (0-5); ``None`` follows torchvision: 3 when
    ImageNet weights are loaded (the rest frozen, with frozen batch norm), all 5 (with batch
    norm) when the backbone starts from random weights.
    """

    backbone: Literal["resnet50_fpn", "resnet18_fpn", "resnet34_fpn", "resnet101_fpn"] = \
        "resnet50_fpn"
    trainable_layers: Optional[int] = None

    def validate(self) -> None:
        if self.trainable_layers is not None and not 0 <= self.trainable_layers <= 5:
            raise ValueError("torchvision.trainable_layers must be in 0..5 (or null)")


@dataclass
class Detectron2Config:
    """Detectron2's own config: a model-zoo file, then our settings, then ``overrides``.

    ``overrides`` are Detectron2 config keys applied last (``{MODEL.RESNETS.DEPTH: 101}``), so
    any model of its zoo and any of its options can be used.
    """

    config: str = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectorConfig:
    """A Faster R-CNN R50-FPN detector, trained on COCO manifests and evaluated on one.

    ``backend``: ``detectron2``, ``torchvision``, or ``auto`` (Detectron2 when it can be imported,
    else torchvision). ``train_sets`` (used by the pipeline): one detector per entry, on
    ``source_only`` (source train), ``translated`` (the translate stage's output), ``oracle``
    (target train), ``source_plus_translated``, the baselines' translations of source train
    ``colour_transfer`` (Reinhard colour transfer) and ``fda`` (Fourier domain adaptation), or
    ``perfect_translation`` (a perfect translation of source train given with the data, a
    ceiling). ``weights``: a local file of ImageNet-pretrained
    backbone weights in the backend's format (torchvision: a ``resnet50`` state dict such as
    ``resnet50-0676ba61.pth``; Detectron2: ``R-50.pkl``); ``None`` trains from random weights.
    Nothing is ever downloaded. ``on_missing_class``: what to do when a training manifest has
    no box of a class (the detector could never learn it).
    """

    backend: Literal["auto", "detectron2", "torchvision"] = "auto"
    train_sets: list[Literal["source_only", "translated", "oracle", "source_plus_translated",
                             "colour_transfer", "fda", "perfect_translation"]] = \
        field(default_factory=lambda: ["source_only", "translated", "oracle"])
    weights: Optional[str] = None
    # Detectors of train_sets trained at once by the pipeline, each in its own process with
    # its share of the threads: on a CPU two small detectors side by side train about 1.4x
    # faster than one after the other with both threads. 1 on a GPU.
    parallel: int = 1
    num_workers: int = 2
    on_missing_class: Literal["error", "warn"] = "error"
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    input: InputConfig = field(default_factory=InputConfig)
    test: InferenceConfig = field(default_factory=InferenceConfig)
    torchvision: TorchvisionConfig = field(default_factory=TorchvisionConfig)
    detectron2: Detectron2Config = field(default_factory=Detectron2Config)

    def validate(self) -> None:
        # The schema checks the Literal types of a YAML config; this also catches a config built
        # in Python with a typo.
        if self.backend not in BACKENDS:
            close = difflib.get_close_matches(str(self.backend), BACKENDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown detector backend {self.backend!r}{hint} "
                             f"(backends: {', '.join(BACKENDS)})")
        if not self.train_sets:
            raise ValueError("train_sets is empty: list at least one of source_only, "
                             "translated, oracle, source_plus_translated, colour_transfer, fda, "
                             "perfect_translation")
        if len(set(self.train_sets)) != len(self.train_sets):
            raise ValueError(f"train_sets has duplicates: {self.train_sets}")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if self.parallel < 1:
            raise ValueError("parallel must be >= 1 (detectors trained at once)")
        for section in (self.model, self.solver, self.input, self.test, self.torchvision):
            section.validate()
