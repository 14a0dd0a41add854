"""Console and file logging that coexists with tqdm progress bars."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TqdmHandler(logging.StreamHandler):
    """Writes records through ``tqdm.write`` so a running bar is redrawn below them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Console logging for the ``pipeline`` command (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h, TqdmHandler) for h in root.handlers):
        handler = TqdmHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(handler)


def add_run_log(run_dir: Path) -> logging.Handler:
    """Also log to ``run_dir/pipeline.log`` (appending, so reruns keep their history)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "pipeline.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
    return handler
