"""Cityscapes polygons: polygon -> box convention, folder checks, labels, bad files."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.formats.cityscapes import list_frames, polygon_to_box, read_cityscapes
from pipeline.formats.common import BadInputLog, Box, DatasetError

CLASS_MAP = {
    "person": "person",
    "car": "car",
    "truck": "truck",
    "bicycle": "bicycle",
    "rider": None,
}
FRAME = "aachen_000000_000019"


def polygons(objects, width=64, height=32):
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


@pytest.fixture
def cityscapes(tmp_path, make_png):
    """Two frames of split 'val' in two cities; images are 64x32."""
    root = tmp_path / "cityscapes"
    frames = {
        ("aachen", FRAME): [
            {"label": "car", "polygon": [[10, 5], [20, 5], [20, 15], [10, 15]]},
            {"label": "person", "polygon": [[-3, 2], [4, 2], [4, 40]]},
            {"label": "cargroup", "polygon": [[30, 5], [40, 5], [40, 15]]},
            {"label": "road", "polygon": [[0, 20], [63, 20], [63, 31]]},
            {"label": "rider", "polygon": [[5, 5], [8, 9]]},
            {"label": "truck", "polygon": [[1, 1], [9, 9]], "deleted": 1},
        ],
        ("bochum", "bochum_000000_000313"): [],
    }
    for (city, frame), objects in frames.items():
        make_png(root / "leftImg8bit" / "val" / city / f"{frame}_leftImg8bit.png", 64, 32)
        write_polygons(root, city, frame, polygons(objects))
    return root


def write_polygons(root, city, frame, data):
    path = root / "gtFine" / "val" / city / f"{frame}_gtFine_polygons.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def read(root, **kwargs):
    kwargs.setdefault("class_map", CLASS_MAP)
    kwargs.setdefault("log", BadInputLog())
    return list(read_cityscapes(root, "val", **kwargs))


# -- polygon_to_box ------------------------------------------------------------------------


def test_box_covers_the_vertex_pixels():
    # Vertices at x 10..20 and y 5..15 cover 11 pixels each way.
    assert polygon_to_box([[10, 5], [20, 5], [20, 15], [10, 15]], 64, 32) == (10, 5, 21, 16)
    assert polygon_to_box([[3, 4]], 64, 32) == (3, 4, 4, 5)
    assert polygon_to_box([[7, 30], [2, 9], [12, 17]], 64, 32) == (2, 9, 13, 31)


def test_box_is_clipped_to_the_image():
    assert polygon_to_box([[-3, 2], [4, 2], [4, 40]], 64, 32) == (0, 2, 5, 32)
    assert polygon_to_box([[60, -1], [64, 31]], 64, 32) == (60, 0, 64, 32)


def test_degenerate_polygons_give_none():
    assert polygon_to_box([], 64, 32) is None
    assert polygon_to_box([[70, 1], [80, 5]], 64, 32) is None
    assert polygon_to_box([[-9, 1], [-1, 5]], 64, 32) is None


# -- folder layout -------------------------------------------------------------------------


def test_list_frames_is_sorted_by_city(cityscapes):
    names = [p.name for p in list_frames(cityscapes, "val")]
    assert names == [f"{FRAME}_leftImg8bit.png", "bochum_000000_000313_leftImg8bit.png"]


def test_hidden_files_are_not_frames(cityscapes):
    city = cityscapes / "leftImg8bit" / "val" / "aachen"
    (city / f"._{FRAME}_leftImg8bit.png").write_bytes(b"\0\5\26\7")
    assert len(list_frames(cityscapes, "val")) == 2


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="Cityscapes root does not exist"):
        list_frames(tmp_path / "nope", "val")


def test_missing_split_folder(cityscapes):
    with pytest.raises(DatasetError, match=r"leftImg8bit/train: folder is missing"):
        list_frames(cityscapes, "train")


def test_missing_annotation_folder(cityscapes):
    (cityscapes / "gtFine").rename(cityscapes / "gtCoarse")
    with pytest.raises(DatasetError, match=r"gtFine/val: folder is missing"):
        list_frames(cityscapes, "val")


def test_no_images(cityscapes):
    for path in (cityscapes / "leftImg8bit" / "val").glob("*/*.png"):
        path.unlink()
    with pytest.raises(DatasetError, match=r"leftImg8bit/val: contains no"):
        list_frames(cityscapes, "val")


def test_image_without_polygons(cityscapes):
    next((cityscapes / "gtFine" / "val" / "bochum").iterdir()).unlink()
    with pytest.raises(DatasetError) as err:
        list_frames(cityscapes, "val")
    assert "bochum_000000_000313_leftImg8bit.png: image has no polygons file" in str(err.value)
    assert "bochum_000000_000313_gtFine_polygons.json" in str(err.value)


def test_polygons_without_image(cityscapes):
    write_polygons(cityscapes, "aachen", "aachen_000001_000019", polygons([]))
    with pytest.raises(DatasetError) as err:
        list_frames(cityscapes, "val")
    assert "aachen_000001_000019_gtFine_polygons.json: polygons file has no image" in str(
        err.value
    )


# -- records -------------------------------------------------------------------------------


def test_records(cityscapes):
    log = BadInputLog()
    first, second = read(cityscapes, log=log)
    assert first.file_name == f"leftImg8bit/val/aachen/{FRAME}_leftImg8bit.png"
    assert first.path == cityscapes / first.file_name
    assert (first.width, first.height) == (64, 32)
    assert first.extra["frame_id"] == FRAME
    # cargroup: a crowd, never a box; road: unknown, ignored; rider: mapped to None;
    # the truck is deleted.
    assert first.boxes == [Box(10, 5, 21, 16, "car"), Box(0, 2, 5, 32, "person")]
    # The person's polygon runs past the left and bottom borders: clipped, and counted.
    assert log.counts == {"unmapped label ignored (road)": 1, "polygon clipped to the image": 1}
    assert second.boxes == []


def test_group_labels_are_ignored_even_when_mapped(cityscapes):
    records = read(cityscapes, class_map={**CLASS_MAP, "cargroup": "car"})
    assert [b.category for b in records[0].boxes] == ["car", "person"]


def test_unknown_label_can_be_an_error(cityscapes):
    with pytest.raises(DatasetError) as err:
        read(cityscapes, on_unknown_label="error")
    assert f"{FRAME}_gtFine_polygons.json: object 3 (road): unknown label 'road'" in str(
        err.value
    )


def test_polygon_outside_the_image(cityscapes):
    outside = {"label": "car", "polygon": [[70, 1], [80, 5], [75, 9]]}
    write_polygons(cityscapes, "bochum", "bochum_000000_000313", polygons([outside]))
    log = BadInputLog()
    assert read(cityscapes, log=log)[1].boxes == []
    assert log.counts["empty polygon dropped"] == 1
    with pytest.raises(DatasetError, match=r"polygons\.json: object 0 \(car\): polygon is empty"):
        read(cityscapes, on_bad_box="error")


def test_malformed_json_names_file_and_line(cityscapes):
    broken = '{\n  "imgHeight": 32,\n  "objects": [\n}\n'
    path = write_polygons(cityscapes, "bochum", "bochum_000000_000313", broken)
    with pytest.raises(DatasetError) as err:
        read(cityscapes)
    assert str(err.value).startswith(f"{path}:4: is not valid JSON")


def test_size_mismatch_names_the_json(cityscapes):
    path = write_polygons(cityscapes, "bochum", "bochum_000000_000313", polygons([], 2048, 1024))
    with pytest.raises(DatasetError) as err:
        read(cityscapes)
    assert str(err.value).startswith(f"{path}: says the image is 2048x1024")
    assert "is 64x32" in str(err.value)


def test_missing_size_field(cityscapes):
    data = polygons([])
    del data["imgWidth"]
    write_polygons(cityscapes, "bochum", "bochum_000000_000313", data)
    with pytest.raises(DatasetError, match="'imgWidth' must be a positive integer, got None"):
        read(cityscapes)


@pytest.mark.parametrize("polygon", [[[1, 2], [3]], "1 2 3 4", [[1, "2"]], None])
def test_bad_polygon_names_file_and_object(cityscapes, polygon):
    objects = [{"label": "car", "polygon": [[1, 1], [5, 5]]}, {"label": "car", "polygon": polygon}]
    path = write_polygons(cityscapes, "bochum", "bochum_000000_000313", polygons(objects))
    with pytest.raises(DatasetError) as err:
        read(cityscapes)
    assert str(err.value).startswith(f"{path}: object 1 (car): 'polygon' must be a list")


def test_truncated_image_is_caught_by_verify_images(cityscapes, make_png):
    path = cityscapes / "leftImg8bit" / "val" / "aachen" / f"{FRAME}_leftImg8bit.png"
    make_png(path, 64, 32, noise=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert len(read(cityscapes)) == 2
    with pytest.raises(DatasetError, match=r"leftImg8bit\.png: image cannot be read"):
        read(cityscapes, verify_images=True)


def test_two_images_of_one_frame_are_refused_naming_both(cityscapes, make_png):
    from PIL import Image

    city = cityscapes / "leftImg8bit" / "val" / "aachen"
    Image.new("RGB", (64, 32)).save(city / f"{FRAME}_leftImg8bit.jpg")
    with pytest.raises(DatasetError, match=rf"{FRAME}_leftImg8bit\.png: frame 'aachen/{FRAME}' "
                                           rf"has two images \({FRAME}_leftImg8bit\.jpg and "):
        list_frames(cityscapes, "val")
    from pipeline.formats.unlabeled import list_split
    with pytest.raises(DatasetError, match="has two images"):
        list_split("cityscapes", cityscapes, "val")


@pytest.mark.parametrize("where", [".", "aachen/extra"])
def test_an_image_outside_a_city_folder_is_refused_not_skipped(cityscapes, make_png, where):
    from pipeline.formats.unlabeled import list_split

    split = cityscapes / "leftImg8bit" / "val"
    stray = make_png(split / where / f"{FRAME}_leftImg8bit.png", 64, 32)
    for listing in (lambda: list_frames(cityscapes, "val"),
                    lambda: list_split("cityscapes", cityscapes, "val")):
        with pytest.raises(DatasetError, match=rf"{re.escape(str(stray))}: image is not in a "
                                               r"city folder"):
            listing()
