"""Translation metrics: known answers on tiny inputs, with small randomly initialised networks
built here (no weights file is read, nothing is downloaded), the ``metrics`` stage on the tiny
run, and ``pipeline metrics``."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mguit.memory import ClassAwareMemory
from pipeline.cli import main
from pipeline.formats.common import Box
from pipeline.metrics import diversity, inception, suite
from pipeline.metrics.ceilings import NOT_CONFIGURED
from pipeline.metrics.errors import MetricsError
from pipeline.metrics.images import ImageItem, ImageSet, batches, read_image_set
from pipeline.metrics.read_selectivity import read_selectivity
from pipeline.metrics.style_distance import (frechet_distance, gaussian, srgb_to_lab,
                                             style_distance)

CPU = torch.device("cpu")

# lpips builds its trunk with torchvision's deprecated alexnet(pretrained=False).
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated since 0.13:UserWarning")


class SmallFeatureNet(nn.Module):
    """A random stand-in for Inception: uint8 (B, 3, H, W) -> (B, 6) features."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float() / 255)).mean(dim=(2, 3))


class SmallClassifier(nn.Module):
    """A random classifier over 4 classes for float (B, 3, H, W) in [0, 1] (TorchScript-able)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20 * self.conv(x).mean(dim=(2, 3))


def write_images(folder, count, seed, size=(24, 16)):
    """``count`` noise PNGs of ``size`` (w, h) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def features_of(image_set: ImageSet, net) -> torch.Tensor:
    (out,) = inception.extract((x for _, x in batches(image_set.items, 4)), [net], CPU)
    return out


def shuffled(image_set: ImageSet, seed: int = 3) -> ImageSet:
    order = np.random.default_rng(seed).permutation(len(image_set.items))
    return replace(image_set, items=tuple(image_set.items[i] for i in order))


# ------------------------------------------------------------------ FID, KID

def test_fid_with_small_random_feature_net_is_zero_for_identical_sets(tmp_path):
    net = SmallFeatureNet()
    a = read_image_set(write_images(tmp_path / "a", 12, seed=0))
    b = read_image_set(write_images(tmp_path / "b", 12, seed=1, size=(24, 16)))
    fa = features_of(a, net)
    assert fa.shape == (12, 6) and fa.dtype == torch.float64
    assert abs(inception.frechet_distance(fa, fa.clone())) < 1e-8
    assert inception.frechet_distance(fa, features_of(b, net) + 0.5) > 1.0


def test_fid_and_kid_with_small_random_feature_net_do_not_depend_on_image_order(tmp_path):
    net = SmallFeatureNet()
    real = read_image_set(write_images(tmp_path / "real", 8, seed=0))
    fake = read_image_set(write_images(tmp_path / "fake", 8, seed=1))
    fr, ff = features_of(real, net), features_of(fake, net)
    fr2, ff2 = features_of(shuffled(real), net), features_of(shuffled(fake), net)
    assert not torch.equal(fr, fr2)
    assert inception.frechet_distance(fr2, ff2) == pytest.approx(
        inception.frechet_distance(fr, ff), rel=1e-9)
    # With subsets of every image, KID's random subsets are permutations: order-free too.
    kid = inception.kernel_distance(fr, ff, subset_size=1000, subsets=5, seed=0)
    assert kid["subset_size"] == 8 and kid["subsets"] == 5      # capped at the 8 images
    kid2 = inception.kernel_distance(fr2, ff2, subset_size=8, subsets=5, seed=0)
    assert kid2["mean"] == pytest.approx(kid["mean"], rel=1e-9, abs=1e-15)


# ------------------------------------------------------------------ IS, CIS

def test_is_of_a_classifier_that_always_outputs_the_same_class_is_one():
    logits = torch.zeros(20, 5, dtype=torch.float64)
    logits[:, 2] = 30.0
    score = inception.inception_score(logits, splits=1)
    assert score["mean"] == pytest.approx(1.0, abs=1e-9)
    assert score["std"] == 0.0 and score["splits"] == 1


def test_is_of_a_confident_classifier_spread_evenly_over_n_classes_is_n():
    n = 5
    logits = 40.0 * torch.eye(n, dtype=torch.float64).repeat(8, 1)    # 40 images, 8 per class
    assert inception.inception_score(logits, splits=1)["mean"] == pytest.approx(n, rel=1e-6)
    # Splits are capped so that each holds 10 images: 40 images -> 4 splits at most.
    assert inception.inception_score(logits, splits=10, seed=0)["splits"] == 4


def test_cis_matches_a_hand_computation_on_a_tiny_example():
    groups = [torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]),
              torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])]

    def by_hand(logits):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        marginal = p.mean(axis=0)
        return math.exp(np.mean(np.sum(p * np.log(p / marginal), axis=1)))

    expected = [by_hand(g.numpy().astype(np.float64)) for g in groups]
    assert expected[1] == pytest.approx(1.0)          # identical translations: no diversity
    cis = inception.conditional_inception_score([g.double() for g in groups])
    assert cis["mean"] == pytest.approx(np.mean(expected), rel=1e-9)
    assert cis["std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-9)
    assert (cis["inputs"], cis["samples"]) == (2, 3)


# ------------------------------------------------------------------ LPIPS

@pytest.fixture(scope="module")
def random_lpips():
    """LPIPS with a random AlexNet trunk and random linear layers (pretrained=False), made
    non-negative like the calibrated ones, so that distances are >= 0."""
    torch.manual_seed(0)
    net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        for lin in net.lins:
            lin.model[-1].weight.abs_()
    return net


def test_lpips_with_random_weights_is_zero_for_identical_images_and_positive_for_samples(
        random_lpips):
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (3, 40, 48), np.uint8))
    same = image.expand(3, -1, -1, -1).clone()
    assert diversity.pair_distances(random_lpips, same, CPU).abs().max() < 1e-7
    different = torch.from_numpy(rng.integers(0, 256, (4, 3, 40, 48), np.uint8))
    distances = diversity.pair_distances(random_lpips, different, CPU, batch_size=4)
    assert distances.shape == (6,) and (distances > 0).all()            # all 4 * 3 / 2 pairs
    summary = diversity.diversity_summary([distances, torch.zeros(6, dtype=torch.float64)], 4)
    assert summary["value"] == pytest.approx(float(distances.mean()) / 2)
    assert (summary["inputs"], summary["samples"], summary["pairs"]) == (2, 4, 12)


def test_load_lpips_takes_the_trunk_from_a_torchvision_alexnet_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(0)
    alexnet = torchvision.models.alexnet(weights=None)
    torch.save(alexnet.state_dict(), tmp_path / "alexnet.pth")
    net = diversity.load_lpips(tmp_path / "alexnet.pth", CPU)
    trunk = net.net.state_dict()
    assert torch.equal(trunk["slice2.3.weight"], alexnet.features[3].weight)
    assert torch.equal(trunk["slice5.10.bias"], alexnet.features[10].bias)
    # The calibrated linear layers are the ones lpips ships (a file in the package).
    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    shipped = torch.load(linear, map_location="cpu", weights_only=True)
    for i, lin in enumerate(net.lins):
        assert torch.equal(lin.model[1].weight, shipped[f"lin{i}.model.1.weight"])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MetricsError, match="not a torchvision AlexNet state dict"):
        diversity.load_lpips(tmp_path / "other.pth", CPU)


# ------------------------------------------------------------------ style distance

def test_lab_of_white_black_and_red_matches_known_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-6)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.01)


def test_frechet_distance_of_gaussians_matches_the_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([1.0, 2.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 3.0])
    s1, s2 = np.diag([4.0, 1.0, 9.0, 0.0]), np.diag([1.0, 1.0, 1.0, 4.0])
    # |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2 = 14 + (1 + 0 + 4 + 4)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(23.0)


def _constant_set(folder, colours: dict[str, tuple[int, int, int]]) -> ImageSet:
    """One 20 x 10 image per class, filled with the class's colour, one box inside it."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for c, colour in colours.items():
        path = folder / f"{c}.png"
        Image.new("RGB", (20, 10), colour).save(path)
        items.append(ImageItem(path, 20, 10, (Box(2.5, 1.0, 12.0, 8.6, c),), group=str(path)))
    return ImageSet(folder, tuple(items), tuple(colours))


def test_style_distance_of_constant_colour_boxes_is_the_squared_distance_of_lab_means(tmp_path):
    """Flat boxes are point masses (zero gradient, zero covariance): the Fréchet distance is
    the squared Euclidean distance of their Lab colours."""
    white, black, red = (255, 255, 255), (0, 0, 0), (255, 0, 0)
    translated = _constant_set(tmp_path / "translated", {"car": red, "person": white})
    target = _constant_set(tmp_path / "target", {"car": white, "person": white})
    source = _constant_set(tmp_path / "source", {"car": black, "person": red})
    result = style_distance(translated, target, source, ["car", "person", "truck"],
                            pixels_per_box=16)
    red_to_white = 46.76 ** 2 + 80.09 ** 2 + 67.20 ** 2
    car, person = result["per_class"]["car"], result["per_class"]["person"]
    assert car["translated"] == pytest.approx(red_to_white, rel=1e-3)
    assert car["source"] == pytest.approx(100.0 ** 2, rel=1e-9)
    assert person["translated"] == pytest.approx(0.0, abs=1e-9)
    assert person["source"] == pytest.approx(red_to_white, rel=1e-3)
    assert (car["boxes_translated"], car["boxes_source"], car["boxes_target"]) == (1, 1, 1)
    truck = result["per_class"]["truck"]
    assert truck["translated"] is None and truck["boxes_target"] == 0
    assert result["classes_compared"] == ["car", "person"]
    assert result["mean"]["translated"] == pytest.approx(car["translated"] / 2)


def test_style_distance_is_zero_for_identical_sets_and_free_of_image_order(tmp_path):
    folder = write_images(tmp_path / "imgs", 6, seed=4, size=(40, 30))
    rng = np.random.default_rng(5)
    items = []
    for i, path in enumerate(sorted(folder.glob("*.png"))):
        boxes = tuple(Box(x, y, x + w, y + h, ("car", "person")[(i + j) % 2])
                      for j, (x, y, w, h) in enumerate(rng.uniform([0, 0, 2, 2], [30, 20, 20, 12],
                                                                   (3, 4))))
        items.append(ImageItem(path, 40, 30, boxes, group=str(path)))
    target = ImageSet(folder, tuple(items), ("car", "person"))
    other = ImageSet(folder, tuple(replace(i, boxes=tuple(Box(b.x0 + 2, b.y0, b.x1 + 2, b.y1,
                                                                  b.category) for b in i.boxes))
                                   for i in items), ("car", "person"))
    same = style_distance(target, target, other, ["car", "person"], pixels_per_box=50)
    assert same["mean"]["translated"] == pytest.approx(0.0, abs=1e-8)
    assert same["mean"]["source"] > 1.0
    again = style_distance(shuffled(target), shuffled(target, seed=9), shuffled(other),
                           ["car", "person"], pixels_per_box=50)
    assert again["per_class"] == same["per_class"]


def test_gaussian_of_one_pixel_is_a_point_mass():
    mean, cov = gaussian(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert mean.tolist() == [1, 2, 3, 4] and not cov.any()


# ------------------------------------------------------------------ the stage

@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A writable copy of the tiny run: ``(config_path, runs_dir)``."""
    config, run_dir = tiny_run
    shutil.copytree(run_dir, tmp_path / "runs" / run_dir.name)
    return config, tmp_path / "runs"


def test_metrics_stage_without_weights_writes_style_distance_and_skips_the_rest(run_copy,
                                                                               caplog):
    config, runs = run_copy
    assert main(["run", str(config), "--only", "metrics", f"run.dir={runs}"]) == 0
    doc = json.loads((runs / "tiny" / "eval" / "translation.json").read_text())
    source_train = json.loads((runs / "tiny" / "data" / "source_train.json").read_text())
    target_val = json.loads((runs / "tiny" / "data" / "target_val.json").read_text())
    assert doc["version"] == 1 and doc["run"] == "tiny"
    assert doc["real"] == {"split": "target_val", "images": len(target_val["images"])}
    # The tiny run translates with 2 styles per image; FID etc. use sample 0 only.
    assert doc["fake"] == {"path": "translated/annotations.json",
                           "images": len(source_train["images"])}
    assert doc["source"] == {"split": "source_train", "images": len(source_train["images"])}
    for key in ("fid", "kid", "is", "cis"):
        assert doc[key]["skipped"].startswith("metrics.inception_weights is not set")
    assert doc["lpips_diversity"]["skipped"].startswith("metrics.lpips_weights is not set")
    assert "alexnet-owt-7be5be79.pth" in doc["lpips_diversity"]["skipped"]
    sd = doc["style_distance"]
    assert set(sd["per_class"]) == {"person", "car", "truck", "bicycle"}
    compared = sd["classes_compared"]
    assert compared and all(sd["per_class"][c]["translated"] >= 0 and
                            sd["per_class"][c]["source"] >= 0 for c in compared)
    assert sd["mean"]["translated"] == pytest.approx(
        np.mean([sd["per_class"][c]["translated"] for c in compared]))
    assert "Frechet distance" in sd["definition"]
    rs = doc["read_selectivity"]
    # Over the whole translated split (metrics.selectivity_images caps it, default 1000).
    assert (rs["split"], rs["inputs"]) == ("source_train", len(source_train["images"]))
    assert set(rs["per_class"]) == {"person", "car", "truck", "bicycle", "background"}
    assert sum(e["chance"] for e in rs["per_class"].values()) == pytest.approx(1.0)
    assert rs["per_class"]["background"]["pixels"] > 0
    for e in rs["per_class"].values():
        assert e["read_mass"] is None or 0 <= e["read_mass"] <= 1
    for e in rs["per_class"].values():
        assert e["nearest_accuracy"] is None or 0 <= e["nearest_accuracy"] <= 1
        assert e["probe_accuracy"] is None or 0 <= e["probe_accuracy"] <= 1
    # The tiny run names no perfect translations: no ceilings, and the summary says why.
    assert doc["ceilings"] == {"skipped": NOT_CONFIGURED}
    assert "ceilings skipped: data.source.perfect_translations is not set" in caplog.text
    # The weight-free figures run without any weight file.
    mm = doc["multimodality"]
    assert mm["samples"] >= 2 and mm["inputs"] > 0 and mm["objects"] >= 0
    assert len(mm["style_distance_per_sample"]) == mm["samples"]
    ec = doc["edge_correlation"]
    assert ec["pairs"] == len(source_train["images"]) and -1 <= ec["whole"] <= 1
    assert "metrics: fid skipped: metrics.inception_weights is not set" in caplog.text
    assert "style distance to the target" in caplog.text
    assert "edge correlation source vs translated" in caplog.text
    caplog.clear()
    assert main(["run", str(config), "--only", "metrics", f"run.dir={runs}"]) == 0
    assert "stage metrics: up to date" in caplog.text


def test_metrics_stage_with_small_random_networks_computes_every_metric(run_copy,
                                                                        monkeypatch):
    """The stage's whole path, translator samples included, with small random networks in
    place of the weight files."""
    config, runs = run_copy
    networks = suite.Networks(features=SmallFeatureNet(), classifier=SmallClassifier(),
                              lpips=lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True,
                                                verbose=False).eval())
    classifier = networks.classifier
    networks.classifier = lambda x: classifier(x.float() / 255)
    monkeypatch.setattr(suite, "load_networks", lambda *args, **kwargs: networks)
    assert main(["run", str(config), "--only", "metrics", f"run.dir={runs}",
                 "metrics.diversity_images=2", "metrics.diversity_samples=3",
                 "metrics.diversity_split=source_val"]) == 0
    doc = json.loads((runs / "tiny" / "eval" / "translation.json").read_text())
    assert not [k for k in suite.METRIC_KEYS if "skipped" in doc[k]]
    assert math.isfinite(doc["fid"]["value"])
    assert doc["kid"]["subset_size"] == min(doc["real"]["images"], doc["fake"]["images"])
    assert doc["is"]["mean"] >= 1.0 - 1e-9
    assert doc["lpips_diversity"] | {"value": 0} == {
        "value": 0, "inputs": 2, "samples": 3, "pairs": 6, "split": "source_val",
        "pairing": "all pairs of samples of the same input"}
    assert (doc["cis"]["inputs"], doc["cis"]["samples"]) == (2, 3)


def test_metrics_stage_with_a_weights_path_that_does_not_exist_fails_naming_the_key(
        run_copy, tmp_path, caplog):
    config, runs = run_copy
    missing = tmp_path / "nowhere" / "pt_inception.pth"
    assert main(["run", str(config), "--only", "metrics", f"run.dir={runs}",
                 f"metrics.inception_weights={missing}"]) == 1
    assert f"metrics.inception_weights = {missing}: no such file" in caplog.text
    assert not (runs / "tiny" / "eval" / "translation.json").exists()


# ------------------------------------------------------------------ pipeline metrics

def test_pipeline_metrics_on_two_folders_with_a_small_scripted_classifier(tmp_path, caplog):
    real = write_images(tmp_path / "real", 6, seed=0)
    write_images(tmp_path / "fake" / "image_2", 12, seed=1)
    classifier = tmp_path / "classifier.pt"
    torch.jit.save(torch.jit.script(SmallClassifier()), str(classifier))
    out = tmp_path / "out" / "metrics.json"
    out.parent.mkdir()
    assert main(["metrics", "--real", str(real), "--fake", str(tmp_path / "fake"),
                 "--classifier", str(classifier), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["real"] == {"path": str(real), "images": 6}
    assert doc["fake"]["images"] == 12
    assert doc["is"]["mean"] >= 1.0 and doc["is"]["splits"] == 1
    assert doc["fid"]["skipped"].startswith("--inception-weights is not set")
    assert "needs boxes" in doc["style_distance"]["skipped"]
    assert "several style samples per input" in doc["cis"]["skipped"]


def test_pipeline_metrics_on_run_manifests_computes_the_style_distance_without_weights(
        tiny_run, capsys):
    _, run_dir = tiny_run
    assert main(["metrics", "--real", str(run_dir / "data" / "target_val.json"),
                 "--fake", str(run_dir / "translated" / "annotations.json"),
                 "--source", str(run_dir / "data" / "source_train.json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["style_distance"]["classes_compared"]
    assert doc["source"]["images"] == doc["fake"]["images"]
    assert doc["lpips_diversity"]["skipped"].startswith("--lpips-weights is not set")
    # The translate output holds 2 styles per image: the weight-free figures use them.
    assert doc["multimodality"]["samples"] == 2
    assert doc["multimodality"]["inputs"] == doc["fake"]["images"]
    assert doc["edge_correlation"]["pairs"] == doc["fake"]["images"]


def test_pipeline_metrics_without_source_skips_the_edge_correlation(tiny_run, capsys):
    _, run_dir = tiny_run
    assert main(["metrics", "--real", str(run_dir / "data" / "target_val.json"),
                 "--fake", str(run_dir / "translated" / "annotations.json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["edge_correlation"]["skipped"].startswith("the edge correlation needs")


def test_pipeline_metrics_on_folders_without_weights_gives_the_image_statistics(
        tmp_path, capsys, caplog):
    real = write_images(tmp_path / "real", 3, seed=0)
    fake = write_images(tmp_path / "fake", 3, seed=1)
    assert main(["metrics", "--real", str(real), "--fake", str(fake)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fid"]["skipped"].startswith("--inception-weights is not set")
    assert "--inception-weights" in caplog.text
    stats = doc["image_statistics"]
    assert stats["translated"]["images"] == stats["target"]["images"] == 3
    assert stats["translated"]["distance"] > 0 and stats["source"] is None


@pytest.mark.parametrize("problem, message", [
    ("missing", "does not exist"),
    ("empty", "holds no images"),
    ("text", "is neither a folder of images nor a COCO manifest"),
    ("bad_json", "is not valid JSON"),
])
def test_pipeline_metrics_with_bad_inputs_exits_1_naming_the_path(tmp_path, caplog, problem,
                                                                 message):
    fake = write_images(tmp_path / "fake", 2, seed=1)
    real = tmp_path / {"missing": "nowhere", "empty": "empty", "text": "a.txt",
                       "bad_json": "m.json"}[problem]
    if problem == "empty":
        real.mkdir()
    elif problem == "text":
        real.write_text("x")
    elif problem == "bad_json":
        real.write_text("{")
    assert main(["metrics", "--real", str(real), "--fake", str(fake)]) == 1
    assert str(real) in caplog.text and message in caplog.text


# ------------------------------------------------------------------ memory read selectivity

def hand_made_memory(variant: str = "class_aware") -> ClassAwareMemory:
    """Three items in 2-d: person (1, 0), car (0, 1), background (-1, 0)."""
    memory = ClassAwareMemory(2, {"person": 1, "car": 1, "background": 1}, variant=variant)
    memory.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    return memory


def test_memory_read_statistics_match_eq_2_by_hand():
    memory = hand_made_memory()
    # Pixel 0 lies on the person key, pixel 1 on the car key, pixel 2 (background) on the car
    # key too: cosines (1, 0, -1), (0, 1, 0), (0, 1, 0).
    content = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]).view(1, 2, 1, 3)
    mask = torch.tensor([[[0, 1, 2]]])
    stats = memory.read_statistics(content, mask)
    e = math.e
    assert stats["own_mass"].tolist() == pytest.approx([e / (e + 1 + 1 / e), e / (e + 2),
                                                        1 / (e + 2)])
    # The background pixel's nearest key is the car's: wrong; the other two are right.
    assert stats["nearest_correct"].tolist() == [1, 1, 0]
    assert stats["pixels"].tolist() == [1, 1, 1]


def test_read_selectivity_is_skipped_for_a_single_memory():
    model = nn.Module()
    model.memory = hand_made_memory("single")
    result = read_selectivity(model, [], 0, torch.device("cpu"))
    assert result["skipped"].startswith("single memory")
