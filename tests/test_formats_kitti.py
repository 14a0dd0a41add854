"""KITTI labels: line format, folder checks, boxes, class map, bad-box policies, splits."""

from __future__ import annotations

import random

import pytest

from pipeline.formats.common import BadInputLog, Box, DatasetError
from pipeline.formats.kitti import (
    KittiObject,
    copy_label_file,
    format_label_line,
    list_frames,
    parse_label_line,
    read_frame_list,
    read_kitti,
    read_label_file,
    split_by_list,
    split_frames,
    write_kitti,
)

CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
DONTCARE = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"

CLASS_MAP = {
    "Car": "car",
    "Van": None,
    "Truck": "truck",
    "Pedestrian": "person",
    "Person_sitting": "person",
    "Cyclist": "bicycle",
    "Tram": None,
    "Misc": None,
    "DontCare": None,
}

# Images are 200x100; the boxes below lie inside them.
LABELS = {
    "000000": (
        "Car 0.00 0 -1.58 58.01 17.33 114.12 60.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
        "Pedestrian 0.00 1 0.21 10.50 20.25 30.75 90.00 1.72 0.64 0.89 -5.90 1.78 13.45 -0.20\n"
        "DontCare -1 -1 -10 150.00 10.00 190.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10\n"
    ),
    "000001": (
        "Van 0.00 0 1.57 20.00 30.00 80.00 70.00 2.10 1.90 4.80 2.10 1.60 20.30 1.68\n"
        "Person_sitting 0.12 2 -2.30 100.00 40.00 130.00 95.50 1.10 0.60 0.80 3.00 1.70 10.00"
        " -2.00\n"
        "Cyclist 0.00 0 -1.00 140.00 30.00 170.00 80.00 1.70 0.60 1.80 4.00 1.60 15.00 -0.80\n"
    ),
    "000002": "",
}


@pytest.fixture
def kitti(tmp_path, make_png):
    root = tmp_path / "kitti"
    (root / "label_2").mkdir(parents=True)
    for frame, text in LABELS.items():
        make_png(root / "image_2" / f"{frame}.png", 200, 100)
        (root / "label_2" / f"{frame}.txt").write_text(text)
    return root


def read(root, **kwargs):
    kwargs.setdefault("class_map", CLASS_MAP)
    kwargs.setdefault("log", BadInputLog())
    return list(read_kitti(root, **kwargs))


def set_label(root, frame, line):
    """Replace frame 000002's (empty) labels by a Pedestrian line and ``line`` (line 2)."""
    ped = "Pedestrian 0.00 0 0.00 10.00 10.00 20.00 40.00 1.70 0.60 0.80 1.00 1.60 9.00 0.00"
    (root / "label_2" / f"{frame}.txt").write_text(f"{ped}\n{line}\n")


def car(left, top, right, bottom):
    return f"Car 0.00 0 0.00 {left} {top} {right} {bottom} 1.50 1.60 3.90 1.00 1.60 20.00 0.00"


# -- label lines ---------------------------------------------------------------------------


def test_official_line_parses_and_formats_back_unchanged():
    obj = parse_label_line(CAR, "x.txt", 1)
    assert obj == KittiObject(
        type="Car", truncated=0.0, occluded=0, alpha=-1.58,
        left=587.01, top=173.33, right=614.12, bottom=200.12,
        height=1.65, width=1.67, length=3.64, x=-0.65, y=1.71, z=46.70, rotation_y=-1.59,
    )
    assert format_label_line(obj) == CAR


def test_dontcare_placeholders_round_trip_as_values():
    obj = parse_label_line(DONTCARE, "x.txt", 1)
    assert obj.occluded == -1 and isinstance(obj.occluded, int)
    assert obj.z == -1000.0
    line = format_label_line(obj)
    assert line.startswith("DontCare -1.00 -1 -10.00 503.89 ")
    assert parse_label_line(line, "x.txt", 1) == obj


def test_values_round_to_the_printed_precision():
    obj = parse_label_line(CAR, "x.txt", 1)
    obj.left = 587.0149
    assert parse_label_line(format_label_line(obj), "x.txt", 1).left == 587.01


def test_score_is_read_and_written_only_when_present():
    obj = parse_label_line(CAR + " 0.98765", "x.txt", 1)
    assert obj.score == 0.98765
    assert format_label_line(obj) == CAR + " 0.9877"
    assert parse_label_line(CAR, "x.txt", 1).score is None


def test_wrong_field_count_names_file_line_and_counts():
    with pytest.raises(DatasetError) as err:
        parse_label_line("Car 0.00 0 -1.58 587.01", "label_2/000007.txt", 3)
    assert str(err.value).startswith("label_2/000007.txt:3: found 5 fields, expected 15")


def test_non_number_names_the_field():
    with pytest.raises(DatasetError) as err:
        parse_label_line(CAR.replace("-1.58", "abc"), "000007.txt", 4)
    assert "000007.txt:4" in str(err.value)
    assert "field 'alpha' must be a number, found 'abc'" in str(err.value)


def test_fractional_occlusion_is_rejected():
    with pytest.raises(DatasetError, match="'occluded' must be an integer"):
        parse_label_line(CAR.replace(" 0 -1.58", " 0.5 -1.58"), "x.txt", 1)


def test_label_file_skips_blank_lines_and_counts_lines_in_errors(tmp_path):
    path = tmp_path / "000000.txt"
    path.write_text(f"{CAR}\n\n{CAR}\n\n")
    assert len(read_label_file(path)) == 2
    path.write_text(f"{CAR}\n\n{CAR}\nCar 1 2\n")
    with pytest.raises(DatasetError, match=r"000000\.txt:4: found 3 fields"):
        read_label_file(path)


def test_empty_label_file_is_an_image_without_objects(tmp_path):
    path = tmp_path / "000000.txt"
    path.write_text("")
    assert read_label_file(path) == []


def test_write_kitti_reads_back_and_leaves_no_temporary_file(tmp_path):
    objects = [parse_label_line(CAR, "x", 1), parse_label_line(DONTCARE, "x", 2)]
    path = write_kitti(tmp_path / "out", "000005", objects)
    assert path == tmp_path / "out" / "label_2" / "000005.txt"
    assert read_label_file(path) == objects
    assert path.read_text().splitlines()[0] == CAR
    assert [p.name for p in path.parent.iterdir()] == ["000005.txt"]


def test_copy_label_file_is_byte_identical_and_replaces(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(f"{DONTCARE}\r\n{CAR}  \n".encode())
    dst = tmp_path / "out" / "label_2" / "000000.txt"
    dst.parent.mkdir(parents=True)
    dst.write_text("old")
    copy_label_file(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dst.parent.iterdir()) == ["000000.txt"]


def test_failed_write_leaves_no_temporary_file(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text(CAR + "\n")
    dst = tmp_path / "out" / "000000.txt"
    dst.mkdir(parents=True)  # a folder in the way makes the final rename fail
    with pytest.raises(OSError):
        copy_label_file(src, dst)
    assert [p.name for p in dst.parent.iterdir()] == ["000000.txt"]


# -- folder layout -------------------------------------------------------------------------


def test_list_frames_is_sorted(kitti):
    assert list_frames(kitti) == ["000000", "000001", "000002"]


def test_jpg_images_are_accepted(kitti, make_png):
    (kitti / "image_2" / "000002.png").unlink()
    make_png(kitti / "image_2" / "000002.jpg", 200, 100)
    assert list_frames(kitti) == ["000000", "000001", "000002"]
    assert read(kitti)[2].file_name == "image_2/000002.jpg"


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="KITTI root does not exist") as err:
        list_frames(tmp_path / "nope")
    assert err.value.path == tmp_path / "nope"


def test_missing_label_folder(kitti):
    for path in (kitti / "label_2").iterdir():
        path.unlink()
    (kitti / "label_2").rmdir()
    with pytest.raises(DatasetError, match=r"label_2: folder is missing"):
        list_frames(kitti)


def test_empty_image_folder(kitti):
    for path in (kitti / "image_2").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match=r"image_2: contains no images"):
        list_frames(kitti)


def test_image_without_label_names_both_files(kitti):
    (kitti / "label_2" / "000001.txt").unlink()
    with pytest.raises(DatasetError) as err:
        list_frames(kitti)
    message = str(err.value)
    assert "000001.png: image has no label file label_2/000001.txt" in message
    assert "add it" in message


def test_label_without_image(kitti):
    (kitti / "label_2" / "000009.txt").write_text(CAR + "\n")
    with pytest.raises(DatasetError) as err:
        list_frames(kitti)
    assert "000009.txt: label file has no image in image_2/" in str(err.value)


def test_read_kitti_checks_the_layout_before_iterating(tmp_path):
    with pytest.raises(DatasetError, match="KITTI root does not exist"):
        read_kitti(tmp_path / "nope", class_map=CLASS_MAP, log=BadInputLog())


# -- records -------------------------------------------------------------------------------


def test_records_have_exact_boxes_sizes_and_paths(kitti):
    records = read(kitti)
    assert [r.extra["frame_id"] for r in records] == ["000000", "000001", "000002"]
    first = records[0]
    assert first.path == kitti / "image_2" / "000000.png"
    assert first.file_name == "image_2/000000.png"
    assert (first.width, first.height) == (200, 100)
    assert first.extra["label_path"] == str(kitti / "label_2" / "000000.txt")
    assert first.boxes == [
        Box(58.01, 17.33, 114.12, 60.12, "car"),
        Box(10.5, 20.25, 30.75, 90.0, "person"),
    ]
    # Van is mapped to None (ignored); Person_sitting -> person; Cyclist -> bicycle.
    assert records[1].boxes == [
        Box(100.0, 40.0, 130.0, 95.5, "person"),
        Box(140.0, 30.0, 170.0, 80.0, "bicycle"),
    ]
    assert records[2].boxes == []


def test_frames_come_in_the_requested_order(kitti):
    records = read(kitti, frame_ids=["000002", "000000"])
    assert [r.extra["frame_id"] for r in records] == ["000002", "000000"]


def test_unknown_frame_id_is_an_error(kitti):
    with pytest.raises(DatasetError, match="frame '000042' was asked for but has no image"):
        read(kitti, frame_ids=["000000", "000042"])


def test_unknown_type_names_file_and_line(kitti):
    set_label(kitti, "000002", car(1, 1, 5, 5).replace("Car", "Tractor"))
    with pytest.raises(DatasetError) as err:
        read(kitti)
    assert "000002.txt:2: unknown label 'Tractor'" in str(err.value)


def test_unknown_type_can_be_ignored_and_is_counted(kitti):
    set_label(kitti, "000002", car(1, 1, 5, 5).replace("Car", "Tractor"))
    log = BadInputLog()
    records = read(kitti, on_unknown_label="ignore", log=log)
    assert [b.category for b in records[2].boxes] == ["person"]
    assert log.counts == {"unmapped label ignored (Tractor)": 1}
    assert "000002.txt:2" in log.examples["unmapped label ignored (Tractor)"][0]


def test_box_outside_is_clipped_and_counted(kitti):
    set_label(kitti, "000002", car("-5.00", "10.00", "210.50", "50.00"))
    log = BadInputLog()
    boxes = read(kitti, on_bad_box="clip", log=log)[2].boxes
    assert boxes[1] == Box(0.0, 10.0, 200.0, 50.0, "car")
    assert log.counts == {"box clipped": 1}
    assert "000002.txt:2" in log.examples["box clipped"][0]


def test_box_outside_is_dropped_and_counted(kitti):
    set_label(kitti, "000002", car("-5.00", "10.00", "210.50", "50.00"))
    log = BadInputLog()
    boxes = read(kitti, on_bad_box="drop", log=log)[2].boxes
    assert [b.category for b in boxes] == ["person"]
    assert log.counts == {"bad box dropped": 1}


def test_box_outside_is_an_error_naming_file_and_line(kitti):
    set_label(kitti, "000002", car("-5.00", "10.00", "210.50", "50.00"))
    with pytest.raises(DatasetError) as err:
        read(kitti, on_bad_box="error")
    assert "000002.txt:2: box [-5, 10, 210.5, 50]" in str(err.value)
    assert "outside the image 200x100" in str(err.value)


def test_zero_area_box(kitti):
    set_label(kitti, "000002", car("50.00", "20.00", "50.00", "60.00"))
    log = BadInputLog()
    assert [b.category for b in read(kitti, log=log)[2].boxes] == ["person"]
    assert log.counts == {"bad box dropped": 1}
    with pytest.raises(DatasetError, match=r"000002\.txt:2: .* zero area"):
        read(kitti, on_bad_box="error")


def test_box_smaller_than_min_size_is_dropped(kitti):
    set_label(kitti, "000002", car("50.00", "20.00", "53.00", "60.00"))
    assert len(read(kitti)[2].boxes) == 2
    assert len(read(kitti, min_box_size=4.0)[2].boxes) == 1


def test_truncated_png_is_caught_by_verify_images(kitti, make_png):
    path = make_png(kitti / "image_2" / "000001.png", 200, 100, noise=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert len(read(kitti)) == 3  # the header alone is intact
    with pytest.raises(DatasetError, match=r"000001\.png: image cannot be read"):
        read(kitti, verify_images=True)


def test_non_image_named_png(kitti):
    (kitti / "image_2" / "000001.png").write_text("not an image")
    with pytest.raises(DatasetError, match=r"000001\.png: image cannot be read"):
        read(kitti)


def test_invalid_policy_is_rejected(kitti):
    with pytest.raises(ValueError, match="on_bad_box"):
        read(kitti, on_bad_box="repair")


# -- splits --------------------------------------------------------------------------------

FRAMES = [f"{i:06d}" for i in range(100)]


def test_split_is_deterministic_and_independent_of_order():
    train, val = split_frames(FRAMES, 0.2, seed=3)
    shuffled = FRAMES[:]
    random.Random(1).shuffle(shuffled)
    assert split_frames(shuffled, 0.2, seed=3) == (train, val)
    assert len(val) == 20 and train == sorted(train) and val == sorted(val)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(FRAMES)


def test_split_is_pinned_across_versions():
    # A published val list must stay valid: changing the ranking is a breaking change.
    assert split_frames(FRAMES[:20], 0.2, seed=0)[1] == ["000001", "000003", "000008", "000014"]


def test_different_seeds_give_different_splits():
    assert split_frames(FRAMES, 0.2, seed=0)[1] != split_frames(FRAMES, 0.2, seed=1)[1]


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [(10, 0.1, 1), (10, 0.25, 3), (10, 0.01, 1), (10, 0.0, 0), (1, 0.5, 0), (2, 0.9, 1)],
)
def test_split_sizes(n, fraction, n_val):
    train, val = split_frames(FRAMES[:n], fraction, seed=0)
    assert len(val) == n_val and len(train) == n - n_val


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction"):
        split_frames(FRAMES, 1.0, seed=0)
    with pytest.raises(ValueError, match="unique"):
        split_frames(["000001", "000001"], 0.5, seed=0)


def test_frame_list_ignores_comments_and_blank_lines(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("# validation frames\n000003\n\n  000001  # hard one\n")
    assert read_frame_list(path) == ["000003", "000001"]
    train, val = split_by_list(FRAMES[:5], read_frame_list(path), path)
    assert val == ["000001", "000003"]
    assert train == ["000000", "000002", "000004"]


def test_frame_list_duplicate_names_both_lines(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("000003\n000001\n000003\n")
    with pytest.raises(DatasetError) as err:
        read_frame_list(path)
    assert str(err.value) == f"{path}:3: frame '000003' is already listed on line 1"


def test_frame_list_unknown_id_names_its_line_and_suggests(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("000003\n# comment\n1\n")
    with pytest.raises(DatasetError) as err:
        split_by_list(FRAMES[:5], read_frame_list(path), path)
    assert str(err.value).startswith(f"{path}:3: frame '1' is not in the dataset")
    assert "did you mean '000001'?" in str(err.value)


def test_frame_list_cannot_take_every_frame(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("000000\n000001\n")
    with pytest.raises(DatasetError, match="none would be left for training"):
        split_by_list(FRAMES[:2], read_frame_list(path), path)
