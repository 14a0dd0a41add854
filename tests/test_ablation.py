"""``pipeline ablate``: the four memory variants as ordinary runs and one table."""

from __future__ import annotations

import json

import pytest

from pipeline import synthetic
from pipeline.ablation import PAPER_TABLE4, VARIANTS, format_table, variant_config
from pipeline.cli import main
from tiny_run import write_tiny_run_config

CLASSES = ["person", "car"]


def style(translated: dict, source: dict) -> dict:
    return {"definition": "d",
            "per_class": {c: {"translated": translated[c], "source": source[c],
                              "boxes_translated": 3, "boxes_target": 2} for c in translated},
            "mean": {"translated": sum(translated.values()) / len(translated),
                     "source": sum(source.values()) / len(source)}}


def document(with_fid: bool) -> dict:
    skipped = {"skipped": "metrics.inception_weights is not set"}
    variants = {}
    for i, v in enumerate(VARIANTS[:2]):
        variants[v.key] = {
            "run": f"demo_{v.key}", "memory": v.memory, "loss": v.loss, "label": v.label,
            "ap50": {"person": 0.1 * (i + 1), "car": None}, "map50": 0.1 * (i + 1), "ap": 0.05,
            "style_distance": style({"person": 1.5 + i, "car": 2.25}, {"person": 9.0, "car": 8.0}),
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
    return {"version": 1, "base_run": "demo", "classes": CLASSES, "split": "target_val",
            "variants": variants,
            "reference": {"source_only": {"run": "demo", "ap50": {"person": 0.02, "car": 0.5},
                                          "map50": 0.26, "ap": 0.1}}}


def test_table_lists_style_distances_ap_and_quotes_table_4():
    table = format_table(document(with_fid=False))
    assert "| Source, untranslated (reference) | 9.00 | 8.00 | 8.50 |" in table
    assert "| sm_tl: single memory + triplet loss | 1.50 | 2.25 | 1.88 |" in table
    assert "| sm_cl: single memory + contrastive loss | 2.50 | 2.25 | 2.38 |" in table
    assert "| sm_tl: single memory + triplet loss | 10.0 | – | 10.0 | 5.0 |" in table
    assert "| source_only (reference, run demo) | 2.0 | 50.0 | 26.0 | 10.0 |" in table
    assert "were not computed: metrics.inception_weights is not set; metrics.lpips_weights " \
           "is not set" in table
    assert "| FID |" not in table
    assert "| Chance (uniform reads) | 0.200 | 0.200 | 0.600 |" in table
    assert "| sm_cl | 0.350 | – | 0.500 |" in table
    assert "| sm_tl | 0." not in table, "a skipped selectivity has no row"
    for key, values in PAPER_TABLE4.items():
        assert f"| *{key}* | " + " | ".join(f"*{v:.3f}*" for v in values) + " |" in table
    assert "not measured by this run" in table


def test_table_shows_the_other_metrics_when_computed():
    table = format_table(document(with_fid=True))
    assert "| sm_tl | 12.35 | 0.0123 | – | – | – |" in table


def test_variant_config_changes_only_memory_name_and_detector_sets(tmp_path):
    data = synthetic.generate(tmp_path / "syn", seed=1, width=64, height=32, num_source=4,
                              num_target_train=2, num_target_val=2, progress=False)
    config_path = write_tiny_run_config(tmp_path, data, name="base")
    (single,) = [v for v in VARIANTS if v.key == "sm_cl"]
    config = variant_config(config_path, ["translator.train.iterations=5"], single, "base")
    assert config.run.name == "base_sm_cl"
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
def test_ablate_runs_variants_and_writes_one_table(tmp_path, caplog):
    """Two variants end to end with small random networks (3 translator iterations, 2 detector
    iterations): each is a run through metrics, the table has both, a rerun trains nothing."""
    data = synthetic.generate(tmp_path / "syn", seed=2, width=96, height=48, num_source=8,
                              num_target_train=6, num_target_val=4, progress=False)
    config_path = write_tiny_run_config(tmp_path, data, name="abl")
    assert main(["ablate", str(config_path), "--variants", "sm_tl,cm_cl"]) == 0
    out = tmp_path / "runs" / "abl_ablation"
    result = json.loads((out / "ablation.json").read_text())
    assert list(result["variants"]) == ["sm_tl", "cm_cl"]
    for key, row in result["variants"].items():
        run_dir = tmp_path / "runs" / f"abl_{key}"
        assert (run_dir / "eval" / "translation.json").exists()
        assert list(json.loads((run_dir / "eval" / "metrics.json").read_text())["detectors"]) \
            == ["translated"]
        assert set(row["ap50"]) == set(result["classes"])
        per_class = row["style_distance"]["per_class"]
        assert all(per_class[c]["translated"] >= 0 for c in per_class)
    assert result["variants"]["sm_tl"]["memory"] == "single"
    assert "skipped" in result["variants"]["sm_tl"]["read_selectivity"]
    assert "background" in result["variants"]["cm_cl"]["read_selectivity"]["per_class"]
    table = (out / "ablation.md").read_text()
    assert "| sm_tl: single memory + triplet loss |" in table
    assert "| cm_cl: class-aware memory + contrastive loss |" in table

    caplog.clear()
    assert main(["ablate", str(config_path), "--variants", "sm_tl,cm_cl"]) == 0
    assert "stage train_translator: running" not in caplog.text
    assert caplog.text.count("stage metrics: up to date") == 2
