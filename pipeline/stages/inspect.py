"""The ``inspect`` stage: the run's FiftyOne dataset, built or refreshed (never the App).

A thin wrapper over :func:`pipeline.inspection.dataset.build_dataset`; the layout of the
dataset, and how it is refreshed without duplicating samples, are described there.
``pipeline inspect runs/<name>`` does the same and then serves the App.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.context import StageError
from pipeline.inspection import InspectionError, runfiles
from pipeline.inspection.dataset import build_dataset

if TYPE_CHECKING:
    from pipeline.context import RunContext

CONFIG_KEYS = ("inspect.dataset_name", "inspect.database_dir", "inspect.iou", "data.classes",
               "translate.split", "evaluate.split")


def input_paths(ctx: RunContext) -> list[Path]:
    """The manifests, and the translated set and predictions when they exist (a run without
    them still gets its dataset)."""
    return runfiles.find_files(ctx).inputs


def run(ctx: RunContext) -> dict:

    # Under torchrun every rank runs the stages; one dataset is built, by rank 0.
    if int(os.environ.get("RANK", "0")) != 0:
        return {}
    try:
        return build_dataset(ctx).to_dict()
    except InspectionError as exc:
        raise StageError(f"inspect: {exc}") from None
