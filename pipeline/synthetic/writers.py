"""Writing a whole dataset: the KITTI source, the Cityscapes target, the perfect translations
of the source (``paired/draw_<k>/``) and, on request, its partial translations
(``paired/<part>/``, one per part of the target style), with metadata that makes a second call
with the same options a no-op."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from tqdm import tqdm

from pipeline.synthetic.annotations import (cityscapes_annotation, kitti_calibration,
                                            kitti_label_lines)
from pipeline.synthetic.layout import sample_scene
from pipeline.synthetic.looks import PARTIAL_STYLES, SOURCE_STYLE, TARGET_STYLE
from pipeline.synthetic.render import draw_rng, render_scene, scene_rng
from pipeline.synthetic.scene import (CITYSCAPES_FRAME, DEFAULT_HEIGHT, DEFAULT_NUM_DRAWS,
                                      DEFAULT_NUM_SOURCE, DEFAULT_NUM_TARGET_TRAIN,
                                      DEFAULT_NUM_TARGET_VAL, DEFAULT_WIDTH, FORMAT_VERSION,
                                      METADATA_FILE, MIN_HEIGHT, MIN_WIDTH, PAIRED_DIR, Rendering,
                                      SOURCE_DOMAIN, Scene, TARGET_DOMAIN, TRAIN_CITIES,
                                      TRAIN_SPLIT, VAL_CITIES, VAL_SPLIT)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticDataset:
    """A generated dataset: the KITTI ``training`` directory, the Cityscapes root, counts, and
    the perfect translations: ``paired_roots[k]`` is the KITTI ``training`` directory of draw
    ``k`` (the source scenes rendered in the target style, same file names and labels);
    ``partial_roots``: part name (a key of ``PARTIAL_STYLES``) -> the same for that part of the
    target style alone (empty unless generated with ``parts``)."""

    root: Path
    source_root: Path
    target_root: Path
    seed: int
    width: int
    height: int
    num_source: int
    num_target_train: int
    num_target_val: int
    paired_roots: tuple[Path, ...] = ()
    partial_roots: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class _Task:
    domain: int
    split: int
    index: int


def _cityscapes_stem(split: int, index: int) -> tuple[str, str]:
    """``(city, "<city>_<seq>_<frame>")`` of the ``index``-th image of a target split."""
    cities = TRAIN_CITIES if split == TRAIN_SPLIT else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}"


def _save_png(image: np.ndarray, path: Path) -> None:
    # Fixed settings and no metadata chunks: the bytes depend on the pixels only. Level 1:
    # PIL's default (6) takes three times as long on these noisy images for 12 % less space.
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def _render_task(task: _Task, seed: int, width: int, height: int
                 ) -> tuple[Scene, Rendering]:
    rng = scene_rng(seed, task.domain, task.split, task.index)
    scene_stream, noise_stream = rng.spawn(2)
    scene = sample_scene(scene_stream, width, height)
    style = SOURCE_STYLE if task.domain == SOURCE_DOMAIN else TARGET_STYLE
    return scene, render_scene(scene, style, noise_stream)


def paired_root(root: Path, draw: int) -> Path:
    """The KITTI ``training`` directory of the perfect translations of draw ``draw``."""
    return root / PAIRED_DIR / f"draw_{draw}" / "training"


def partial_root(root: Path, part: str) -> Path:
    """The KITTI ``training`` directory of the partial translations ``part`` (a key of
    :data:`~pipeline.synthetic.looks.PARTIAL_STYLES`)."""
    return root / PAIRED_DIR / part / "training"


def _paired_roots(root: Path, draws: int, parts: Sequence[str]) -> list[Path]:
    """The KITTI ``training`` directories of the perfect translations, then of the parts."""
    return ([paired_root(root, k) for k in range(draws)]
            + [partial_root(root, part) for part in parts])


def _write_task(root: Path, task: _Task, seed: int, width: int, height: int, draws: int,
                parts: bool) -> None:
    scene, rendering = _render_task(task, seed, width, height)
    if task.domain == SOURCE_DOMAIN:
        name = f"{task.index:06d}"
        lines = kitti_label_lines(scene, rendering)
        label = "".join(f"{line}\n" for line in lines)
        training = root / "source" / "training"
        _save_png(rendering.image, training / "image_2" / f"{name}.png")
        _write_text(training / "label_2" / f"{name}.txt", label)
        _write_text(training / "calib" / f"{name}.txt", kitti_calibration(scene.camera))
        # The pixels a part owns do not depend on the style, so the labels are the source's.
        for k in range(draws):
            perfect = render_scene(scene, TARGET_STYLE, draw_rng(seed, k, task.index))
            _save_png(perfect.image, paired_root(root, k) / "image_2" / f"{name}.png")
            _write_text(paired_root(root, k) / "label_2" / f"{name}.txt", label)
        # Draw 0's stream: every part draws what draw 0 drew of it.
        for part, style in (PARTIAL_STYLES.items() if parts else ()):
            partial = render_scene(scene, style, draw_rng(seed, 0, task.index))
            _save_png(partial.image, partial_root(root, part) / "image_2" / f"{name}.png")
            _write_text(partial_root(root, part) / "label_2" / f"{name}.txt", label)
        return
    split = "train" if task.split == TRAIN_SPLIT else "val"
    city, stem = _cityscapes_stem(task.split, task.index)
    target = root / "target"
    _save_png(rendering.image, target / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    annotation = json.dumps(cityscapes_annotation(scene, rendering), sort_keys=True,
                            separators=(",", ":"))
    _write_text(target / "gtFine" / split / city / f"{stem}_gtFine_polygons.json",
                annotation + "\n")


def _parameters(seed: int, width: int, height: int, num_source: int, num_target_train: int,
                num_target_val: int, draws: int, parts: bool) -> dict:
    params = {"format_version": FORMAT_VERSION, "generator": __package__, "seed": seed,
              "width": width, "height": height, "num_source": num_source,
              "num_target_train": num_target_train, "num_target_val": num_target_val,
              "draws": draws}
    if parts:   # only when asked, so that datasets written before the option stay complete
        params["parts"] = sorted(PARTIAL_STYLES)
    return params


def _dataset(root: Path, params: dict) -> SyntheticDataset:
    return SyntheticDataset(
        root=root, source_root=root / "source" / "training", target_root=root / "target",
        seed=params["seed"], width=params["width"], height=params["height"],
        num_source=params["num_source"], num_target_train=params["num_target_train"],
        num_target_val=params["num_target_val"],
        paired_roots=tuple(paired_root(root, k) for k in range(params["draws"])),
        partial_roots={part: partial_root(root, part) for part in params.get("parts", ())})


def _count(directory: Path, pattern: str) -> int:
    return sum(1 for _ in directory.glob(pattern)) if directory.is_dir() else 0


def _is_complete(root: Path, params: dict) -> bool:
    """True if ``root`` holds a dataset generated with exactly ``params``. The metadata file is
    written last, so its presence means generation finished; the file counts catch a dataset
    that was damaged afterwards."""
    try:
        stored = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored.get("parameters") != params:
        return False
    training, target = root / "source" / "training", root / "target"
    expected = [
        (training / "image_2", "*.png", params["num_source"]),
        (training / "label_2", "*.txt", params["num_source"]),
        (target / "leftImg8bit" / "train", "*/*_leftImg8bit.png", params["num_target_train"]),
        (target / "gtFine" / "train", "*/*_gtFine_polygons.json", params["num_target_train"]),
        (target / "leftImg8bit" / "val", "*/*_leftImg8bit.png", params["num_target_val"]),
        (target / "gtFine" / "val", "*/*_gtFine_polygons.json", params["num_target_val"]),
    ]
    for paired in _paired_roots(root, params["draws"], params.get("parts", ())):
        expected += [(paired / sub, pattern, params["num_source"])
                     for sub, pattern in (("image_2", "*.png"), ("label_2", "*.txt"))]
    return all(_count(d, pattern) == n for d, pattern, n in expected)


_OWN_ENTRIES = {"source", "target", PAIRED_DIR, METADATA_FILE}


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a directory that holds anything but a (partial) synthetic dataset."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a directory; choose another --out")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{root}: not a synthetic dataset (it contains {shown}); refusing to overwrite it. "
            "Choose an empty or new directory for --out, or delete this one.")


def _make_dirs(root: Path, tasks: Sequence[_Task], draws: int, parts: bool) -> None:
    training = root / "source" / "training"
    for sub in ("image_2", "label_2", "calib"):
        (training / sub).mkdir(parents=True, exist_ok=True)
    for directory in _paired_roots(root, draws, tuple(PARTIAL_STYLES) if parts else ()):
        for sub in ("image_2", "label_2"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
    for task in tasks:
        if task.domain == TARGET_DOMAIN:
            split = "train" if task.split == TRAIN_SPLIT else "val"
            city, _ = _cityscapes_stem(task.split, task.index)
            for kind in ("leftImg8bit", "gtFine"):
                (root / "target" / kind / split / city).mkdir(parents=True, exist_ok=True)


def _tasks(num_source: int, num_target_train: int, num_target_val: int) -> list[_Task]:
    return ([_Task(SOURCE_DOMAIN, TRAIN_SPLIT, i) for i in range(num_source)]
            + [_Task(TARGET_DOMAIN, TRAIN_SPLIT, i) for i in range(num_target_train)]
            + [_Task(TARGET_DOMAIN, VAL_SPLIT, i) for i in range(num_target_val)])


def _run_tasks(root: Path, tasks: Sequence[_Task], seed: int, width: int, height: int,
               draws: int, parts: bool, n_jobs: int, progress: bool) -> None:
    jobs = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=8)(
        delayed(_write_task)(root, task, seed, width, height, draws, parts) for task in tasks)
    with tqdm(total=len(tasks), desc="synthetic data", unit="img",
              disable=None if progress else True) as bar:
        for _ in jobs:
            bar.update()


def _replace_dir(new: Path, root: Path) -> None:
    """Move ``new`` to ``root``; an old ``root`` is moved aside first and deleted after, so that
    ``root`` is never a half-written dataset."""
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, old / root.name)
    os.replace(new, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _validate(width: int, height: int, counts: Sequence[int], draws: int, n_jobs: int
              ) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"image size {width}x{height} is too small: use at least "
                         f"{MIN_WIDTH}x{MIN_HEIGHT}")
    if any(n < 0 for n in counts):
        raise ValueError(f"image counts must be >= 0, got {list(counts)}")
    if draws < 0:
        raise ValueError(f"draws must be >= 0 (perfect translations per source image), got "
                         f"{draws}")
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive number of workers, or negative (joblib: "
                         "-1 = all cores)")


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    num_source: int = DEFAULT_NUM_SOURCE,
    num_target_train: int = DEFAULT_NUM_TARGET_TRAIN,
    num_target_val: int = DEFAULT_NUM_TARGET_VAL,
    draws: int = DEFAULT_NUM_DRAWS,
    parts: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
) -> SyntheticDataset:
    """Write the two-domain synthetic dataset to ``out_dir`` and describe it.

    ``out_dir/source/training`` is a KITTI object ``training`` directory (``image_2``,
    ``label_2``, ``calib``); ``out_dir/target`` a Cityscapes root (``leftImg8bit``, ``gtFine``,
    splits ``train`` and ``val``); ``out_dir/paired/draw_<k>/training`` (k < ``draws``) the
    perfect translations: every source scene rendered in the target style, the k-th of
    independent draws of its look, with the source's file names and label files; with
    ``parts``, ``out_dir/paired/{light,objects}/training`` the same scenes with the target's
    light alone and with its object looks alone (:data:`~pipeline.synthetic.looks.
    PARTIAL_STYLES`); ``out_dir/synthetic.json`` records the parameters.

    Idempotent: if ``out_dir`` already holds a complete dataset made with the same parameters,
    nothing is written. Otherwise the dataset is generated in a temporary sibling directory and
    moved into place, so ``out_dir`` never holds a partial dataset. A directory that holds
    anything else than a synthetic dataset is never replaced (``FileExistsError``).
    """
    root = Path(out_dir).resolve()
    _validate(width, height, (num_source, num_target_train, num_target_val), draws, n_jobs)
    params = _parameters(seed, width, height, num_source, num_target_train, num_target_val,
                         draws, parts)
    if _is_complete(root, params):
        logger.info("%s: synthetic dataset already present, nothing to do", root)
        return _dataset(root, params)
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        tasks = _tasks(num_source, num_target_train, num_target_val)
        _make_dirs(work, tasks, draws, parts)
        _run_tasks(work, tasks, seed, width, height, draws, parts, n_jobs, progress)
        metadata = json.dumps({"parameters": params}, sort_keys=True, indent=2) + "\n"
        _write_text(work / METADATA_FILE, metadata)
        if _is_complete(root, params):  # a concurrent call got there first
            shutil.rmtree(work)
        else:
            _check_replaceable(root)
            _replace_dir(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("%s: wrote %d source and %d + %d target images, %d perfect translations of "
                "each source image", root, num_source, num_target_train, num_target_val, draws)
    return _dataset(root, params)
