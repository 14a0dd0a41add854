"""Where every file of a run lives: ``runs/<name>/`` in one place (DESIGN.md section 8).

Stages, the report, inspection and the ablation ask these functions for paths, so that the
layout of a run directory is written down once. ``fingerprint`` says whether a file or folder
of a run changed since it was recorded in ``state.json``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.context import RunContext

# Files up to this size are fingerprinted by content, larger ones by size and mtime.
CONTENT_HASH_LIMIT = 64 * 2**20


def state_file(run_dir: Path) -> Path:
    """What each stage ran on (the runner's bookkeeping)."""
    return run_dir / "state.json"


def resolved_config(run_dir: Path) -> Path:
    """The config after overrides, with absolute paths."""
    return run_dir / "config.resolved.yaml"


def translator_dir(run_dir: Path) -> Path:
    """The translator's training: ``checkpoints/``, ``tensorboard/``, ``samples/``."""
    return run_dir / "translator"


def last_checkpoint(run_dir: Path) -> Path:
    """What an interrupted training resumes from, and what ``translate`` reads by default."""
    return translator_dir(run_dir) / "checkpoints" / "last.pt"


def checkpoint_path(ctx: RunContext) -> Path:
    """``translate.checkpoint``, or the translator stage's ``last.pt``."""
    configured = ctx.config.translate.checkpoint
    return Path(configured) if configured else last_checkpoint(ctx.run_dir)


def translated_dir(run_dir: Path) -> Path:
    """The translated source set (KITTI layout + ``annotations.json`` + ``manifest.jsonl``)."""
    return run_dir / "translated"


def baseline_dir(run_dir: Path, method: str) -> Path:
    """A baseline's translation of the source set (``colour_transfer``, ``fda``), in the
    layout of ``translated/``."""
    return run_dir / "baselines" / method


def perfect_translation_manifest(run_dir: Path, draw: int = 0) -> Path:
    """source_train with its images taken from ``data.source.perfect_translations[draw]``."""
    return run_dir / "data" / f"source_train.perfect_{draw}.json"


def detector_dir(run_dir: Path, train_set: str) -> Path:
    return run_dir / "detector" / train_set


def eval_dir(run_dir: Path) -> Path:
    """``metrics.json`` and ``table.md`` (evaluate), ``translation.json`` (metrics),
    ``predictions/<set>.json``."""
    return run_dir / "eval"


def detection_metrics(run_dir: Path) -> Path:
    return eval_dir(run_dir) / "metrics.json"


def translation_metrics(run_dir: Path) -> Path:
    return eval_dir(run_dir) / "translation.json"


def report_dir(run_dir: Path) -> Path:
    return run_dir / "report"


#: What the stages write directly in a run directory (pseudo_unlabeled/ and pseudo_round<r>/
#: match "pseudo_*"). Anything else there is the user's, e.g. an export's folder.
RUN_ENTRIES = ("data", "translator", "translated", "baselines", "detector", "eval", "report",
               "state.json", "config.resolved.yaml", "pipeline.log", "pseudo_*", ".*")


def run_entry_holding(run_dir: Path, path: Path) -> Path | None:
    """The entry of ``run_dir`` written by the pipeline that is or holds ``path`` (the run
    directory itself included), or None: where a command must not write or delete."""
    run_dir, path = run_dir.resolve(), path.resolve()
    if path == run_dir:
        return run_dir
    if run_dir not in path.parents:
        return None
    top = path.relative_to(run_dir).parts[0]
    return run_dir / top if any(fnmatch.fnmatchcase(top, p) for p in RUN_ENTRIES) else None


def fingerprint(path: Path) -> str:
    """A string that changes when the file or folder at ``path`` changes."""
    if not path.exists():
        return "missing"
    if path.is_file():
        st = path.stat()
        if st.st_size <= CONTENT_HASH_LIMIT:
            return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        rel = os.path.relpath(dirpath, path)
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            digest.update(f"{rel}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "tree:" + digest.hexdigest()
