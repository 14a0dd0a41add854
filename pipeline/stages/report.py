"""The ``report`` stage: ``runs/<name>/report/index.html``, the run on one static page.

A thin wrapper over :mod:`pipeline.report` (what the page shows is described there). The page
shows the whole resolved config, so the stage depends on every config section; its inputs are
the earlier stages' outputs it reads, plus the optional files it shows while they exist
(:class:`~pipeline.report.files.RunFiles`).
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.report.files import RunFiles

if TYPE_CHECKING:
    from pipeline.context import RunContext

CONFIG_KEYS = tuple(f.name for f in fields(Config))


def input_paths(ctx: RunContext) -> list[Path]:
    files = RunFiles(ctx)
    return files.required() + [p for p in files.optional() if p.exists()]


def output_paths(ctx: RunContext) -> list[Path]:
    return [RunFiles(ctx).index]


def run(ctx: RunContext) -> dict:
    # Under torchrun every rank runs the stages; one report is written, by rank 0.
    if int(os.environ.get("RANK", "0")) != 0:
        return {}
    from pipeline.report.build import build_report  # imports matplotlib: only when it runs

    return build_report(ctx)
