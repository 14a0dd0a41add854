"""The report page: plain HTML5, a small inline style sheet, no JavaScript.

:func:`render` turns a :class:`Page` (what :mod:`pipeline.report.build` gathered) into the text
of ``index.html``. Every value that comes from a file or the config goes through
:func:`html.escape`: names and paths are data, never markup. Images are referenced by file
names relative to the page, all in the report folder, so the folder is self-contained.

The detection table has the shape of the paper's Table 3 (:func:`format_table
<pipeline.stages.evaluate.format_table>`'s rows, in HTML): this run's detectors first, then the
paper's published rows, in italics and labelled as quoted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.paper import PAPER_TABLE3, PAPER_TABLE3_CLASSES, ROW_NAMES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 1em 2em;
       color: #222; line-height: 1.4; }
h1, h2, h3 { font-weight: 600; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.quoted th, tr.quoted td { font-style: italic; color: #555; background: #fafafa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; max-width: 70em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; max-width: 70em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.3em 0 0.8em;
          vertical-align: middle; border: 1px solid #888; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.3em 1.2em; padding: 0; list-style: none; }
"""

# The metrics stage's translation-quality measures, in the order shown; others in the file
# are shown after them under their own key.
TRANSLATION_METRICS = (
    ("fid", "FID", "Fréchet Inception distance, translated vs real target images; lower is "
                   "better"),
    ("kid", "KID", "kernel Inception distance, translated vs real target images; lower is "
                   "better"),
    ("lpips_diversity", "LPIPS diversity", "mean LPIPS distance between style samples of one "
                                           "image; higher is more diverse"),
    ("is", "IS", "Inception score of the translated images; higher is better"),
    ("cis", "CIS", "conditional Inception score: diversity of one input's styles; higher is "
                   "better"),
)
# Keys of translation.json that are not metrics (shown apart or not at all).
_TRANSLATION_CONTEXT = ("version", "run", "real", "fake", "style_distance", "read_selectivity",
                        "edge_correlation", "multimodality", "image_statistics", "ceilings")


@dataclass(frozen=True)
class Picture:
    """A PNG in the report folder."""

    file: str       # relative to index.html
    alt: str
    caption: str


@dataclass(frozen=True)
class Grid:
    """The image grid and what the page says about it."""

    picture: Picture
    columns: list[str]
    rows: list[tuple[str, str]]    # (translated image's key, the image in the last column)
    style_split: str               # the last column's split
    classes: list[str]             # box legend: class names ...
    colours: list[str]             # ... and their colours


@dataclass
class Page:
    run: str
    generated_at: str
    version: str
    settings: list[tuple[str, str]]
    summary: dict                               # data/summary.json
    config_yaml: str
    metrics: dict                               # eval/metrics.json
    ap_chart: Picture | None                    # None when detection was not evaluated
    translation: dict | None                    # eval/translation.json, None when absent
    grid: Grid | None
    training_samples: Picture | None
    losses: list[Picture] = field(default_factory=list)
    losses_absent: list[str] = field(default_factory=list)   # families without logs
    stages: list[dict] = field(default_factory=list)         # name + state.json's record
    machine: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)   # (file, description)


# ------------------------------------------------------------------ value formats

def percent(value: float | None) -> str:
    """An AP fraction in %, as the tables show it (``–`` for a class without boxes)."""
    return "–" if value is None else f"{100 * value:.1f}"


def number(value: object) -> str:
    """A metric value: floats to 4 significant digits, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def duration(seconds: float) -> str:
    text = f"{seconds:.1f} s"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        text += f" ({minutes} min {rest} s)"
    return text


# ------------------------------------------------------------------ building blocks

def _e(value: object) -> str:
    return html.escape(str(value))


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[object]],
           row_classes: Sequence[str] = (), text_columns: Sequence[int] = ()) -> str:
    """A table whose first column names the rows; the other columns hold numbers (aligned
    right) except ``text_columns``. ``row_classes``: a CSS class per row ("" for none)."""
    out = [f"<table>\n<caption>{_e(caption)}</caption>",
           "<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
           + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(rows):
        css = f' class="{_e(row_classes[i])}"' if i < len(row_classes) and row_classes[i] else ""
        cells = [f'<th scope="row">{_e(row[0])}</th>']
        for column, value in enumerate(row[1:], start=1):
            align = "" if column in text_columns else ' class="num"'
            cells.append(f"<td{align}>{_e(value)}</td>")
        out.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    out.append("</tbody>\n</table>")
    return "\n".join(out)


def _figure(picture: Picture) -> str:
    return (f'<figure>\n<a href="{_e(picture.file)}"><img src="{_e(picture.file)}" '
            f'alt="{_e(picture.alt)}"></a>\n<figcaption>{_e(picture.caption)}</figcaption>\n'
            "</figure>")


def _compact(value: object) -> str:
    """A small mapping as ``key: value; ...`` (nested values as JSON)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v if isinstance(v, (str, int, float)) else json.dumps(v)}"
                         for k, v in value.items())
    return str(value)


# ------------------------------------------------------------------ sections

def _config_section(page: Page) -> str:
    parts = ['<section id="config">\n<h2>Configuration</h2>',
             _table("Key settings", ["Setting", "Value"], page.settings, text_columns=(1,))]
    splits = page.summary.get("splits", {})
    classes = page.summary.get("classes") or page.metrics.get("classes", [])
    rows = []
    for split, s in splits.items():
        per_class = s.get("boxes_per_class", {})
        if s.get("labeled") is False:
            rows.append([split, s.get("images", "–"), *("–" for _ in classes), "no labels"])
            continue
        rows.append([split, s.get("images", "–"), *(per_class.get(c, 0) for c in classes),
                     s.get("annotations", sum(per_class.values()))])
    parts.append(_table("Data: images and boxes per split (data/summary.json)",
                        ["Split", "Images", *classes, "Boxes"], rows))
    bad = page.summary.get("bad_input") or {}
    if bad:
        parts.append(_table("Bad input repaired or ignored by prepare", ["What", "Count"],
                            list(bad.items())))
    parts.append("<details>\n<summary>The full resolved config (config.resolved.yaml)</summary>"
                 f"\n<pre>{_e(page.config_yaml)}</pre>\n</details>\n</section>")
    return "\n".join(parts)


def _detection_table(metrics: dict) -> str:
    """The detection table (paper Table 3's shape): this run's rows, then the paper's, quoted."""
    classes = list(metrics["classes"])
    detectors = metrics["detectors"]
    header = ["Training set", *(c.capitalize() for c in classes), "mAP", "AP@[.5:.95]",
              "Iterations", "Training images", "Gap recovered"]
    rows: list[list[object]] = []
    for train_set, d in detectors.items():
        gap = d.get("gap_recovered")
        rows.append([ROW_NAMES.get(train_set, train_set),
                     *(percent(d["ap50"].get(c)) for c in classes), percent(d.get("map50")),
                     percent(d.get("ap")), d.get("iterations", "–"),
                     d.get("train_images", "–"), "–" if gap is None else f"{gap:.2f}"])
    row_classes = [""] * len(rows)
    if any(c in PAPER_TABLE3_CLASSES for c in classes):
        # The paper's mAP averages its four classes: comparable only over the same classes.
        same_classes = classes == list(PAPER_TABLE3_CLASSES)
        for name, values in PAPER_TABLE3:
            per_class = dict(zip(PAPER_TABLE3_CLASSES, values))
            rows.append([f"{name} — quoted from the paper",
                         *(f"{per_class[c]:.1f}" if c in per_class else "–" for c in classes),
                         f"{values[-1]:.1f}" if same_classes else "–", "–", "–", "–", "–"])
            row_classes.append("quoted")
    backends = sorted({str(d.get("backend")) for d in detectors.values()})
    caption = (f"Detection on {metrics['split']} of run {metrics['run']}: "
               f"{metrics.get('images', '?')} images, "
               f"{metrics.get('boxes', {}).get('total', '?')} boxes. AP at IoU 0.5 per class, "
               f"its mean (mAP) and COCO AP@[.5:.95], in %; backend {', '.join(backends)}. Gap "
               "recovered: (set - source only) / (oracle - source only) on the mean AP50 of "
               f"{', '.join(metrics.get('gap_classes') or classes)}.")
    return _table(caption, header, rows, row_classes)


def _detection_section(page: Page) -> str:
    if "skipped" in page.metrics:
        return ('<section id="detection">\n<h2>Detection (paper Table 3)</h2>\n'
                f'<p class="note">Detection not evaluated: {_e(page.metrics["skipped"])}.</p>'
                "\n</section>")
    quoted = any(c in PAPER_TABLE3_CLASSES for c in page.metrics["classes"])
    return "\n".join([
        '<section id="detection">\n<h2>Detection (paper Table 3)</h2>',
        _detection_table(page.metrics),
        '<p class="note">Rows in italics are quoted from the paper (Jeong et al., '
        "“Memory-guided Unsupervised Image-to-image Translation”, CVPR 2021, Table 3: KITTI → "
        "Cityscapes, Faster R-CNN) for reference. They were not measured by this run and are "
        "comparable with it only on the same data and detector.</p>" if quoted else "",
        f'<p class="note">Metric: {_e(page.metrics.get("metric", ""))}.</p>',
        _figure(page.ap_chart),
        "</section>",
    ])


def _metric_cell(entry: object) -> tuple[str, str]:
    """(value, details) of one translation metric."""
    if not isinstance(entry, dict):
        return number(entry), ""
    if "skipped" in entry:
        return f"skipped: {entry['skipped']}", ""
    if "value" in entry:
        value = number(entry["value"])
    elif "mean" in entry:
        value = number(entry["mean"])
        if "std" in entry:
            value += f" ± {number(entry['std'])}"
    else:
        value = "–"
    details = {k: v for k, v in entry.items() if k not in ("value", "mean", "std")}
    return value, _compact(details)


def _translation_section(page: Page) -> str:
    parts = ['<section id="translation-quality">\n<h2>Translation quality</h2>']
    data = page.translation
    if data is None:
        parts.append('<p class="note">Translation quality metrics not computed: '
                     "eval/translation.json is absent (the metrics stage writes it: "
                     "<code>pipeline run CONFIG --only metrics</code>).</p>\n</section>")
        return "\n".join(parts)
    for key, label in (("real", "Real images"), ("fake", "Translated images")):
        if key in data:
            parts.append(f"<p>{_e(label)}: {_e(_compact(data[key]))}</p>")
    rows = []
    for key, name, meaning in TRANSLATION_METRICS:
        value, details = _metric_cell(data[key]) if key in data else ("not reported", "")
        rows.append([name, value, meaning + (f" ({details})" if details else "")])
    known = {k for k, _, _ in TRANSLATION_METRICS} | set(_TRANSLATION_CONTEXT)
    for key, entry in data.items():
        # Metrics added to the file later are shown if they look like the others.
        looks_like_metric = (isinstance(entry, (int, float)) or isinstance(entry, dict)
                             and bool(entry.keys() & {"value", "mean", "skipped"}))
        if key not in known and looks_like_metric:
            value, details = _metric_cell(entry)
            rows.append([key, value, details])
    parts.append(_table("Translation quality (eval/translation.json)",
                        ["Metric", "Value", "Meaning"], rows, text_columns=(2,)))
    ceilings = data.get("ceilings")
    parts.append(_style_distance(data.get("style_distance"), _ceiling(ceilings,
                                                                      "style_distance")))
    parts.append(_edge_correlation(data.get("edge_correlation"),
                                   _ceiling(ceilings, "edge_correlation")))
    parts.append(_multimodality(data.get("multimodality"), _ceiling(ceilings, "multimodality")))
    parts.append(_image_statistics(data.get("image_statistics"),
                                   _ceiling(ceilings, "image_statistics")))
    parts.append(_ceilings_note(ceilings))
    parts.append(_read_selectivity(data.get("read_selectivity")))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Ceiling:
    """A figure's ceiling (its value for a perfect translation) and the translator's fraction
    of it, both shaped like the figure (``translation.json``'s ``ceilings``)."""

    values: dict
    fractions: dict

    def cells(self, *path: str) -> list[str]:
        """The ceiling and fraction cells of the value at ``path`` (blank for no path: a row
        the ceiling does not cover)."""
        if not path:
            return ["", ""]
        return [_or_dash(_dig(self.values, path)), _or_dash(_dig(self.fractions, path))]


CEILING_HEADER = ["Perfect translation", "Fraction of it"]


def _ceiling(ceilings: object, key: str) -> Ceiling | None:
    """The ceiling of figure ``key``; None when there is none (no perfect translation)."""
    if not isinstance(ceilings, dict) or "skipped" in ceilings:
        return None
    values = ceilings.get(key)
    if not isinstance(values, dict) or "skipped" in values:
        return None
    fractions = (ceilings.get("fractions") or {}).get(key)
    return Ceiling(values, fractions if isinstance(fractions, dict) else {})


def _dig(entry: object, path: Sequence[str]) -> object:
    for key in path:
        entry = entry.get(key) if isinstance(entry, dict) else None
    return entry


def _ceilings_note(ceilings: object) -> str:
    """What the ceiling columns mean, or why there are none."""
    if not isinstance(ceilings, dict):
        return ""
    if "skipped" in ceilings:
        return (f'<p class="note">Ceilings (the figures of a perfect translation): skipped '
                f"({_e(ceilings['skipped'])}).</p>")
    fractions = (ceilings.get("fractions") or {}).get("definition", "")
    return (f'<p class="note">Perfect translation: the same figure for the perfect '
            f"translations named by {_e(ceilings.get('source', '?'))} "
            f"({_e(', '.join(ceilings.get('manifests') or []))}). Fraction of it: "
            f"{_e(fractions)}.</p>")


def _style_distance(entry: object, ceiling: Ceiling | None = None) -> str:
    if entry is None:
        return '<p class="note">Per-class style distance: not reported.</p>'
    if not isinstance(entry, dict) or "skipped" in entry:
        value, _ = _metric_cell(entry)
        return f'<p class="note">Per-class style distance: {_e(value)}.</p>'
    rows = [[c, _or_dash(v.get("translated")), _or_dash(v.get("source")),
             *(ceiling.cells("per_class", c) if ceiling else [])]
            for c, v in (entry.get("per_class") or {}).items()]
    mean = entry.get("mean")
    if isinstance(mean, dict):
        rows.append(["mean", _or_dash(mean.get("translated")), _or_dash(mean.get("source")),
                     *(ceiling.cells("mean") if ceiling else [])])
    header = ["Class", "Translated", "Source"]
    if ceiling:
        header += [CEILING_HEADER[0], f"{CEILING_HEADER[1]} (lower is better)"]
    return "\n".join([_table("Per-class style distance to the target images", header, rows),
                      _definition(entry), _definition(ceiling.values) if ceiling else ""])


def _skipped_note(name: str, entry: object) -> str | None:
    """The note for a figure that is absent or skipped; None when it has values."""
    if entry is None:
        return f'<p class="note">{_e(name)}: not reported.</p>'
    if not isinstance(entry, dict) or "skipped" in entry:
        value, _ = _metric_cell(entry)
        return f'<p class="note">{_e(name)}: {_e(value)}.</p>'
    return None


def _definition(entry: dict) -> str:
    return f'<p class="note">{_e(entry["definition"])}</p>' if entry.get("definition") else ""


def _with_ceiling(caption: str, header: list[str], rows: list[tuple[str, object, tuple]],
                  entry: dict, ceiling: Ceiling | None) -> str:
    """A figure's table, ``rows`` of (name, value, path of the value in the figure), with the
    ceiling's columns when there is one, then the definitions."""
    table = _table(caption, header + (CEILING_HEADER if ceiling else []),
                   [[name, _or_dash(value), *(ceiling.cells(*path) if ceiling else [])]
                    for name, value, path in rows])
    return "\n".join([table, _definition(entry), _definition(ceiling.values) if ceiling else ""])


def _edge_correlation(entry: object, ceiling: Ceiling | None = None) -> str:
    note = _skipped_note("Content preservation (edge correlation)", entry)
    if note:
        return note
    rows = [("whole images", entry.get("whole"), ("whole",)),
            ("inside the boxes", entry.get("boxes"), ("boxes",)),
            *((f"inside {c} boxes", v, ("per_class", c))
              for c, v in (entry.get("per_class") or {}).items())]
    return _with_ceiling(f"Content preservation: edge correlation between source and "
                         f"translation ({entry.get('pairs', '?')} pairs)",
                         ["Region", "Correlation"], rows, entry, ceiling)


def _multimodality(entry: object, ceiling: Ceiling | None = None) -> str:
    note = _skipped_note("Multimodality (sample difference)", entry)
    if note:
        return note
    rows = [("object pixels", entry.get("objects"), ("objects",)),
            ("background pixels", entry.get("background"), ("background",)),
            *((f"style distance of sample {k}", d, ())
              for k, d in enumerate(entry.get("style_distance_per_sample") or []))]
    return _with_ceiling(f"Multimodality: difference between the {entry.get('samples', 'K')} "
                         f"style samples of {entry.get('inputs', '?')} inputs (grey levels)",
                         ["Measure", "Value"], rows, entry, ceiling)


def _image_statistics(entry: object, ceiling: Ceiling | None = None) -> str:
    if entry is None:
        return ""        # files written before the figure existed
    note = _skipped_note("Image statistics", entry)
    if note:
        return note
    translated, source, target = (entry.get(k) or {} for k in ("translated", "source",
                                                               "target"))
    rows = [("distance to the target, translated", translated.get("distance"), ("distance",)),
            ("distance to the target, untranslated source", source.get("distance"), ()),
            ("brightness spread, translated", translated.get("brightness_spread"),
             ("brightness_spread",)),
            ("brightness spread, untranslated source", source.get("brightness_spread"), ()),
            ("brightness spread, target", target.get("brightness_spread"), ())]
    return _with_ceiling("Image statistics: the light of each image (Lab mean and standard "
                         "deviation per image) against the target's", ["Measure", "Value"],
                         rows, entry, ceiling)


def _or_dash(value: object) -> str:
    return "–" if value is None else number(value)


def _read_selectivity(entry: object) -> str:
    if not isinstance(entry, dict):
        return ""
    if "skipped" in entry:
        return f'<p class="note">Memory read selectivity: skipped ({_e(entry["skipped"])}).</p>'
    groups = entry.get("per_class") or {}
    keys = ["read_mass", "chance", "ratio", "nearest_accuracy"]
    header = ["Class", "Read weight", "Chance", "Ratio", "Nearest key right"]
    # Files written before the probe existed have no probe column.
    if any("probe_accuracy" in v for v in groups.values()):
        keys += ["probe_accuracy", "read_mass_fraction"]
        header += ["Linear probe (ceiling)", "Read weight / probe"]
    rows = [[group, *(_or_dash(v.get(k)) for k in keys)] for group, v in groups.items()]
    return "\n".join([_table("Memory read selectivity: a pixel's test-time read weight on its "
                             "own class's items", header, rows),
                      _definition(entry), _definition(entry.get("probe") or {})])


def _grid_section(page: Page) -> str:
    parts = ['<section id="grids">\n<h2>Images</h2>']
    grid = page.grid
    if grid is None:
        parts.append('<p class="note">No translated images to show.</p>\n</section>')
        return "\n".join(parts)
    legend = "".join(f'<span class="swatch" style="background:{_e(colour)}"></span>{_e(name)}'
                     for name, colour in zip(grid.classes, grid.colours))
    rows = "".join(f"<li>{_e(key)} ({_e(grid.style_split)}: {_e(name)})</li>"
                   for key, name in grid.rows)
    parts += [
        f'<figure>\n<a href="{_e(grid.picture.file)}"><img src="{_e(grid.picture.file)}" '
        f'alt="{_e(grid.picture.alt)}"></a>',
        f"<figcaption><p>Columns: {_e(' | '.join(grid.columns))}.</p>"
        f"<p>{_e(grid.picture.caption)}</p>"
        f"<p>Ground-truth boxes on the source images: {legend}</p>"
        f"<p>Rows, top to bottom:</p><ol>{rows}</ol></figcaption>\n</figure>",
    ]
    if page.training_samples is not None:
        parts.append(_figure(page.training_samples))
    parts.append("</section>")
    return "\n".join(parts)


def _training_section(page: Page) -> str:
    parts = ['<section id="training">\n<h2>Training curves</h2>',
             *(_figure(p) for p in page.losses)]
    if page.losses_absent:
        parts.append(f'<p class="note">No TensorBoard scalars found for: '
                     f"{_e(', '.join(page.losses_absent))}.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _timing_section(page: Page) -> str:
    rows = [[s["name"], s.get("started_at", "–"), s.get("finished_at", "–"),
             duration(s["duration_s"]) if "duration_s" in s else "–"] for s in page.stages]
    total = sum(s.get("duration_s", 0.0) for s in page.stages)
    rows.append(["total", "", "", duration(total)])
    return "\n".join([
        '<section id="timings">\n<h2>Time and machine</h2>',
        _table("How long each stage took (state.json: its last run, wall-clock)",
               ["Stage", "Started (UTC)", "Finished (UTC)", "Duration"], rows,
               text_columns=(1, 2)),
        _table("The machine this report was built on", ["Item", "Value"], page.machine,
               text_columns=(1,)),
        "</section>",
    ])


def _files_section(page: Page) -> str:
    if not page.files:
        return ""
    items = "".join(f'<li><a href="{_e(name)}">{_e(name)}</a>: {_e(what)}</li>'
                    for name, what in page.files)
    return f'<section id="files">\n<h2>Data files</h2>\n<ul>{items}</ul>\n</section>'


SECTIONS = (("config", "Configuration"), ("detection", "Detection"),
            ("translation-quality", "Translation quality"), ("grids", "Images"),
            ("training", "Training curves"), ("timings", "Time and machine"))


def render(page: Page) -> str:
    nav = "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in SECTIONS)
    if page.files:
        nav += '<li><a href="#files">Data files</a></li>'
    body = [_config_section(page), _detection_section(page), _translation_section(page),
            _grid_section(page), _training_section(page), _timing_section(page),
            _files_section(page)]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Run {_e(page.run)}: MGUIT pipeline report</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<header>\n<h1>Run {_e(page.run)}</h1>",
        f"<p>MGUIT pipeline report, written {_e(page.generated_at)} by mguit-pipeline "
        f"{_e(page.version)}.</p>",
        f"<nav><ul>{nav}</ul></nav>\n</header>",
        "<main>",
        *(b for b in body if b),
        "</main>",
        "</body>",
        "</html>",
        "",
    ])
