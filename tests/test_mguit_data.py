"""mguit.data: class masks, the unpaired dataset and the iteration sampler; and the records the
train_translator stage builds for it from a manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_collate

from detection.errors import DetectionError
from detection.manifest import load_manifest
from mguit.data import (
    IterationSampler,
    UnpairedBoxDataset,
    class_mask,
    object_mask,
    iteration_indices,
    resized_size,
)
from pipeline.stages.train_translator import box_images

GROUPS = ["person", "car", "truck", "bicycle", "background"]
GROUP_INDEX = {name: i for i, name in enumerate(GROUPS)}
PERSON, CAR, BACKGROUND = GROUP_INDEX["person"], GROUP_INDEX["car"], GROUP_INDEX["background"]


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def write_manifest(
    path: Path,
    images: list[tuple[str, int, int, list[tuple[str, float, float, float, float]]]],
    image_root: Path | str | None,
    classes: tuple[str, ...] = ("person", "car", "truck", "bicycle"),
) -> Path:
    """``images``: ``(file_name, width, height, [(class, x, y, w, h), ...])``."""
    ids = {name: i for i, name in enumerate(classes, start=1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict = {
        "info": {} if image_root is None else {"image_root": str(image_root)},
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": name} for name, i in ids.items()],
    }
    for image_id, (file_name, width, height, boxes) in enumerate(images, start=1):
        document["images"].append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height}
        )
        for name, x, y, w, h in boxes:
            document["annotations"].append({
                "id": len(document["annotations"]) + 1, "image_id": image_id,
                "category_id": ids[name], "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            })
    path.write_text(json.dumps(document))
    return path


def uniform_domain(root: Path, name: str, count: int, width: int = 30, height: int = 20) -> Path:
    """``count`` uniform images whose grey level encodes their index: 20 * (index + 1)."""
    images = []
    for index in range(count):
        file_name = f"{name}/{index}.png"
        write_png(root / file_name, np.full((height, width, 3), 20 * (index + 1)))
        images.append((file_name, width, height, [("car", 2, 2, 5, 5)]))
    return write_manifest(root / f"{name}.json", images, root)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` float pixel values in [0, 255]."""
    return ((image.numpy().transpose(1, 2, 0) + 1.0) * 127.5).astype(np.float64)


# ---------------------------------------------------------------------------- manifests


def records(manifest: Path) -> list:
    """The stage's training records of a manifest (what the trainer is given)."""
    return box_images(load_manifest(manifest))


def test_records_resolve_paths_and_convert_boxes(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.png"
    manifest = write_manifest(
        tmp_path / "data" / "m.json",
        [("img/a.png", 40, 30, [("car", 1, 2, 10, 5), ("person", 0.5, 0.25, 0, 3)]),
         (str(absolute), 20, 10, [])],
        image_root="../root",  # relative: taken relative to the manifest's folder
    )
    first, second = records(manifest)
    assert first.path.resolve() == (tmp_path / "root" / "img" / "a.png").resolve()
    assert (first.width, first.height) == (40, 30)
    np.testing.assert_array_equal(first.boxes, [[1, 2, 11, 7], [0.5, 0.25, 0.5, 3.25]])
    assert first.labels == ["car", "person"]
    assert second.path == absolute
    assert second.boxes.shape == (0, 4) and second.labels == []


def _break_annotation(document: dict) -> None:
    del document["annotations"][0]["bbox"]


def _break_image(document: dict) -> None:
    del document["images"][0]["width"]


def _no_root(document: dict) -> None:
    document["info"] = {}


def _negative_box(document: dict) -> None:
    document["annotations"][0]["bbox"] = [1, 1, -2, 3]


@pytest.mark.parametrize("damage, message", [
    (_break_annotation, "annotations[0]: 'bbox' is missing"),
    (_break_image, "images[0]: 'width' is missing"),
    (_no_root, "image_root"),
    (_negative_box, "width, height >= 0"),
])
def test_bad_manifests_are_refused_naming_the_file_and_entry(tmp_path, damage, message):
    path = write_manifest(tmp_path / "m.json", [("a.png", 8, 8, [("car", 1, 1, 2, 2)])], tmp_path)
    document = json.loads(path.read_text())
    damage(document)
    path.write_text(json.dumps(document))
    with pytest.raises(DetectionError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        load_manifest(path)


def test_missing_or_invalid_manifest_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(DetectionError, match=re.escape(str(missing)) + ".*does not exist"):
        load_manifest(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DetectionError, match=re.escape(str(broken))):
        load_manifest(broken)


# ---------------------------------------------------------------------------- class masks


def test_class_mask_pixel_centres_and_half_open_edges():
    # centres 0.5 and 1.5 lie in [0.4, 1.6): columns 0 and 1; rows: centres 1.5, 2.5 in [1, 3).
    mask = class_mask(5, 6, [[0.4, 1.0, 1.6, 3.0]], ["car"], GROUP_INDEX, BACKGROUND)
    expected = np.full((5, 6), BACKGROUND)
    expected[1:3, 0:2] = CAR
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == np.int64 and mask.shape == (5, 6)
    # [0.5, 1.5): centre 0.5 in, 1.5 out; two boxes sharing the edge x = 1.5 share no pixel.
    mask = class_mask(1, 4, [[0.5, 0, 1.5, 1], [1.5, 0, 3.5, 1]], ["car", "person"],
                      GROUP_INDEX, BACKGROUND)
    np.testing.assert_array_equal(mask[0], [CAR, PERSON, PERSON, BACKGROUND])


@pytest.mark.parametrize("box, rows, cols", [
    ([3.2, 4.1, 3.4, 4.3], [4], [3]),            # inside one pixel, off its centre
    ([5.0, 2.0, 5.0, 2.0], [2], [5]),            # a point on a pixel corner: the pixel below-right
    ([0.6, 1.0, 1.4, 2.0], [1], [1]),            # 0.8 wide between two centres: centre 1.0 -> col 1
    ([1.0, 5.6, 8.0, 5.9], [5], list(range(1, 8))),  # thin in y only: full extent in x
])
def test_sub_pixel_box_marks_the_pixel_of_its_centre(box, rows, cols):
    mask = class_mask(10, 10, [box], ["person"], GROUP_INDEX, BACKGROUND)
    marked_rows, marked_cols = np.nonzero(mask == PERSON)
    assert sorted(set(marked_rows.tolist())) == rows
    assert sorted(set(marked_cols.tolist())) == cols
    assert (mask == PERSON).sum() == len(rows) * len(cols)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_overlap_smaller_box_wins_whatever_the_order(order):
    boxes = [[0, 0, 8, 6], [5, 2, 10, 4]]  # car 48 px, person 10 px, overlapping in x 5..8
    labels = ["car", "person"]
    mask = class_mask(8, 12, [boxes[i] for i in order], [labels[i] for i in order],
                      GROUP_INDEX, BACKGROUND)
    expected = np.full((8, 12), BACKGROUND)
    expected[0:6, 0:8] = CAR
    expected[2:4, 5:10] = PERSON
    np.testing.assert_array_equal(mask, expected)


def test_overlap_contained_box_keeps_all_its_pixels_and_equal_areas_go_to_the_later_box():
    mask = class_mask(10, 10, [[2, 2, 4, 4], [0, 0, 10, 10]], ["person", "truck"],
                      GROUP_INDEX, BACKGROUND)
    assert (mask == PERSON).sum() == 4 and (mask == GROUP_INDEX["truck"]).sum() == 96
    mask = class_mask(4, 4, [[0, 0, 2, 4], [1, 0, 3, 4]], ["car", "person"],
                      GROUP_INDEX, BACKGROUND)
    np.testing.assert_array_equal(mask[0], [CAR, PERSON, PERSON, BACKGROUND])
    mask = class_mask(4, 4, [[1, 0, 3, 4], [0, 0, 2, 4]], ["person", "car"],
                      GROUP_INDEX, BACKGROUND)
    np.testing.assert_array_equal(mask[0], [CAR, CAR, PERSON, BACKGROUND])


def test_mask_of_shifted_boxes_equals_window_of_full_mask():
    rng = np.random.default_rng(3)
    corners = rng.uniform(-5, 45, (30, 2, 2))
    sizes = np.where(rng.random((30, 1)) < 0.3, rng.uniform(0, 0.9, (30, 2)),
                     rng.uniform(0, 15, (30, 2)))
    boxes = np.concatenate([corners[:, 0], corners[:, 0] + sizes], axis=1)
    labels = [GROUPS[i] for i in rng.integers(0, 4, 30)]
    full = class_mask(40, 50, boxes, labels, GROUP_INDEX, BACKGROUND)
    assert len(np.unique(full)) == 5
    for top, left in [(0, 0), (7, 13), (21, 30)]:
        window = class_mask(19, 20, boxes - [left, top, left, top], labels,
                            GROUP_INDEX, BACKGROUND)
        np.testing.assert_array_equal(window, full[top:top + 19, left:left + 20])


def test_object_mask_numbers_boxes_with_the_class_masks_overlap_rule():
    boxes = [[0, 0, 8, 6], [5, 2, 10, 4], [10, 6, 12, 8]]  # car 48 px, person 10 px, car 4 px
    labels = ["car", "person", "car"]
    objects = object_mask(8, 12, boxes)
    expected = np.zeros((8, 12), np.int64)
    expected[0:6, 0:8] = 1
    expected[2:4, 5:10] = 2
    expected[6:8, 10:12] = 3
    np.testing.assert_array_equal(objects, expected)
    # Where a box's number shows, its class shows in the class mask: the same pixels.
    classes = class_mask(8, 12, boxes, labels, GROUP_INDEX, BACKGROUND)
    for number, label in enumerate(labels, start=1):
        np.testing.assert_array_equal(classes[objects == number], GROUP_INDEX[label])
    np.testing.assert_array_equal(classes[objects == 0], BACKGROUND)
    assert not object_mask(3, 3, np.zeros((0, 4))).any()


def test_class_mask_unmapped_label_and_inverted_box():
    with pytest.raises(KeyError, match="tram"):
        class_mask(4, 4, [[0, 0, 1, 1]], ["tram"], GROUP_INDEX, BACKGROUND)
    with pytest.raises(ValueError, match="x0 <= x1"):
        class_mask(4, 4, [[2, 0, 1, 1]], ["car"], GROUP_INDEX, BACKGROUND)


# ---------------------------------------------------------------------------- dataset


def two_rectangle_image(root: Path, name: str, width: int, height: int,
                        car: tuple[int, int, int, int], person: tuple[int, int, int, int]):
    """Black image with a red car rectangle and a green person rectangle (x, y, w, h)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    x, y, w, h = car
    pixels[y:y + h, x:x + w, 0] = 255
    x, y, w, h = person
    pixels[y:y + h, x:x + w, 1] = 255
    write_png(root / f"{name}.png", pixels)
    return write_manifest(root / f"{name}.json",
                          [(f"{name}.png", width, height, [("car", *car), ("person", *person)])],
                          root)


def test_crop_and_flip_keep_image_and_mask_aligned_exactly(tmp_path):
    # No resampling (short side == resize), so the mask must equal the coloured pixels exactly.
    source = two_rectangle_image(tmp_path, "s", 60, 40, car=(5, 8, 20, 25), person=(40, 3, 6, 30))
    target = two_rectangle_image(tmp_path, "t", 40, 70, car=(2, 30, 30, 10), person=(30, 5, 4, 9))
    dataset = UnpairedBoxDataset(records(source), records(target), GROUPS, resize=40, crop=24, seed=1)
    seen = {PERSON: 0, CAR: 0}
    for k in range(40):
        item = dataset[k]
        for domain in "xy":
            pixels, mask = to_uint8(item[f"image_{domain}"]), item[f"mask_{domain}"].numpy()
            np.testing.assert_array_equal(mask == CAR, pixels[..., 0] > 127)
            np.testing.assert_array_equal(mask == PERSON, pixels[..., 1] > 127)
            objects = item[f"objects_{domain}"].numpy()  # the car is box 1, the person box 2
            np.testing.assert_array_equal(objects == 1, pixels[..., 0] > 127)
            np.testing.assert_array_equal(objects == 2, pixels[..., 1] > 127)
            seen[CAR] += (mask == CAR).any()
            seen[PERSON] += (mask == PERSON).any()
    assert min(seen.values()) > 10  # the check above ran on masks that contain the classes


def test_crop_and_flip_keep_image_and_mask_aligned_after_downscaling(tmp_path):
    # 160x100 -> 80x50: scale exactly 1/2, rectangle edges at even pixels land on pixel edges.
    # A mask pixel is then >= 7/8 covered in each axis by its rectangle, a pixel outside <= 1/8
    # in one axis, so a mask shifted by one pixel fails the thresholds below.
    source = two_rectangle_image(tmp_path, "s", 160, 100, car=(20, 30, 80, 50),
                                 person=(120, 10, 20, 50))
    target = two_rectangle_image(tmp_path, "t", 100, 160, car=(10, 100, 60, 40),
                                 person=(70, 20, 10, 30))
    dataset = UnpairedBoxDataset(records(source), records(target), GROUPS, resize=50, crop=40, seed=2)
    for k in range(30):
        item = dataset[k]
        for domain in "xy":
            pixels, mask = to_uint8(item[f"image_{domain}"]), item[f"mask_{domain}"].numpy()
            for group, channel in ((CAR, 0), (PERSON, 1)):
                inside = mask == group
                assert (pixels[..., channel][inside] > 0.7 * 255).all()
                assert (pixels[..., channel][~inside] < 0.2 * 255).all()


@pytest.mark.parametrize("width, height", [(120, 40), (40, 120)])
def test_non_square_images_are_resized_to_the_short_side(tmp_path, width, height):
    assert resized_size(width, height, 20) == ((60, 20) if width > height else (20, 60))
    y, x = np.mgrid[0:height, 0:width]
    write_png(tmp_path / "ramp.png", np.stack([2 * x, 2 * y, np.zeros_like(x)], axis=-1))
    manifest = write_manifest(tmp_path / "m.json", [("ramp.png", width, height, [])], tmp_path)
    dataset = UnpairedBoxDataset(records(manifest), records(manifest), GROUPS, resize=20, crop=20, flip=False)
    for k in range(5):
        pixels = to_uint8(dataset[k]["image_x"])
        assert pixels.shape == (20, 20, 3)
        # Pixel value 2 per source pixel -> 4 per output pixel iff both axes scale by 1/2.
        # The border rows/columns are skipped: the filter is clipped there.
        assert np.median(np.diff(pixels[:, 1:-1, 0], axis=1)) == pytest.approx(4, abs=0.6)
        assert np.median(np.diff(pixels[1:-1, :, 1], axis=0)) == pytest.approx(4, abs=0.6)
        assert np.ptp(pixels[:, :, 0], axis=0).max() <= 1
        assert np.ptp(pixels[:, :, 1], axis=1).max() <= 1


def test_item_types_shapes_and_value_range(tmp_path):
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:, 20:] = 255
    write_png(tmp_path / "a.png", pixels)
    manifest = write_manifest(tmp_path / "m.json", [("a.png", 40, 30, [("car", 3, 3, 9, 9)])],
                              tmp_path)
    item = UnpairedBoxDataset(records(manifest), records(manifest), GROUPS, resize=30, crop=30)[0]
    for domain in "xy":
        image, mask = item[f"image_{domain}"], item[f"mask_{domain}"]
        assert image.dtype == torch.float32 and image.shape == (3, 30, 30)
        assert mask.dtype == torch.int64 and mask.shape == (30, 30)
        assert image.min() == -1.0 and image.max() == 1.0
        assert set(mask.unique().tolist()) == {CAR, BACKGROUND}
        assert type(item[f"index_{domain}"]) is int


def test_items_are_pure_functions_of_seed_and_index(tmp_path):
    source = uniform_domain(tmp_path, "s", 3)
    target = uniform_domain(tmp_path, "t", 4)
    rng = np.random.default_rng(0)
    write_png(tmp_path / "s/0.png", rng.integers(0, 256, (20, 30, 3)))  # texture shows crops
    make = lambda seed=5: UnpairedBoxDataset(records(source), records(target), GROUPS, resize=20, crop=12, seed=seed)
    dataset = make()
    ks = [0, 9, 1, 1000, 9, 4]  # out of order, repeated, far beyond len()
    first = [dataset[k] for k in ks]
    fresh = make()
    for k, item in zip(reversed(ks), reversed(first)):
        again = fresh[k]
        assert item.keys() == again.keys()
        for key in item:
            assert torch.equal(torch.as_tensor(item[key]), torch.as_tensor(again[key])), key
    # ...and not a constant: other seeds give other items, and every k its own augmentation
    # (k = 0, 3, 6, ... all show textured image 0 at source epochs 0..; 19 x 9 crops x 2 flips).
    other = make(seed=6)
    assert any(not torch.equal(dataset[k]["image_x"], other[k]["image_x"]) for k in range(12))
    textured = [k for k in range(300) if dataset[k]["index_x"] == 0]
    assert len({dataset[k]["image_x"].numpy().tobytes() for k in textured}) > 60


def test_each_epoch_of_a_domain_visits_every_image_once(tmp_path):
    source = uniform_domain(tmp_path, "s", 3)
    target = uniform_domain(tmp_path, "t", 5)
    dataset = UnpairedBoxDataset(records(source), records(target), GROUPS, resize=20, crop=20, seed=7)
    assert len(dataset) == 5
    orders: dict[str, list[tuple[int, ...]]] = {"x": [], "y": []}
    for domain, n in (("x", 3), ("y", 5)):
        for epoch in range(5):
            order = []
            for k in range(epoch * n, (epoch + 1) * n):
                item = dataset[k]
                index = item[f"index_{domain}"]
                order.append(index)
                # the pixels are those of the image the index names
                assert to_uint8(item[f"image_{domain}"]).mean() == pytest.approx(20 * (index + 1))
            assert sorted(order) == list(range(n))
            orders[domain].append(tuple(order))
    assert len(set(orders["x"])) > 1 and len(set(orders["y"])) > 1  # reshuffled every epoch
    # the documented permutation, so that other tools can reproduce the stream
    for k in (0, 4, 13):
        epoch = k // 5
        assert dataset[k]["index_y"] == np.random.default_rng([7, 1, epoch]).permutation(5)[k % 5]


def test_dataset_rejects_unknown_classes_and_bad_settings(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((10, 10, 3)))
    good = write_manifest(tmp_path / "good.json", [("a.png", 10, 10, [])], tmp_path)
    tram = write_manifest(tmp_path / "tram.json", [("a.png", 10, 10, [("tram", 1, 1, 2, 2)])],
                          tmp_path, classes=("car", "tram"))
    with pytest.raises(ValueError, match="target class 'tram' has no memory group"):
        UnpairedBoxDataset(records(good), records(tram), GROUPS, resize=10, crop=10)
    with pytest.raises(ValueError, match="crop"):
        UnpairedBoxDataset(records(good), records(good), GROUPS, resize=10, crop=11)
    with pytest.raises(ValueError, match="background"):
        UnpairedBoxDataset(records(good), records(good), ["car", "person", "truck", "bicycle"], resize=10, crop=10)
    with pytest.raises(IndexError):
        UnpairedBoxDataset(records(good), records(good), GROUPS, resize=10, crop=10)[-1]


def test_dataset_rejects_image_whose_size_differs_from_the_manifest(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((10, 12, 3)))
    manifest = write_manifest(tmp_path / "m.json", [("a.png", 10, 10, [])], tmp_path)
    dataset = UnpairedBoxDataset(records(manifest), records(manifest), GROUPS, resize=10, crop=10)
    with pytest.raises(ValueError, match="12x10 but its record says 10x10"):
        dataset[0]


# ---------------------------------------------------------------------------- sampler


def test_sampler_ranks_are_disjoint_and_cover_the_single_process_stream():
    take = lambda sampler, n: [k for batch, _ in zip(sampler, range(n)) for k in batch]
    rank0 = take(IterationSampler(0, 3, rank=0, world_size=2), 10)
    rank1 = take(IterationSampler(0, 3, rank=1, world_size=2), 10)
    single = take(IterationSampler(0, 3), 20)
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == single == list(range(60))
    assert iteration_indices(4, 3, rank=1, world_size=2) == [27, 28, 29]
    # resuming at iteration 6 continues the same stream
    assert take(IterationSampler(6, 3, rank=1, world_size=2), 4) == rank1[18:30]
    finite = IterationSampler(2, 2, end_iteration=5)
    assert len(finite) == 3 and list(finite) == [[4, 5], [6, 7], [8, 9]]
    with pytest.raises(ValueError, match="rank"):
        IterationSampler(0, 1, rank=2, world_size=2)


def test_dataloader_with_workers_gives_the_items_of_the_indices(tmp_path):
    source = uniform_domain(tmp_path, "s", 3)
    target = uniform_domain(tmp_path, "t", 2)
    dataset = UnpairedBoxDataset(records(source), records(target), GROUPS, resize=20, crop=16, seed=3)
    sampler = IterationSampler(5, 2, rank=1, world_size=2, end_iteration=8)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    batches = list(loader)
    assert len(batches) == 3
    for batch, indices in zip(batches, sampler):
        expected = default_collate([dataset[k] for k in indices])
        for key in expected:
            assert torch.equal(batch[key], expected[key]), key
