"""The bookkeeping files of a translation folder: settings, entry logs, and the final manifests.

``translate.json``
    the settings that decide the output bytes (the method's: checkpoint hash and direction for
    MGUIT, parameters and reference images for a baseline; samples, seed, PNG level, input). A folder holding other settings is another run's: refused, or cleared with
    ``overwrite``. A non-empty folder without it was not written by ``translate`` and is never
    touched.
``manifest.jsonl`` / ``manifest.shard-I-of-N.jsonl``
    while running, an append-only log, one JSON line per finished output (one per image and
    style sample) written after the output's files are in place, flushed and fsync'd per
    batch. A line cut by a kill is dropped when the log is reopened; its output is redone.
    When every image is done, ``manifest.jsonl`` is rewritten in input order (one line per
    output, keys sorted), so it is the same bytes however the work was split or interrupted.
``annotations.json``
    the COCO manifest of the translated set, written last: its presence means the folder is
    complete.
``reference.json``
    a method's own data (:meth:`~pipeline.translation.methods.TranslationMethod.files`): colour
    transfer's reference statistics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from detection.manifest import write_bytes, write_text
from pipeline.formats import coco, kitti
from pipeline.formats.common import ImageRecord
from pipeline.lock import LOCK_NAME
from pipeline.translation.errors import TranslationError
from pipeline.translation.plan import Shard
from pipeline.translation.sources import SourceSet

logger = logging.getLogger(__name__)

SETTINGS = "translate.json"
MANIFEST = "manifest.jsonl"
ANNOTATIONS = "annotations.json"
REFERENCE = "reference.json"
SETTINGS_VERSION = 1
# Settings that say what was translated and how it is stored, not how it was translated.
_INPUT_SETTINGS = ("version", "input", "input_sha256", "images", "png_compress_level")
_SHARD_LOG = re.compile(r"manifest\.shard-\d+-of-\d+\.jsonl")
_TEMP = re.compile(r"\..+\.tmp")   # detection.manifest.write_bytes' temporary names

OutputId = tuple[str, int]         # (image key, style sample index)


def missing_output(folder: Path) -> str | None:
    """The first file that the finished manifest of ``folder`` lists and that is gone (an image
    or its label copy deleted after the translation), as a reason; None when all are there.
    Existence only: reading every image back is what ``translate`` does on a rerun."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                for name in (record.get("image"), record.get("label")):
                    if name and not (folder / name).is_file():
                        return f"output missing: {folder / name} (listed in {MANIFEST})"
    except (OSError, ValueError, AttributeError) as exc:
        return f"{folder / MANIFEST} cannot be read ({exc})"
    return None


def shard_log_name(shard: Shard) -> str:
    """The log a shard appends to; a whole (unsharded) run appends to ``manifest.jsonl``."""
    return MANIFEST if shard.whole else f"manifest.shard-{shard.index}-of-{shard.count}.jsonl"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ the output folder

def _is_own(name: str) -> bool:
    return (name in (SETTINGS, MANIFEST, ANNOTATIONS, REFERENCE, kitti.IMAGE_DIR,
                     kitti.LABEL_DIR)
            or bool(_SHARD_LOG.fullmatch(name)) or bool(_TEMP.fullmatch(name))
            or name.startswith(LOCK_NAME))


def read_settings(out_dir: Path) -> dict | None:
    """The settings stored in ``out_dir``; ``{}`` when the file is unreadable, None if absent."""
    try:
        data = json.loads((out_dir / SETTINGS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_output_dir(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that holds files ``translate`` did not write (a missing or empty
    folder is fine)."""
    if not out_dir.is_dir():
        return
    # Temporary files may be another shard writing translate.json right now.
    entries = sorted(p.name for p in out_dir.iterdir()
                     if not _TEMP.fullmatch(p.name) and not p.name.startswith(LOCK_NAME))
    foreign = [name for name in entries if not _is_own(name)]
    if foreign or (read_settings(out_dir) is None and entries):
        names = foreign or entries
        raise TranslationError(
            f"{out_dir}: the output folder holds files that pipeline translate did not write "
            f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); choose an empty or "
            "new folder (these are never deleted, not even with --overwrite)")


def prepare_output_dir(out_dir: Path, settings: dict, overwrite: bool) -> None:
    """Make ``out_dir`` ready for a run with ``settings``: keep it (same settings: resume),
    clear translate's files from it (other settings and ``overwrite``), or refuse."""
    out_dir.mkdir(parents=True, exist_ok=True)
    check_output_dir(out_dir)
    stored = read_settings(out_dir)
    if stored is not None and stored != settings:
        changed = [f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}"
                   for k in sorted(settings.keys() | stored.keys())
                   if stored.get(k) != settings.get(k)]
        if not overwrite:
            raise TranslationError(
                f"{out_dir}: the output folder holds a translation with other settings "
                f"({'; '.join(changed)}); choose another output folder, or pass --overwrite "
                "to delete it and start again")
        logger.warning("%s: deleting a translation with other settings (%s)", out_dir,
                       "; ".join(changed))
        clear_output_dir(out_dir)
    if read_settings(out_dir) != settings:
        write_text(out_dir / SETTINGS, json.dumps(settings, indent=2, sort_keys=True)
                          + "\n")


def clear_output_dir(out_dir: Path) -> None:
    """Delete what translate wrote in ``out_dir``: the files its logs list, its temporaries and
    bookkeeping files, and nothing else. Anything else inside its image and label folders makes
    it refuse, naming the files, before deleting anything."""
    own_dirs = [out_dir / kitti.IMAGE_DIR, out_dir / kitti.LABEL_DIR]
    listed = set()
    for log in log_paths(out_dir):
        for entry in read_log(log):
            for key in ("image", "label"):
                path = (out_dir / str(entry.get(key, ""))).resolve()
                # A log is data: never follow one out of the folder's own subfolders.
                if any(path.parent == d.resolve() for d in own_dirs):
                    listed.add(path)
    foreign = [p for d in own_dirs if d.is_dir() for p in sorted(d.rglob("*"))
               if not p.is_dir() and p.resolve() not in listed and not _TEMP.fullmatch(p.name)]
    if foreign:
        names = ", ".join(str(p) for p in foreign[:3])
        raise TranslationError(
            f"{out_dir}: --overwrite deletes only the files this translation wrote, and "
            f"{len(foreign)} others are inside ({names}{', ...' if len(foreign) > 3 else ''}); "
            "move them out or choose another output folder")
    for d in own_dirs:
        if not d.is_dir():
            continue
        for path in d.rglob("*"):
            if not path.is_dir():
                path.unlink()
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True):
            sub.rmdir()
        d.rmdir()
    for path in out_dir.iterdir():
        if _is_own(path.name) and not path.name.startswith(LOCK_NAME) and path.is_file():
            path.unlink()


def remove_temporaries(out_dir: Path) -> None:
    """Delete temporary files left by a killed run (never those of a running one: call this only
    when every shard is done)."""
    for folder in (out_dir, out_dir / kitti.IMAGE_DIR, out_dir / kitti.LABEL_DIR):
        if folder.is_dir():
            for path in folder.iterdir():
                if _TEMP.fullmatch(path.name):
                    path.unlink(missing_ok=True)


# ------------------------------------------------------------------ entry logs

def read_log(path: Path) -> list[dict]:
    """The entries of a log; lines that are not complete JSON objects (a write cut by a kill)
    are dropped, so their outputs count as not done."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key"), str) \
                and isinstance(entry.get("sample"), int):
            entries.append(entry)
    return entries


def log_paths(out_dir: Path) -> list[Path]:
    shards = sorted(p for p in out_dir.glob("manifest.shard-*.jsonl")
                    if _SHARD_LOG.fullmatch(p.name))
    return [out_dir / MANIFEST, *shards]


def done_candidates(out_dir: Path) -> dict[OutputId, list[dict]]:
    """The ``done`` entries of every log of ``out_dir`` per output, newest first, one per
    distinct image hash (an output redone with the same bytes needs one check)."""
    found: dict[OutputId, list[dict]] = {}
    for path in log_paths(out_dir):
        for entry in read_log(path):
            if entry.get("status") == "done":
                found.setdefault((entry["key"], entry["sample"]), []).append(entry)
    result = {}
    for output, entries in found.items():
        distinct: dict[object, dict] = {}
        for entry in reversed(entries):
            distinct.setdefault(entry.get("image_sha256"), entry)
        result[output] = list(distinct.values())
    return result


def skipped_entries(out_dir: Path) -> dict[OutputId, dict]:
    """The latest ``skipped`` entry per output, across all logs."""
    found: dict[OutputId, dict] = {}
    for path in log_paths(out_dir):
        for entry in read_log(path):
            if entry.get("status") == "skipped":
                found[(entry["key"], entry["sample"])] = entry
    return found


def entry_is_valid(out_dir: Path, entry: dict, image_path: str, label_sha256: str) -> bool:
    """Whether ``entry``'s output files are in place with the recorded hashes, at the expected
    path, and its label equals what the source's label is now (``label_sha256``)."""
    if entry.get("image") != image_path or entry.get("label_sha256") != label_sha256:
        return False
    try:
        return (sha256_file(out_dir / entry["image"]) == entry.get("image_sha256")
                and sha256_file(out_dir / entry["label"]) == label_sha256)
    except (OSError, KeyError, TypeError):
        return False


class EntryLog:
    """An append-only JSON-lines log: one line per entry, flushed and fsync'd per append."""

    def __init__(self, path: Path):
        self.path = path
        _drop_torn_tail(path)
        self._file = open(path, "ab")

    def append(self, entries: Iterable[dict]) -> None:
        data = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in entries)
        if not data:
            return
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EntryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without newline (a write cut by a kill), so the next line starts clean."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


# ------------------------------------------------------------------ the finished folder

def describe(settings: dict) -> str:
    """How a folder's images were made, from its settings: ``translated source_to_target``
    (MGUIT, whose settings name no method) or ``translated by fda``."""
    method = settings.get("method")
    return f"translated by {method}" if method else f"translated {settings['direction']}"


def write_final(out_dir: Path, sources: SourceSet, num_samples: int,
                entries: Mapping[OutputId, dict], settings: dict) -> dict[str, int]:
    """Write ``manifest.jsonl`` (input order) and then ``annotations.json``, delete the shard
    logs and temporary files. ``entries`` holds the final entry of every output.

    Returns ``{"outputs": translated outputs, "skipped": skipped source images}``.
    """
    outputs = [(image, k) for image in sources.images for k in range(num_samples)]
    # Streamed: neither file is held whole, whatever the number of images.
    write_bytes(out_dir / MANIFEST, (json.dumps(entries[(image.key, k)], sort_keys=True)
                                     .encode() + b"\n" for image, k in outputs))
    skipped = sum(entries[(image.key, 0)]["status"] != "done" for image in sources.images)
    records = (ImageRecord(
        path=out_dir / entry["image"], file_name=entry["image"], width=image.width,
        height=image.height, boxes=list(image.boxes),
        extra={"frame_id": Path(entry["image"]).stem, "label_path": entry["label"],
               "source_image": entry["source"], "sample": k})
        for image, k in outputs if (entry := entries[(image.key, k)])["status"] == "done")
    info = {"description": f"{settings['input']} {describe(settings)}", "format": "kitti",
            "translation": {k: settings[k] for k in sorted(settings)
                            if k not in _INPUT_SETTINGS}}
    counts = coco.write_manifest(out_dir / ANNOTATIONS, records, sources.classes, out_dir,
                                 info=info, stored_root=".")
    for path in log_paths(out_dir)[1:]:
        path.unlink(missing_ok=True)
    remove_temporaries(out_dir)
    return {"outputs": counts["images"], "skipped": skipped}
