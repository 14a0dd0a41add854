"""Labels of a rendered scene: KITTI label lines and calibration, Cityscapes polygons."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.synthetic.scene import (Box, Camera, DONTCARE_HEIGHT_FRACTION, Rendering, Scene,
                                      _clip_to_rect, _convex_hull, _polygon_area, _rect,
                                      _wrap_angle)


def _fmt(value: float) -> str:
    return f"{round(value, 2) + 0.0:.2f}"  # + 0.0 turns -0.0 into 0.0


@dataclass
class _ObjectStats:
    """What the labels of one object need, summed over its parts."""

    outlines: list[np.ndarray]
    area: float = 0.0  # of the silhouette
    inside: float = 0.0  # of the silhouette inside the image
    painted: int = 0
    visible: int = 0


def _object_stats(scene: Scene, rendering: Rendering) -> dict[int, _ObjectStats]:
    """Per item index, for the items that are objects (not props)."""
    w, h = scene.camera.width, scene.camera.height
    stats: dict[int, _ObjectStats] = {}
    for k, (i, part) in enumerate(scene.parts()):
        if scene.items[i].object3d is None:
            continue
        s = stats.setdefault(i, _ObjectStats([]))
        s.outlines.append(part.outline)
        s.area += _polygon_area(part.outline)
        s.inside += _polygon_area(_clip_to_rect(part.outline, 0, 0, w, h))
        s.painted += int(rendering.painted[k])
        s.visible += int(rendering.visible[k])
    return stats


def _clipped_box(points: np.ndarray, width: int, height: int) -> Box:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return (float(np.clip(lo[0], 0, width - 1)), float(np.clip(lo[1], 0, height - 1)),
            float(np.clip(hi[0], 0, width - 1)), float(np.clip(hi[1], 0, height - 1)))


def _occlusion_level(painted: int, visible: int) -> int:
    hidden = 1.0 - visible / painted
    return 0 if hidden < 0.05 else 1 if hidden < 0.5 else 2


def kitti_label_lines(scene: Scene, rendering: Rendering) -> list[str]:
    """The KITTI ``label_2`` lines of a rendered scene (see the package docstring, "Labels")."""
    w, h = scene.camera.width, scene.camera.height
    lines = []
    groups: dict[int, list[np.ndarray]] = {}
    for i, stats in _object_stats(scene, rendering).items():
        if stats.visible == 0:
            continue
        item = scene.items[i]
        points = np.concatenate(stats.outlines)
        if item.group is not None:
            groups.setdefault(item.group, []).append(points)
            continue
        box = _clipped_box(points, w, h)
        if box[3] - box[1] < DONTCARE_HEIGHT_FRACTION * h:
            lines.append(_dontcare_line(box))
            continue
        obj = item.object3d
        assert obj is not None
        x, y, z = obj.location
        alpha = _wrap_angle(obj.rotation_y - math.atan2(x, z))
        truncated = min(max(1.0 - stats.inside / stats.area, 0.0), 1.0)
        occluded = _occlusion_level(stats.painted, stats.visible)
        fields = [obj.kitti_type, _fmt(truncated), str(occluded), _fmt(alpha), *map(_fmt, box),
                  *map(_fmt, obj.dimensions), _fmt(x), _fmt(y), _fmt(z), _fmt(obj.rotation_y)]
        lines.append(" ".join(fields))
    for members in groups.values():
        lines.append(_dontcare_line(_clipped_box(np.concatenate(members), w, h)))
    return lines


def _dontcare_line(box: Box) -> str:
    # KITTI writes DontCare with these placeholder values and no decimals.
    return f"DontCare -1 -1 -10 {' '.join(map(_fmt, box))} -1 -1 -1 -1000 -1000 -1000 -10"


def _city_polygon(points: np.ndarray, width: int, height: int) -> list[list[int]] | None:
    """Clip to the image, round to integer pixels like Cityscapes; None if nothing is left."""
    clipped = _clip_to_rect(points, 0, 0, width - 1, height - 1)
    if len(clipped) < 3:
        return None
    rounded = np.rint(clipped).astype(int)
    keep = np.any(rounded != np.roll(rounded, 1, axis=0), axis=1)
    rounded = rounded[keep]
    if len(rounded) < 3 or np.ptp(rounded[:, 0]) < 1 or np.ptp(rounded[:, 1]) < 1:
        return None
    return rounded.tolist()


def cityscapes_annotation(scene: Scene, rendering: Rendering) -> dict:
    """The ``gtFine_polygons.json`` content of a rendered scene (drawing order = depth order)."""
    w, h = scene.camera.width, scene.camera.height
    horizon = float(math.ceil(scene.camera.cy))
    entries: list[tuple[str, np.ndarray]] = [("sky", _rect(0, 0, w - 1, horizon))]
    entries += [(part.label, part.outline) for part in scene.backdrop]
    group_slot: dict[int, int] = {}  # a group is listed where its farthest member is drawn
    group_points: dict[int, list[np.ndarray]] = {}
    for k, (i, part) in enumerate(scene.parts()):
        item = scene.items[i]
        if item.object3d is not None and rendering.visible[k] == 0:
            continue
        if item.group is None:
            entries.append((part.label, part.outline))
            continue
        if item.group not in group_slot:
            group_slot[item.group] = len(entries)
            entries.append(("cargroup", part.outline))
        group_points.setdefault(item.group, []).append(part.outline)
    for group, slot in group_slot.items():
        entries[slot] = ("cargroup", _convex_hull(np.concatenate(group_points[group])))
    objects = []
    for label, outline in entries:
        polygon = _city_polygon(outline, w, h)
        if polygon is not None:
            objects.append({"label": label, "polygon": polygon})
    return {"imgHeight": h, "imgWidth": w, "objects": objects}


def kitti_calibration(camera: Camera) -> str:
    """A KITTI ``calib`` file for the synthetic camera (all four cameras share it)."""
    p = [camera.focal, 0, camera.cx, 0, 0, camera.focal, camera.cy, 0, 0, 0, 1, 0]
    proj = " ".join(f"{v:.6e}" for v in p)
    eye = " ".join(f"{v:.6e}" for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    # velodyne (x forward, y left, z up) -> camera (x right, y down, z forward)
    velo = " ".join(f"{v:.6e}" for v in (0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0))
    imu = " ".join(f"{v:.6e}" for v in (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0))
    lines = [f"P{i}: {proj}" for i in range(4)]
    lines += [f"R0_rect: {eye}", f"Tr_velo_to_cam: {velo}", f"Tr_imu_to_velo: {imu}"]
    return "\n".join(lines) + "\n"
