"""The ``metrics`` stage: translation quality -> ``runs/<name>/eval/translation.json``.

Compares the translated images (``translated/``, style sample 0 of each image) with the target
images of ``metrics.real_split`` (FID, KID), scores them with a classifier (IS), measures the
diversity of ``metrics.diversity_samples`` styles of ``metrics.diversity_images`` inputs made
with the trained translator (LPIPS diversity, CIS), and the per-class style distance inside the
boxes, for the translated and the untranslated source images, how class-selective the
memory's test-time reads are on the same inputs, how much the style samples differ
(multimodality), how well the translations keep the source's edges (content preservation) and
the target's image-to-image light (image statistics); these last five need no weights.
Definitions are in :mod:`pipeline.metrics`; a metric whose network weights are not set is
skipped with the reason.

Next to the weight-free figures stand their ceilings, what a perfect translation scores
(:mod:`pipeline.metrics.ceilings`): with ``data.source.perfect_translations`` (the demo's
synthetic data), the edge correlation of source_train with its perfect translation (draw 0),
the sample difference between two perfect draws (0 and 1) of the same scenes, and draw 0's
style distance and image statistics against the target, each with the translator's figure as
a fraction of it; and, for
the read selectivity, the held-out accuracy of a linear probe of the content features
(:mod:`pipeline.metrics.linear_probe`), which needs no perfect translation.

``translation.json``::

    {"version": 1, "run": name,
     "real": {"split", "images"}, "fake": {"path": "translated/annotations.json", "images"},
     "source": {"split", "images"},
     "fid": {"value"}, "kid": {"mean", "std", "subset_size", "subsets"},
     "lpips_diversity": {"value", "inputs", "samples", "pairs", "pairing", "split"},
     "is": {"mean", "std", "splits", "images"}, "cis": {"mean", "std", "inputs", "samples",
     "split"},
     "style_distance": {"definition", "per_class": {class: {"translated", "source",
                        "boxes_translated", "boxes_source", "boxes_target"}},
                        "mean": {"translated", "source"}, "classes_compared"},
     "multimodality": {"definition", "objects", "background", "inputs", "samples", "pairs",
                       "split", "style_distance_per_sample", "max_style_distance_change"},
     "image_statistics": {"definition",
                          "translated": {"images", "mean": {feature: value},
                                         "brightness_spread", "distance"},
                          "source": {same keys}, "target": {"images", "mean",
                                                            "brightness_spread"}},
     "edge_correlation": {"definition", "whole", "boxes", "per_class": {class: value},
                          "pairs"},
     "read_selectivity": {"definition", "inputs", "split", "read_temperature",
                          "per_class": {group: {"read_mass", "chance", "ratio",
                                                "nearest_accuracy", "pixels", "probe_accuracy",
                                                "read_mass_fraction"}},
                          "probe": {"definition", "seed", "pixels_per_group_and_image"}},
     "ceilings": {"source": "data.source.perfect_translations",
                  "manifests": ["source_train.perfect_0.json", "source_train.perfect_1.json"],
                  "edge_correlation": {"definition", "whole", "boxes",
                                       "per_class": {class: value}, "pairs"},
                  "multimodality": {"definition", "objects", "background", "inputs",
                                    "samples", "pairs", "split"},
                  "style_distance": {"definition", "per_class": {class: value}, "mean",
                                     "classes_compared"},
                  "image_statistics": {"definition", "distance", "brightness_spread"},
                  "fractions": {"definition",
                                "edge_correlation": {"whole", "boxes", "per_class"},
                                "multimodality": {"objects", "background"},
                                "style_distance": {"per_class", "mean"},
                                "image_statistics": {"distance", "brightness_spread"}}}}

with ``{"skipped": reason}`` in place of any metric that was not computed (``ceilings`` without
``data.source.perfect_translations``; its ``multimodality`` when the list names one folder).
A fraction is the translator's figure over the ceiling at the same place (``style_distance``,
``image_statistics``: ``translated`` over the ceiling; lower is better for the distances,
higher elsewhere); a fraction or
ceiling is null where either side is.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.context import StageError
from pipeline.rundir import (checkpoint_path, perfect_translation_manifest, translated_dir,
                             translation_metrics)
from pipeline.stages.translate import reference_manifest
from pipeline.weights import WeightsError, local_path, resolve
from pipeline.translation.records import ANNOTATIONS

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger(__name__)


def output_path(ctx: RunContext) -> Path:
    return translation_metrics(ctx.run_dir)


def diversity_split(ctx: RunContext) -> str:
    return ctx.config.metrics.diversity_split or ctx.config.translate.split


def perfect_manifests(ctx: RunContext) -> list[Path]:
    """The perfect translations of source_train the ceilings use: the first two of
    ``data.source.perfect_translations`` (none without it)."""
    return [perfect_translation_manifest(ctx.run_dir, k)
            for k in range(min(2, len(ctx.config.data.source.perfect_translations)))]


def _weights(ctx: RunContext) -> list[Path]:
    m = ctx.config.metrics
    paths = [local_path(ctx.config, "metrics.inception_weights", m.inception_weights),
             local_path(ctx.config, "metrics.lpips_weights", m.lpips_weights),
             Path(m.classifier) if m.classifier else None]
    return [p for p in paths if p is not None]


def input_paths(ctx: RunContext) -> list[Path]:
    cfg = ctx.config
    splits = dict.fromkeys((cfg.metrics.real_split, cfg.translate.split, diversity_split(ctx),
                            *(["source_train"] if perfect_manifests(ctx) else [])))
    return [*(ctx.manifest(s) for s in splits), translated_dir(ctx.run_dir) / ANNOTATIONS,
            checkpoint_path(ctx), *perfect_manifests(ctx), *_weights(ctx),
            *([reference_manifest(ctx)] if cfg.translate.uses_reference else [])]


def output_paths(ctx: RunContext) -> list[Path]:
    return [output_path(ctx)]


def run(ctx: RunContext) -> dict:
    from mguit import load_translator
    from mguit.distributed import resolve_device
    from mguit.model import DIRECTIONS
    from detection.manifest import write_text
    from pipeline.formats.common import DatasetError
    from pipeline.metrics import diversity
    from pipeline.metrics.ceilings import NOT_CONFIGURED, translation_ceilings
    from pipeline.metrics.errors import MetricsError
    from pipeline.metrics.image_statistics import set_tones
    from pipeline.metrics.images import read_image_set
    from pipeline.metrics.read_selectivity import read_selectivity
    from pipeline.metrics.suite import VERSION, Samples, compute, format_summary, load_networks
    from pipeline.metrics.style_distance import class_pixels

    cfg, m = ctx.config, ctx.config.metrics
    device = resolve_device(cfg.run.device)
    try:
        real = read_image_set(ctx.manifest(m.real_split))
        fake = read_image_set(translated_dir(ctx.run_dir) / ANNOTATIONS).first_samples()
        source = read_image_set(ctx.manifest(cfg.translate.split))
        networks = load_networks(resolve(cfg, "metrics.inception_weights", m.inception_weights),
                                 resolve(cfg, "metrics.lpips_weights", m.lpips_weights),
                                 m.classifier, device)
        inputs = diversity.choose_inputs(
            read_image_set(ctx.manifest(diversity_split(ctx))).items, m.diversity_images, m.seed)

        translator = functools.cache(lambda: load_translator(checkpoint_path(ctx), device))

        def styles():
            # The samples of the translate stage: its style rule, its reference images.
            exemplars = None
            if cfg.translate.uses_reference:
                from pipeline.translation.methods.translator import ExemplarStyles
                exemplars = ExemplarStyles.read(translator(), reference_manifest(ctx),
                                                cfg.translate.direction, device,
                                                cfg.translate.style)
            yield from diversity.translate_samples(translator(), inputs, m.diversity_samples,
                                                   m.seed, cfg.translate.direction, device,
                                                   exemplars)

        samples = Samples(styles(), m.diversity_samples, {"split": diversity_split(ctx)},
                          boxes=[item.boxes for item in inputs])
        # Decoded once for the translator's style distance and the perfect translation's.
        target_pixels = (class_pixels(real.items, cfg.data.classes, m.style_pixels_per_box,
                                      cfg.run.workers) if real.has_boxes else None)
        target_tones = set_tones(real.items, cfg.run.workers)
        metrics = compute(real, fake, source, cfg.data.classes, networks, samples, m,
                          cfg.run.workers, device, target_pixels, target_tones)
        metrics["read_selectivity"] = read_selectivity(
            translator(), diversity.choose_inputs(source.items, m.selectivity_images or
                                                  len(source.items), m.seed),
            DIRECTIONS[cfg.translate.direction][0], device, m.seed)
        metrics["read_selectivity"]["split"] = cfg.translate.split
        perfect = perfect_manifests(ctx)
        metrics["ceilings"] = (
            translation_ceilings(read_image_set(ctx.manifest("source_train")),
                                 [read_image_set(p) for p in perfect], real, cfg.data.classes,
                                 m, cfg.run.workers, metrics, target_pixels, target_tones)
            if perfect else {"skipped": NOT_CONFIGURED})
    except (DatasetError, MetricsError, WeightsError, FileNotFoundError, ValueError) as exc:
        raise StageError(f"metrics: {exc}") from None
    document = {
        "version": VERSION,
        "run": cfg.run.name,
        "real": {"split": m.real_split, "images": len(real.items)},
        "fake": {"path": f"{translated_dir(ctx.run_dir).name}/{ANNOTATIONS}",
                 "images": len(fake.items)},
        "source": {"split": cfg.translate.split, "images": len(source.items)},
        **metrics,
    }
    out = output_path(ctx)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(document, indent=2) + "\n")
    logger.info("translation quality of run %s (%s translated vs %s) -> %s\n%s", cfg.run.name,
                cfg.translate.split, m.real_split, out, format_summary(document))
    return {k: _headline(v) for k, v in metrics.items()}


def _headline(entry: dict) -> float | dict | None:
    """One number per metric for state.json (None when skipped)."""
    if "skipped" in entry:
        return None
    if "fractions" in entry:
        f = entry["fractions"]
        return {name: None if v is None else round(v, 4) for name, v in (
            ("edge_boxes", f["edge_correlation"]["boxes"]),
            ("objects", f["multimodality"]["objects"]),
            ("style_mean", f["style_distance"]["mean"]),
            ("statistics_distance", f["image_statistics"]["distance"]))}
    for keys in (("whole", "boxes"), ("objects", "background")):
        if all(k in entry for k in keys):
            return {k: None if entry[k] is None else round(entry[k], 4) for k in keys}
    if "translated" in entry and "brightness_spread" in entry["translated"]:
        return {k: None if entry["translated"][k] is None else round(entry["translated"][k], 4)
                for k in ("distance", "brightness_spread")}
    if "mean" in entry and isinstance(entry["mean"], dict):
        return {side: None if v is None else round(v, 4) for side, v in entry["mean"].items()}
    if "per_class" in entry:
        return {c: None if v["ratio"] is None else round(v["ratio"], 3)
                for c, v in entry["per_class"].items()}
    return round(entry.get("value", entry.get("mean")), 4)
