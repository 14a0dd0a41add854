"""``pipeline ablate``: the four memory variants as ordinary runs and one table."""

from __future__ import annotations

import json

import pytest

from pipeline import synthetic
from pipeline.ablation import (VARIANTS, format_table, gap_recovered, mean_ap50, summarise,
                               variant_config)
from pipeline.cli import main
from pipeline.paper import PAPER_TABLE4
from tiny_run import write_tiny_run_config

CLASSES = ["person", "car"]


def style(translated: dict, source: dict) -> dict:
    return {"definition": "d",
            "per_class": {c: {"translated": translated[c], "source": source[c],
                              "boxes_translated": 3, "boxes_target": 2} for c in translated},
            "mean": {"translated": sum(translated.values()) / len(translated),
                     "source": sum(source.values()) / len(source)}}


def run_row(i: int, seed: int, with_fid: bool) -> dict:
    skipped = {"skipped": "metrics.inception_weights is not set"}
    return {
        "run": f"demo_v{i}_s{seed}", "ap50": {"person": 0.1 * (i + 1) + seed / 100, "car": None},
        "map50": 0.1 * (i + 1) + seed / 100, "ap": 0.05, "gap_map50": None,
        "gap_recovered": 0.5 + seed / 10,
        "style_distance": style({"person": 1.5 + i, "car": 2.25}, {"person": 9.0, "car": 8.0}),
        "edge_boxes": 0.4, "sample_objects": 8.0 + seed,
        **({"light_distance": 40.0 + seed, "brightness_spread": 4.5} if i == 0 else {}),
        "fid": {"value": 12.3456} if with_fid else skipped,
        "kid": {"mean": 0.01234, "std": 0.001, "subset_size": 4} if with_fid else skipped,
        "lpips_diversity": {"skipped": "metrics.lpips_weights is not set"},
        "is": skipped, "cis": skipped,
        "read_selectivity": {"per_class": {
            "person": {"read_mass": 0.25 + i / 10, "chance": 0.2},
            "car": {"read_mass": None, "chance": 0.2},
            "background": {"read_mass": 0.5, "chance": 0.6}}} if i else
        {"skipped": "single memory"},
    }


def document(with_fid: bool) -> dict:
    variants = {}
    for i, v in enumerate(VARIANTS[:2]):
        seeds = {str(seed): run_row(i, seed, with_fid) for seed in (0, 1)}
        variants[v.key] = {"memory": v.memory, "loss": v.loss, "label": v.label,
                           "seeds": seeds, "summary": summarise(seeds.values())}
    return {"version": 2, "base_run": "demo", "classes": CLASSES, "gap_classes": ["person"],
            "split": "target_val", "seeds": [0, 1], "variants": variants,
            "reference": {"0": {"source_only": {"run": "demo_reference_s0",
                                                "ap50": {"person": 0.02, "car": 0.5},
                                                "map50": 0.26, "ap": 0.1}}}}


def test_table_lists_every_seed_mean_and_std_and_quotes_table_4():
    table = format_table(document(with_fid=False))
    # style distance 1.88, light 40 / 41 and 4.5, mAP 10.0 / 11.0, gap 0.50 / 0.60, edges 0.400,
    # samples 8.00 / 9.00; sm_cl's rows predate the image statistics (dashes)
    assert "| sm_tl | 0 | 1.9 | 40.0 | 4.5 | 10.0 | 0.50 | 0.400 | 8.00 |" in table
    assert "| sm_tl | 1 | 1.9 | 41.0 | 4.5 | 11.0 | 0.60 | 0.400 | 9.00 |" in table
    assert ("| **sm_tl: single memory + triplet loss** | mean ± std | 1.9 ± 0.0 | 40.5 ± 0.7 | "
            "4.5 ± 0.0 | 10.5 ± 0.7 | 0.55 ± 0.07 | 0.400 ± 0.000 | 8.50 ± 0.71 |") in table
    assert "| sm_cl | 0 | 2.4 | – | – | 20.0 |" in table
    assert "| sm_cl | 0 | 20.0 | – | 20.0 | 5.0 |" in table
    assert "| source_only (reference, run demo_reference_s0) | 0 | 2.0 | 50.0 | 26.0 | 10.0 |" \
        in table
    assert "were not computed: metrics.inception_weights is not set; metrics.lpips_weights " \
           "is not set" in table
    assert "| FID |" not in table
    assert "| Chance (uniform reads) | | 0.200 | 0.200 | 0.600 |" in table
    assert "| sm_cl | 1 | 0.350 | – | 0.500 |" in table
    assert "| sm_tl | 0 | 0." not in table, "a skipped selectivity has no row"
    for key, values in PAPER_TABLE4.items():
        assert f"| *{key}* | " + " | ".join(f"*{v:.3f}*" for v in values) + " |" in table
    assert "not measured by this run" in table


def test_gap_recovered_and_summaries_by_hand():
    assert gap_recovered(0.3, 0.1, 0.5) == pytest.approx(0.5)
    assert gap_recovered(0.3, 0.1, 0.1) is None and gap_recovered(None, 0.1, 0.5) is None
    assert mean_ap50({"person": 0.2, "car": 0.4, "truck": None}, ["person", "car"]) == \
        pytest.approx(0.3)
    assert mean_ap50({"person": 0.2, "truck": None}, ["person", "truck"]) is None
    rows = [run_row(0, 0, False), run_row(0, 1, False), run_row(0, 2, False)]
    summary = summarise(rows)
    assert summary["sample_objects"] == {"mean": pytest.approx(9.0), "std": pytest.approx(1.0)}
    assert summary["gap_recovered"]["mean"] == pytest.approx(0.6)


def test_table_shows_the_other_metrics_when_computed():
    table = format_table(document(with_fid=True))
    assert "| sm_tl | 0 | 12.35 | 0.0123 | – | – | – |" in table


def test_variant_config_changes_only_memory_name_and_detector_sets(tmp_path):
    data = synthetic.generate(tmp_path / "syn", seed=1, width=64, height=32, num_source=4,
                              num_target_train=2, num_target_val=2, progress=False)
    config_path = write_tiny_run_config(tmp_path, data, name="base")
    (single,) = [v for v in VARIANTS if v.key == "sm_cl"]
    config = variant_config(config_path, ["translator.train.iterations=5"], single, "base", 3)
    assert config.run.name == "base_sm_cl_s3" and config.run.seed == 3
    assert (config.translator.memory.variant, config.translator.memory.loss) == \
        ("single", "contrastive")
    assert config.detector.train_sets == ["translated"]
    assert config.translator.train.iterations == 5


def test_unknown_variant_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablate", str(tmp_path / "x.yaml"), "--variants", "sm_tl,xx_yy"])
    assert exc.value.code == 2
    assert "unknown variant(s) xx_yy" in capsys.readouterr().err


@pytest.mark.slow
def test_ablate_runs_variants_and_seeds_and_writes_one_table(tmp_path, caplog):
    """Two variants x two seeds end to end with small random networks (3 translator
    iterations, 2 detector iterations): each is a run through metrics, each seed has its
    reference detectors, the table has every run and the means, a rerun trains nothing."""
    data = synthetic.generate(tmp_path / "syn", seed=2, width=96, height=48, num_source=8,
                              num_target_train=6, num_target_val=4, progress=False)
    config_path = write_tiny_run_config(tmp_path, data, name="abl")
    args = ["ablate", str(config_path), "--variants", "sm_tl,cm_cl", "--seeds", "0,1"]
    assert main(args) == 0
    out = tmp_path / "runs" / "abl_ablation"
    result = json.loads((out / "ablation.json").read_text())
    assert list(result["variants"]) == ["sm_tl", "cm_cl"] and result["seeds"] == [0, 1]
    references = {"source_only", "colour_transfer", "fda", "oracle"}
    for seed in ("0", "1"):
        assert set(result["reference"][seed]) == references
        assert "gap_recovered" in result["reference"][seed]["fda"]
        ref = json.loads((tmp_path / "runs" / f"abl_reference_s{seed}" / "eval" /
                          "metrics.json").read_text())
        assert set(ref["detectors"]) == references
    for key, variant in result["variants"].items():
        assert list(variant["seeds"]) == ["0", "1"]
        for seed, row in variant["seeds"].items():
            run_dir = tmp_path / "runs" / f"abl_{key}_s{seed}"
            translation = json.loads((run_dir / "eval" / "translation.json").read_text())
            assert "objects" in translation["multimodality"]
            assert "boxes" in translation["edge_correlation"]
            assert list(json.loads((run_dir / "eval" / "metrics.json").read_text())
                        ["detectors"]) == ["translated"]
            assert set(row["ap50"]) == set(result["classes"])
            assert "gap_recovered" in row
        assert set(variant["summary"]) == {"style_distance", "light_distance",
                                           "brightness_spread", "map50", "gap_recovered",
                                           "edge_boxes", "sample_objects"}
        assert all(row["light_distance"] > 0 for row in variant["seeds"].values())
    assert "skipped" in result["variants"]["sm_tl"]["seeds"]["0"]["read_selectivity"]
    assert "background" in \
        result["variants"]["cm_cl"]["seeds"]["1"]["read_selectivity"]["per_class"]
    table = (out / "ablation.md").read_text()
    assert "| **sm_tl: single memory + triplet loss** | mean ± std |" in table
    assert "| cm_cl | 1 |" in table
    assert "Reference detectors (no translator), mAP50 (%) / gap recovered:" in table
    assert next(line for line in table.splitlines() if line.startswith("| fda | "))

    caplog.clear()
    assert main(args) == 0
    assert "stage train_translator: running" not in caplog.text
    assert caplog.text.count("stage metrics: up to date") == 4


def test_bad_seed_list_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablate", str(tmp_path / "x.yaml"), "--seeds", "0,a"])
    assert exc.value.code == 2
    assert "comma-separated list of seeds" in capsys.readouterr().err
