"""The paper's ablation (section 4.3, Table 4) over several seeds: ``pipeline ablate CONFIG``.

Four runs of the same experiment that differ only in the memory: single (``sm``) or class-aware
(``cm``) memory, trained with the feature triplet (``tl``) or contrastive (``cl``) loss. Each
(variant, seed) is an ordinary run, ``runs/<name>_<variant>_s<seed>/``, taken through

    prepare -> train_translator -> translate -> train_detector -> evaluate -> metrics

with ``run.seed`` set to the seed and ``detector.train_sets`` to ``[translated]``. ``labels``
adds the target-label modes (``data.target.labels``: boxes, none, pseudo) as another axis: a
(variant, mode) row ``cm_cl``, ``cm_cl_none``, ``cm_cl_pseudo`` (``cm_cl_pseudo2`` with
``pseudo_labels.rounds=2``), whose pseudo runs are labelled by the seed's detector of the `none`
run (``pseudo_labels.detector: translated_unlabeled``) or reference source-only detector
(``source_only``) where the ablation trains it: the same training as the run's own would
be. The reference detectors do not depend on the translator, so they are trained once per
seed, in ``runs/<name>_reference_s<seed>/`` (prepare -> translate_baselines -> train_detector ->
evaluate): source only, the baselines (Reinhard colour transfer, FDA), the perfect translation
where the data has one (``data.source.perfect_translations``) and the oracle; every translator
figure is read against them. Rerunning resumes
each run where it stopped and skips what is done, like ``pipeline run``.

The table, ``runs/<name>_ablation/ablation.{json,md}``, has a row per (variant, seed) and a
mean +- std row per variant: the mean per-class style distance of the translated source to the
target, detection AP50 of the detector trained on the variant's translations, the share of the
source-only -> oracle gap it recovers on the mean AP50 of ``evaluate.gap_classes`` (with that
seed's reference detectors), the edge correlation inside the boxes (content preservation), the
difference between style samples on object pixels (multimodality) and the test-time read mass
per class (class-aware variants); then the reference detectors per seed, FID, KID, LPIPS, IS and
CIS where their weights were given, and the paper's Table 4 quoted for reference.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detection.manifest import write_text
from pipeline.config import Config, load_config
from pipeline.logs import add_run_log
from pipeline.paper import PAPER_TABLE4
from pipeline.rundir import detection_metrics, detector_dir, translation_metrics
from pipeline.runner import Runner
from pipeline.stages.evaluate import gap_recovered, mean_ap50

logger = logging.getLogger(__name__)

ABLATION_VERSION = 2

STAGES = ("prepare", "pseudo_label", "train_translator", "translate", "train_detector", "evaluate",
          "metrics")
LABEL_MODES = ("boxes", "none", "pseudo")
REFERENCE_STAGES = ("prepare", "translate_baselines", "train_detector", "evaluate")


@dataclass(frozen=True)
class Variant:
    key: str
    memory: str      # translator.memory.variant
    loss: str        # translator.memory.loss
    label: str


VARIANTS = (
    Variant("sm_tl", "single", "triplet", "single memory + triplet loss"),
    Variant("sm_cl", "single", "contrastive", "single memory + contrastive loss"),
    Variant("cm_tl", "class_aware", "triplet", "class-aware memory + triplet loss"),
    Variant("cm_cl", "class_aware", "contrastive", "class-aware memory + contrastive loss"),
)
VARIANT_KEYS = tuple(v.key for v in VARIANTS)


# The per-run figures summarised as mean +- std over seeds, with their table headings.
SUMMARY = (("style_distance", "Style distance"), ("light_distance", "Light distance"),
           ("brightness_spread", "Brightness spread"), ("map50", "mAP50"),
           ("gap_recovered", "Gap recovered"), ("edge_boxes", "Edges in boxes"),
           ("sample_objects", "Sample diff. (objects)"))


def run_name(base_name: str, variant: str, seed: int) -> str:
    return f"{base_name}_{variant}_s{seed}"


def row_key(variant: Variant, labels: str, rounds: int = 1) -> str:
    """``cm_cl`` with the target's own boxes, ``cm_cl_pseudo`` / ``cm_cl_none`` without,
    ``cm_cl_pseudo2`` for two rounds of pseudo labels."""
    if labels == "boxes":
        return variant.key
    return f"{variant.key}_{labels}" + (str(rounds) if labels == "pseudo" and rounds > 1 else "")


def variant_config(config_path: str | Path, overrides: Sequence[str], variant: Variant,
                   base_name: str, seed: int, labels: str | None = None,
                   pseudo_checkpoint: Path | None = None) -> Config:
    """The base config with the variant's memory, the seed, its own run name, and only the
    translated set's detector; ``labels`` sets ``data.target.labels`` (None: the config's).
    ``pseudo_checkpoint``: the detector that pseudo-labels, trained elsewhere in the ablation
    (the same training as the run's own would be)."""
    base = load_config(config_path, list(overrides))
    labels = labels or base.data.target.labels
    key = row_key(variant, labels, base.pseudo_labels.rounds)
    extra = [f"data.target.labels={labels}"]
    if labels == "pseudo" and pseudo_checkpoint is not None:
        extra.append(f"pseudo_labels.checkpoint={pseudo_checkpoint}")
    return load_config(config_path, [
        *overrides,
        f"run.name={run_name(base_name, key, seed)}",
        f"run.seed={seed}",
        f"translator.memory.variant={variant.memory}",
        f"translator.memory.loss={variant.loss}",
        "detector.train_sets=[translated]",
        *extra,
    ])


def reference_sets(config: Config) -> tuple[str, ...]:
    """The reference detectors of ``config``'s data: source only, the baselines, the perfect
    translation where the data has one, and the oracle (left out by the run where the target's
    labels are not used)."""
    perfect = ("perfect_translation",) if config.data.source.perfect_translations else ()
    return ("source_only", "colour_transfer", "fda", *perfect, "oracle")


def reference_config(config_path: str | Path, overrides: Sequence[str], base_name: str,
                     seed: int, labels: str | None = None) -> Config:
    """The base config with the reference detectors only (no translator); the oracle only
    where ``labels`` (default: the config's) is ``boxes``."""
    base = load_config(config_path, list(overrides))
    return load_config(config_path, [
        *overrides,
        f"run.name={run_name(base_name, 'reference', seed)}",
        f"run.seed={seed}",
        f"detector.train_sets=[{','.join(reference_sets(base))}]",
        *([f"data.target.labels={labels}"] if labels else []),
    ])


def _run_stages(config: Config, stages: Sequence[str], force: bool, progress: bool = True) -> Path:
    runner = Runner(config, progress)
    handler = add_run_log(runner.ctx.run_dir) if runner.is_main else None
    try:
        logger.info("ablation run %s", runner.ctx.run_dir)
        runner.run(runner.select(only=[s for s in stages if s in runner.names]), force=force)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return runner.ctx.run_dir


def run_ablation(config_path: str | Path, overrides: Sequence[str] = (),
                 variants: tuple[str, ...] = VARIANT_KEYS, seeds: Sequence[int] | None = None,
                 force: bool = False, reference: bool = True,
                 labels: Sequence[str] | None = None, progress: bool = True) -> Path:
    """Run every (variant, target labels, seed) and, with ``reference``, each seed's
    source-only and oracle detectors (resuming what is done), then write the table. ``seeds``
    defaults to the config's ``run.seed``, ``labels`` (modes of ``data.target.labels``) to the
    config's; ``progress``: bars on a terminal. Returns the folder holding ``ablation.json``
    and ``ablation.md``."""
    base = load_config(config_path, list(overrides))
    seeds = list(seeds) if seeds else [base.run.seed]
    modes = list(labels) if labels else [base.data.target.labels]
    unknown = [m for m in modes if m not in LABEL_MODES]
    if unknown:
        raise ValueError(f"unknown target labels mode {unknown[0]!r} (modes: "
                         f"{', '.join(LABEL_MODES)})")
    chosen = [v for v in VARIANTS if v.key in variants]
    # The oracle needs the target's own boxes: its reference is trained on them when the
    # ablation has a mode that uses them (so the data has them).
    reference_labels = "boxes" if "boxes" in modes else base.data.target.labels
    references: dict[str, dict] = {}
    source_only: dict[str, Path] = {}
    if reference:
        for seed in seeds:
            run_dir = _run_stages(reference_config(config_path, overrides, base.run.name, seed,
                                                   reference_labels), REFERENCE_STAGES, force,
                                  progress)
            references[str(seed)] = reference_detectors(run_dir)
            source_only[str(seed)] = reference_checkpoint(run_dir, "source_only")
    gap_classes = base.evaluate.gap_classes or list(base.data.classes)
    rows: dict[str, dict] = {}
    for variant in chosen:
        # The first labeller of the pseudo runs is trained already when the ablation has it:
        # the seed's reference source-only detector, or the detector of the seed's `none` run
        # (a translation without target labels), each the same training the pseudo run's own
        # would be. `none` therefore runs before `pseudo`.
        labellers: dict[str, Path] = {}
        if base.pseudo_labels.checkpoint is None and base.pseudo_labels.detector == "source_only":
            labellers = source_only
        for mode in sorted(modes, key=LABEL_MODES.index):
            per_seed = {}
            for seed in seeds:
                config = variant_config(config_path, overrides, variant, base.run.name, seed,
                                        mode, labellers.get(str(seed)))
                run_dir = _run_stages(config, STAGES, force, progress)
                if mode == "none" and base.pseudo_labels.checkpoint is None \
                        and base.pseudo_labels.detector == "translated_unlabeled":
                    labellers[str(seed)] = reference_checkpoint(run_dir, "translated")
                per_seed[str(seed)] = collect_run(run_dir, references.get(str(seed), {}),
                                                  gap_classes)
            rounds = base.pseudo_labels.rounds
            label = variant.label if mode == "boxes" else \
                f"{variant.label}, target labels: {mode}" + \
                (f" ({rounds} rounds)" if mode == "pseudo" and rounds > 1 else "")
            rows[row_key(variant, mode, rounds)] = {"memory": variant.memory, "loss": variant.loss,
                                            "labels": mode, "label": label, "seeds": per_seed,
                                            "summary": summarise(per_seed.values())}
    out = base.run.path.parent / f"{base.run.name}_ablation"
    document = {
        "version": ABLATION_VERSION,
        "base_run": base.run.name,
        "classes": base.data.classes,
        "gap_classes": gap_classes,
        "split": base.evaluate.split,
        "seeds": seeds,
        "variants": rows,
        "reference": references,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "ablation.json", json.dumps(document, indent=2) + "\n")
    table = format_table(document)
    write_text(out / "ablation.md", table)
    logger.info("ablation of run %s -> %s\n%s", base.run.name, out / "ablation.md", table)
    return out


def collect_run(run_dir: Path, reference: dict, gap_classes: Sequence[str]) -> dict:
    """One (variant, seed) run's numbers from ``eval/metrics.json`` and ``eval/translation.json``."""
    detection = json.loads(detection_metrics(run_dir).read_text())
    translation = json.loads(translation_metrics(run_dir).read_text())
    translated = detection["detectors"]["translated"]
    refs = {k: mean_ap50(v["ap50"], gap_classes) for k, v in reference.items()}
    edges = translation.get("edge_correlation") or {}
    samples = translation.get("multimodality") or {}
    # Files written before the image statistics existed have none.
    light = (translation.get("image_statistics") or {}).get("translated") or {}
    return {
        "run": run_dir.name,
        "ap50": translated["ap50"],
        "map50": translated["map50"],
        "ap": translated["ap"],
        "gap_map50": mean_ap50(translated["ap50"], gap_classes),
        "gap_recovered": gap_recovered(mean_ap50(translated["ap50"], gap_classes),
                                       refs.get("source_only"), refs.get("oracle")),
        "style_distance": translation["style_distance"],
        "edge_boxes": edges.get("boxes"),
        "sample_objects": samples.get("objects"),
        "light_distance": light.get("distance"),
        "brightness_spread": light.get("brightness_spread"),
        **{key: translation.get(key) for key in ("fid", "kid", "lpips_diversity", "is", "cis",
                                                 "read_selectivity", "edge_correlation",
                                                 "multimodality")},
    }


def summary_values(row: dict) -> dict[str, float | None]:
    """The figures of :data:`SUMMARY` of one run's row."""
    sd = row["style_distance"]
    return {"style_distance": None if "skipped" in sd else sd["mean"]["translated"],
            "map50": row["map50"], "gap_recovered": row["gap_recovered"],
            "edge_boxes": row["edge_boxes"], "sample_objects": row["sample_objects"],
            "light_distance": row.get("light_distance"),
            "brightness_spread": row.get("brightness_spread")}


def summarise(rows) -> dict[str, dict[str, float | None]]:
    """Per figure of :data:`SUMMARY`, the mean and sample standard deviation over seeds (std 0
    for one seed; None when a seed lacks the figure)."""
    values = [summary_values(r) for r in rows]
    result = {}
    for key, _ in SUMMARY:
        column = [v[key] for v in values]
        if not column or None in column:
            result[key] = {"mean": None, "std": None}
        else:
            result[key] = {"mean": statistics.fmean(column),
                           "std": statistics.stdev(column) if len(column) > 1 else 0.0}
    return result


def reference_checkpoint(run_dir: Path, train_set: str) -> Path:
    """The checkpoint of a run's detector of ``train_set``."""
    from detection import read_card

    folder = detector_dir(run_dir, train_set)
    return folder / read_card(folder)["checkpoint"]


def reference_detectors(run_dir: Path) -> dict:
    """AP and gap recovered of every detector of a reference run."""
    detectors = json.loads(detection_metrics(run_dir).read_text())["detectors"]
    return {name: {"run": run_dir.name, "ap50": d["ap50"], "map50": d["map50"], "ap": d["ap"],
                   "gap_recovered": d.get("gap_recovered")}
            for name, d in detectors.items()}


def _reference_lines(references: dict[str, dict]) -> list[str]:
    """The reference detectors' mAP50 and gap recovered per seed, then mean +- std: what
    each variant's figures are read against."""
    seeds = list(references)
    names = list(dict.fromkeys(name for refs in references.values() for name in refs))
    if not names:
        return []
    lines = ["", "Reference detectors (no translator), mAP50 (%) / gap recovered:", "",
             "| Training set | " + " | ".join(f"Seed {s}" for s in seeds) + " | Mean ± std |",
             "| --- |" + " ---: |" * (len(seeds) + 1)]
    for name in names:
        rows = [references[s].get(name) for s in seeds]
        cells = [f"{_number(r['map50'], 100)} / {_number(r.get('gap_recovered'), digits=2)}"
                 if r else "–" for r in rows]
        gaps = [r.get("gap_recovered") for r in rows if r]
        maps = [r["map50"] for r in rows if r and r["map50"] is not None]
        summary = "–"
        if maps and len(maps) == len(seeds):
            summary = f"{_spread(maps, 100, 1)} / " + (
                _spread(gaps, 1, 2) if None not in gaps else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {summary} |")
    return lines


def _spread(values: Sequence[float], scale: float, digits: int) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * std:.{digits}f}"


def _number(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def _metric(entry: dict | None, key: str, digits: int) -> str:
    if not entry or "skipped" in entry:
        return "–"
    return _number(entry.get(key), digits=digits)


# How each summary figure is printed: (scale, digits).
_FORMAT = {"style_distance": (1, 1), "light_distance": (1, 1), "brightness_spread": (1, 1),
           "map50": (100, 1), "gap_recovered": (1, 2), "edge_boxes": (1, 3),
           "sample_objects": (1, 2)}


def format_table(document: dict) -> str:
    """Markdown: the main table (every run, then mean +- std per variant), the reference
    detectors, per-class AP50, read selectivity, the optional metrics, then the paper's
    Table 4 quoted for reference."""
    classes, variants = document["classes"], document["variants"]
    gap = ", ".join(document["gap_classes"])
    lines = [f"# Ablation of run {document['base_run']}", "",
             f"Seeds {', '.join(str(s) for s in document['seeds'])}. Style distance: mean "
             "per-class Fréchet distance of CIELAB + gradient statistics inside boxes, translated "
             "source to target (lower is closer). Light distance: Fréchet distance of the "
             "per-image Lab mean and standard deviation to the target's, over images; "
             "brightness spread: standard deviation over images of their mean L (the image "
             f"statistics, docs/metrics.md). mAP50 (%) on {document['split']} of Faster "
             "R-CNN trained on the variant's translations. Gap recovered: (translated - "
             f"source only) / (oracle - source only) on the mean AP50 of {gap}, with the same "
             "seed's reference detectors. Edges in boxes: correlation of Sobel magnitudes "
             "between source and translation inside the boxes. Sample diff.: mean absolute "
             "difference between style samples on object pixels, in grey levels.", "",
             "| Variant | Seed | " + " | ".join(h for _, h in SUMMARY) + " |",
             "| --- | --- |" + " ---: |" * len(SUMMARY)]
    for key, variant in variants.items():
        for seed, row in variant["seeds"].items():
            values = summary_values(row)
            lines.append(f"| {key} | {seed} | " + " | ".join(
                _number(values[k], *_FORMAT[k]) for k, _ in SUMMARY) + " |")
    for key, variant in variants.items():
        cells = []
        for k, _ in SUMMARY:
            s = variant["summary"][k]
            scale, digits = _FORMAT[k]
            cells.append("–" if s["mean"] is None else
                         f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}")
        lines.append(f"| **{key}: {variant['label']}** | mean ± std | " + " | ".join(cells)
                     + " |")
    lines += _reference_lines(document["reference"])
    lines += ["", "Detection AP at IoU 0.5 (%), per class:", "",
              "| Training set | Seed | " + " | ".join(c.capitalize() for c in classes)
              + " | mAP | AP@[.5:.95] |",
              "| --- | --- |" + " ---: |" * (len(classes) + 2)]
    entries = [(key, seed, row) for key, v in variants.items() for seed, row in v["seeds"].items()]
    entries += [(f"{name} (reference, run {row['run']})", seed, row)
                for seed, refs in document["reference"].items() for name, row in refs.items()]
    for name, seed, row in entries:
        lines.append(f"| {name} | {seed} | " + " | ".join(_number(row["ap50"].get(c), 100)
                                                          for c in classes)
                     + f" | {_number(row['map50'], 100)} | {_number(row['ap'], 100)} |")
    lines += _selectivity_lines(variants)
    lines += _other_metric_lines(variants)
    lines += ["", "*Quoted from Jeong et al., CVPR 2021, Table 4 (INIT sunny <-> night), for "
                  "reference; not measured by this run:*", "",
              "| Variant | LPIPS (s->n) | CIS (s->n) | IS (s->n) | CIS (n->s) | IS (n->s) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, values in PAPER_TABLE4.items():
        lines.append(f"| *{key}* | " + " | ".join(f"*{v:.3f}*" for v in values) + " |")
    return "\n".join(lines) + "\n"


def _selectivity_lines(variants: dict) -> list[str]:
    selective = [(key, seed, row["read_selectivity"]["per_class"])
                 for key, v in variants.items() for seed, row in v["seeds"].items()
                 if row.get("read_selectivity") and "skipped" not in row["read_selectivity"]]
    if not selective:
        return []
    first = selective[0][2]
    groups = list(first)
    lines = ["", "Memory read selectivity: share of a pixel's test-time read weight on its own "
                 "class's items (class-aware variants; single memories have no class items):", "",
             "| Variant | Seed | " + " | ".join(g.capitalize() for g in groups) + " |",
             "| --- | --- |" + " ---: |" * len(groups),
             "| Chance (uniform reads) | | "
             + " | ".join(_number(first[g]["chance"], digits=3) for g in groups) + " |"]
    for key, seed, per_class in selective:
        lines.append(f"| {key} | {seed} | " + " | ".join(
            _number(per_class[g]["read_mass"], digits=3) for g in groups) + " |")
    return lines


def _other_metric_lines(variants: dict) -> list[str]:
    rows = [(key, seed, row) for key, v in variants.items() for seed, row in v["seeds"].items()]
    names = ("fid", "kid", "lpips_diversity", "is", "cis")
    if any(row.get(k) and "skipped" not in row[k] for _, _, row in rows for k in names):
        lines = ["", "| Variant | Seed | FID | KID | LPIPS | IS | CIS |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for key, seed, row in rows:
            lines.append(f"| {key} | {seed} | {_metric(row['fid'], 'value', 2)} | "
                         f"{_metric(row['kid'], 'mean', 4)} | "
                         f"{_metric(row['lpips_diversity'], 'value', 3)} | "
                         f"{_metric(row['is'], 'mean', 3)} | {_metric(row['cis'], 'mean', 3)} |")
        return lines
    skipped = {row[k]["skipped"] for _, _, row in rows
               for k in ("fid", "lpips_diversity", "is") if row.get(k) and "skipped" in row[k]}
    if not skipped:
        return []
    return ["", "FID, KID, LPIPS, IS and CIS were not computed: " + "; ".join(sorted(skipped))]
