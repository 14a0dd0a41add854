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
import re
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pipeline.config import NAMED_WEIGHTS

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


def local_status(path: Path) -> str:
    """``present``, ``missing``, or what is wrong with a weights file given as a path, from its
    first and last bytes: PyTorch's files are zip archives (``torch.save``, TorchScript; a
    truncated one has lost its directory) or, older and Detectron2's ``.pkl``, pickles."""
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "a folder, not a weights file"
    try:
        if zipfile.is_zipfile(path):
            return "present"
        with path.open("rb") as f:
            head = f.read(2)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:    # a pickle's PROTO opcode
        return "present"
    return "not a weights file (neither a PyTorch zip archive nor a pickle)"


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
                  desc=weight.path.name, disable=None if progress else True,
                  leave=False) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        if total is not None and out.tell() != total:
            raise OSError(f"connection closed after {out.tell()} of {total} bytes")


# ------------------------------------------------------------------ the files a config names

INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-{depth}.pkl"


def hub_file(name: str, url: str, used_for: str) -> WeightFile:
    """A file ``torch.hub`` downloads: cached under its URL's file name, verified by the hash
    prefix in that name (``resnet50-0676ba61.pth`` -> ``0676ba61``)."""
    file_name = url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([a-f0-9]{8,})\.", file_name)
    if prefix is None:
        raise ValueError(f"{url}: no hash in the file name")
    return WeightFile(name, url, prefix.group(1), torch_hub_checkpoints() / file_name, used_for)


def inception_file() -> WeightFile:
    """torch-fidelity's Inception-v3 (FID, KID, IS, CIS)."""
    return hub_file("Inception-v3 (torch-fidelity)", INCEPTION_URL, "metrics: FID, KID, IS, CIS")


def alexnet_file() -> WeightFile:
    """torchvision's ImageNet AlexNet (the LPIPS backbone)."""
    from torchvision.models import AlexNet_Weights

    return hub_file("AlexNet (torchvision)", AlexNet_Weights.IMAGENET1K_V1.url,
                    "metrics: LPIPS diversity")


def detector_file(backend: str, backbone: str, depth: int = 50) -> WeightFile:
    """The ImageNet backbone of the detector: torchvision's ResNet weights (the enum of the
    configured backbone), or Detectron2's ``detectron2://ImageNetPretrained/MSRA/R-<depth>.pkl``.

    Detectron2 publishes no hash for its ``.pkl`` files and does not check one; neither can this
    (an empty ``sha256``: any complete download is accepted).
    """
    if backend == "detectron2":
        url = DETECTRON2_URL.format(depth=depth)
        path = detectron2_cache() / "detectron2" / "ImageNetPretrained" / "MSRA" / f"R-{depth}.pkl"
        return WeightFile(f"ResNet-{depth} (Detectron2, MSRA)", url, "", path,
                          "detector backbone")
    import torchvision.models as models

    enum = getattr(models, f"ResNet{backbone.split('_')[0].removeprefix('resnet')}_Weights")
    return hub_file(f"{backbone.split('_')[0]} (torchvision)", enum.IMAGENET1K_V1.url,
                    "detector backbone")


def needed_files(config) -> dict[str, WeightFile]:
    """Config key -> the file it names, for each key of :data:`NAMED_WEIGHTS` set to its name."""
    files = {}
    if config.detector.weights == NAMED_WEIGHTS["detector.weights"]:
        depth = int(config.detector.detectron2.overrides.get("MODEL.RESNETS.DEPTH", 50))
        files["detector.weights"] = detector_file(config.detector.backend,
                                                  config.detector.torchvision.backbone, depth)
    if config.metrics.inception_weights == NAMED_WEIGHTS["metrics.inception_weights"]:
        files["metrics.inception_weights"] = inception_file()
    if config.metrics.lpips_weights == NAMED_WEIGHTS["metrics.lpips_weights"]:
        files["metrics.lpips_weights"] = alexnet_file()
    return files


def resolve(config, key: str, value: str | None) -> str | None:
    """The local path a weights setting means: ``None`` stays ``None``, a path stays itself,
    a name (:data:`NAMED_WEIGHTS`) becomes its cached file, fetched first if needed
    (:class:`WeightsError` when that fails)."""
    if value is None or value != NAMED_WEIGHTS.get(key):
        return value
    return str(fetch(needed_files(config)[key]))


def local_path(config, key: str, value: str | None) -> Path | None:
    """Where a weights setting's file is, without fetching it (``None``: not set)."""
    if value is None:
        return None
    if value == NAMED_WEIGHTS.get(key):
        return needed_files(config)[key].path
    return Path(value)
