"""Ceilings of the translation figures: the same figures for a perfect translation.

A figure such as "edge correlation 0.37" or "style samples 11 grey levels apart" says little
alone: a perfect translation does not keep every edge of the source (the target's materials
have other textures), two correct target renderings of one scene are not identical, and even
the true target-style objects sit at some distance from ``target_val``'s. Synthetic data can
say what a perfect translation scores: it renders every source scene in the target style, in
independent draws of its look (``data.source.perfect_translations``; the prepare stage turns
the k-th into ``data/source_train.perfect_<k>.json``, source_train's images, ids, order and
boxes with the images of draw k). Real data has no perfect translation, so there the ceilings
are skipped. Each ceiling is the existing figure's own function applied to perfect data:

* ``edge_correlation``: :func:`~pipeline.metrics.content_preservation.edge_correlation` between
  each image of source_train and its perfect translation (draw 0): how much of the source's
  edges a correct translation keeps (whole images, boxes, per class);
* ``multimodality``: :func:`~pipeline.metrics.multimodality.sample_difference` between draws 0
  and 1 of the same scenes, on the inputs the multimodality figure draws
  (:func:`~pipeline.metrics.diversity.choose_inputs` over source_train with
  ``metrics.diversity_images`` and ``metrics.seed``: the very same inputs when
  ``metrics.diversity_split`` is source_train, the default): the diversity a sampler of the
  target style should reach;
* ``style_distance``: :func:`~pipeline.metrics.style_distance.style_distance` of draw 0 to the
  target images, per class and mean: how close to the target a correct translation gets;
* ``image_statistics``: :func:`~pipeline.metrics.image_statistics.image_statistics` of draw 0
  to the target images: the distance of its per-image light to the target's and the spread of
  its image brightness (a correct translation keeps the target's image-to-image light).

``fractions`` divides the translator's figure by its ceiling (:func:`fraction_of`): for edges
and sample differences higher is better and 1 is a perfect translation's value (edges above 1
keep more of the source than the target style allows, as an identity translation would); for
the style distance and the image-statistics distance lower is better, and 1 is as close to the
target as a perfect translation; a brightness spread's fraction under 1 gives the images more
alike a light than a perfect translation does.
The read-mass ceiling needs no perfect translation and lives in ``read_selectivity``
(:mod:`~pipeline.metrics.linear_probe`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.config import MetricsConfig
from pipeline.metrics.content_preservation import edge_correlation
from pipeline.metrics.diversity import choose_inputs
from pipeline.metrics.errors import MetricsError
from pipeline.metrics.image_statistics import image_statistics
from pipeline.metrics.images import ImageItem, ImageSet, load_image
from pipeline.metrics.multimodality import sample_difference
from pipeline.metrics.style_distance import style_distance

SOURCE = "data.source.perfect_translations"
NOT_CONFIGURED = (
    f"{SOURCE} is not set: the ceilings need perfect translations of source_train (the demo's "
    "synthetic data has them, data/synthetic/paired/draw_<k>/training; real data has none)")
EDGE_DEFINITION = (
    "edge_correlation between each source_train image and its perfect translation (draw 0): "
    "how much of the source's edges a correct translation into the target style keeps")
DIVERSITY_DEFINITION = (
    "multimodality's sample difference between two perfect translations (draws 0 and 1) of the "
    "same source_train scenes, inputs chosen as the multimodality figure chooses them: the "
    "diversity a sampler of the target style should reach")
STYLE_DEFINITION = (
    "style_distance of the perfect translation (draw 0) of source_train to the target images, "
    "per class and mean over the classes compared: how close to the target a correct "
    "translation gets")
STATISTICS_DEFINITION = (
    "image_statistics of the perfect translation (draw 0) of source_train against the target "
    "images: the distance of its per-image light to the target's, and its brightness spread")
FRACTIONS_DEFINITION = (
    "the translator's figure / the perfect translation's. edge_correlation, multimodality: "
    "higher is better, 1 = a perfect translation's value (edges above 1 keep more of the "
    "source than the target style allows, as an identity would); style_distance, "
    "image_statistics.distance: lower is better, 1 = as close to the target as a perfect "
    "translation; image_statistics.brightness_spread: under 1, the images' light varies less "
    "than a perfect translation's")


def fraction_of(value: float | None, ceiling: float | None) -> float | None:
    """``value / ceiling``; None when either is unknown or the ceiling is 0."""
    return None if value is None or not ceiling else value / ceiling


def perfect_pairs(source: ImageSet, perfect: ImageSet) -> list[tuple[ImageItem, ImageItem]]:
    """``(source item, its perfect translation)`` in order. :class:`MetricsError` unless the
    two list the same file names and sizes in the same order (prepare writes them so)."""
    if len(source.items) != len(perfect.items):
        raise MetricsError(f"{perfect.origin} lists {len(perfect.items)} images, "
                           f"{source.origin} {len(source.items)}: rerun prepare")
    for s, p in zip(source.items, perfect.items):
        if (s.path.name, s.width, s.height) != (p.path.name, p.width, p.height):
            raise MetricsError(f"{perfect.origin} does not translate {source.origin}: "
                               f"{p.path.name} ({p.width} x {p.height}) stands where "
                               f"{s.path.name} ({s.width} x {s.height}) does: rerun prepare")
    return list(zip(source.items, perfect.items))


def edge_ceiling(source: ImageSet, perfect: ImageSet, classes: Sequence[str]) -> dict:
    """The edge correlation of ``source`` with its perfect translation:
    :func:`~pipeline.metrics.content_preservation.edge_correlation`'s keys."""
    pairs = perfect_pairs(source, perfect)
    result = edge_correlation(((load_image(s), load_image(p), s.boxes) for s, p in pairs),
                              classes)
    return {**result, "definition": EDGE_DEFINITION}


def diversity_ceiling(source: ImageSet, draws: tuple[ImageSet, ImageSet], inputs: int,
                      seed: int) -> dict:
    """The sample difference between two perfect translations of ``inputs`` images of
    ``source`` chosen with ``seed`` as :func:`~pipeline.metrics.diversity.choose_inputs` does:
    :func:`~pipeline.metrics.multimodality.sample_difference`'s keys and ``split``."""
    first, second = (perfect_pairs(source, d) for d in draws)
    position = {item.path: i for i, item in enumerate(source.items)}
    chosen = [position[item.path] for item in choose_inputs(source.items, inputs, seed)]
    groups = ((np.stack([load_image(first[i][1]), load_image(second[i][1])]),
               source.items[i].boxes) for i in chosen)
    return {**sample_difference(groups), "definition": DIVERSITY_DEFINITION,
            "split": "source_train"}


def style_ceiling(perfect: ImageSet, target: ImageSet, classes: Sequence[str],
                  pixels_per_box: int, workers: int, target_pixels: dict | None = None) -> dict:
    """The style distance of ``perfect`` to ``target``: ``{"definition", "per_class": {class:
    distance}, "mean", "classes_compared"}`` (null for a class without boxes on one side).
    ``target_pixels``: ``target``'s class pixels when the caller has them already."""
    result = style_distance(perfect, target, None, classes, pixels_per_box, workers,
                            target_pixels=target_pixels)
    return {"definition": STYLE_DEFINITION,
            "per_class": {c: e["translated"] for c, e in result["per_class"].items()},
            "mean": result["mean"]["translated"],
            "classes_compared": result["classes_compared"]}


def statistics_ceiling(perfect: ImageSet, target: ImageSet, workers: int,
                       target_tones: np.ndarray | None = None) -> dict:
    """The image statistics of ``perfect`` against ``target``: ``{"definition", "distance",
    "brightness_spread"}``. ``target_tones``: ``target``'s tones when the caller has them."""
    result = image_statistics(perfect, target, None, workers, target_tones)["translated"]
    return {"definition": STATISTICS_DEFINITION, "distance": result["distance"],
            "brightness_spread": result["brightness_spread"]}


def translation_ceilings(source: ImageSet, perfect: Sequence[ImageSet], target: ImageSet,
                         classes: Sequence[str], settings: MetricsConfig, workers: int,
                         figures: dict, target_pixels: dict | None = None,
                         target_tones: np.ndarray | None = None) -> dict:
    """The ``ceilings`` entry of ``translation.json``: each ceiling of the module docstring and
    the ``fractions`` of the translator's ``figures`` (the entries of ``translation.json``).
    ``source`` is source_train, ``perfect`` its perfect translations (draws 0, 1, ...: at least
    one; the diversity ceiling needs two), ``target`` the style distance's target images
    (``target_pixels`` and ``target_tones``: their class pixels and image tones, when the caller
    has them already).
    Without perfect translations the entry is ``{"skipped": NOT_CONFIGURED}``."""
    result = {"source": SOURCE, "manifests": [p.origin.name for p in perfect],
              "edge_correlation": edge_ceiling(source, perfect[0], classes)}
    if len(perfect) >= 2:
        result["multimodality"] = diversity_ceiling(source, (perfect[0], perfect[1]),
                                                    settings.diversity_images, settings.seed)
    else:
        result["multimodality"] = {"skipped": f"{SOURCE} lists one perfect translation: the "
                                              "diversity ceiling compares two draws"}
    result["style_distance"] = style_ceiling(perfect[0], target, classes,
                                             settings.style_pixels_per_box, workers,
                                             target_pixels)
    result["image_statistics"] = statistics_ceiling(perfect[0], target, workers, target_tones)
    result["fractions"] = fractions(figures, result)
    return result


def fractions(figures: dict, ceilings: dict) -> dict:
    """Each figure of ``figures`` (``translation.json``'s entries) over its ceiling in
    ``ceilings``: ``{"definition", "edge_correlation": {"whole", "boxes", "per_class"},
    "multimodality": {"objects", "background"}, "style_distance": {"per_class", "mean"},
    "image_statistics": {"distance", "brightness_spread"}}``,
    None where either side is skipped or undefined."""

    def of(key: str, path: Sequence[str], ceiling_path: Sequence[str] | None = None
           ) -> float | None:
        return fraction_of(_value(figures.get(key), path),
                           _value(ceilings.get(key), path if ceiling_path is None
                                  else ceiling_path))

    edge_classes = _value(ceilings.get("edge_correlation"), ("per_class",)) or {}
    style_classes = _value(ceilings.get("style_distance"), ("per_class",)) or {}
    return {
        "definition": FRACTIONS_DEFINITION,
        "edge_correlation": {
            "whole": of("edge_correlation", ("whole",)),
            "boxes": of("edge_correlation", ("boxes",)),
            "per_class": {c: of("edge_correlation", ("per_class", c)) for c in edge_classes}},
        "multimodality": {k: of("multimodality", (k,)) for k in ("objects", "background")},
        # The style ceiling holds one distance per class where the figure holds several sides.
        "style_distance": {
            "per_class": {c: of("style_distance", ("per_class", c, "translated"),
                                ("per_class", c)) for c in style_classes},
            "mean": of("style_distance", ("mean", "translated"), ("mean",))},
        "image_statistics": {k: of("image_statistics", ("translated", k), (k,))
                             for k in ("distance", "brightness_spread")},
    }


def _value(entry: object, path: Sequence[str]) -> object:
    """``entry[path[0]][path[1]]...``; None where a level is missing or skipped."""
    for key in path:
        if not isinstance(entry, dict) or "skipped" in entry:
            return None
        entry = entry.get(key)
    return entry
