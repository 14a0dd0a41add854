"""Register COCO manifests, and all those of a pipeline run, as Detectron2 datasets.

After ``register_run("runs/demo")`` every Detectron2 tool sees the run's data by name::

    demo_source_train  demo_source_val  demo_target_train  demo_target_val   (runs/demo/data/)
    demo_translated_train                                   (runs/demo/translated/annotations.json)

so ``cfg.DATASETS.TRAIN = ("demo_translated_train",)`` trains any Detectron2 model on the
translated images. A run's layout (``data/<split>.json``, ``translated/annotations.json``) is
the pipeline's documented run directory; nothing else of the pipeline is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from detection.errors import DetectionError, require_detectron2
from detection.manifest import load_manifest

logger = logging.getLogger(__name__)

SPLITS = ("source_train", "source_val", "target_train", "target_val")
TRANSLATED = Path("translated") / "annotations.json"


def run_manifests(run_dir: str | Path) -> dict[str, Path]:
    """Dataset name -> manifest of every manifest in a run directory (those that exist)."""
    run_dir = Path(run_dir)
    found = {f"{run_dir.name}_{split}": run_dir / "data" / f"{split}.json" for split in SPLITS}
    found[f"{run_dir.name}_translated_train"] = run_dir / TRANSLATED
    return {name: path for name, path in found.items() if path.is_file()}


def register_manifest(name: str, manifest: str | Path) -> str:
    """Register one manifest as Detectron2 dataset ``name`` (replacing a dataset of that name);
    return the name."""
    require_detectron2()
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    loaded = load_manifest(manifest)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, str(loaded.path), str(loaded.image_root))
    # Known before the JSON is loaded, so models can be built from the metadata alone.
    MetadataCatalog.get(name).set(thing_classes=loaded.classes)
    return name


def register_run(run_dir: str | Path) -> dict[str, Path]:
    """Register every manifest of the run at ``run_dir`` as a Detectron2 dataset named
    ``<run name>_<split>`` (and ``<run name>_translated_train``); return name -> manifest."""
    require_detectron2()
    manifests = run_manifests(run_dir)
    if not manifests:
        raise DetectionError(f"{run_dir}: no manifests found (data/*.json, "
                             f"{TRANSLATED}); run the pipeline's prepare stage first")
    for name, path in manifests.items():
        register_manifest(name, path)
    logger.info("registered Detectron2 datasets: %s", ", ".join(manifests))
    return manifests
