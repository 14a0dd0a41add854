"""Pretrained weight files: where each library keeps them, and fetching them the way it does.

Every weight file the pipeline may need is a :class:`WeightFile`: its URL, the SHA-256 it must
have, and the path in the cache of the library it belongs to (torchvision and torch-fidelity:
``torch.hub``'s ``$TORCH_HOME/hub/checkpoints``; Detectron2: iopath's ``$FVCORE_CACHE`` or
``~/.torch/iopath_cache``). :func:`fetch` is the one download routine: into a temporary file in
the cache folder, verified, then renamed into place; a verified file is never fetched again;
retries with back-off; a progress bar with size and rate. Without a network and without the
file it raises :class:`WeightsError` naming the file, its URL and the exact path to put it at,
and leaves nothing partial behind. A file whose hash does not match is refused and removed.

Where a publisher gives only a hash prefix (torch.hub's convention: the first hex digits of the
SHA-256 in the file name, which is all ``torch.hub`` checks), the prefix is what is verified.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A weight file that is missing and cannot be fetched, or that has the wrong content."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file: ``url``, expected ``sha256`` (full, or a prefix of at least 8 hex digits),
    ``path`` in its library's cache, and what it is ``for`` (shown in tables)."""

    name: str
    url: str
    sha256: str
    path: Path
    used_for: str

    def status(self) -> str:
        """``present`` (verified), ``missing``, or ``hash mismatch``."""
        if not self.path.is_file():
            return "missing"
        return "present" if sha256_matches(self.path, self.sha256) else "hash mismatch"


def torch_hub_checkpoints() -> Path:
    """``torch.hub``'s download folder: ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaulting
    to ``$XDG_CACHE_HOME/torch``, then ``~/.cache/torch``), as ``torch.hub.get_dir()``."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(home) / "hub" / "checkpoints"


def detectron2_cache() -> Path:
    """Where Detectron2 (through iopath) caches ``detectron2://`` files: ``$FVCORE_CACHE``, else
    ``~/.torch/iopath_cache``."""
    return Path(os.environ.get("FVCORE_CACHE") or os.path.expanduser("~/.torch/iopath_cache"))


def sha256_matches(path: Path, expected: str) -> bool:
    return file_sha256(path).startswith(expected.lower())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(weight: WeightFile, *, retries: int = 3, backoff: float = 2.0, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """``weight.path``, downloaded first if it is not there (or does not verify).

    Raises :class:`WeightsError` when it cannot be downloaded (after ``retries`` attempts,
    waiting ``backoff``, then twice as long, ...) or when the download does not verify.
    """
    status = weight.status()
    if status == "present":
        return weight.path
    if status == "hash mismatch":
        weight.path.unlink()
    weight.path.parent.mkdir(parents=True, exist_ok=True)
    partial = weight.path.with_name(f".{weight.path.name}.{os.getpid()}.partial")
    error: Exception | None = None
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _download(weight, partial, timeout, progress)
            break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            partial.unlink(missing_ok=True)
            error = exc
    else:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            f"{weight.name}: cannot download {weight.url} ({reason}); with no network, download "
            f"it elsewhere and put it at {weight.path} (sha256 {weight.sha256}...), or run "
            "`pipeline weights CONFIG --download` where there is a network") from None
    if not sha256_matches(partial, weight.sha256):
        actual = file_sha256(partial)
        partial.unlink()
        raise WeightsError(f"{weight.name}: {weight.url} gave a file of sha256 {actual[:16]}..., "
                           f"not {weight.sha256}...: refused (a wrong or corrupted download)")
    os.replace(partial, weight.path)
    return weight.path


def _download(weight: WeightFile, partial: Path, timeout: float, progress: bool) -> None:
    with urllib.request.urlopen(weight.url, timeout=timeout) as response, \
            open(partial, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=weight.path.name, disable=not progress, leave=False) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        if total is not None and out.tell() != total:
            raise OSError(f"connection closed after {out.tell()} of {total} bytes")
