"""All the translation metrics of two image sets, as the ``metrics`` stage and ``pipeline
metrics`` compute them, each skipped with a reason when its network or data is missing.

``fake`` is the translated set (its sample 0 per input for FID, KID and IS), ``real`` the target
set, ``source`` the untranslated inputs (the style distance's reference). LPIPS diversity and CIS
take several style samples per input (:class:`Samples`): the stage makes them with the
translator, ``pipeline metrics`` reads them from a ``translate`` output with K >= 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.config import MetricsConfig
from pipeline.formats.common import Box
from pipeline.metrics import diversity, inception
from pipeline.metrics.content_preservation import edge_correlation
from pipeline.metrics.errors import MetricsError
from pipeline.metrics.image_statistics import image_statistics
from pipeline.metrics.images import ImageSet, batches, load_image
from pipeline.metrics.multimodality import SampleDifference
from pipeline.metrics.style_distance import (class_pixels, image_box_features, mean_distance,
                                             pool_by_class, style_distance)

logger = logging.getLogger(__name__)

VERSION = 1
METRIC_KEYS = ("fid", "kid", "is", "cis", "lpips_diversity", "multimodality", "style_distance",
               "image_statistics", "edge_correlation")


@dataclass(frozen=True)
class WeightNames:
    """How the user sets each network, for the messages: config keys or command-line flags."""

    inception: str = "metrics.inception_weights"
    lpips: str = "metrics.lpips_weights"
    classifier: str = "metrics.classifier"


@dataclass
class Networks:
    """The metric networks; None where not given, with the reason in ``missing``.

    ``features`` and ``classifier`` map a uint8 batch ``(B, 3, H, W)`` to ``(B, D)`` (see
    :mod:`pipeline.metrics.inception`); ``lpips`` maps two ``(B, 3, H, W)`` batches in [-1, 1]
    to ``(B, 1, 1, 1)`` distances.
    """

    features: inception.Network | None = None
    classifier: inception.Network | None = None
    lpips: nn.Module | None = None
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class Samples:
    """Several style samples per input: ``groups`` yields one ``(K, 3, H, W)`` uint8 tensor per
    input, lazily; ``boxes`` holds each input's boxes, in the same order (the multimodality
    figures compare samples inside and outside them)."""

    groups: Iterable[Tensor]
    samples: int
    info: dict
    boxes: Sequence[Sequence[Box]]


def load_networks(inception_weights: str | Path | None, lpips_weights: str | Path | None,
                  classifier: str | Path | None, device: torch.device,
                  names: WeightNames = WeightNames()) -> Networks:
    """The networks from local files. A path that is set but is not a file is an error (a typo
    should not cost a run its metrics); one that is not set leaves its metrics skipped."""
    for name, path in ((names.inception, inception_weights), (names.lpips, lpips_weights),
                       (names.classifier, classifier)):
        if path is not None and not Path(path).is_file():
            raise MetricsError(f"{name} = {path}: no such file")
    nets = Networks()
    if inception_weights is not None:
        net = inception.InceptionV3(inception_weights, device)
        nets.features, nets.classifier = net.features, net.logits
    else:
        nets.missing["features"] = (
            f"{names.inception} is not set: FID and KID need torch-fidelity's Inception-v3 "
            "weights (weights-inception-2015-12-05-6726825d.pth), a local file")
    if classifier is not None:
        nets.classifier = inception.ScriptedClassifier(classifier, device)
    elif inception_weights is None:
        nets.missing["classifier"] = (
            f"{names.inception} is not set (nor {names.classifier}): IS and CIS need "
            "torch-fidelity's Inception-v3 weights or a TorchScript classifier, a local file")
    if lpips_weights is not None:
        nets.lpips = diversity.load_lpips(lpips_weights, device)
    else:
        nets.missing["lpips"] = (
            f"{names.lpips} is not set: LPIPS needs torchvision's ImageNet AlexNet weights "
            "(alexnet-owt-7be5be79.pth), a local file")
    return nets


def compute(real: ImageSet, fake: ImageSet, source: ImageSet | None, classes: Sequence[str],
            networks: Networks, samples: Samples | str, settings: MetricsConfig, workers: int,
            device: torch.device, target_pixels: dict | None = None,
            target_tones: np.ndarray | None = None) -> dict:
    """Each metric of :data:`METRIC_KEYS`: a result or ``{"skipped": reason}`` (logged as a
    warning). ``samples`` is a reason when there are none. ``settings`` gives batch size, seed
    and the caps of each metric; ``workers`` the decoding threads; ``target_pixels`` the
    :func:`~pipeline.metrics.style_distance.class_pixels` and ``target_tones`` the
    :func:`~pipeline.metrics.image_statistics.set_tones` of ``real`` when the caller has them
    already."""
    o = settings
    fake = fake.first_samples()
    result: dict[str, dict] = {}

    def skip(key: str, reason: str) -> None:
        logger.warning("metrics: %s skipped: %s", key, reason)
        result[key] = {"skipped": reason}

    fake_nets = [n for n in (networks.features, networks.classifier) if n is not None]
    fake_out = dict(zip(fake_nets, _outputs(fake, fake_nets, o.batch_size, workers, device)))
    if networks.features is None:
        skip("fid", networks.missing["features"])
        skip("kid", networks.missing["features"])
    elif len(real.items) < 2 or len(fake.items) < 2:
        reason = (f"FID and KID need at least 2 images per side ({len(real.items)} real, "
                  f"{len(fake.items)} translated)")
        skip("fid", reason)
        skip("kid", reason)
    else:
        (real_features,) = _outputs(real, [networks.features], o.batch_size, workers, device)
        fake_features = fake_out[networks.features]
        result["fid"] = {"value": inception.frechet_distance(real_features, fake_features)}
        result["kid"] = inception.kernel_distance(real_features, fake_features,
                                                  o.kid_subset_size, o.kid_subsets, o.seed)
    if networks.classifier is None:
        skip("is", networks.missing["classifier"])
    else:
        result["is"] = inception.inception_score(fake_out[networks.classifier], o.is_splits,
                                                 o.seed)
    boxes = real.has_boxes and fake.has_boxes
    if not boxes:
        target_pixels = None
    elif target_pixels is None:
        target_pixels = class_pixels(real.items, classes, o.style_pixels_per_box, workers)
    _sample_metrics(networks, samples, o.batch_size, device, result, skip, classes,
                    target_pixels, o.style_pixels_per_box)
    if boxes:
        result["style_distance"] = style_distance(fake, real, source, classes,
                                                  o.style_pixels_per_box, workers,
                                                  target_pixels=target_pixels)
    else:
        skip("style_distance", "the per-class style distance needs boxes: give the real and "
                               "translated sets as COCO manifests")
    result["image_statistics"] = image_statistics(fake, real, source, workers, target_tones)
    pairs = _source_pairs(fake, source)
    if isinstance(pairs, str):
        skip("edge_correlation", pairs)
    else:
        result["edge_correlation"] = edge_correlation(
            ((load_image(s), load_image(f), f.boxes) for s, f in pairs), classes)
    return {k: result[k] for k in METRIC_KEYS}


def _source_pairs(fake: ImageSet, source: ImageSet | None) -> list | str:
    """``(source item, its translation)`` for every translation whose source is in ``source``,
    or the reason there are none."""
    if source is None:
        return "the edge correlation needs the untranslated source images"
    by_path = {item.path.resolve(): item for item in source.items}
    pairs = [(by_path[Path(f.group).resolve()], f) for f in fake.items
             if Path(f.group).resolve() in by_path]
    if not pairs:
        return (f"no translated image of {fake.origin} names a source image of "
                f"{source.origin} (its 'source_image'), so there is nothing to compare")
    return pairs


def _outputs(images: ImageSet, nets: list, batch_size: int, workers: int,
             device: torch.device) -> list[Tensor]:
    if not nets:
        return []
    return inception.extract((x for _, x in batches(images.items, batch_size, workers)),
                             nets, device)


def _sample_metrics(networks: Networks, samples: Samples | str, batch_size: int,
                    device: torch.device, result: dict, skip, classes: Sequence[str],
                    target_pixels: dict | None, pixels_per_box: int) -> None:
    """LPIPS diversity, CIS and the weight-free multimodality figures of the style samples."""
    for key, net, role in (("lpips_diversity", networks.lpips, "lpips"),
                           ("cis", networks.classifier, "classifier")):
        if net is None:
            skip(key, networks.missing[role])
        elif isinstance(samples, str):
            skip(key, samples)
    if isinstance(samples, str):
        skip("multimodality", samples)
        return
    distances: list[Tensor] = []
    logits: list[Tensor] = []
    difference = SampleDifference()
    per_sample: list[list] = [[] for _ in range(samples.samples)]
    for group, boxes in zip(samples.groups, samples.boxes, strict=True):
        images = group.permute(0, 2, 3, 1).numpy()
        difference.add(images, boxes)
        for k, image in enumerate(images):
            per_sample[k].append(image_box_features(image, boxes, classes, pixels_per_box))
        if networks.lpips is not None:
            distances.append(diversity.pair_distances(networks.lpips, group, device,
                                                      batch_size))
        if networks.classifier is not None:
            (out,) = inception.extract(
                (group[s:s + batch_size] for s in range(0, len(group), batch_size)),
                [networks.classifier], device)
            logits.append(out)
    result["multimodality"] = {**difference.summary(), **samples.info}
    if target_pixels is not None:
        spread = [mean_distance(pool_by_class(found, classes), target_pixels)
                  for found in per_sample]
        result["multimodality"]["style_distance_per_sample"] = spread
        if spread and spread[0] and None not in spread:
            result["multimodality"]["max_style_distance_change"] = max(
                abs(d - spread[0]) / spread[0] for d in spread)
    if networks.lpips is not None:
        result["lpips_diversity"] = {**diversity.diversity_summary(distances, samples.samples),
                                     **samples.info}
    if networks.classifier is not None:
        result["cis"] = {**inception.conditional_inception_score(logits), **samples.info}


def compare_image_sets(real: ImageSet, fake: ImageSet, source: ImageSet | None,
                       networks: Networks, settings: MetricsConfig, workers: int,
                       device: torch.device) -> dict:
    """``pipeline metrics``: the metrics of ``fake`` against ``real`` (folders or manifests).

    LPIPS diversity and CIS use the inputs of ``fake`` that have several samples (a
    ``translate`` manifest with K >= 2); FID, KID and IS its sample 0 of each input. Two
    folders without network weights still get the image statistics.
    """
    groups = [g for g in fake.groups() if len(g) > 1]
    samples: Samples | str
    if groups:
        samples = Samples((torch.from_numpy(np.stack([load_image(i) for i in g]))
                           .permute(0, 3, 1, 2) for g in groups),
                          max(len(g) for g in groups), {}, boxes=[g[0].boxes for g in groups])
    else:
        samples = ("LPIPS diversity and CIS need several style samples per input: give a "
                   "translate output with --num-samples K >= 2 as its annotations.json")
    classes = list(dict.fromkeys((*(fake.classes or ()), *(real.classes or ()))))
    metrics = compute(real, fake, source, classes, networks, samples, settings, workers,
                      device)
    document = {"version": VERSION,
                "real": {"path": str(real.origin), "images": len(real.items)},
                "fake": {"path": str(fake.origin), "images": len(fake.first_samples().items)}}
    if source is not None:
        document["source"] = {"path": str(source.origin), "images": len(source.items)}
    return {**document, **metrics}


def format_summary(document: dict) -> str:
    """A short text table of ``translation.json``: the image metrics, then the style distance
    per class (translated and untranslated source, each to the target), the weight-free
    figures, each with its ceiling and the fraction of it when ``ceilings`` has them."""
    lines = []

    def row(name: str, key: str, text) -> None:
        entry = document[key]
        lines.append(f"  {name:<16} " + ("skipped" if "skipped" in entry else text(entry)))

    row("FID", "fid", lambda e: f"{e['value']:.2f}")
    row("KID", "kid", lambda e: f"{e['mean']:.4f} ± {e['std']:.4f} (subsets of "
                                f"{e['subset_size']})")
    row("IS", "is", lambda e: f"{e['mean']:.3f} ± {e['std']:.3f} ({e['splits']} splits)")
    row("CIS", "cis", lambda e: f"{e['mean']:.3f} ± {e['std']:.3f} ({e['inputs']} inputs x "
                                f"{e['samples']} samples)")
    row("LPIPS diversity", "lpips_diversity",
        lambda e: f"{e['value']:.4f} ({e['inputs']} inputs, {e['pairs']} pairs)")
    ceilings = document.get("ceilings") or {}
    perfect = {} if "skipped" in ceilings else ceilings
    fractions = perfect.get("fractions", {})

    def beside(key: str, *path: str) -> str:
        """`` (perfect translation C, fraction F)`` for the figure at ``path``, or nothing."""
        ceiling, part = perfect.get(key), fractions.get(key)
        for name in path:
            ceiling = ceiling.get(name) if isinstance(ceiling, dict) else None
            part = part.get(name) if isinstance(part, dict) else None
        if ceiling is None:
            return ""
        return f" (perfect translation {_number(ceiling)}, fraction {_number(part)})"

    sd = document["style_distance"]
    if "skipped" not in sd:
        ceiling, part = perfect.get("style_distance"), fractions.get("style_distance")
        lines += ["  style distance to the target (lower is closer" +
                  ("; fraction = translated / perfect translation, lower is better):" if ceiling
                   else "):"),
                  f"    {'class':<12} {'translated':>10} {'source':>10}" +
                  (f" {'perfect':>10} {'fraction':>10}" if ceiling else "") +
                  "   boxes (translated / target)"]
        for c, e in sd["per_class"].items():
            lines.append(f"    {c:<12} {_number(e['translated']):>10} {_number(e['source']):>10}"
                         + (f" {_number(ceiling['per_class'].get(c)):>10} "
                            f"{_number(part['per_class'].get(c)):>10}" if ceiling else "")
                         + f"   {e['boxes_translated']} / {e['boxes_target']}")
        lines.append(f"    {'mean':<12} {_number(sd['mean']['translated']):>10} "
                     f"{_number(sd['mean']['source']):>10}" +
                     (f" {_number(ceiling['mean']):>10} {_number(part['mean']):>10}"
                      if ceiling else ""))
    stats = document.get("image_statistics")
    if stats:
        lines.append(_statistics_line(stats, perfect.get("image_statistics"),
                                      fractions.get("image_statistics")))
    ec = document.get("edge_correlation")
    if ec and "skipped" not in ec:
        lines.append(f"  edge correlation source vs translated: whole {_number(ec['whole'])}, "
                     f"inside boxes {_number(ec['boxes'])}"
                     + beside("edge_correlation", "boxes"))
    mm = document.get("multimodality")
    if mm and "skipped" not in mm:
        lines.append(f"  style samples differ by (grey levels): objects {_number(mm['objects'])}"
                     f"{beside('multimodality', 'objects')}, background "
                     f"{_number(mm['background'])}")
    if "skipped" in ceilings:
        lines.append(f"  ceilings skipped: {ceilings['skipped']}")
    rs = document.get("read_selectivity")
    if rs and "skipped" not in rs:
        lines += ["  memory read selectivity (own-class read weight / chance; nearest key right; "
                  "linear probe, the ceiling):"]
        lines += [f"    {c:<12} {_number(e['read_mass']):>10} / {e['chance']:.2f}"
                  f"   {_number(e.get('nearest_accuracy'))}   {_number(e.get('probe_accuracy'))}"
                  for c, e in rs["per_class"].items()]
    return "\n".join(lines)


def _statistics_line(stats: dict, ceiling: dict | None, fraction: dict | None) -> str:
    """The image statistics of translated, source and target (and the perfect translation's,
    with the fraction of it, when there is one) as two lines."""
    sides = [("translated", stats["translated"]), ("source", stats["source"]),
             ("target", stats["target"])]
    if ceiling:
        sides.insert(1, ("perfect", ceiling))
    distance = ", ".join(f"{name} {_number(e.get('distance'))}" for name, e in sides
                         if e is not None and name != "target")
    spread = ", ".join(f"{name} {_number(e['brightness_spread'])}" for name, e in sides
                       if e is not None)
    part = (f" (fraction of perfect: {_number(fraction['distance'])})"
            if ceiling and fraction else "")
    return (f"  image statistics' distance to the target (per-image Lab mean/std): {distance}"
            f"{part}\n  brightness spread over images (std of mean L): {spread}")


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
