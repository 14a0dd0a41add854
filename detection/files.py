"""JSON reading with errors that name the file, and atomic file writes: a reader sees the old
file or the new one, never a part of one."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from detection.errors import DetectionError


def read_json(path: Path, missing: str, unreadable: str) -> Any:
    """The JSON document at ``path``; :class:`DetectionError` ``"<path>: <missing>"`` when the
    file does not exist, ``"<path>: <unreadable> (<why>)"`` when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectionError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DetectionError(f"{path}: {unreadable} ({exc})") from None


def _temporary(path: Path) -> Path:
    # Same folder as the target: os.replace is atomic only within one file system.
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    write_bytes(path, (json.dumps(obj, indent=indent, allow_nan=False) + "\n").encode("utf-8"))


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
