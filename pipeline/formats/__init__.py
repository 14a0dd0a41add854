"""Dataset formats: readers that turn KITTI, Cityscapes and COCO data into :class:`ImageRecord`
streams, and the COCO manifest that every later stage reads (see :mod:`.coco`)."""

from __future__ import annotations

from pipeline.formats import cityscapes, coco, kitti
from pipeline.formats.cityscapes import read_cityscapes
from pipeline.formats.coco import Manifest, read_coco, read_manifest, write_manifest
from pipeline.formats.common import BadInputLog, Box, DatasetError, ImageRecord
from pipeline.formats.kitti import read_kitti, split_by_list, split_frames

__all__ = [
    "BadInputLog",
    "Box",
    "DatasetError",
    "ImageRecord",
    "Manifest",
    "cityscapes",
    "coco",
    "kitti",
    "read_cityscapes",
    "read_coco",
    "read_kitti",
    "read_manifest",
    "split_by_list",
    "split_frames",
    "write_manifest",
]
