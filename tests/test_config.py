"""Config loading: YAML + overrides -> typed objects, and the errors a user sees."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from pipeline.ablation import VARIANTS, variant_config
from pipeline.config import (Config, ConfigError, DataConfig, dump_config, load_config,
                             parse_override)
from pipeline.schema import to_plain

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = textwrap.dedent("""\
    run:
      name: t
    data:
      source:
        format: kitti
        root: data/k
        class_map: {Car: car, DontCare: null}
      target:
        format: cityscapes
        root: data/c
        class_map: {car: car}
        on_unknown_label: ignore
    """)


def write(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_paper_defaults_and_absolute_paths(tmp_path):
    cfg = load_config(write(tmp_path), base_dir=tmp_path)
    assert isinstance(cfg, Config) and isinstance(cfg.data, DataConfig)
    assert cfg.data.classes == ["person", "car", "truck", "bicycle"]
    assert cfg.data.on_bad_box == "clip"
    assert cfg.data.source.class_map == {"Car": "car", "DontCare": None}
    assert cfg.data.source.root == str(tmp_path / "data" / "k")
    assert cfg.run.path == tmp_path / "runs" / "t"


@pytest.mark.parametrize("name, formats, items", [
    ("demo.yaml", ("kitti", "cityscapes"), 20),
    ("kitti_to_cityscapes.yaml", ("kitti", "cityscapes"), 20),
    ("init_sunny_to_night.yaml", ("coco", "coco"), 20),
])
def test_shipped_configs_load(name, formats, items):
    cfg = load_config(ROOT / "configs" / name, base_dir=ROOT)
    assert (cfg.data.source.format, cfg.data.target.format) == formats
    assert sum(cfg.translator.memory.items.values()) == items


def test_overrides_are_typed_and_dotted(tmp_path):
    cfg = load_config(write(tmp_path), ["run.seed=7", "data.on_bad_box=drop",
                                        "data.min_box_size=2",
                                        "data.classes=[car, person, truck, bicycle]",
                                        "data.target.class_map.bus=null"], base_dir=tmp_path)
    assert cfg.run.seed == 7
    assert cfg.data.on_bad_box == "drop"
    assert cfg.data.min_box_size == 2.0 and isinstance(cfg.data.min_box_size, float)
    assert cfg.data.classes == ["car", "person", "truck", "bicycle"]
    assert cfg.data.target.class_map == {"car": "car", "bus": None}


def test_unknown_key_in_file_names_file_line_and_suggestion(tmp_path):
    text = MINIMAL.replace("  name: t\n", "  name: t\n  sead: 3\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, base_dir=tmp_path)
    msg = str(err.value)
    assert f"{path}:3: run.sead" in msg
    assert "did you mean 'seed'" in msg


def test_unknown_override_key_suggests_nearest(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.on_bad_bx: unknown key; did you mean "
                                          r"'data\.on_bad_box'"):
        load_config(write(tmp_path), ["data.on_bad_bx=drop"], base_dir=tmp_path)


@pytest.mark.parametrize("override, expected", [
    ("run.seed=abc", r"command-line override run\.seed: expected an integer, got 'abc'"),
    ("run.seed=true", r"run\.seed: expected an integer, got True"),
    ("data.verify_images=1", r"data\.verify_images: expected true or false, got 1"),
    ("data.on_bad_box=clipp", r"'clipp' is not one of 'clip', 'drop', 'error'; did you mean 'clip'"),
    ("data.classes=car", r"data\.classes: expected a list"),
    ("run.device=gpu", r"run\.device 'gpu' must be auto, cpu, mps, cuda or cuda:N"),
])
def test_wrong_types_are_errors_naming_the_key(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path), [override], base_dir=tmp_path)


def test_wrong_type_in_file_names_line(tmp_path):
    path = write(tmp_path, MINIMAL.replace("name: t", "name: t\n  workers: two"))
    with pytest.raises(ConfigError, match=rf"{path}:3: run\.workers: expected an integer"):
        load_config(path, base_dir=tmp_path)


def test_class_map_to_unknown_class_is_an_error(tmp_path):
    path = write(tmp_path, MINIMAL.replace("{car: car}", "{car: cars}"))
    with pytest.raises(ConfigError, match=r"maps 'car' to 'cars', which is not in classes.*"
                                          r"did you mean 'car'"):
        load_config(path, base_dir=tmp_path)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace("    root: data/c\n", ""))
    with pytest.raises(ConfigError, match=r"data\.target\.root: required key is missing"):
        load_config(path, base_dir=tmp_path)


@pytest.mark.parametrize("bad", ["run.seed", "=3", "run..seed=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="override"):
        parse_override(bad)


def test_override_values_parse_as_yaml():
    assert parse_override("a.b=[0.5, 0.999]") == ("a.b", [0.5, 0.999])
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=x=y") == ("a", "x=y")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "run: [\n"))


def test_dump_round_trips(tmp_path):
    cfg = load_config(write(tmp_path), ["run.seed=3"], base_dir=tmp_path)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg))
    assert yaml.safe_load(again.read_text())["run"]["seed"] == 3
    assert load_config(again, base_dir=tmp_path) == cfg


def test_slice_hash_tracks_only_its_section(tmp_path):
    a = load_config(write(tmp_path), base_dir=tmp_path)
    b = load_config(write(tmp_path), ["run.seed=9"], base_dir=tmp_path)
    c = load_config(write(tmp_path), ["data.on_bad_box=drop"], base_dir=tmp_path)
    assert a.slice_hash(("data",)) == b.slice_hash(("data",))
    assert a.slice_hash(("data",)) != c.slice_hash(("data",))


def test_translator_section_is_typed_and_cross_checked_with_classes(tmp_path):
    cfg = load_config(write(tmp_path), ["translator.train.iterations=2000",
                                        "translator.train.betas=[0.5, 0.999]"], base_dir=tmp_path)
    assert cfg.translator.train.iterations == 2000
    assert cfg.translator.train.betas == (0.5, 0.999)
    assert cfg.translator.memory.items["background"] == 8
    with pytest.raises(ConfigError, match=r"translator\.memory\.item: unknown key; did you "
                                          r"mean 'translator\.memory\.items'"):
        load_config(write(tmp_path), ["translator.memory.item={car: 2}"], base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"missing \['bicycle'\]"):
        load_config(write(tmp_path), ["translator.memory.items={person: 3, car: 3, truck: 3, "
                                      "background: 8}"], base_dir=tmp_path)
    with pytest.raises(ConfigError, match="must equal the encoders' output width"):
        load_config(write(tmp_path), ["translator.memory.key_dim=128"], base_dir=tmp_path)


def test_base_inheritance_merges_and_reports_the_right_file(tmp_path):
    base = write(tmp_path)
    child = tmp_path / "child.yaml"
    child.write_text("_base_: exp.yaml\nrun: {seed: 5}\ntranslator:\n  memory: {loss: triplet}\n")
    cfg = load_config(child, base_dir=tmp_path)
    assert (cfg.run.name, cfg.run.seed) == ("t", 5)          # name from the base, seed merged
    assert cfg.translator.memory.loss == "triplet"
    assert cfg.data.source.class_map == {"Car": "car", "DontCare": None}
    base.write_text(MINIMAL.replace("  name: t\n", "  name: t\n  sead: 1\n"))
    with pytest.raises(ConfigError, match=rf"{base}:3: run\.sead: unknown key"):
        load_config(child, base_dir=tmp_path)
    base.write_text("_base_: child.yaml\n" + MINIMAL)
    with pytest.raises(ConfigError, match="form a cycle"):
        load_config(child, base_dir=tmp_path)


@pytest.mark.parametrize("name", ["sm_tl", "sm_cl", "cm_tl", "cm_cl"])
def test_ablation_configs_are_the_runs_pipeline_ablate_makes(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    demo = load_config(ROOT / "configs" / "demo.yaml", base_dir=ROOT)
    ablation = load_config(ROOT / "configs" / "ablations" / f"{name}.yaml", base_dir=ROOT)
    variant = {"sm": "single", "cm": "class_aware"}[name[:2]]
    loss = {"tl": "triplet", "cl": "contrastive"}[name[3:]]
    assert (ablation.translator.memory.variant, ablation.translator.memory.loss) == (variant, loss)
    assert ablation.data == demo.data and ablation.translator.train == demo.translator.train
    assert ablation.run.name == f"demo_{name}_s0"
    (made,) = [v for v in VARIANTS if v.key == name]
    assert to_plain(variant_config(ROOT / "configs" / "demo.yaml", [], made, "demo", 0)) == \
        to_plain(ablation)
