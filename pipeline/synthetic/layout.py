"""Sampling a street scene: the street, its buildings and lamps, and the objects on it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.synthetic.scene import (Box, CAMERA_HEIGHT, Camera, Glow, Item, LIT_WINDOWS,
                                      MAX_OBJECT_DEPTH, MIN_OBJECT_DEPTH, MIN_OBJECT_PX,
                                      NEAR_PLANE, Object3D, Part, RGB, Scene, Shape, _Street,
                                      _convex_hull, _project_polygon, _wrap_angle)
from pipeline.synthetic.shapes import (_CAB, _CAR_PAINT, _Design, _FACADES, _FOLIAGE, _LAMP_HEAD,
                                       _LIVERY, _MARKING, _POLE, _ROAD, _SIDEWALK, _SKY_HORIZON,
                                       _SKY_ZENITH, _TRUNK, _WINDOW, _car_end, _car_side, _cyclist,
                                       _pedestrian, _pick, _place, _truck_end, _truck_side)

# KITTI mean dimensions (h, w, l) in metres.
_DIMENSIONS = {
    "Car": (1.53, 1.63, 3.88),
    "Van": (2.21, 1.90, 5.08),
    "Truck": (3.25, 2.55, 8.5),
    "Pedestrian": (1.76, 0.66, 0.84),
    "Cyclist": (1.74, 0.60, 1.76),
}


@dataclass
class _Placement:
    """Bookkeeping while placing objects: footprints already taken, in road coordinates."""

    taken: list[tuple[float, float, float]]

    def free(self, s: float, t: float, radius: float) -> bool:
        return all(math.hypot(s - s2, t - t2) > radius + r2 for s2, t2, r2 in self.taken)


def _sample_street(rng: np.random.Generator) -> _Street:
    lane = 3.2
    n_same, n_oncoming = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    park_right = 2.2 if rng.random() < 0.5 else 0.0
    park_left = 2.2 if rng.random() < 0.5 else 0.0
    same = tuple(-lane * i for i in range(n_same))
    centre = same[-1] - lane / 2
    oncoming = tuple(centre - lane / 2 - lane * i for i in range(n_oncoming))
    road_right = lane / 2 + park_right
    road_left = oncoming[-1] - lane / 2 - park_left
    parking = tuple(p for p, w in ((road_right - 1.1, park_right), (road_left + 1.1, park_left))
                    if w)
    walk_r, walk_l = rng.uniform(2.5, 4.5), rng.uniform(2.5, 4.5)
    return _Street(
        yaw=float(rng.uniform(-0.12, 0.12)), road_left=road_left, road_right=road_right,
        centre_line=centre, lane_line=-lane / 2 if n_same == 2 else None, same_lanes=same,
        oncoming_lanes=oncoming, parking=parking,
        walk_left=(road_left - walk_l, road_left), walk_right=(road_right, road_right + walk_r))


def _ground_part(camera: Camera, street: _Street, label: str, t0: float, t1: float, colour: RGB,
                 extra: Sequence[Shape] = ()) -> Part:
    s0, s1 = -5.0, 600.0
    quad = street.to_camera(np.array([s0, s1, s1, s0]), np.array([t0, t0, t1, t1]), 0.0)
    outline = _project_polygon(camera, quad)
    return Part(label, None, outline, (Shape("polygon", outline, colour), *extra))


def _markings(camera: Camera, street: _Street) -> list[Shape]:
    """Dashes of 3 m every 9 m on the centre line and, with two lanes, the lane line."""
    lines = [street.centre_line] + ([street.lane_line] if street.lane_line is not None else [])
    starts = np.arange(3.0, 120.0, 9.0)
    s = starts[:, None] + np.array([0.0, 3.0, 3.0, 0.0])
    shapes = []
    for t in lines:
        quads = street.to_camera(s, t + np.array([-0.08, -0.08, 0.08, 0.08]), 0.0)
        for quad in quads:
            pts = _project_polygon(camera, quad)
            if len(pts):
                shapes.append(Shape("polygon", pts, _MARKING))
    return shapes


def _facade_blocks(rng: np.random.Generator, camera: Camera, street: _Street, t: float
                   ) -> list[Part]:
    """Building blocks of random length, height and colour along the facade line ``t``."""
    parts = []
    s = -5.0
    while s < 300.0:
        length, height = rng.uniform(8.0, 30.0), rng.uniform(6.0, 22.0)
        colour = _pick(rng, _FACADES, 10)
        quad = street.to_camera(np.array([s, s, s + length, s + length]), t,
                                np.array([0.0, height, height, 0.0]))
        outline = _project_polygon(camera, quad)
        if len(outline):
            shapes = [Shape("polygon", outline, colour)]
            if s < 80.0:  # beyond, every window is sub-pixel
                shapes += _windows(rng, camera, street, t, s, length, height)
            parts.append(Part("building", None, outline, tuple(shapes)))
        s += length
    return parts


def _windows(rng: np.random.Generator, camera: Camera, street: _Street, t: float, s0: float,
             length: float, height: float) -> list[Shape]:
    """A window grid (1.2 x 1.5 m, floors of 3.2 m above a 3.5 m ground floor) on a facade."""
    spacing = rng.uniform(2.6, 3.6)
    cols = np.arange(s0 + spacing / 2, s0 + length - 0.8, spacing)
    floors = np.arange(3.5, height - 1.8, 3.2)
    if len(cols) == 0 or len(floors) == 0:
        return []
    s_c, h_c = np.meshgrid(cols, floors, indexing="ij")
    s_c, h_c = s_c.ravel(), h_c.ravel()
    lit = rng.random(len(s_c)) < LIT_WINDOWS
    ds, dh = np.array([-0.6, 0.6, 0.6, -0.6]), np.array([0.0, 0.0, 1.5, 1.5])
    corners = street.to_camera(s_c[:, None] + ds, t, h_c[:, None] + dh)
    in_front = corners[..., 2].min(axis=1) > NEAR_PLANE
    pts = camera.project(corners[in_front])
    # Skip sub-pixel windows (far away or seen edge-on): they would only add aliasing.
    wide = np.ptp(pts[..., 0], axis=1) >= 0.7
    return [Shape("polygon", quad, _WINDOW, "window" if on else None)
            for quad, on in zip(pts[wide], lit[in_front][wide])]


def _trees(rng: np.random.Generator, camera: Camera, street: _Street, t: float) -> list[Item]:
    items = []
    s = rng.uniform(6.0, 14.0)
    while s < 80.0:
        trunk_h, radius = rng.uniform(1.8, 2.6), rng.uniform(1.6, 2.6)
        foliage = _pick(rng, _FOLIAGE, 10)
        angles = np.linspace(0.0, 2 * math.pi, 14, endpoint=False)
        r = radius * rng.uniform(0.85, 1.1, len(angles))
        centre = street.to_camera(s, t, trunk_h + 0.8 * radius)
        crown3 = centre + np.stack([r * np.cos(angles), r * np.sin(angles), np.zeros_like(r)],
                                    axis=1)
        trunk3 = street.to_camera(s, np.array([t - 0.15, t + 0.15, t + 0.15, t - 0.15]),
                                  np.array([0.0, 0.0, trunk_h + radius * 0.5,
                                            trunk_h + radius * 0.5]))
        depth = float(centre[2])
        s += rng.uniform(9.0, 16.0)
        if depth <= NEAR_PLANE + radius:
            continue
        crown, trunk = camera.project(crown3), camera.project(trunk3)
        items.append(Item(depth, (
            Part("vegetation", None, trunk, (Shape("polygon", trunk, _TRUNK),)),
            Part("vegetation", None, crown, (Shape("polygon", crown, foliage),)))))
    return items


def _glow(u: float, v: float, sigma_u: float, sigma_v: float, strength: float) -> Glow:
    """A glow at least a pixel wide, dimmed when widened so that its energy stays right."""
    wide_u, wide_v = max(1.0, sigma_u), max(1.0, sigma_v)
    return Glow(u, v, wide_u, wide_v, strength * sigma_u * sigma_v / (wide_u * wide_v))


def _street_lights(rng: np.random.Generator, camera: Camera, street: _Street, t: float,
                   toward_road: float) -> tuple[list[Item], list[Glow]]:
    items, glows = [], []
    for s in np.arange(rng.uniform(5.0, 25.0), 130.0, 28.0):
        base, top = street.to_camera(s, t, 0.0), street.to_camera(s, t, 7.0)
        head = street.to_camera(s, t + toward_road * 1.4, 6.8)
        if min(base[2], head[2]) <= 1.0:
            continue
        (bu, bv), (tu, tv), (hu, hv) = camera.project(np.stack([base, top, head]))
        depth = float(base[2])
        px = camera.focal / depth
        width = max(1, round(0.2 * px))
        hw = width / 2
        outline = _convex_hull(np.array([[bu - hw, bv], [bu + hw, bv], [tu - hw, tv - hw],
                                        [tu + hw, tv - hw], [hu - 0.3 * px, hv - 0.15 * px],
                                        [hu + 0.3 * px, hv + 0.15 * px]]))
        shapes = (Shape("line", np.array([[bu, bv], [tu, tv]]), _POLE, width=width),
                  Shape("line", np.array([[tu, tv], [hu, hv]]), _POLE, width=width),
                  Shape("ellipse", np.array([[hu - 0.3 * px, hv - 0.12 * px],
                                             [hu + 0.3 * px, hv + 0.15 * px]]), _LAMP_HEAD,
                        "street"))
        items.append(Item(depth, (Part("pole", None, outline, shapes),)))
        ground = camera.project(street.to_camera(s, t + toward_road * 1.4, 0.0))
        glows.append(_glow(hu, hv, 0.5 * px, 0.5 * px, 0.5))
        pool = 2.5 * px
        glows.append(_glow(ground[0], ground[1], pool, pool * CAMERA_HEIGHT / depth, 0.2))
    return items, glows


def _box_corners(dims: tuple[float, float, float], location: np.ndarray, ry: float) -> np.ndarray:
    """The 8 corners of a KITTI 3D box in camera coordinates."""
    h, w, l = dims
    x = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
    y = np.array([0, 0, 0, 0, -1, -1, -1, -1]) * h
    z = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    c, s = math.cos(ry), math.sin(ry)
    return np.stack([c * x + s * z, y, -s * x + c * z], axis=1) + location


def _depth_limit(camera: Camera, dims: tuple[float, float, float]) -> float:
    """Depth beyond which the object's smaller projected side falls below MIN_OBJECT_PX."""
    smallest = min(dims[0], dims[1])
    return min(MAX_OBJECT_DEPTH, camera.focal * smallest / MIN_OBJECT_PX)


def _object_box(camera: Camera, corners: np.ndarray) -> Box:
    uv = camera.project(corners)
    return (float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()),
            float(uv[:, 1].max()))


def _designs_for(rng: np.random.Generator, kind: str, alpha: float, box: Box
                 ) -> tuple[list[_Design], bool]:
    """The drawing of an object seen at observation angle ``alpha``; returns the designs and
    whether to mirror them (designs face right)."""
    aspect = (box[2] - box[0]) / max(box[3] - box[1], 1e-6)
    side = abs(math.cos(alpha)) >= 0.64
    mirror = math.cos(alpha) < 0
    front = math.sin(alpha) > 0
    if kind in ("Car", "Van"):
        paint = _pick(rng, _CAR_PAINT, 12)
        van = kind == "Van"
        return (_car_side(paint, aspect, van) if side else _car_end(paint, front, van)), mirror
    if kind == "Truck":
        livery, cab = _pick(rng, _LIVERY, 10), _pick(rng, _CAB, 10)
        stripe = _pick(rng, _CAB, 10)
        designs = _truck_side(livery, cab, stripe, aspect) if side else _truck_end(livery, cab,
                                                                                   front)
        return designs, mirror
    if kind == "Pedestrian":
        return _pedestrian(rng, aspect), False
    return _cyclist(rng, aspect, box[3] - box[1]), mirror


def _place_object(rng: np.random.Generator, camera: Camera, street: _Street, kind: str,
                  s: float, t: float, heading: float | None, alpha: float | None,
                  group: int | None = None) -> Item | None:
    """Build an object standing at road position (s, t). ``heading`` is its rotation_y; for
    cyclists ``alpha`` is given instead, so that they are seen from the side."""
    dims = tuple(float(d) for d in np.asarray(_DIMENSIONS[kind]) * rng.normal(1.0, 0.06, 3))
    location = street.to_camera(s, t, 0.0)
    ray = math.atan2(location[0], location[2])
    ry = _wrap_angle(alpha + ray) if heading is None else _wrap_angle(heading)
    corners = _box_corners(dims, location, ry)
    if corners[:, 2].min() < 1.0:
        return None
    box = _object_box(camera, corners)
    if not 0.0 <= (box[0] + box[2]) / 2 <= camera.width:  # keep truncation below about half
        return None
    if min(box[2] - box[0], box[3] - box[1]) < MIN_OBJECT_PX:
        return None
    alpha = _wrap_angle(ry - ray)
    designs, mirror = _designs_for(rng, kind, alpha, box)
    obj = Object3D(kind, dims, tuple(float(c) for c in location), ry)
    return Item(float(location[2]), tuple(_place(d, box, mirror) for d in designs), obj, group)


def _sample_depth(rng: np.random.Generator, camera: Camera, kind: str, low: float = 0.0,
                  high: float = 1.0) -> float:
    """Log-uniform depth between MIN_OBJECT_DEPTH and the object's visibility limit; ``low`` and
    ``high`` select a fraction of that (log) range."""
    near, far = math.log(MIN_OBJECT_DEPTH), math.log(_depth_limit(camera, _DIMENSIONS[kind]))
    return math.exp(near + (far - near) * rng.uniform(low, high))


def _vehicle_pose(rng: np.random.Generator, street: _Street, kind: str) -> tuple[float, float]:
    """Lateral position and heading (rotation_y) of a car, van or truck."""
    along = street.yaw - math.pi / 2
    lanes = [(t, along) for t in street.same_lanes]
    lanes += [(t, along + math.pi) for t in street.oncoming_lanes]
    if kind != "Truck":
        lanes += [(t, along + math.pi * int(rng.integers(2))) for t in street.parking]
    t, heading = lanes[rng.integers(len(lanes))]
    if rng.random() < 0.2:
        heading = rng.uniform(-math.pi, math.pi)
    return t + rng.normal(0.0, 0.2), heading + rng.normal(0.0, 0.04)


def _pedestrian_position(rng: np.random.Generator, street: _Street) -> float:
    if rng.random() < 0.25:
        return rng.uniform(street.road_left + 0.5, street.road_right - 0.5)
    walk = street.walk_right if rng.random() < 0.5 else street.walk_left
    return rng.uniform(walk[0] + 0.4, walk[1] - 0.4)


def _sample_objects(rng: np.random.Generator, camera: Camera, street: _Street) -> list[Item]:
    counts = {
        "Car": int(rng.integers(0, 5)),
        "Van": int(rng.random() < 0.25),
        "Truck": int(rng.choice(3, p=[0.55, 0.35, 0.10])),
        "Pedestrian": int(rng.integers(0, 5)),
        "Cyclist": int(rng.integers(0, 3)),
    }
    placement = _Placement([])
    items: list[Item] = []
    for kind, count in counts.items():
        radius = 0.5 * math.hypot(_DIMENSIONS[kind][1], _DIMENSIONS[kind][2]) + 0.3
        for _ in range(count):
            for _attempt in range(8):
                s = _sample_depth(rng, camera, kind)  # along the street, close to depth
                heading = alpha = None
                if kind in ("Car", "Van", "Truck"):
                    t, heading = _vehicle_pose(rng, street, kind)
                elif kind == "Pedestrian":
                    t, heading = _pedestrian_position(rng, street), rng.uniform(-math.pi, math.pi)
                else:
                    t = rng.uniform(street.road_left + 0.8, street.walk_right[1] - 0.5)
                    alpha = rng.uniform(-0.6, 0.6) + math.pi * int(rng.integers(2))
                if not placement.free(s, t, radius):
                    continue
                item = _place_object(rng, camera, street, kind, s, t, heading, alpha)
                if item is not None:
                    placement.taken.append((s, t, radius))
                    items.append(item)
                    break
    if rng.random() < 0.3:
        items += _parked_group(rng, camera, street, placement)
    return items


def _parked_group(rng: np.random.Generator, camera: Camera, street: _Street,
                  placement: _Placement) -> list[Item]:
    """2-3 cars parked bumper to bumper in the distance: one Cityscapes ``cargroup``."""
    t = street.parking[0] if street.parking else street.road_right - 1.0
    heading = street.yaw - math.pi / 2 + math.pi * int(rng.integers(2))
    s = _sample_depth(rng, camera, "Car", 0.6, 0.9)
    members = []
    for _ in range(int(rng.integers(2, 4))):
        if placement.free(s, t, 2.3):
            item = _place_object(rng, camera, street, "Car", s, t, heading, None, group=0)
            if item is not None:
                placement.taken.append((s, t, 2.3))
                members.append(item)
        s += _DIMENSIONS["Car"][2] + rng.uniform(0.4, 1.0)
    return members if len(members) >= 2 else []


def _shadow(camera: Camera, obj: Object3D, road: RGB) -> Shape:
    """The sun's shadow under an object: an ellipse around its footprint, slightly larger."""
    _, w, l = obj.dimensions
    footprint = _box_corners((0.0, w * 1.1, l * 1.05), np.asarray(obj.location), obj.rotation_y)
    uv = camera.project(footprint[:4])
    return Shape("ellipse", np.stack([uv.min(axis=0), uv.max(axis=0)]),
                 tuple(0.5 * c for c in road))


def sample_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """Sample one street scene (geometry and source-domain colours) at ``width x height``."""
    camera = Camera(width, height, 0.58 * width, width / 2,
                    height * (0.46 + rng.uniform(-0.02, 0.02)))
    street = _sample_street(rng)
    sky = (_pick(rng, (_SKY_ZENITH,), 8), _pick(rng, (_SKY_HORIZON,), 6))
    road = _pick(rng, (_ROAD,), 6)
    walk = _pick(rng, (_SIDEWALK,), 6)
    backdrop = [*_facade_blocks(rng, camera, street, street.walk_right[1]),
                *_facade_blocks(rng, camera, street, street.walk_left[0]),
                _ground_part(camera, street, "sidewalk", *street.walk_left, walk),
                _ground_part(camera, street, "sidewalk", *street.walk_right, walk),
                _ground_part(camera, street, "road", street.road_left, street.road_right, road,
                             _markings(camera, street))]
    props: list[Item] = []
    glows: list[Glow] = []
    for t, toward_road in ((street.road_right + 0.4, -1.0), (street.road_left - 0.4, 1.0)):
        if rng.random() < 0.7:
            props += _trees(rng, camera, street, t + 0.6 * -toward_road)
        if rng.random() < 0.8:
            lights, light_glows = _street_lights(rng, camera, street, t, toward_road)
            props += lights
            glows += light_glows
    objects = _sample_objects(rng, camera, street)
    items = sorted(props + objects, key=lambda item: -item.depth)
    shadows = tuple(_shadow(camera, item.object3d, road) for item in items
                    if item.object3d is not None)
    return Scene(camera, sky, tuple(backdrop), tuple(items), shadows, tuple(glows))
