"""The experiment config: typed sections, YAML loading, ``key=value`` overrides.

A config is one YAML file (see ``configs/``), read with ``yaml.safe_load``, overridden on the
command line with dotted keys (``run.name=quick data.on_bad_box=drop``), and validated into the
dataclasses below. Defaults are the paper's settings. Relative paths are resolved against the
directory the command is run from (the project root in the README's examples), and the resolved
config, with absolute paths, is written to ``runs/<name>/config.resolved.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from detection.config import DetectorConfig
from mguit.config import TranslatorConfig
from pipeline.schema import (ConfigError, Origin, build, check_unique_keys, check_yaml_size,
                             field_paths, key_lines, section_type, short_repr, suggest, to_plain,
                             yaml_problem)

KITTI_CLASS_MAP = {
    "Pedestrian": "person", "Person_sitting": "person", "Car": "car", "Truck": "truck",
    "Cyclist": "bicycle", "Van": None, "Tram": None, "Misc": None, "DontCare": None,
}
CITYSCAPES_CLASS_MAP = {"person": "person", "car": "car", "truck": "truck", "bicycle": "bicycle"}

Split = Literal["source_train", "source_val", "target_train", "target_val"]

#: Seeds are what numpy's and PyTorch's generators all take: 32-bit unsigned integers.
MAX_SEED = 2**32 - 1


def check_seed(name: str, value: int) -> None:
    """``ValueError`` unless ``value`` is a seed (0 ... 2**32 - 1)."""
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {short_repr(value)}")


@dataclass
class RunConfig:
    """Where the run lives and how it computes."""

    name: str = "demo"
    dir: str = "runs"
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    # PyTorch's threads per process. null: OMP_NUM_THREADS if set, else PyTorch's default (the
    # physical cores) divided among the torchrun processes of the machine. Lower it when other
    # heavy jobs share the cores: threads that wait on each other run many times slower.
    threads: Optional[int] = None

    def validate(self) -> None:
        check_seed("run.seed", self.seed)
        if self.threads is not None and self.threads < 1:
            raise ValueError("run.threads must be >= 1 (or null)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ValueError(f"run.name {short_repr(self.name)} must be a plain folder name "
                             "(letters, digits, '.', '_', '-')")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(f"run.device {short_repr(self.device)} must be auto, cpu, mps, cuda "
                             "or cuda:N")
        if self.workers < 0:
            raise ValueError("run.workers must be >= 0")

    def thread_count(self, default: int) -> int:
        """The threads ``run.threads`` means for this process, given PyTorch's ``default``."""
        if self.threads is not None:
            return self.threads
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            return max(1, int(os.environ["OMP_NUM_THREADS"]))
        return max(1, default // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))

    @property
    def path(self) -> Path:
        return Path(self.dir) / self.name


@dataclass
class DomainConfig:
    """One domain's dataset on disk and how its labels map to the experiment's classes.

    ``format`` selects the reader. KITTI has no official validation split: ``val_list`` (a file of
    frame ids) is used when set, otherwise a seeded random ``val_fraction`` of the frames.
    Cityscapes uses its official ``train_split``/``val_split`` folders. COCO reads
    ``train_annotations``/``val_annotations`` JSON files with images under ``root``. ``folder``
    is a plain folder of images without labels: ``root/<train_split>`` and ``root/<val_split>``
    when both exist, else every image under ``root`` split by ``val_fraction``.

    ``labels`` (the target only) says where the translator's target boxes come from: ``boxes``
    the dataset's own, ``none`` no boxes at all (the target side of the memory is trained
    without class masks), ``pseudo`` a detector's (the ``pseudo_labels`` section). With ``none``
    and ``pseudo`` the training split's labels are never read, and the validation split's are
    read where the dataset has them (evaluation needs them).
    """

    format: Literal["kitti", "cityscapes", "coco", "folder"]
    root: str
    labels: Literal["boxes", "none", "pseudo"] = "boxes"
    # labels none: how the target's pixels train the memory. "single": the single memory's
    # rule (read, write and eq 8 over every item); "values": read every item, write only the
    # target values, no eq 8 (keys and class structure learn from the source's labeled
    # pixels). Neither holds every seed on the demo (docs/unlabeled-targets.md).
    unlabeled_rule: Literal["single", "values"] = "single"
    class_map: dict[str, Optional[str]] = field(default_factory=dict)
    on_unknown_label: Literal["error", "ignore"] = "error"
    val_fraction: float = 0.1
    val_list: Optional[str] = None
    split_seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    train_annotations: Optional[str] = None
    val_annotations: Optional[str] = None

    def validate(self) -> None:
        check_seed("split_seed", self.split_seed)
        if not self.class_map:
            raise ValueError("class_map is empty: map the dataset's labels to data.classes")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.format == "coco" and not (self.train_annotations and self.val_annotations):
            raise ValueError("format coco needs train_annotations and val_annotations "
                             "(paths of COCO JSON files)")
        if self.format == "folder" and self.labels == "boxes":
            raise ValueError("format folder holds images without labels: set labels to none "
                             "or pseudo")

    @property
    def has_train_labels(self) -> bool:
        """Whether the training split's own boxes are read."""
        return self.labels == "boxes"


@dataclass
class SourceDomainConfig(DomainConfig):
    """The source domain; ``perfect_translations`` optionally names KITTI ``training`` folders
    holding perfect translations of it (the same file names and sizes, target style, each an
    independent draw: the synthetic demo's ``paired/draw_<k>/training``), which ``prepare``
    turns into ``data/source_train.perfect_<k>.json``. The first ``translate.num_samples``
    train the ``perfect_translation`` detector (as many images per source image as the
    translated sets hold: MGUIT's K style samples, the baselines' K draws); the first two give
    the ceilings of the translation metrics (``metrics`` stage)."""

    perfect_translations: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """The two domains, the experiment's classes and the bad-input policy."""

    source: SourceDomainConfig
    target: DomainConfig
    classes: list[str] = field(default_factory=lambda: ["person", "car", "truck", "bicycle"])
    on_bad_box: Literal["clip", "drop", "error"] = "clip"
    min_box_size: float = 1.0
    verify_images: bool = True

    def validate(self) -> None:
        if not self.classes:
            raise ValueError("classes is empty")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes has duplicates: {self.classes}")
        for side in ("source", "target"):
            domain = getattr(self, side)
            for raw, mapped in domain.class_map.items():
                if mapped is not None and mapped not in self.classes:
                    raise ValueError(
                        f"{side}.class_map maps {short_repr(raw)} to {short_repr(mapped)}, "
                        f"which is not in classes {self.classes}" + suggest(mapped, self.classes)
                    )
        if self.min_box_size < 0:
            raise ValueError("min_box_size must be >= 0")
        if self.source.labels != "boxes":
            raise ValueError("source.labels must be boxes: the translated set keeps the "
                             "source's boxes (an unlabeled domain goes in data.target)")


@dataclass
class TranslateConfig:
    """The ``translate`` stage: a whole split translated at native resolution, boxes kept.

    See :mod:`pipeline.translation` for the output layout, resuming and sharding. Outputs are a
    pure function of (checkpoint, image, ``seed``, sample index): ``batch_size``, ``workers``,
    ``writers`` and sharding change only the speed (and float rounding, see the module doc).
    ``amp`` computes in float16 on CUDA and in bfloat16 on CPUs that do it natively (AMX,
    AVX512-BF16), about twice as fast as float32 there; outputs then differ from float32 ones
    by a few grey levels at most. ``amp: false`` computes in float32 everywhere.
    """

    split: Split = "source_train"
    direction: Literal["source_to_target", "target_to_source"] = "source_to_target"
    checkpoint: Optional[str] = None     # null: runs/<name>/translator/checkpoints/last.pt
    num_samples: int = 1                 # K styles per image; K > 1 names files <id>_s<k>.png
    seed: int = 0                        # seeds the random styles of samples k >= 1
    batch_size: int = 8                  # images of one size per forward pass
    workers: int = 2                     # processes decoding source images
    writers: int = 2                     # threads encoding PNGs and writing files
    amp: bool = True                     # autocast: float16 on CUDA, bfloat16 on AMX CPUs
    channels_last: bool = True           # NHWC tensors: faster convolutions on GPU and oneDNN
    png_compress_level: int = 1          # 0-9; lossless at any level, 1 is ~5x faster than 6
    on_bad_image: Literal["error", "skip"] = "error"   # skip: listed in the manifest, counted
    # What MGUIT's styles are. "memory" (the paper): sample 0 reads the memory's values,
    # samples k >= 1 random values near them. "exemplar": sample k reads the values of one
    # reference_split image (each class's style in that image; MGUIT.exemplar_values), drawn
    # as the baselines draw theirs. "scene" (default): the background's values from that
    # image (its scene and light), the object classes' from the memory. Not the paper's: its
    # memory items average the target's light over its images, so every memory translation
    # gets the same light (brightness spread over images 1.4-2.1 against the target's 5.7,
    # docs/translator.md cause 18); with scene 4.1-4.8. Demo, translator seeds 2 / 0 / 1,
    # K = 1: gap recovered 0.57 / 0.23 / -0.06 against memory's 0.25 / -0.04 / -0.19
    # (exemplar 0.60 / 0.10 / -0.03). Needs reference images with boxes; the standalone
    # `pipeline translate` keeps memory unless given --style and --reference.
    style: Literal["memory", "exemplar", "scene"] = "scene"
    # The baselines (colour_transfer, fda: pipeline.translation.methods) and MGUIT's exemplar
    # styles take their style from the images of this split.
    reference_split: Split = "target_train"
    fda_beta: float = 0.01               # FDA's low-frequency window: floor(min(H, W) * beta)
    # Reinhard's target statistics: "image" (one reference image's per sample, drawn as FDA
    # draws its image: the translations keep the target's image-to-image light) or "split"
    # (sample 0 takes the whole reference split's: every translation gets the same light).
    # Demo, seeds 2 / 0 / 1, K = 1: gap recovered 0.21 against -0.22 (docs/translator.md).
    colour_transfer_reference: Literal["image", "split"] = "image"

    @property
    def uses_reference(self) -> bool:
        """Whether MGUIT's styles come from reference_split's images (exemplar, scene)."""
        return self.style != "memory"

    def validate(self) -> None:
        check_seed("translate.seed", self.seed)
        for name in ("num_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"translate.{name} must be >= 1")
        if self.workers < 0:
            raise ValueError("translate.workers must be >= 0 (0 decodes in the main process)")
        if self.writers < 1:
            raise ValueError("translate.writers must be >= 1")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError("translate.png_compress_level must be in 0..9")
        if not 0 <= self.fda_beta <= 0.5:
            raise ValueError("translate.fda_beta must be in [0, 0.5] (the paper uses 0.01 to "
                             "0.09)")


@dataclass
class EvaluateConfig:
    """The ``evaluate`` stage: every detector on one split, per class (the paper's Table 3 uses
    the target domain's validation split)."""

    split: Split = "target_val"
    # Classes of the gap-recovered figure, (translated - source_only) / (oracle - source_only)
    # on their mean AP50; null: all of data.classes.
    gap_classes: Optional[list[str]] = None


@dataclass
class MetricsConfig:
    """The ``metrics`` stage: translation quality -> ``runs/<name>/eval/translation.json``.

    Network weights are local files (nothing is downloaded); a metric whose weights are not set
    is skipped with a message and the others still run. The per-class style distance needs no
    weights. Definitions: :mod:`pipeline.metrics` and the README's *Translation quality*.
    """

    real_split: Split = "target_val"       # the target images translations are compared with
    # FID, KID, IS: torch-fidelity's Inception-v3, weights-inception-2015-12-05-6726825d.pth
    inception_weights: Optional[str] = None
    lpips_weights: Optional[str] = None       # LPIPS backbone (torchvision AlexNet state dict)
    classifier: Optional[str] = None          # IS/CIS classifier (TorchScript); null: Inception
    diversity_split: Optional[Split] = None   # LPIPS/CIS inputs; null: translate.split
    diversity_images: int = 100           # inputs for LPIPS diversity and CIS
    diversity_samples: int = 10           # style samples per input (all pairs are compared)
    seed: int = 0                         # picks the diversity inputs, their styles, KID subsets
    batch_size: int = 16                  # images per forward pass of the metric networks
    kid_subset_size: int = 1000           # KID's subset size (capped at the number of images)
    kid_subsets: int = 100                # KID's number of subsets
    is_splits: int = 10                   # IS over the translated images: splits (capped)
    style_pixels_per_box: int = 256       # style distance: pixels sampled per box, at most
    # Read selectivity: images of translate.split whose content reads are measured (a seeded
    # choice; null: all). Only the content encoder runs, so thousands take seconds on a GPU.
    selectivity_images: Optional[int] = 1000

    def validate(self) -> None:
        check_seed("metrics.seed", self.seed)
        for name in ("diversity_images", "batch_size", "kid_subsets", "is_splits",
                     "style_pixels_per_box"):
            if getattr(self, name) < 1:
                raise ValueError(f"metrics.{name} must be >= 1")
        if self.selectivity_images is not None and self.selectivity_images < 1:
            raise ValueError("metrics.selectivity_images must be >= 1 (or null for all images)")
        if self.kid_subset_size < 2:
            raise ValueError("metrics.kid_subset_size must be >= 2 (KID compares pairs)")
        if self.diversity_samples < 2:
            raise ValueError("metrics.diversity_samples must be >= 2 (diversity compares pairs)")


@dataclass
class PseudoLabelsConfig:
    """The ``pseudo_label`` stage (``data.target.labels: pseudo``): a detector's boxes on
    target_train -> ``runs/<name>/data/target_train.pseudo.json`` (with scores), which the
    translator trains its target class masks from.
    """

    # A detector checkpoint of the configured backend and model; null: the `detector` below.
    checkpoint: Optional[str] = None
    # The detector that labels the first round, trained by the stage: "source_only" (the run's
    # own, reused by train_detector) or "translated_unlabeled" (trained on a translation made
    # without target labels, labels: none; a second translator).
    detector: Literal["source_only", "translated_unlabeled"] = "source_only"
    # Boxes scoring at least this become labels: the usual 0.5.
    score_threshold: float = 0.5
    # 2 re-labels target_train with the detector trained on the first round's translations
    # (a whole translator, translation and detector more; runs/<name>/pseudo_round1/).
    rounds: int = 1

    def validate(self) -> None:
        if not 0 <= self.score_threshold <= 1:
            raise ValueError("pseudo_labels.score_threshold must be in [0, 1]")
        if self.rounds < 1:
            raise ValueError("pseudo_labels.rounds must be >= 1")


@dataclass
class ReportConfig:
    """The ``report`` stage: ``runs/<name>/report/index.html``, readable without a server."""

    grid_images: int = 6                  # source images shown in the grids (fixed selection)
    grid_samples: int = 3                 # extra style samples per grid row
    seed: int = 0                         # picks the grid images and the samples' styles
    thumbnail_height: int = 160           # pixels; grid images are scaled to this height

    def validate(self) -> None:
        check_seed("report.seed", self.seed)
        for name in ("grid_images", "thumbnail_height"):
            if getattr(self, name) < 1:
                raise ValueError(f"report.{name} must be >= 1")
        if self.grid_samples < 0:
            raise ValueError("report.grid_samples must be >= 0")


@dataclass
class InspectConfig:
    """The ``inspect`` stage and ``pipeline inspect``: a FiftyOne dataset of the run."""

    dataset_name: Optional[str] = None    # null: the run's name
    database_dir: Optional[str] = None    # null: FIFTYONE_DATABASE_DIR or FiftyOne's default
    iou: float = 0.5                      # evaluate_detections' IoU (the paper's AP50)
    address: str = "127.0.0.1"            # the App listens here; --remote changes it
    port: int = 5151

    def validate(self) -> None:
        if not 0 < self.iou < 1:
            raise ValueError("inspect.iou must be in (0, 1)")
        if not 0 < self.port < 65536:
            raise ValueError("inspect.port must be a TCP port")


@dataclass
class Config:
    """The whole experiment. Sections are added as the pipeline's stages land."""

    data: DataConfig
    run: RunConfig = field(default_factory=RunConfig)
    translator: TranslatorConfig = field(default_factory=TranslatorConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    pseudo_labels: PseudoLabelsConfig = field(default_factory=PseudoLabelsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)

    def validate(self) -> None:
        groups = [g for g in self.translator.memory.items if g != "background"]
        missing = [c for c in self.data.classes if c not in groups]
        extra = [g for g in groups if g not in self.data.classes]
        if missing or extra:
            raise ValueError(
                "translator.memory.items must give items to every class of data.classes and "
                f"to no other (plus background): missing {missing}, unknown {extra}"
            )
        if not self.train_sets:
            raise ValueError("detector.train_sets lists only oracle, which needs the target's "
                             "own training labels (data.target.labels: boxes)")
        if "perfect_translation" in self.detector.train_sets \
                and not self.data.source.perfect_translations:
            raise ValueError("detector.train_sets lists perfect_translation, which needs "
                             "data.source.perfect_translations (KITTI training folders holding "
                             "perfect translations of the source); set it or remove the set")
        draws = len(self.data.source.perfect_translations)
        if "perfect_translation" in self.detector.train_sets \
                and draws < self.translate.num_samples:
            raise ValueError(
                f"translate.num_samples is {self.translate.num_samples}, so the translated "
                f"sets hold {self.translate.num_samples} images per source image, and the "
                f"perfect_translation detector takes as many draws: data.source."
                f"perfect_translations names {draws}; name more (pipeline synth --draws) or "
                "remove perfect_translation from detector.train_sets")
        unknown = [c for c in self.evaluate.gap_classes or () if c not in self.data.classes]
        if unknown:
            raise ValueError(f"evaluate.gap_classes {unknown} are not in data.classes "
                             f"{self.data.classes}")

    @property
    def train_sets(self) -> list[str]:
        """``detector.train_sets`` that this run's data allows: the oracle needs the target's
        own training labels, so it is left out when ``data.target.labels`` is not ``boxes``."""
        sets = self.detector.train_sets
        if self.data.target.has_train_labels:
            return list(sets)
        return [s for s in sets if s != "oracle"]

    def section(self, dotted: str) -> object:
        obj: object = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj

    def slice_hash(self, keys: tuple[str, ...]) -> str:
        """A stable hash of the config sections ``keys`` (what a stage depends on)."""
        payload = {k: to_plain(self.section(k)) for k in keys}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# The weights settings that may name a library's standard file instead of a path
# (pipeline.weights fetches them).
NAMED_WEIGHTS = {"detector.weights": "imagenet", "metrics.inception_weights": "default",
                 "metrics.lpips_weights": "default"}

PATH_FIELDS = ("data.source.root", "data.source.val_list", "data.source.train_annotations",
               "data.source.val_annotations", "data.source.perfect_translations",
               "data.target.root", "data.target.val_list", "data.target.train_annotations",
               "data.target.val_annotations", "run.dir", "translate.checkpoint",
               "pseudo_labels.checkpoint", "detector.weights", "metrics.inception_weights",
               "metrics.lpips_weights", "metrics.classifier", "inspect.database_dir")


def parse_override(text: str) -> tuple[str, object]:
    """Split ``a.b.c=value``; the value is parsed as YAML (``2000`` -> int, ``[0.5, 0.9]`` -> list)."""
    if "=" not in text:
        raise ConfigError(f"override {short_repr(text)} must look like key=value "
                          "(e.g. run.name=quick)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", key):
        raise ConfigError(f"override {short_repr(key)}: not a dotted key like run.name")
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        check_yaml_size(node, f"override {key}")
        check_unique_keys(node, f"override {key}", lines=False)
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: value is not valid YAML: {yaml_problem(exc)[1]}; "
                          "quote a value that holds YAML's special characters") from None
    return key, value


def apply_override(data: dict, key: str, value: object) -> None:
    """Set ``data[a][b][c] = value`` for ``key = "a.b.c"``; unknown keys are caught on validation,
    except where the path runs through a non-mapping, which is reported here."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _check_override_key(key: str) -> None:
    """Reject an override whose key is not in the schema before anything is built."""
    known = field_paths(Config)
    if key in known:
        return
    # Keys below a free-form mapping (a class map) are data, not schema.
    free_form = [p for p in known if p.endswith(".class_map")]
    if any(key.startswith(p + ".") for p in free_form):
        return
    raise ConfigError(f"command-line override {key}: unknown key" + suggest(key, known))


BASE_KEY = "_base_"


def read_yaml_tree(path: Path, _seen: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    """Read a config file and the chain of ``_base_`` files it inherits from.

    A file may name another as ``_base_: other.yaml`` (relative to itself); its keys are
    merged over the base's, mapping by mapping (a scalar or list replaces, a mapping merges key
    by key; a free-form mapping such as a class map is replaced whole). Returns the merged data
    and, per dotted key, the ``(file, line)`` that set it.
    """
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: {BASE_KEY} files form a cycle: {chain}")
    where = f" (the {BASE_KEY} of {_seen[-1]})" if _seen else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found{where}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file{where}; name a YAML file "
                          "(see configs/)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}){where}; save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}){where}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        check_yaml_size(node, str(path))
        check_unique_keys(node, str(path))
        data = yaml.safe_load(text)
        lines = {k: (path, n) for k, n in key_lines(text).items()}
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise ConfigError(f"{path}{'' if line is None else f':{line}'}: not valid YAML: "
                          f"{problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections (run:, data:, ...)")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data, lines
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {short_repr(base)}")
    base_data, base_lines = read_yaml_tree(path.parent / base, (*_seen, path))
    return _merge(base_data, data), {**base_lines, **lines}


def _merge(base: dict, update: dict, schema: type | None = None) -> dict:
    """``update`` over ``base``: config sections merge key by key, everything else (values,
    lists, and free-form mappings such as a class map or the memory's items) is replaced."""
    schema = schema or Config
    merged = dict(base)
    for key, value in update.items():
        section = section_type(schema, key)
        if section and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, section)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path, overrides: list[str] = (), base_dir: Path | None = None) -> Config:
    """Read a YAML config (and its ``_base_`` chain), apply ``key=value`` overrides, validate,
    resolve relative paths.

    Raises :class:`ConfigError` naming the file, line and key of the first problem.
    """
    path = Path(path)
    data, lines = read_yaml_tree(path)
    override_keys = set()
    for text_override in overrides:
        key, value = parse_override(text_override)
        _check_override_key(key)
        apply_override(data, key, value)
        override_keys.add(key)
    config = build(Config, data, Origin(path, lines, frozenset(override_keys)))
    _resolve_paths(config, base_dir or Path.cwd())
    return config


def _resolve_paths(config: Config, base: Path) -> None:
    for dotted in PATH_FIELDS:
        *parents, name = dotted.split(".")
        owner = config.section(".".join(parents))
        value = getattr(owner, name)
        # ``imagenet`` / ``default`` name a library's file (pipeline.weights), not a path.
        if isinstance(value, list):
            setattr(owner, name, [str((base / Path(v).expanduser()).resolve()) for v in value])
        elif value is not None and value != NAMED_WEIGHTS.get(dotted):
            setattr(owner, name, str((base / Path(value).expanduser()).resolve()))


def dump_config(config: Config) -> str:
    """The config as YAML text, in schema order."""
    return yaml.safe_dump(to_plain(config), sort_keys=False, default_flow_style=None, width=100)
