"""The paper's ablation (section 4.3, Table 4) in one command: ``pipeline ablate CONFIG``.

Four runs of the same experiment that differ only in the memory: single (``sm``) or class-aware
(``cm``) memory, trained with the feature triplet (``tl``) or contrastive (``cl``) loss. Each
variant is an ordinary run, ``runs/<name>_<variant>/``, taken through

    prepare -> train_translator -> translate -> train_detector -> evaluate -> metrics

with ``detector.train_sets`` set to ``[translated]`` (the source-only and oracle detectors do not
depend on the translator, so they are not trained four times). Rerunning resumes each variant
where it stopped and skips what is done, like ``pipeline run``.

The table, ``runs/<name>_ablation/ablation.{json,md}``, has per variant: the per-class style
distance of the translated source to the target (lower is closer; the untranslated source's
distance is the reference row), detection AP50 on ``evaluate.split`` of the detector trained on
the variant's translations, how class-selective the memory's test-time reads are (class-aware
variants), and FID, KID, LPIPS diversity, IS and CIS where their weights were given. When the base run (``runs/<name>``) has been evaluated, its source-only and oracle
detectors are added as reference rows. The paper's Table 4 (INIT sunny <-> night) is quoted
below it for reference, marked as such.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config, load_config
from pipeline.formats.common import atomic_write_text
from pipeline.logs import add_run_log
from pipeline.runner import Runner

logger = logging.getLogger(__name__)

ABLATION_VERSION = 1

STAGES = ("prepare", "train_translator", "translate", "train_detector", "evaluate", "metrics")


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

# Jeong et al., CVPR 2021, Table 4 (INIT sunny <-> night): LPIPS, CIS, IS for sunny -> night,
# CIS, IS for night -> sunny. Quoted as printed.
PAPER_TABLE4 = {
    "sm_tl": (0.287, 1.061, 1.189, 1.037, 1.080),
    "sm_cl": (0.310, 1.094, 1.206, 1.062, 1.107),
    "cm_tl": (0.328, 1.156, 1.253, 1.101, 1.103),
    "cm_cl": (0.346, 1.176, 1.271, 1.115, 1.130),
}


def variant_config(config_path: str | Path, overrides: list[str], variant: Variant,
                   base_name: str) -> Config:
    """The base config with the variant's memory, its own run name, and only the translated
    set's detector."""
    return load_config(config_path, [
        *overrides,
        f"run.name={base_name}_{variant.key}",
        f"translator.memory.variant={variant.memory}",
        f"translator.memory.loss={variant.loss}",
        "detector.train_sets=[translated]",
    ])


def run_ablation(config_path: str | Path, overrides: list[str] = (),
                 variants: tuple[str, ...] = VARIANT_KEYS, force: bool = False) -> Path:
    """Run every variant's stages (resuming what is done) and write the table. Returns the
    folder holding ``ablation.json`` and ``ablation.md``."""
    base = load_config(config_path, list(overrides))
    chosen = [v for v in VARIANTS if v.key in variants]
    rows = {}
    for variant in chosen:
        config = variant_config(config_path, list(overrides), variant, base.run.name)
        runner = Runner(config)
        handler = add_run_log(runner.ctx.run_dir) if runner.is_main else None
        try:
            logger.info("ablation %s (%s): run %s", variant.key, variant.label,
                        runner.ctx.run_dir)
            runner.run(runner.select(only=list(STAGES)), force=force)
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()
        rows[variant.key] = collect_variant(runner.ctx.run_dir, variant)
    out = base.run.path.parent / f"{base.run.name}_ablation"
    document = {
        "version": ABLATION_VERSION,
        "base_run": base.run.name,
        "classes": base.data.classes,
        "split": base.evaluate.split,
        "variants": rows,
        "reference": reference_detectors(base.run.path),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablation.json", json.dumps(document, indent=2) + "\n")
    table = format_table(document)
    atomic_write_text(out / "ablation.md", table)
    logger.info("ablation of run %s -> %s\n%s", base.run.name, out / "ablation.md", table)
    return out


def collect_variant(run_dir: Path, variant: Variant) -> dict:
    """One variant's numbers from its run's ``eval/metrics.json`` and ``eval/translation.json``."""
    detection = json.loads((run_dir / "eval" / "metrics.json").read_text())
    translation = json.loads((run_dir / "eval" / "translation.json").read_text())
    translated = detection["detectors"]["translated"]
    return {
        "run": run_dir.name,
        "memory": variant.memory,
        "loss": variant.loss,
        "label": variant.label,
        "ap50": translated["ap50"],
        "map50": translated["map50"],
        "ap": translated["ap"],
        "style_distance": translation["style_distance"],
        **{key: translation.get(key) for key in ("fid", "kid", "lpips_diversity", "is", "cis",
                                                 "read_selectivity")},
    }


def reference_detectors(base_run: Path) -> dict:
    """Source-only and oracle AP from the base run, when it has been evaluated."""
    path = base_run / "eval" / "metrics.json"
    if not path.exists():
        return {}
    detectors = json.loads(path.read_text())["detectors"]
    return {name: {"run": base_run.name, "ap50": d["ap50"], "map50": d["map50"], "ap": d["ap"]}
            for name, d in detectors.items() if name in ("source_only", "oracle")}


def _number(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def _metric(entry: dict | None, key: str, digits: int) -> str:
    if not entry or "skipped" in entry:
        return "–"
    return _number(entry.get(key), digits=digits)


def format_table(document: dict) -> str:
    """Markdown: the style-distance table, the detection table, the optional metrics table,
    then the paper's Table 4 quoted for reference."""
    classes, variants = document["classes"], document["variants"]
    first = next(iter(variants.values()))
    lines = [f"# Ablation of run {document['base_run']}", "",
             "Per-class style distance to the target (Fréchet distance of CIELAB + gradient "
             "statistics inside boxes; lower is closer to the target):", "",
             "| Variant | " + " | ".join(c.capitalize() for c in classes) + " | Mean |",
             "| --- |" + " ---: |" * (len(classes) + 1)]

    def distance_row(name: str, per_class: dict, mean: dict, side: str) -> str:
        cells = [_number(per_class.get(c, {}).get(side), digits=2) for c in classes]
        return f"| {name} | " + " | ".join(cells) + f" | {_number(mean.get(side), digits=2)} |"

    source = first["style_distance"]
    lines.append(distance_row("Source, untranslated (reference)", source["per_class"],
                              source["mean"], "source"))
    for key, row in variants.items():
        sd = row["style_distance"]
        lines.append(distance_row(f"{key}: {row['label']}", sd["per_class"], sd["mean"],
                                  "translated"))
    lines += ["", f"Detection AP at IoU 0.5 (%) on {document['split']}, Faster R-CNN trained on "
                  "each variant's translations:", "",
              "| Training set | " + " | ".join(c.capitalize() for c in classes)
              + " | mAP | AP@[.5:.95] |",
              "| --- |" + " ---: |" * (len(classes) + 2)]
    for name, row in [*((f"{k}: {r['label']}", r) for k, r in variants.items()),
                      *((f"{k} (reference, run {r['run']})", r)
                        for k, r in document["reference"].items())]:
        lines.append(f"| {name} | " + " | ".join(_number(row["ap50"].get(c), 100)
                                                 for c in classes)
                     + f" | {_number(row['map50'], 100)} | {_number(row['ap'], 100)} |")
    selective = {k: r["read_selectivity"]["per_class"] for k, r in variants.items()
                 if r.get("read_selectivity") and "skipped" not in r["read_selectivity"]}
    if selective:
        groups = list(next(iter(selective.values())))
        chance = next(iter(selective.values()))
        lines += ["", "Memory read selectivity: share of a pixel's test-time read weight on its "
                      "own class's items (class-aware variants; single memories have no class "
                      "items):", "",
                  "| Variant | " + " | ".join(g.capitalize() for g in groups) + " |",
                  "| --- |" + " ---: |" * len(groups),
                  "| Chance (uniform reads) | "
                  + " | ".join(_number(chance[g]["chance"], digits=3) for g in groups) + " |"]
        for key, per_class in selective.items():
            lines.append(f"| {key} | " + " | ".join(_number(per_class[g]["read_mass"], digits=3)
                                                   for g in groups) + " |")
    if any(row.get(k) and "skipped" not in row[k] for row in variants.values()
           for k in ("fid", "kid", "lpips_diversity", "is", "cis")):
        lines += ["", "| Variant | FID | KID | LPIPS | IS | CIS |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for key, row in variants.items():
            lines.append(f"| {key} | {_metric(row['fid'], 'value', 2)} | "
                         f"{_metric(row['kid'], 'mean', 4)} | "
                         f"{_metric(row['lpips_diversity'], 'value', 3)} | "
                         f"{_metric(row['is'], 'mean', 3)} | {_metric(row['cis'], 'mean', 3)} |")
    else:
        skipped = {row[k]["skipped"] for row in variants.values()
                   for k in ("fid", "lpips_diversity", "is") if row.get(k) and "skipped" in row[k]}
        if skipped:
            lines += ["", "FID, KID, LPIPS, IS and CIS were not computed: "
                      + "; ".join(sorted(skipped))]
    lines += ["", "*Quoted from Jeong et al., CVPR 2021, Table 4 (INIT sunny <-> night), for "
                  "reference; not measured by this run:*", "",
              "| Variant | LPIPS (s->n) | CIS (s->n) | IS (s->n) | CIS (n->s) | IS (n->s) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, values in PAPER_TABLE4.items():
        lines.append(f"| *{key}* | " + " | ".join(f"*{v:.3f}*" for v in values) + " |")
    return "\n".join(lines) + "\n"
