"""COCO manifests (write -> read round trip, checks) and the generic COCO reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.formats.coco import read_coco, read_manifest, write_manifest
from pipeline.formats.common import BadInputLog, Box, DatasetError, ImageRecord

CLASSES = ["person", "car", "truck", "bicycle"]  # not sorted: ids follow this order


def records(root: Path) -> list[ImageRecord]:
    return [
        ImageRecord(
            path=root / "image_2" / "000000.png",
            file_name="image_2/000000.png",
            width=200,
            height=100,
            boxes=[Box(58.01, 17.33, 114.12, 60.12, "car"), Box(10.5, 20.25, 30.75, 90, "person")],
            extra={"frame_id": "000000", "label_path": root / "label_2" / "000000.txt"},
        ),
        ImageRecord(
            path=root / "image_2" / "000001.png",
            file_name="image_2/000001.png",
            width=200,
            height=100,
            boxes=[Box(140, 30, 170, 80, "bicycle")],
            extra={"frame_id": "000001"},
        ),
        ImageRecord(
            path=root / "image_2" / "000002.png",
            file_name="image_2/000002.png",
            width=200,
            height=100,
        ),
    ]


@pytest.fixture
def manifest_path(tmp_path):
    path = tmp_path / "source_train.json"
    root = tmp_path / "kitti"
    write_manifest(path, iter(records(root)), CLASSES, root, info={"split": "train"})
    return path


def edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return path


# -- manifests -----------------------------------------------------------------------------


def test_write_manifest_returns_counts(tmp_path):
    counts = write_manifest(tmp_path / "m.json", records(tmp_path), CLASSES, tmp_path)
    assert counts == {
        "images": 3,
        "annotations": 3,
        "boxes_per_class": {"person": 1, "car": 1, "truck": 0, "bicycle": 1},
    }


def test_manifest_round_trip(manifest_path, tmp_path):
    manifest = read_manifest(manifest_path)
    root = tmp_path / "kitti"
    assert manifest.image_root == root
    assert manifest.info == {"split": "train", "image_root": root.as_posix()}
    assert manifest.classes == CLASSES
    assert manifest.categories[1] == {"id": 2, "name": "car"}
    assert [img["id"] for img in manifest.images] == [1, 2, 3]
    first = manifest.images[0]
    assert first["file_name"] == "image_2/000000.png"
    assert manifest.image_path(first) == root / "image_2" / "000000.png"
    assert (first["width"], first["height"]) == (200, 100)
    assert first["frame_id"] == "000000"
    assert first["label_path"] == str(root / "label_2" / "000000.txt")
    grouped = manifest.annotations_by_image()
    assert grouped[3] == []
    car, person = grouped[1]
    assert car["category_id"] == 2 and person["category_id"] == 1
    assert car["bbox"] == [58.01, 17.33, 56.11, 42.79]  # float noise rounded away
    assert car["area"] == round(56.11 * 42.79, 4)
    assert car["iscrowd"] == 0
    assert [a["id"] for a in manifest.annotations] == [1, 2, 3]


def test_manifest_reads_back_as_the_same_records(manifest_path, tmp_path):
    root = tmp_path / "kitti"
    for record in records(root):
        record.path.parent.mkdir(parents=True, exist_ok=True)
        record.path.write_bytes(b"")  # read_coco only checks that images exist
    identity = {name: name for name in CLASSES}
    back = list(read_coco(manifest_path, root, class_map=identity, log=BadInputLog()))
    for original, copy in zip(records(root), back, strict=True):
        assert copy.path == original.path
        assert (copy.width, copy.height) == (original.width, original.height)
        assert [b.category for b in copy.boxes] == [b.category for b in original.boxes]
        for a, b in zip(copy.boxes, original.boxes):
            assert (a.x0, a.y0, a.x1, a.y1) == pytest.approx((b.x0, b.y0, b.x1, b.y1), abs=1e-4)


def test_manifest_is_valid_for_pycocotools(manifest_path):
    from pycocotools.coco import COCO

    coco = COCO(str(manifest_path))
    assert coco.getCatIds(catNms=["truck"]) == [3]
    assert len(coco.getAnnIds(imgIds=[1])) == 2


def test_manifest_write_is_atomic_and_deterministic(tmp_path):
    path = tmp_path / "m.json"
    write_manifest(path, records(tmp_path), CLASSES, tmp_path)
    first = path.read_bytes()
    write_manifest(path, records(tmp_path), CLASSES, tmp_path)
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_image_outside_the_root_gets_an_absolute_file_name(tmp_path):
    record = ImageRecord(tmp_path / "elsewhere" / "a.png", "a.png", width=4, height=4)
    write_manifest(tmp_path / "m.json", [record], CLASSES, tmp_path / "root")
    manifest = read_manifest(tmp_path / "m.json")
    assert manifest.images[0]["file_name"] == (tmp_path / "elsewhere" / "a.png").as_posix()
    assert manifest.image_path(manifest.images[0]) == tmp_path / "elsewhere" / "a.png"


def test_relative_image_root_is_taken_from_the_manifest_folder(manifest_path, tmp_path):
    edit(manifest_path, lambda d: d["info"].update(image_root="kitti"))
    assert read_manifest(manifest_path).image_root == tmp_path / "kitti"
    assert read_manifest(manifest_path, image_root="/data/x").image_root == Path("/data/x")


def test_box_of_an_unknown_class_is_refused(tmp_path):
    record = ImageRecord(tmp_path / "a.png", "a.png", 9, 9, boxes=[Box(1, 1, 5, 5, "pedestrian")])
    with pytest.raises(ValueError, match="box class 'pedestrian' is not one of the classes"):
        write_manifest(tmp_path / "m.json", [record], CLASSES, tmp_path)
    assert not (tmp_path / "m.json").exists()


def test_unserialisable_extra_is_refused(tmp_path):
    record = ImageRecord(tmp_path / "a.png", "a.png", 9, 9, extra={"when": object()})
    with pytest.raises(TypeError, match="extra field 'when' is not JSON-serialisable"):
        write_manifest(tmp_path / "m.json", [record], CLASSES, tmp_path)


BAD_MANIFESTS = {
    "short bbox": (
        lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
        "annotations[1]: 'bbox' must be 4 finite numbers [x, y, width, height], got [1, 2, 3]",
    ),
    "text in bbox": (
        lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]),
        "annotations[0]: 'bbox' must be 4 finite numbers",
    ),
    "unknown category": (
        lambda d: d["annotations"][2].update(category_id=9),
        "annotations[2]: category_id 9 is not in 'categories' (ids there: [1, 2, 3, 4])",
    ),
    "unknown image": (
        lambda d: d["annotations"][0].update(image_id=7),
        "annotations[0]: image_id 7 is not in 'images'",
    ),
    "duplicate image id": (
        lambda d: d["images"][2].update(id=1),
        "images[2]: image id 1 appears twice",
    ),
    "no width": (lambda d: d["images"][0].pop("width"), "images[0]: 'width' is missing"),
    "zero height": (
        lambda d: d["images"][0].update(height=0),
        "images[0]: 'height' must be positive",
    ),
    "text category id": (
        lambda d: d["categories"][0].update(id="1"),
        "categories[0]: 'id' must be of type int, got '1'",
    ),
    "no images": (lambda d: d.pop("images"), "'images' is missing or not a list"),
    "no image root": (lambda d: d["info"].pop("image_root"), "has no info.image_root"),
}


@pytest.mark.parametrize(("change", "message"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
def test_bad_manifest_names_file_and_entry(manifest_path, change, message):
    edit(manifest_path, change)
    with pytest.raises(DatasetError) as err:
        read_manifest(manifest_path)
    assert str(err.value).startswith(f"{manifest_path}: ")
    assert message in str(err.value)


def test_invalid_json_names_the_line(manifest_path):
    manifest_path.write_text('{\n  "images": [],\n  "annotations": [,]\n}\n')
    with pytest.raises(DatasetError) as err:
        read_manifest(manifest_path)
    assert str(err.value).startswith(f"{manifest_path}:3: is not valid JSON")


def test_missing_manifest(tmp_path):
    with pytest.raises(DatasetError, match="m.json: manifest does not exist"):
        read_manifest(tmp_path / "m.json")


# -- any COCO dataset ----------------------------------------------------------------------


@pytest.fixture
def coco(tmp_path, make_png):
    """An INIT-like COCO file with its own category names and ids, and two 40x30 images."""
    root = tmp_path / "init"
    make_png(root / "sunny" / "a.png", 40, 30)
    make_png(root / "sunny" / "b.png", 40, 30)
    data = {
        "images": [
            {"id": 10, "file_name": "sunny/a.png", "width": 40, "height": 30},
            {"id": 11, "file_name": "sunny/b.png", "width": 40, "height": 30},
        ],
        "categories": [
            {"id": 3, "name": "pedestrian"},
            {"id": 7, "name": "car"},
            {"id": 8, "name": "traffic sign"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [30, 10, 20, 8]},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
            {"id": 4, "image_id": 11, "category_id": 8, "bbox": [5, 5, 4, 4]},
        ],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


COCO_MAP = {"pedestrian": "person", "car": "car", "traffic sign": None}


def read(path, **kwargs):
    kwargs.setdefault("class_map", COCO_MAP)
    kwargs.setdefault("log", BadInputLog())
    return list(read_coco(path, path.parent, **kwargs))


def test_read_coco_maps_names_converts_boxes_and_skips_crowds(coco):
    log = BadInputLog()
    a, b = read(coco, log=log)
    assert a.path == coco.parent / "sunny" / "a.png"
    assert a.file_name == "sunny/a.png"
    assert (a.width, a.height) == (40, 30)
    assert a.extra == {"coco_image_id": 10}
    # [30, 10, 20, 8] reaches x = 50 in a 40-wide image: clipped.
    assert a.boxes == [Box(2, 3, 12, 8, "car"), Box(30, 10, 40, 18, "person")]
    assert b.boxes == []
    assert log.counts == {"crowd annotation ignored": 1, "box clipped": 1}
    assert "annotations[2]" in log.examples["crowd annotation ignored"][0]


def test_read_coco_unknown_category_names_the_annotation(coco):
    with pytest.raises(DatasetError) as err:
        read(coco, class_map={"car": "car", "traffic sign": None})
    assert f"{coco}: annotations[1]: unknown label 'pedestrian'" in str(err.value)


def test_read_coco_bad_box_error(coco):
    with pytest.raises(DatasetError, match=r"annotations\[1\]: box \[30, 10, 50, 18\]"):
        read(coco, on_bad_box="error")


def test_read_coco_missing_image(coco):
    (coco.parent / "sunny" / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"b\.png: image \(id 11 of .*\) does not exist"):
        read(coco)


def test_read_coco_size_checked_only_with_verify_images(coco):
    edit(coco, lambda d: d["images"][1].update(width=80))
    assert read(coco)[1].width == 80
    with pytest.raises(DatasetError) as err:
        read(coco, verify_images=True)
    assert str(err.value).startswith(f"{coco}: image 'sunny/b.png' (id 11) is 40x30")
    assert "says 80x30" in str(err.value)


def test_read_coco_non_image_file(coco):
    (coco.parent / "sunny" / "a.png").write_text("not an image")
    with pytest.raises(DatasetError, match=r"a\.png: image cannot be read"):
        read(coco, verify_images=True)
