"""The ``report`` stage on a copy of the tiny finished run (tests/tiny_run.py): the page's
tables, figures and grid, optional translation metrics, rebuilds, atomicity, and a look at
the page in headless Chromium when it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.report import grids
from pipeline.report.html import duration, number, percent
from pipeline.runner import Runner
from pipeline.stages import get_stage
from pipeline.paper import PAPER_TABLE3, PAPER_TABLE3_CLASSES, ROW_NAMES
from pipeline.translation.records import read_log
from tiny_run import NUM_SAMPLES

CHROMIUMS = ("chromium-headless-shell", "chromium")
TRANSLATION = {
    "version": 1, "run": "tiny", "future_key": [1, 2],
    "real": {"split": "target_val", "images": 4},
    "fake": {"split": "translated", "images": 8},
    "fid": {"value": 123.456789},
    "kid": {"skipped": "no Inception weights <metrics.inception_weights> & co"},
    "lpips_diversity": {"value": 0.0421, "pairs": 45},
    "is": {"mean": 1.8765, "std": 0.0432},
    "style_distance": {"definition": "mean L2 distance of Gram matrices per class",
                       "per_class": {"person": {"translated": 0.5123, "source": 0.9876},
                                     "car": {"translated": 0.25, "source": 0.75}},
                       "mean": {"translated": 0.38115, "source": 0.8688}},
    "sharpness": {"value": 7.5},
    "read_selectivity": {"definition": "own-class read weight",
                         "per_class": {"car": {"read_mass": 0.3, "chance": 0.15, "ratio": 2.0,
                                               "nearest_accuracy": 0.5},
                                       "truck": {"read_mass": None, "chance": 0.15,
                                                 "ratio": None}}},
    "edge_correlation": {"definition": "Sobel correlation", "whole": 0.61, "boxes": 0.52,
                         "per_class": {"car": 0.55, "truck": None}, "pairs": 12},
    "multimodality": {"definition": "grey levels apart", "objects": 9.5, "background": 4.25,
                      "inputs": 3, "samples": 4, "pairs": 18,
                      "style_distance_per_sample": [100.0, 110.5, 95.0, 104.0]},
}


class Page(HTMLParser):
    """What the tests look at in a page: images, links, tables (caption, rows of cell texts,
    row classes), script tags."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.links: list[str] = []
        self.tables: list[dict] = []
        self.scripts = 0
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "table":
            self.tables.append({"caption": "", "rows": [], "classes": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
            self.tables[-1]["classes"].append(attrs.get("class", ""))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._in_caption:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)

    def table(self, caption_start: str) -> dict:
        found = [t for t in self.tables if t["caption"].startswith(caption_start)]
        assert len(found) == 1, [t["caption"] for t in self.tables]
        return found[0]

    def row(self, caption_start: str, name: str) -> tuple[list[str], str]:
        table = self.table(caption_start)
        for cells, css in zip(table["rows"], table["classes"]):
            if cells[0] == name:
                return cells, css
        raise AssertionError(f"no row {name!r} in {table['rows']}")


def copy_run(tiny_run: tuple[Path, Path], dest: Path) -> tuple[Path, Path, list[str]]:
    """A copy of the tiny run in ``dest/runs/``: (config, run dir, overrides pointing there)."""
    config, run_dir = tiny_run
    copy = dest / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    return config, copy, [f"run.dir={dest / 'runs'}"]


def thumbnail_width(run_dir: Path, height: int) -> int:
    """The width of every thumbnail: the synthetic data's images all have one size."""
    entry = read_log(run_dir / "translated" / "manifest.jsonl")[0]
    source = Image.open(entry["source"])
    return round(source.width * height / source.height)


def run_report(config: Path, overrides: list[str]) -> int:
    return main(["run", str(config), "--only", "report", *overrides])


def read_page(run_dir: Path) -> tuple[str, Page]:
    text = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    return text, Page(text)


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A copy of the tiny run with its report built (no translation.json):
    ``(config, run_dir, overrides)``. Tests must not change it."""
    config, run_dir, overrides = copy_run(tiny_run, tmp_path_factory.mktemp("report"))
    # Small, to keep the test quick: style sample 1 comes from translated/, sample 2 is
    # generated by the translator.
    overrides += ["report.grid_images=4", "report.grid_samples=2"]
    assert run_report(config, overrides) == 0
    return config, run_dir, overrides


def test_detection_table_lists_every_detectors_ap(report):
    _, run_dir, _ = report
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    _, page = read_page(run_dir)
    for train_set, d in metrics["detectors"].items():
        cells, css = page.row("Detection on target_val", ROW_NAMES[train_set])
        assert cells[1:] == [*(percent(d["ap50"][c]) for c in metrics["classes"]),
                             percent(d["map50"]), percent(d["ap"]), str(d["iterations"]),
                             str(d["train_images"]), f"{d['gap_recovered']:.2f}"
                             if d["gap_recovered"] is not None else "–"]
        assert css == ""


def test_paper_rows_are_quoted(report):
    _, run_dir, _ = report
    text, page = read_page(run_dir)
    for name, values in PAPER_TABLE3:
        cells, css = page.row("Detection on target_val", f"{name} — quoted from the paper")
        assert css == "quoted"
        assert cells[1:len(PAPER_TABLE3_CLASSES) + 2] == [f"{v:.1f}" for v in values]
    assert "Rows in italics are quoted from the paper" in text


def test_every_image_and_link_is_in_the_report_folder(report):
    _, run_dir, _ = report
    folder = run_dir / "report"
    _, page = read_page(run_dir)
    sources = [image["src"] for image in page.images]
    assert {"ap50.png", "grid.png", "losses_translator.png", "losses_detectors.png",
            "translator_iter_000003.png"} <= set(sources)
    assert all(image.get("alt") for image in page.images)
    local = [href for href in page.links if not href.startswith("#")]
    assert "metrics.json" in local
    for name in sources + local:
        assert "/" not in name and (folder / name).is_file(), name
    assert all(table["caption"] for table in page.tables)
    assert page.scripts == 0
    assert not list(run_dir.glob(".report-*")), "temporary folders left behind"


def test_grid_has_one_thumbnail_per_row_and_column(report):
    config, run_dir, overrides = report
    cfg = load_config(config, overrides).report
    done = [e for e in read_log(run_dir / "translated" / "manifest.jsonl")
            if e["status"] == "done"]
    keys = grids.select((e["key"] for e in done if e["sample"] == 0), cfg.grid_images,
                        cfg.seed)
    assert len(keys) == cfg.grid_images
    width = thumbnail_width(run_dir, cfg.thumbnail_height)
    columns = 3 + cfg.grid_samples
    grid = Image.open(run_dir / "report" / "grid.png")
    assert grid.size == (columns * width + grids.GAP * (columns - 1),
                         len(keys) * cfg.thumbnail_height + grids.GAP * (len(keys) - 1))
    # Style sample 1 of the first row is the translate stage's <id>_s1.png (NUM_SAMPLES = 2),
    # sample 2 was generated by the translator.
    assert NUM_SAMPLES == 2 and cfg.grid_samples == 2
    stored = grids.thumbnail(Image.open(run_dir / "translated" / "image_2" / f"{keys[0]}_s1.png"),
                             cfg.thumbnail_height)
    x = 2 * (width + grids.GAP)
    assert grid.crop((x, 0, x + width, cfg.thumbnail_height)).tobytes() == stored.tobytes()
    text, _ = read_page(run_dir)
    for key in keys:
        assert f"<li>{key} (target_val: " in text
    assert escape("Style sample 1: the translate stage's outputs") in text
    assert "Style sample 2: generated for this report" in text


def test_translation_metrics_not_computed_note(report):
    _, run_dir, _ = report
    text, _ = read_page(run_dir)
    assert "Translation quality metrics not computed" in text
    assert not (run_dir / "report" / "translation.json").exists()


def test_stage_durations_and_machine(report):
    _, run_dir, _ = report
    state = json.loads((run_dir / "state.json").read_text())
    _, page = read_page(run_dir)
    for name in ("prepare", "train_translator", "translate", "train_detector", "evaluate"):
        record = state["stages"][name]
        cells, _ = page.row("How long each stage took", name)
        assert cells[1:] == [record["started_at"], record["finished_at"],
                             duration(record["duration_s"])]
    machine, _ = page.row("The machine this report was built on", "torch")
    import torch

    assert machine[1] == torch.__version__


def test_rerun_with_unchanged_inputs_is_skipped(report):
    config, run_dir, overrides = report
    index = run_dir / "report" / "index.html"
    before = (json.loads((run_dir / "state.json").read_text())["stages"]["report"],
              index.stat().st_mtime_ns)
    runner = Runner(load_config(config, overrides))
    assert runner.status(get_stage("report")).state == "done"
    assert run_report(config, overrides) == 0
    after = (json.loads((run_dir / "state.json").read_text())["stages"]["report"],
             index.stat().st_mtime_ns)
    assert after == before


def test_translation_metrics_samples_from_files_and_atomic_failure(tiny_run, tmp_path):
    config, run_dir, overrides = copy_run(tiny_run, tmp_path)
    # One style sample: translated/ holds it (<id>_s1.png), so no checkpoint is needed.
    overrides.append("report.grid_samples=1")
    (run_dir / "translator" / "checkpoints" / "last.pt").unlink()
    assert run_report(config, overrides) == 0
    text, _ = read_page(run_dir)
    assert escape("Style sample 1: the translate stage's outputs") in text
    assert "generated for this report" not in text
    width = thumbnail_width(run_dir, load_config(config, overrides).report.thumbnail_height)
    assert Image.open(run_dir / "report" / "grid.png").width == 4 * width + 3 * grids.GAP
    assert "Columns: source with its ground-truth boxes | translated (sample 0) | " \
           "style sample 1 | a target image (target_val)." in text

    # translation.json appearing makes the report stale; rebuilt, it shows every value.
    (run_dir / "eval" / "translation.json").write_text(json.dumps(TRANSLATION))
    status = Runner(load_config(config, overrides)).status(get_stage("report"))
    assert status.state == "stale" and "translation.json" in status.reason
    assert run_report(config, overrides) == 0
    text, page = read_page(run_dir)
    assert "not computed" not in text
    caption = "Translation quality"
    assert page.row(caption, "FID")[0][1] == number(123.456789) == "123.5"
    assert page.row(caption, "KID")[0][1] == \
        "skipped: no Inception weights <metrics.inception_weights> & co"
    assert "no Inception weights &lt;metrics.inception_weights&gt; &amp; co" in text
    assert page.row(caption, "LPIPS diversity")[0][1] == "0.0421"
    assert "pairs: 45" in page.row(caption, "LPIPS diversity")[0][2]
    assert page.row(caption, "IS")[0][1] == "1.877 ± 0.0432"
    assert page.row(caption, "CIS")[0][1] == "not reported"
    assert page.row(caption, "sharpness")[0][1] == "7.5"
    assert "future_key" not in text     # not shaped like a metric
    style = "Per-class style distance"
    assert page.row(style, "person")[0][1:] == ["0.5123", "0.9876"]
    assert page.row(style, "mean")[0][1:] == [number(0.38115), "0.8688"]
    assert "mean L2 distance of Gram matrices per class" in text
    reads = "Memory read selectivity"
    assert page.row(reads, "car")[0][1:] == ["0.3", "0.15", "2", "0.5"]
    assert page.row(reads, "truck")[0][1:] == ["–", "0.15", "–", "–"]
    edges = "Content preservation: edge correlation"
    assert page.row(edges, "inside the boxes")[0][1] == "0.52"
    assert page.row(edges, "inside truck boxes")[0][1] == "–"
    samples = "Multimodality: difference between the 4 style samples of 3 inputs"
    assert page.row(samples, "object pixels")[0][1] == "9.5"
    assert page.row(samples, "style distance of sample 1")[0][1] == "110.5"
    assert (run_dir / "report" / "translation.json").read_text() == json.dumps(TRANSLATION)
    assert "translation.json" in page.links

    # A build that fails leaves the previous report as it was, and no temporary folder.
    before = {p.name: p.read_bytes() for p in (run_dir / "report").iterdir()}
    (run_dir / "eval" / "metrics.json").write_text("{")
    assert run_report(config, overrides) == 1
    assert {p.name: p.read_bytes() for p in (run_dir / "report").iterdir()} == before
    assert not list(run_dir.glob(".report-*"))


CEILINGS = {
    "source": "data.source.perfect_translations",
    "manifests": ["source_train.perfect_0.json", "source_train.perfect_1.json"],
    "edge_correlation": {"definition": "edges of a perfect translation", "whole": 0.8,
                         "boxes": 0.65, "per_class": {"car": 0.5, "truck": None}},
    "multimodality": {"definition": "two perfect draws", "objects": 38.0, "background": 8.5},
    "style_distance": {"definition": "a perfect translation's distance",
                       "per_class": {"person": 0.25, "car": 0.125}, "mean": 0.1875},
    "image_statistics": {"definition": "a perfect translation's light", "distance": 8.0,
                         "brightness_spread": 17.25},
    "fractions": {"definition": "translator / perfect; style: lower is better",
                  "edge_correlation": {"whole": 0.7625, "boxes": 0.8,
                                       "per_class": {"car": 1.1, "truck": None}},
                  "multimodality": {"objects": 0.25, "background": 0.5},
                  "style_distance": {"per_class": {"person": 2.049, "car": 2.0},
                                     "mean": 2.033},
                  "image_statistics": {"distance": 83.0, "brightness_spread": 0.25}},
}
IMAGE_STATISTICS = {
    "definition": "per-image Lab mean and std",
    "translated": {"images": 12, "mean": {}, "brightness_spread": 4.3125, "distance": 664.0},
    "source": {"images": 12, "mean": {}, "brightness_spread": 9.9, "distance": 900.5},
    "target": {"images": 10, "mean": {}, "brightness_spread": 16.9},
}


def test_each_ceiling_stands_beside_its_figure(tiny_run, tmp_path):
    config, run_dir, overrides = copy_run(tiny_run, tmp_path)
    reads = dict(TRANSLATION["read_selectivity"])
    reads["per_class"] = {"car": {**reads["per_class"]["car"], "probe_accuracy": 0.6,
                                  "read_mass_fraction": 0.5},
                          "truck": {**reads["per_class"]["truck"], "probe_accuracy": None,
                                    "read_mass_fraction": None}}
    reads["probe"] = {"definition": "held-out accuracy of a linear classifier"}
    translation = TRANSLATION | {"ceilings": CEILINGS, "read_selectivity": reads,
                                 "image_statistics": IMAGE_STATISTICS}
    (run_dir / "eval" / "translation.json").write_text(json.dumps(translation))
    assert run_report(config, overrides) == 0
    text, page = read_page(run_dir)
    style = "Per-class style distance"
    assert page.table(style)["rows"][0] == ["Class", "Translated", "Source",
                                            "Perfect translation",
                                            "Fraction of it (lower is better)"]
    assert page.row(style, "car")[0][1:] == ["0.25", "0.75", "0.125", "2"]
    assert page.row(style, "mean")[0][3:] == ["0.1875", "2.033"]
    edges = "Content preservation: edge correlation"
    assert page.table(edges)["rows"][0][2:] == ["Perfect translation", "Fraction of it"]
    assert page.row(edges, "inside the boxes")[0][1:] == ["0.52", "0.65", "0.8"]
    assert page.row(edges, "inside truck boxes")[0][1:] == ["–", "–", "–"]
    samples = "Multimodality: difference between the 4 style samples of 3 inputs"
    assert page.row(samples, "object pixels")[0][1:] == ["9.5", "38", "0.25"]
    assert page.row(samples, "style distance of sample 1")[0][1:] == ["110.5", "", ""]
    light = "Image statistics"
    assert page.row(light, "distance to the target, translated")[0][1:] == ["664", "8", "83"]
    assert page.row(light, "distance to the target, untranslated source")[0][1:] == [
        "900.5", "", ""]
    assert page.row(light, "brightness spread, translated")[0][1:] == ["4.312", "17.25",
                                                                       "0.25"]
    assert page.row(light, "brightness spread, target")[0][1] == "16.9"
    assert "per-image Lab mean and std" in text
    reads_table = "Memory read selectivity"
    assert page.table(reads_table)["rows"][0][-2:] == ["Linear probe (ceiling)",
                                                       "Read weight / probe"]
    assert page.row(reads_table, "car")[0][1:] == ["0.3", "0.15", "2", "0.5", "0.6", "0.5"]
    for definition in ("edges of a perfect translation", "two perfect draws",
                       "a perfect translation&#x27;s distance", "lower is better",
                       "held-out accuracy of a linear classifier",
                       "source_train.perfect_0.json, source_train.perfect_1.json"):
        assert definition in text
    assert page.row("Translation quality", "FID")      # the metrics table is unchanged ...
    assert not [row for row in page.table("Translation quality")["rows"]
                if row[0] == "ceilings"]               # ... and has no ceilings row

    skipped = translation | {"ceilings": {"skipped": "data.source.perfect_translations is "
                                                     "not set"}}
    (run_dir / "eval" / "translation.json").write_text(json.dumps(skipped))
    assert run_report(config, overrides) == 0
    text, page = read_page(run_dir)
    assert "Ceilings (the figures of a perfect translation): skipped " \
           "(data.source.perfect_translations is not set)" in text
    assert page.row(edges, "inside the boxes")[0][1:] == ["0.52"]


def test_chromium_renders_the_page(request, tmp_path):
    binary = next((shutil.which(name) for name in CHROMIUMS if shutil.which(name)), None)
    if binary is None:
        pytest.skip("Chromium not installed: apt-get install chromium-headless-shell")
    _, run_dir, _ = request.getfixturevalue("report")   # only now: it takes a minute
    shot = tmp_path / "page.png"
    subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1280,2000",
                    (run_dir / "report" / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 24)
    assert len(colours) >= 10, f"a blank page? {len(colours)} colours"
