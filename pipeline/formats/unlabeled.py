"""Images of a split without their labels (``data.target.labels: none | pseudo``).

An unlabeled target is any folder of images: a plain one (format ``folder``), a Cityscapes
``leftImg8bit`` tree without ``gtFine``, a KITTI ``image_2`` without ``label_2``, or a COCO file
whose ``annotations`` are absent. The readers here list a split's images in a fixed order and
yield :class:`~pipeline.formats.common.ImageRecord` objects without boxes; no label file is
opened, so labels that do exist cannot leak into a run that was told to do without them.

Format ``folder``: the images of ``root/<train_split>`` and ``root/<val_split>`` (searched
recursively) when both folders exist, else every image under ``root``, split by the seeded
``val_fraction`` as KITTI frames are (:func:`pipeline.formats.kitti.split_frames`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.formats import cityscapes, kitti
from pipeline.formats.common import IMAGE_SUFFIXES, DatasetError, ImageRecord, by_frame, \
    image_files, read_image_size, read_json


def _frame_in(folder: Path):
    return lambda path: path.relative_to(folder).with_suffix("").as_posix()


def list_split(fmt: str, root: str | Path, split: str, *, train_split: str = "train",
               val_split: str = "val", val_fraction: float = 0.1, split_seed: int = 0,
               val_list: str | None = None, annotations: str | None = None) -> list[Path]:
    """Absolute image paths of ``split`` (``train`` or ``val``) of a dataset in format ``fmt``,
    in a fixed order; raises :class:`DatasetError` when the folder or file is missing or empty."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DatasetError(root, "dataset root does not exist or is not a folder")
    folder = train_split if split == "train" else val_split
    if fmt == "cityscapes":
        where = root / cityscapes.IMAGE_DIR / folder
        paths = list(by_frame(cityscapes.city_images(where), _frame_in(where)).values()) \
            if where.is_dir() else []
    elif fmt == "coco":
        where = Path(annotations)
        data = read_json(where)
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list) or not all(
                isinstance(i, dict) and isinstance(i.get("file_name"), str) for i in images):
            raise DatasetError(where, "needs an 'images' list of entries with a 'file_name'")
        paths = [root / image["file_name"] for image in images]
    elif fmt in ("kitti", "folder"):
        if fmt == "folder" and (root / train_split).is_dir() and (root / val_split).is_dir():
            where = root / folder
            paths = list(by_frame(image_files(where), _frame_in(where)).values())
        else:
            where = root / kitti.IMAGE_DIR if fmt == "kitti" else root
            frames = image_files(where)
            if fmt == "kitti":      # KITTI's frames are the files of image_2/ itself
                frames = [p for p in frames if p.parent == where]
            by_id = by_frame(frames, _frame_in(where))
            if val_list:
                train_ids, val_ids = kitti.split_by_list(
                    sorted(by_id), kitti.read_frame_list(val_list), val_list)
            else:
                train_ids, val_ids = kitti.split_frames(sorted(by_id), val_fraction, split_seed)
            paths = [by_id[i] for i in (train_ids if split == "train" else val_ids)]
    else:
        raise ValueError(f"unknown format {fmt!r}")
    if not paths:
        raise DatasetError(where, f"holds no images ({', '.join(IMAGE_SUFFIXES)}) for the "
                                  f"{split} split")
    return paths


def has_labels(fmt: str, root: str | Path, split_folder: str,
               annotations: str | None = None) -> bool:
    """Whether a split of the dataset comes with boxes (a folder of images never does)."""
    root = Path(root)
    if fmt == "cityscapes":
        return (root / cityscapes.ANNOTATION_DIR / split_folder).is_dir()
    if fmt == "kitti":
        return (root / kitti.LABEL_DIR).is_dir()
    if fmt == "coco":
        data = read_json(annotations)
        return isinstance(data, dict) and "annotations" in data
    return False


def read_images(paths: list[Path], root: str | Path) -> Iterator[ImageRecord]:
    """One record without boxes per image; sizes from the image headers."""
    root = Path(os.path.abspath(root))
    for path in paths:
        width, height = read_image_size(path)
        file_name = path.relative_to(root).as_posix() if path.is_relative_to(root) \
            else path.as_posix()
        yield ImageRecord(path=path, file_name=file_name, width=width, height=height)
