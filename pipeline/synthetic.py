"""Deterministic two-domain street scenes: the pipeline's built-in demo data.

``generate(out_dir)`` writes a *source* set in the KITTI object-detection layout and a *target*
set in the Cityscapes layout, both drawn from the same model of a street, so that the whole
pipeline (prepare -> translate -> detect -> evaluate) can be run and tested without downloading
anything. The two domains share their geometry and differ only in appearance, which is the gap
that MGUIT is meant to close. What follows describes the model like a paper's appendix.

Geometry
--------
*Camera.* A pinhole camera at height ``h_c = 1.65 m`` (KITTI's), looking horizontally, with focal
length ``f = 0.58 W`` pixels (KITTI's 721 px for 1242 px) and principal point
``(W / 2, 0.46 H)``; the horizon row jitters by +-2 % of ``H`` per image (pitch). A point
``(X, Y, Z)`` in camera coordinates (x right, y down, z forward; metres) projects to
``u = f X / Z + W / 2``, ``v = f Y / Z + c_y``. Ground points have ``Y = h_c``, so the bottom row
of an object alone fixes its depth, ``Z = f h_c / (v - c_y)``, and objects lower in the image
are nearer and larger.

*Street.* A straight street, yawed by ``theta ~ U(-0.12, 0.12)`` rad relative to the camera so
that the vanishing point moves left and right. Road coordinates ``s`` (along the street),
``t`` (across, to the right) map to the camera by a rotation about the vertical axis. The road
has one or two lanes of 3.2 m in the camera's direction (the camera drives in the rightmost
one) and one or two oncoming lanes, an optional 2.2 m parking strip on each side, a dashed
centre line, 2.5-4.5 m sidewalks, and building facades along both sidewalks: blocks 8-30 m long
and 6-22 m high, with windows on a floor grid. Trees and street lights stand at the kerbs.
Everything is a polygon in 3D, clipped against the near plane ``Z = 0.3 m`` and projected, so
perspective is exact.

*Objects.* Cars, vans, trucks, pedestrians and cyclists are 3D boxes on the ground with KITTI's
mean dimensions (+-6 %): car 1.53 x 1.63 x 3.88 m (h x w x l), van 2.21 x 1.90 x 5.08, truck
3.25 x 2.55 x 8.5, pedestrian 1.76 x 0.66 x 0.84, cyclist 1.74 x 0.60 x 1.76. Per image:
0-4 cars, 0-1 van, 0-2 trucks, 0-4 pedestrians, 0-2 cyclists and, with probability 0.3, a
group of 2-3 cars parked bumper to bumper in the distance. Depth is log-uniform between 4 m and
the depth at which the object's smaller side would shrink below 3 px (at most 70 m). Vehicles
drive in their lane or stand in a parking strip (``rotation_y`` along the street) or, one in
five, turn at a random heading;
pedestrians walk on the sidewalks or cross the road at random headings; cyclists are always
seen from the side (``|cos(alpha)| >= 0.8``). Footprints do not overlap. The 2D box of an object
is the projection of its 3D box, and the object's drawing fills that box exactly: each class is
a recognisable silhouette, chosen by the observation angle ``alpha`` -- vehicles from the side
(body, cabin or cargo box, windows, wheels, lamps at both ends) or from the front or rear
(windscreen, headlights or tail-lights, tyres, plate); pedestrians from the front (head, torso
with arms, legs with a walking stride); cyclists as a bicycle (two wheels, diamond frame,
handlebar, saddle) with a rider. Objects are painted far to near, so nearer objects occlude
farther ones, and street lights and trees take part in the same ordering.

Labels
------
*Source (KITTI).* One line per object with the 15 KITTI fields. The box is the tight box of the
drawn silhouette clipped to ``[0, W-1] x [0, H-1]``; ``truncated`` is the fraction of the
silhouette's area outside the image; ``occluded`` is 0 / 1 / 2 when less than 5 % / less than
50 % / more of the pixels the object painted inside the image are painted over by nearer
objects; dimensions, location (bottom centre of the 3D box) and ``rotation_y`` are the ones the
object was drawn from, and ``alpha = rotation_y - arctan2(x, z)``. A cyclist's box covers rider
and bicycle, as in KITTI. Objects whose box is lower than 5 % of the image height, and the
distant parked car groups, are labelled ``DontCare`` (one box per group), as KITTI's annotators
did for objects too small to label. Vans are labelled ``Van``. Objects that end up entirely
hidden are not labelled.

*Target (Cityscapes).* ``*_gtFine_polygons.json`` lists polygons in drawing order, as Cityscapes
does (later polygons occlude earlier ones): ``sky`` (everything above the horizon),
``building``, ``sidewalk``, ``road``, then ``vegetation`` and ``pole`` and the objects, far to
near. An object's polygon is the
outline of its drawn silhouette (for a rider, the convex hull of the drawn parts), clipped to
the image and rounded to integer pixels, so its tight box is the drawn object's box. Cars and
vans are ``car`` (Cityscapes has no van class); a cyclist yields a ``bicycle`` polygon (the
bicycle alone, as in Cityscapes) and a ``rider`` polygon; a distant parked group is one
``cargroup`` polygon (the convex hull of its cars). Fully hidden objects are left out.

Appearance
----------
Scenes are sampled once, with every colour expressed in the source domain; each domain then
renders the same scene in its own style. The *source* is sunny daylight (KITTI): the sampled
colours as they are, cast shadows under objects, lamps off, sensor noise sigma = 1.5 (8-bit).
The *target* is a dusk street (Cityscapes, re-lit):

1. *Per-class appearance.* The colours of each object class pass through their own affine map
   ``T_c(x) = k_c (g(x) + s_c R(phi_c) (x - g(x))) + b_c``, where ``g(x)`` is the grey level
   (channel mean), ``R(phi)`` rotates hue about the grey axis, ``s_c`` scales saturation and
   ``k_c`` brightness:

   ======== ======== ====== ====== ================= ==========================================
   class    phi_c    s_c    k_c    b_c               reads as
   ======== ======== ====== ====== ================= ==========================================
   car      150 deg  1.0    0.55   (0, 8, 26)        another, darker body palette (red ->
                                                     teal, blue -> ochre)
   truck    180 deg  1.2    0.95   (35, 12, -10)     another livery (yellow -> blue, white ->
                                                     cream)
   person   0 deg    0.35   0.55   (12, 6, 0)        dark, muted winter clothing
   bicycle  0 deg    0.5    0.30   (150, 200, 30)    retro-reflective neon frames and tyres
   rider    as person
   ======== ======== ====== ====== ================= ==========================================

   The background (sky, buildings, road, sidewalk, vegetation, poles) keeps its colours.
2. *Global light.* Every pixel then passes through one affine map: exposure 0.55, contrast 0.7
   about mid-grey, a blue colour cast (channel gains 0.80, 0.92, 1.25) and an ambient term
   (4, 6, 14): darker, bluer and flatter than the source.
3. *Lamps.* Light sources are on: car headlights (warm white) and tail-lights (red), truck
   marker lights (amber), 35 % of the windows (warm), street-light heads (sodium). Their light
   is added after the global light, together with a halo (the same light blurred by a Gaussian
   of ``W / 200`` px); a lamp smaller than a pixel lights one pixel with its light scaled by
   its area, and whatever is painted in front of a lamp hides it. Street lights add a Gaussian
   glow around the head and a pool of light on the ground, and the sky carries a band of
   orange light pollution along the horizon. No cast shadows.
4. *Sensor noise* sigma = 4 (8-bit), i.i.d. Gaussian per pixel and channel.

So the target is *not* one global colour transform of the source: the global light is shared,
but each class moves in its own direction on top of it (cars change palette and darken,
people darken and desaturate, trucks change livery, bicycles brighten). A class-aware
translation can undo it; a global one cannot. ``tests/test_synthetic.py`` measures this on
renders of the same scenes in both styles (:func:`paired_scenes`, which also gives ground
truth for judging a translator): on 24 held-out 128x64 scenes, after the best global affine
colour map (3x3 + bias, fitted on 24 other scenes), the median colour residual is about 14
(car), 52 (truck), 22 (person) and 72 (bicycle) 8-bit units; with one affine map per class it
is 2, 5, 0.3 and 6. Lamps and glow are added light that no colour map produces.

Determinism and defaults
------------------------
Each image has its own generator, ``numpy.random.default_rng([seed, domain, split, index])``
(domain 0 = source, 1 = target; split 0 = train, 1 = val), split into a stream for the scene
and one for the sensor noise, so an image does not depend on the order of generation, on
``n_jobs`` or on the size of other splits. Files are written with fixed settings (PNG without
metadata, JSON with sorted keys), so the same seed and options give byte-identical files.

The defaults -- 256 x 128 images (wide like KITTI's, though less so), 160 source images and
160 + 48 target train + val images -- make a demo that trains on two CPU cores; generating
them takes about 17 ms an image on one core and 23 MB on disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

__all__ = [
    "SOURCE_STYLE", "TARGET_STYLE", "Rendering", "Scene", "Style", "SyntheticDataset",
    "add_arguments", "cityscapes_annotation", "generate", "kitti_calibration",
    "kitti_label_lines", "paired_scenes", "render_scene", "run_from_args", "sample_scene",
    "scene_rng",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
METADATA_FILE = "synthetic.json"

DEFAULT_WIDTH = 256
DEFAULT_HEIGHT = 128
DEFAULT_NUM_SOURCE = 160
DEFAULT_NUM_TARGET_TRAIN = 160
DEFAULT_NUM_TARGET_VAL = 48
MIN_WIDTH, MIN_HEIGHT = 64, 32

# Cityscapes keeps its validation cities apart from its training cities; so do we.
TRAIN_CITIES = ("lindenau", "marrowgate")
VAL_CITIES = ("oberstrand",)
# Cityscapes annotates the 20th frame of each 30-frame snippet.
CITYSCAPES_FRAME = 19

SOURCE_DOMAIN, TARGET_DOMAIN, PAIRED_DOMAIN = 0, 1, 2
TRAIN_SPLIT, VAL_SPLIT = 0, 1

CAMERA_HEIGHT = 1.65
NEAR_PLANE = 0.3
MIN_OBJECT_PX = 3.0
MAX_OBJECT_DEPTH = 70.0
MIN_OBJECT_DEPTH = 4.0
DONTCARE_HEIGHT_FRACTION = 0.05
SKY_ID, BACKDROP_ID = 0, -1  # in Rendering.part_ids
LIT_WINDOWS = 0.35  # fraction of windows lit at dusk

RGB = tuple[float, float, float]
Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking horizontally, ``CAMERA_HEIGHT`` above the ground."""

    width: int
    height: int
    focal: float
    cx: float
    cy: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera coordinates ``(..., 3)`` -> pixel coordinates ``(..., 2)``."""
        z = points[..., 2]
        return np.stack(
            [self.focal * points[..., 0] / z + self.cx, self.focal * points[..., 1] / z + self.cy],
            axis=-1,
        )


@dataclass(frozen=True)
class Shape:
    """One drawing primitive. ``points`` are polygon / polyline vertices, or the two corners of
    an ellipse's bounding box. ``colour`` is the source-domain colour; ``lamp`` names the light
    it emits in a style whose lamps are on."""

    kind: str  # "polygon" | "ellipse" | "ring" | "line"
    points: np.ndarray
    colour: RGB
    lamp: str | None = None
    width: int = 1


@dataclass(frozen=True)
class Part:
    """A labelled piece of the drawing: ``label`` is its Cityscapes label, ``appearance`` the
    class whose colour transform applies (``None`` for background), ``outline`` the pixel
    polygon around its shapes."""

    label: str
    appearance: str | None
    outline: np.ndarray
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class Object3D:
    """The KITTI 3D description of an object: dimensions ``(h, w, l)``, bottom-centre
    ``location`` in camera coordinates, ``rotation_y``."""

    kitti_type: str
    dimensions: tuple[float, float, float]
    location: tuple[float, float, float]
    rotation_y: float


@dataclass(frozen=True)
class Item:
    """Something painted in depth order: an object (with ``object3d``) or a prop (tree,
    street light). Items sharing a ``group`` form a Cityscapes ``cargroup``."""

    depth: float
    parts: tuple[Part, ...]
    object3d: Object3D | None = None
    group: int | None = None


@dataclass(frozen=True)
class Glow:
    """An anisotropic Gaussian of light (intensity 0..1 at its centre) in pixel coordinates."""

    u: float
    v: float
    sigma_u: float
    sigma_v: float
    strength: float


@dataclass(frozen=True)
class Scene:
    """Everything needed to render an image in either domain, and to label it."""

    camera: Camera
    sky: tuple[RGB, RGB]  # zenith, horizon
    backdrop: tuple[Part, ...]  # painted first, in this order
    items: tuple[Item, ...]  # far to near
    shadows: tuple[Shape, ...]  # cast shadows, shown in daylight only
    glows: tuple[Glow, ...]  # street-light glow, shown when lamps are on

    def parts(self) -> list[tuple[int, Part]]:
        """Every item part with the index of its item, in painting order."""
        return [(i, part) for i, item in enumerate(self.items) for part in item.parts]


@dataclass(frozen=True)
class Style:
    """How a domain renders a scene (see the module docstring, "Appearance")."""

    class_transforms: dict[str, tuple[np.ndarray, np.ndarray]]
    light: tuple[np.ndarray, np.ndarray]
    lamps_on: bool
    shadows: bool
    noise_sigma: float


@dataclass
class Rendering:
    """A rendered scene. ``part_ids`` says who painted each pixel last (see
    :func:`render_scene`); ``painted`` / ``visible`` count each part's pixels inside the image
    right after it was painted / at the end."""

    image: np.ndarray
    part_ids: np.ndarray
    painted: np.ndarray
    visible: np.ndarray


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def _clip_polygon(points: np.ndarray, axis: int, limit: float, keep_above: bool) -> np.ndarray:
    """One Sutherland-Hodgman pass: keep the part of a polygon on one side of a plane
    ``points[:, axis] = limit``. Works for 2D and 3D points."""
    if len(points) == 0:
        return points
    inside = points[:, axis] >= limit if keep_above else points[:, axis] <= limit
    if inside.all():
        return points
    out = []
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        a_in, b_in = inside[i], inside[(i + 1) % n]
        if a_in:
            out.append(a)
        if a_in != b_in:
            frac = (limit - a[axis]) / (b[axis] - a[axis])
            out.append(a + frac * (b - a))
    return np.array(out, dtype=float).reshape(-1, points.shape[1])


def _clip_to_rect(points: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The part of a 2D polygon inside the rectangle ``[x0, x1] x [y0, y1]``."""
    for axis, limit, above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        points = _clip_polygon(points, axis, limit, above)
    return points


def _polygon_area(points: np.ndarray) -> float:
    """Shoelace formula."""
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; returns the hull's vertices in order."""
    pts = sorted(set(map(tuple, np.round(points, 4).tolist())))
    if len(pts) < 3:
        return np.array(pts, dtype=float)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=float)


def _arc(cu: float, cv: float, ru: float, rv: float, a0: float, a1: float, n: int) -> np.ndarray:
    """Points on an ellipse from angle ``a0`` to ``a1`` (image coordinates: v grows down)."""
    a = np.linspace(a0, a1, n)
    return np.stack([cu + ru * np.cos(a), cv + rv * np.sin(a)], axis=1)


def _rect(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=float)


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


@dataclass(frozen=True)
class _Street:
    """The street in road coordinates: ``s`` along it, ``t`` across (to the right), metres;
    the camera stands at ``s = t = 0``. Lateral positions are values of ``t``."""

    yaw: float
    road_left: float
    road_right: float
    centre_line: float
    lane_line: float | None
    same_lanes: tuple[float, ...]
    oncoming_lanes: tuple[float, ...]
    parking: tuple[float, ...]
    walk_left: tuple[float, float]
    walk_right: tuple[float, float]

    def to_camera(self, s: np.ndarray | float, t: np.ndarray | float, h: np.ndarray | float
                  ) -> np.ndarray:
        """Road coordinates (along, across, height; broadcast together) -> camera coordinates
        ``(..., 3)``."""
        s, t, h = (np.asarray(v, dtype=float) for v in (s, t, h))
        c, n = math.cos(self.yaw), math.sin(self.yaw)
        x, y, z = t * c + s * n, CAMERA_HEIGHT - h, s * c - t * n
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        out = np.empty(shape + (3,))
        out[..., 0], out[..., 1], out[..., 2] = x, y, z
        return out


def _project_polygon(camera: Camera, points3: np.ndarray) -> np.ndarray:
    """Clip a 3D polygon against the near plane and project it; empty if nothing is left."""
    clipped = _clip_polygon(points3, 2, NEAR_PLANE, keep_above=True)
    return camera.project(clipped) if len(clipped) >= 3 else np.zeros((0, 2))


# --------------------------------------------------------------------------------------------
# Palettes (source-domain colours)
# --------------------------------------------------------------------------------------------

_SKY_ZENITH = (85, 145, 225)
_SKY_HORIZON = (190, 215, 240)
_FACADES = ((190, 170, 140), (160, 90, 70), (150, 150, 150), (210, 200, 180), (120, 130, 140),
            (180, 140, 110))
_WINDOW = (70, 90, 110)
_ROAD = (105, 105, 110)
_MARKING = (220, 220, 215)
_SIDEWALK = (168, 162, 155)
_FOLIAGE = ((70, 120, 50), (55, 100, 45), (90, 130, 60))
_TRUNK = (90, 70, 50)
_POLE = (90, 95, 100)
_LAMP_HEAD = (200, 200, 190)

_CAR_PAINT = ((180, 30, 30), (40, 70, 160), (185, 188, 192), (225, 225, 222), (35, 35, 40),
              (40, 90, 60), (220, 180, 40))
_GLASS = (60, 75, 90)
_TYRE = (25, 25, 28)
_HUB = (150, 150, 155)
_HEADLAMP = (215, 215, 200)
_TAILLAMP = (150, 25, 25)
_MARKER = (200, 120, 40)
_GRILLE = (40, 40, 45)
_PLATE = (220, 220, 210)
_LIVERY = ((230, 230, 225), (225, 190, 40), (40, 80, 170), (50, 130, 70), (220, 120, 30))
_CAB = ((200, 40, 40), (230, 230, 230), (40, 70, 150))
_SHIRT = ((200, 40, 40), (40, 80, 180), (50, 150, 60), (230, 200, 50), (235, 235, 235),
          (230, 120, 30), (120, 60, 150))
_TROUSERS = ((50, 70, 120), (30, 30, 35), (160, 140, 100), (110, 110, 115))
_SKIN = ((230, 190, 160), (200, 150, 110), (140, 95, 65), (90, 60, 45))
_HAIR = ((40, 30, 20), (90, 60, 30), (200, 170, 100), (30, 30, 30))
_HELMET = ((200, 200, 200), (220, 60, 40), (40, 40, 40), (40, 90, 200))
_SHOES = (30, 30, 30)
_FRAME = ((30, 30, 35), (60, 60, 70), (30, 40, 90), (90, 25, 25))

# Colours of light in the target domain (added after the global light).
_LAMP_COLOURS: dict[str, RGB] = {
    "head": (255, 240, 200),
    "tail": (255, 30, 20),
    "marker": (255, 150, 20),
    "window": (210, 160, 80),
    "street": (255, 190, 100),
}
_SODIUM = np.array([255.0, 160.0, 70.0])
_SKYGLOW = np.array([70.0, 40.0, 25.0])


def _pick(rng: np.random.Generator, palette: Sequence[RGB], jitter: float = 10.0) -> RGB:
    base = np.asarray(palette[rng.integers(len(palette))], dtype=float)
    return tuple(np.clip(base + rng.normal(0.0, jitter, 3), 0, 255).tolist())


# --------------------------------------------------------------------------------------------
# Object designs, in unit box coordinates (u right, v down, both 0..1; the front faces +u)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    """A part drawn in unit box coordinates; placed into a pixel box by :func:`_place`."""

    label: str
    appearance: str | None
    outline: np.ndarray
    shapes: tuple[Shape, ...]


def _place(design: _Design, box: Box, mirror: bool) -> Part:
    x0, y0, x1, y1 = box

    def to_px(unit: np.ndarray) -> np.ndarray:
        u = 1.0 - unit[:, 0] if mirror else unit[:, 0]
        return np.stack([x0 + u * (x1 - x0), y0 + unit[:, 1] * (y1 - y0)], axis=1)

    shapes = []
    for shape in design.shapes:
        pts = to_px(shape.points)
        if shape.kind in ("ellipse", "ring"):
            pts = np.stack([pts.min(axis=0), pts.max(axis=0)])
        shapes.append(Shape(shape.kind, pts, shape.colour, shape.lamp, shape.width))
    return Part(design.label, design.appearance, to_px(design.outline), tuple(shapes))


def _wheel_row(centres_u: Sequence[float], cv: float, ru: float, rv: float) -> np.ndarray:
    """Bottom outline through a row of wheels, from the front (right) to the rear (left)."""
    pts = []
    for cu in sorted(centres_u, reverse=True):
        pts.append(_arc(cu, cv, ru, rv, 0.0, math.pi, 7))
    return np.concatenate(pts)


def _wheels(centres_u: Sequence[float], cv: float, ru: float, rv: float) -> list[Shape]:
    shapes = []
    for cu in centres_u:
        shapes.append(Shape("ellipse", _rect(cu - ru, cv - rv, cu + ru, cv + rv)[[0, 2]], _TYRE))
        hu, hv = 0.45 * ru, 0.45 * rv
        shapes.append(Shape("ellipse", _rect(cu - hu, cv - hv, cu + hu, cv + hv)[[0, 2]], _HUB))
    return shapes


def _car_side(paint: RGB, aspect: float, van: bool) -> list[_Design]:
    if van:
        rv, cv, wheels_u = 0.16, 0.84, (0.16, 0.82)
        top = [[0.0, 0.05], [0.04, 0.0], [0.74, 0.0], [0.80, 0.04], [0.92, 0.36], [0.99, 0.44],
               [1.0, 0.5]]
        windows = [Shape("polygon", _rect(0.08, 0.08, 0.40, 0.34), _GLASS),
                   Shape("polygon", _rect(0.44, 0.08, 0.72, 0.34), _GLASS),
                   Shape("polygon", np.array([[0.76, 0.08], [0.79, 0.08], [0.88, 0.34],
                                              [0.76, 0.34]]), _GLASS)]
    else:
        rv, cv, wheels_u = 0.23, 0.77, (0.18, 0.80)
        top = [[0.0, 0.5], [0.02, 0.45], [0.20, 0.40], [0.30, 0.03], [0.36, 0.0], [0.60, 0.0],
               [0.66, 0.03], [0.78, 0.38], [0.97, 0.45], [1.0, 0.52]]
        windows = [Shape("polygon", np.array([[0.33, 0.07], [0.47, 0.06], [0.47, 0.37],
                                              [0.24, 0.38]]), _GLASS),
                   Shape("polygon", np.array([[0.50, 0.06], [0.62, 0.06], [0.73, 0.37],
                                              [0.50, 0.37]]), _GLASS)]
    ru = rv / aspect
    outline = np.concatenate([np.array(top, float), [[1.0, cv]],
                              _wheel_row(wheels_u, cv, ru, rv), [[0.0, cv]]])
    lamps = [Shape("polygon", _rect(0.95, 0.50, 1.0, 0.58), _HEADLAMP, "head"),
             Shape("polygon", _rect(0.0, 0.52, 0.04, 0.62), _TAILLAMP, "tail")]
    shapes = [Shape("polygon", outline, paint), *windows, *lamps, *_wheels(wheels_u, cv, ru, rv)]
    return [_Design("car", "car", outline, tuple(shapes))]


def _car_end(paint: RGB, front: bool, van: bool) -> list[_Design]:
    roof = [[0.06, 0.0], [0.94, 0.0], [0.97, 0.40]] if van else [[0.18, 0.0], [0.82, 0.0],
                                                                  [0.93, 0.40]]
    outline = np.array(roof + [[1.0, 0.45], [1.0, 0.86], [0.94, 0.86], [0.94, 1.0], [0.76, 1.0],
                               [0.76, 0.86], [0.24, 0.86], [0.24, 1.0], [0.06, 1.0], [0.06, 0.86],
                               [0.0, 0.86], [0.0, 0.45], [1.0 - roof[2][0], 0.40]], float)
    glass_top = 0.05 if van else 0.06
    inset = 0.10 if van else 0.22
    window = np.array([[inset, glass_top], [1 - inset, glass_top], [0.88, 0.38], [0.12, 0.38]])
    lamp_colour, lamp = (_HEADLAMP, "head") if front else (_TAILLAMP, "tail")
    shapes = [Shape("polygon", outline, paint), Shape("polygon", window, _GLASS),
              Shape("polygon", _rect(0.06, 0.86, 0.24, 1.0), _TYRE),
              Shape("polygon", _rect(0.76, 0.86, 0.94, 1.0), _TYRE),
              Shape("polygon", _rect(0.40, 0.64, 0.60, 0.72), _PLATE),
              Shape("polygon", _rect(0.03, 0.50, 0.20, 0.60), lamp_colour, lamp),
              Shape("polygon", _rect(0.80, 0.50, 0.97, 0.60), lamp_colour, lamp)]
    if front:
        shapes.insert(2, Shape("polygon", _rect(0.26, 0.50, 0.74, 0.60), _GRILLE))
    return [_Design("car", "car", outline, tuple(shapes))]


def _truck_side(livery: RGB, cab: RGB, stripe: RGB, aspect: float) -> list[_Design]:
    rv, cv, wheels_u = 0.15, 0.85, (0.12, 0.28, 0.86)
    ru = rv / aspect
    outline = np.concatenate([
        np.array([[0.0, 0.0], [0.70, 0.0], [0.70, 0.22], [0.92, 0.22], [0.96, 0.30],
                  [1.0, 0.50], [1.0, cv]]),
        _wheel_row(wheels_u, cv, ru, rv), [[0.0, cv]]])
    markers = [Shape("polygon", _rect(u, 0.74, u + 0.02, 0.78), _MARKER, "marker")
               for u in (0.08, 0.30, 0.52)]
    shapes = [Shape("polygon", outline, cab),
              Shape("polygon", _rect(0.0, 0.0, 0.70, 0.80), livery),
              Shape("polygon", _rect(0.0, 0.52, 0.70, 0.60), stripe),
              Shape("polygon", _rect(0.0, 0.80, 1.0, cv), _GRILLE),
              Shape("polygon", np.array([[0.78, 0.27], [0.91, 0.27], [0.95, 0.45], [0.78, 0.45]]),
                    _GLASS),
              Shape("polygon", _rect(0.97, 0.62, 1.0, 0.70), _HEADLAMP, "head"),
              Shape("polygon", _rect(0.0, 0.66, 0.02, 0.74), _TAILLAMP, "tail"),
              *markers, *_wheels(wheels_u, cv, ru, rv)]
    return [_Design("truck", "truck", outline, tuple(shapes))]


def _truck_end(livery: RGB, cab: RGB, front: bool) -> list[_Design]:
    outline = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.84], [0.95, 0.84], [0.95, 1.0],
                        [0.72, 1.0], [0.72, 0.84], [0.28, 0.84], [0.28, 1.0], [0.05, 1.0],
                        [0.05, 0.84], [0.0, 0.84]])
    shapes = [Shape("polygon", outline, livery),
              Shape("polygon", _rect(0.05, 0.84, 0.28, 1.0), _TYRE),
              Shape("polygon", _rect(0.72, 0.84, 0.95, 1.0), _TYRE)]
    if front:
        shapes += [Shape("polygon", _rect(0.0, 0.30, 1.0, 0.84), cab),
                   Shape("polygon", _rect(0.08, 0.35, 0.92, 0.56), _GLASS),
                   Shape("polygon", _rect(0.30, 0.62, 0.70, 0.76), _GRILLE),
                   Shape("polygon", _rect(0.04, 0.66, 0.20, 0.76), _HEADLAMP, "head"),
                   Shape("polygon", _rect(0.80, 0.66, 0.96, 0.76), _HEADLAMP, "head")]
    else:
        shapes += [Shape("line", np.array([[0.5, 0.04], [0.5, 0.78]]), _GRILLE),
                   Shape("polygon", _rect(0.0, 0.78, 1.0, 0.84), _GRILLE),
                   Shape("polygon", _rect(0.04, 0.68, 0.16, 0.76), _TAILLAMP, "tail"),
                   Shape("polygon", _rect(0.84, 0.68, 0.96, 0.76), _TAILLAMP, "tail"),
                   Shape("polygon", _rect(0.04, 0.04, 0.07, 0.07), _MARKER, "marker"),
                   Shape("polygon", _rect(0.93, 0.04, 0.96, 0.07), _MARKER, "marker")]
    return [_Design("truck", "truck", outline, tuple(shapes))]


def _lerp_u(a: Sequence[float], b: Sequence[float], v: float) -> float:
    """u of the segment a-b at height v."""
    return a[0] + (b[0] - a[0]) * (v - a[1]) / (b[1] - a[1])


def _pedestrian(rng: np.random.Generator, aspect: float) -> list[_Design]:
    shirt, trousers = _pick(rng, _SHIRT, 12), _pick(rng, _TROUSERS, 8)
    skin, hair = _pick(rng, _SKIN, 6), _pick(rng, _HAIR, 6)
    stride = float(rng.uniform(0.0, 0.12))
    rv, neck = 0.07, 0.05
    ru = rv / aspect
    join = math.acos(min(neck / ru, 1.0))
    head = _arc(0.5, rv, ru, rv, math.pi - join, 2 * math.pi + join, 16)
    upper = np.array([[0.14, 0.18], [0.86, 0.18], [1.0, 0.52], [0.88, 0.54], [0.78, 0.30],
                      [0.72, 0.56], [0.28, 0.56], [0.22, 0.30], [0.12, 0.54], [0.0, 0.52]])
    left_out, left_in = (0.30 - stride, 1.0), (0.45 - stride, 1.0)
    right_in, right_out = (0.55 + stride, 1.0), (0.70 + stride, 1.0)
    legs = np.array([[0.28, 0.56], [0.72, 0.56], right_out, right_in, [0.5, 0.64], left_in,
                     left_out])
    outline = np.concatenate([
        head, [[0.5 + neck, 0.18]], upper[1:6], [right_out, right_in, [0.5, 0.64], left_in,
                                                 left_out], upper[6:], upper[:1],
        [[0.5 - neck, 0.18]]])
    sole = 0.95
    shoes = [
        np.array([[_lerp_u((0.28, 0.56), left_out, sole), sole],
                  [_lerp_u((0.5, 0.64), left_in, sole), sole], left_in, left_out]),
        np.array([[_lerp_u((0.5, 0.64), right_in, sole), sole],
                  [_lerp_u((0.72, 0.56), right_out, sole), sole], right_out, right_in]),
    ]
    hair_cap = _arc(0.5, rv, ru, rv, math.pi, 2 * math.pi, 10)
    shapes = (Shape("polygon", legs, trousers), *(Shape("polygon", s, _SHOES) for s in shoes),
              Shape("polygon", upper, shirt),
              Shape("polygon", _rect(0.5 - neck, 0.12, 0.5 + neck, 0.18), skin),
              Shape("ellipse", np.array([[0.5 - ru, 0.0], [0.5 + ru, 2 * rv]]), skin),
              Shape("polygon", hair_cap, hair))
    return [_Design("person", "person", outline, shapes)]


def _cyclist(rng: np.random.Generator, aspect: float, height_px: float) -> list[_Design]:
    frame, shirt = _pick(rng, _FRAME, 8), _pick(rng, _SHIRT, 12)
    trousers, skin, helmet = _pick(rng, _TROUSERS, 8), _pick(rng, _SKIN, 6), _pick(rng, _HELMET, 8)
    rv, cv = 0.19, 0.81
    ru = rv / aspect
    rear, front = (ru, cv), (1.0 - ru, cv)
    bb, seat, head_top, head_low = (0.45, 0.81), (0.37, 0.53), (0.73, 0.52), (0.75, 0.62)
    bar = ((0.69, 0.47), (0.77, 0.47))
    tube = max(1, round(0.04 * height_px))
    frame_lines = [(rear, bb), (rear, seat), (seat, bb), (seat, head_top), (bb, head_low),
                   (head_top, front), (head_top, bar[1]), bar]
    bike_shapes = [Shape("ring", np.array([[c[0] - ru, cv - rv], [c[0] + ru, cv + rv]]), _TYRE,
                         width=max(1, round(0.035 * height_px))) for c in (rear, front)]
    bike_shapes += [Shape("line", np.array([a, b]), frame, width=tube) for a, b in frame_lines]
    bike_shapes.append(Shape("line", np.array([[0.31, 0.51], [0.42, 0.51]]), _SHOES, width=tube))
    bike_outline = np.concatenate([
        _arc(rear[0], cv, ru, rv, math.pi, 1.5 * math.pi, 6), [[0.31, 0.50], [0.42, 0.50]],
        [bar[0], bar[1]], _arc(front[0], cv, ru, rv, 1.5 * math.pi, 2.0 * math.pi, 6),
        _wheel_row((rear[0], front[0]), cv, ru, rv)])
    hr = 0.075
    hu = hr / aspect
    rider_shapes = [
        Shape("polygon", np.array([[0.35, 0.47], [0.43, 0.50], [0.58, 0.60], [0.55, 0.64]]),
              trousers),
        Shape("polygon", np.array([[0.54, 0.58], [0.59, 0.62], [0.50, 0.86], [0.45, 0.85]]),
              trousers),
        Shape("polygon", np.array([[0.50, 0.16], [0.63, 0.20], [0.44, 0.52], [0.33, 0.49]]),
              shirt),
        Shape("polygon", np.array([[0.56, 0.18], [0.63, 0.21], [0.74, 0.47], [0.69, 0.48]]),
              shirt),
        Shape("ellipse", np.array([[0.58 - hu, 0.0], [0.58 + hu, 2 * hr]]), skin),
        Shape("polygon", _arc(0.58, hr, hu * 1.05, hr * 1.05, math.pi, 2 * math.pi, 10), helmet),
    ]
    rider_points = np.concatenate([s.points for s in rider_shapes[:4]]
                                  + [_arc(0.58, hr, hu, hr, 0.0, 2 * math.pi, 12)])
    return [_Design("bicycle", "bicycle", bike_outline, tuple(bike_shapes)),
            _Design("rider", "person", _convex_hull(rider_points), tuple(rider_shapes))]


# --------------------------------------------------------------------------------------------
# Scene sampling
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Styles and rendering
# --------------------------------------------------------------------------------------------


def _appearance_transform(hue_deg: float, saturation: float, brightness: float,
                          bias: RGB) -> tuple[np.ndarray, np.ndarray]:
    """``x -> k (g(x) + s R (x - g(x))) + b`` as a 3x3 matrix and a bias (see module doc)."""
    grey = np.full((3, 3), 1.0 / 3.0)
    axis = np.ones(3) / math.sqrt(3.0)
    a = math.radians(hue_deg)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * cross @ cross
    matrix = brightness * (grey + saturation * rotation @ (np.eye(3) - grey))
    return matrix, np.asarray(bias, dtype=float)


def _light_transform(exposure: float, contrast: float, cast: RGB, ambient: RGB
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``x -> cast * exposure * (128 + contrast (x - 128)) + ambient``."""
    gains = np.asarray(cast) * exposure
    return np.diag(gains * contrast), gains * 128.0 * (1.0 - contrast) + np.asarray(ambient)


SOURCE_STYLE = Style(
    class_transforms={},
    light=(np.eye(3), np.zeros(3)),
    lamps_on=False,
    shadows=True,
    noise_sigma=1.5,
)

TARGET_STYLE = Style(
    class_transforms={
        "car": _appearance_transform(150.0, 1.0, 0.55, (0, 8, 26)),
        "truck": _appearance_transform(180.0, 1.2, 0.95, (35, 12, -10)),
        "person": _appearance_transform(0.0, 0.35, 0.55, (12, 6, 0)),  # riders too
        "bicycle": _appearance_transform(0.0, 0.5, 0.30, (150, 200, 30)),
    },
    light=_light_transform(0.55, 0.7, (0.80, 0.92, 1.25), (4, 6, 14)),
    lamps_on=True,
    shadows=False,
    noise_sigma=4.0,
)


def _colour(style: Style, appearance: str | None, colour: RGB) -> tuple[int, int, int]:
    transform = style.class_transforms.get(appearance) if appearance else None
    if transform is not None:
        colour = tuple((transform[0] @ np.asarray(colour) + transform[1]).tolist())
    r, g, b = (min(max(int(round(c)), 0), 255) for c in colour)
    return r, g, b


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, fill: int | tuple[int, int, int]) -> None:
    flat = shape.points.ravel().tolist()
    if shape.kind == "polygon":
        draw.polygon(flat, fill=fill)
    elif shape.kind == "ellipse":
        draw.ellipse(flat, fill=fill)
    elif shape.kind == "ring":
        draw.ellipse(flat, outline=fill, width=shape.width)
    else:
        draw.line(flat, fill=fill, width=shape.width)


def _sky(scene: Scene) -> np.ndarray:
    camera = scene.camera
    rows = np.clip(np.arange(camera.height) / camera.cy, 0.0, 1.0) ** 1.5
    zenith, horizon = (np.asarray(c, dtype=np.float32) for c in scene.sky)
    column = zenith + rows[:, None].astype(np.float32) * (horizon - zenith)
    return np.broadcast_to(np.rint(column)[:, None, :],
                           (camera.height, camera.width, 3)).astype(np.uint8)


def _pixel_box(points: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    lo = np.floor(points.min(axis=0)).astype(int) - 1
    hi = np.ceil(points.max(axis=0)).astype(int) + 2
    return (max(lo[0], 0), max(lo[1], 0), min(hi[0], width), min(hi[1], height))


def _glow_field(scene: Scene) -> np.ndarray:
    """The street lights' glow, ``(H, W)``; each Gaussian is separable, hence the outer
    product."""
    camera = scene.camera
    x = np.arange(camera.width, dtype=np.float32)
    y = np.arange(camera.height, dtype=np.float32)
    field = np.zeros((camera.height, camera.width), dtype=np.float32)
    for g in scene.glows:
        gx = np.exp(-0.5 * ((x - g.u) / g.sigma_u) ** 2)
        gy = np.exp(-0.5 * ((y - g.v) / g.sigma_v) ** 2)
        field += g.strength * np.outer(gy, gx)
    return field


def _shape_area(shape: Shape) -> float:
    if shape.kind == "polygon":
        return _polygon_area(shape.points)
    (x0, y0), (x1, y1) = shape.points
    return math.pi / 4 * (x1 - x0) * (y1 - y0)


def _lamp_colour(shape: Shape) -> tuple[int, int, int]:
    """The light of a lamp; one smaller than a pixel still lights a whole pixel, so its light
    is scaled by its area to keep the energy of distant lamps right."""
    assert shape.lamp is not None
    coverage = min(1.0, _shape_area(shape))
    r, g, b = (int(round(c * coverage)) for c in _LAMP_COLOURS[shape.lamp])
    return r, g, b


def _paint(scene: Scene, style: Style) -> tuple[Image.Image, Image.Image | None, np.ndarray,
                                                np.ndarray]:
    """Paint the scene's surfaces. Returns the reflected colours, the emitted light (``None``
    with lamps off), the part-id map and each part's painted pixel count."""
    camera = scene.camera
    size = (camera.width, camera.height)
    canvas = Image.fromarray(_sky(scene))
    draw = ImageDraw.Draw(canvas)
    owners = Image.new("I", size, SKY_ID)
    owner_draw = ImageDraw.Draw(owners)
    emission = Image.new("RGB", size) if style.lamps_on else None
    emission_draw = ImageDraw.Draw(emission) if emission is not None else None

    def paint(shape: Shape, appearance: str | None, owner: int) -> None:
        _draw(draw, shape, _colour(style, appearance, shape.colour))
        _draw(owner_draw, shape, owner)
        if emission_draw is not None:  # what is painted over a lamp hides its light
            _draw(emission_draw, shape, _lamp_colour(shape) if shape.lamp else (0, 0, 0))

    for part in scene.backdrop:
        for shape in part.shapes:
            paint(shape, None, BACKDROP_ID)
    if style.shadows:
        for shape in scene.shadows:
            _draw(draw, shape, tuple(int(c) for c in shape.colour))
    parts = scene.parts()
    painted = np.zeros(len(parts), dtype=np.int64)
    for k, (_, part) in enumerate(parts, start=1):
        for shape in part.shapes:
            paint(shape, part.appearance, k)
        x0, y0, x1, y1 = _pixel_box(part.outline, *size)
        if x1 > x0 and y1 > y0:
            painted[k - 1] = np.count_nonzero(np.asarray(owners.crop((x0, y0, x1, y1))) == k)
    return canvas, emission, np.asarray(owners, dtype=np.int32), painted


def _add_lights(pixels: np.ndarray, scene: Scene, emission: Image.Image, sky: np.ndarray
                ) -> None:
    """Add street-light glow, sky glow and the lamps with their halo to ``pixels`` in place."""
    camera = scene.camera
    pixels += _glow_field(scene)[..., None] * _SODIUM.astype(np.float32)
    rows = np.arange(camera.height, dtype=np.float32)
    band = np.exp(-0.5 * ((rows - camera.cy) / (0.15 * camera.height)) ** 2)
    pixels += (band[:, None] * sky)[..., None] * _SKYGLOW.astype(np.float32)
    halo = emission.filter(ImageFilter.GaussianBlur(max(1.0, camera.width / 200)))
    pixels += np.asarray(emission, dtype=np.float32) + np.asarray(halo, dtype=np.float32)


def render_scene(scene: Scene, style: Style, rng: np.random.Generator) -> Rendering:
    """Render ``scene`` in ``style``; ``rng`` draws the sensor noise only.

    ``Rendering.part_ids`` is ``SKY_ID`` (0) on the sky, ``BACKDROP_ID`` (-1) on buildings and
    the ground, and 1 + the index into ``scene.parts()`` where a part was painted last.
    """
    canvas, emission, part_ids, painted = _paint(scene, style)
    visible = np.bincount(np.maximum(part_ids, 0).ravel(), minlength=len(painted) + 1)[1:]
    matrix, bias = style.light
    pixels = np.asarray(canvas, dtype=np.float32) @ matrix.T.astype(np.float32)
    pixels += bias.astype(np.float32)
    if emission is not None:
        _add_lights(pixels, scene, emission, (part_ids == SKY_ID).astype(np.float32))
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * style.noise_sigma
    image = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Rendering(image, part_ids, painted, visible)


def scene_rng(seed: int, domain: int, split: int, index: int) -> np.random.Generator:
    """The generator of one image; its stream depends on nothing else."""
    return np.random.default_rng([seed, domain, split, index])


def paired_scenes(seed: int, count: int, width: int, height: int, *, start: int = 0
                  ) -> Iterator[tuple[Scene, Rendering, Rendering]]:
    """Scenes ``start .. start + count - 1`` rendered in both styles: ground truth for what a
    translator should do. The scenes are not the dataset's: they have their own streams."""
    for index in range(start, start + count):
        rng = scene_rng(seed, PAIRED_DOMAIN, TRAIN_SPLIT, index)
        scene_stream, source_noise, target_noise = rng.spawn(3)
        scene = sample_scene(scene_stream, width, height)
        yield (scene, render_scene(scene, SOURCE_STYLE, source_noise),
               render_scene(scene, TARGET_STYLE, target_noise))


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------


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
    """The KITTI ``label_2`` lines of a rendered scene (see the module docstring, "Labels")."""
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


# --------------------------------------------------------------------------------------------
# Writing a dataset
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticDataset:
    """A generated dataset: the KITTI ``training`` directory, the Cityscapes root, counts."""

    root: Path
    source_root: Path
    target_root: Path
    seed: int
    width: int
    height: int
    num_source: int
    num_target_train: int
    num_target_val: int


@dataclass(frozen=True)
class _Task:
    domain: int
    split: int
    index: int


def _cityscapes_stem(split: int, index: int) -> tuple[str, str]:
    """``(city, "<city>_<seq>_<frame>")`` of the ``index``-th image of a target split."""
    cities = TRAIN_CITIES if split == TRAIN_SPLIT else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}"


def _save_png(image: np.ndarray, path: Path) -> None:
    # Fixed settings and no metadata chunks: the bytes depend on the pixels only. Level 1:
    # PIL's default (6) takes three times as long on these noisy images for 12 % less space.
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def _render_task(task: _Task, seed: int, width: int, height: int
                 ) -> tuple[Scene, Rendering]:
    rng = scene_rng(seed, task.domain, task.split, task.index)
    scene_stream, noise_stream = rng.spawn(2)
    scene = sample_scene(scene_stream, width, height)
    style = SOURCE_STYLE if task.domain == SOURCE_DOMAIN else TARGET_STYLE
    return scene, render_scene(scene, style, noise_stream)


def _write_task(root: Path, task: _Task, seed: int, width: int, height: int) -> None:
    scene, rendering = _render_task(task, seed, width, height)
    if task.domain == SOURCE_DOMAIN:
        training = root / "source" / "training"
        name = f"{task.index:06d}"
        _save_png(rendering.image, training / "image_2" / f"{name}.png")
        lines = kitti_label_lines(scene, rendering)
        _write_text(training / "label_2" / f"{name}.txt", "".join(f"{line}\n" for line in lines))
        _write_text(training / "calib" / f"{name}.txt", kitti_calibration(scene.camera))
        return
    split = "train" if task.split == TRAIN_SPLIT else "val"
    city, stem = _cityscapes_stem(task.split, task.index)
    target = root / "target"
    _save_png(rendering.image, target / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    annotation = json.dumps(cityscapes_annotation(scene, rendering), sort_keys=True,
                            separators=(",", ":"))
    _write_text(target / "gtFine" / split / city / f"{stem}_gtFine_polygons.json",
                annotation + "\n")


def _parameters(seed: int, width: int, height: int, num_source: int, num_target_train: int,
                num_target_val: int) -> dict:
    return {"format_version": FORMAT_VERSION, "generator": __name__, "seed": seed,
            "width": width, "height": height, "num_source": num_source,
            "num_target_train": num_target_train, "num_target_val": num_target_val}


def _dataset(root: Path, params: dict) -> SyntheticDataset:
    return SyntheticDataset(
        root=root, source_root=root / "source" / "training", target_root=root / "target",
        seed=params["seed"], width=params["width"], height=params["height"],
        num_source=params["num_source"], num_target_train=params["num_target_train"],
        num_target_val=params["num_target_val"])


def _count(directory: Path, pattern: str) -> int:
    return sum(1 for _ in directory.glob(pattern)) if directory.is_dir() else 0


def _is_complete(root: Path, params: dict) -> bool:
    """True if ``root`` holds a dataset generated with exactly ``params``. The metadata file is
    written last, so its presence means generation finished; the file counts catch a dataset
    that was damaged afterwards."""
    try:
        stored = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored.get("parameters") != params:
        return False
    training, target = root / "source" / "training", root / "target"
    expected = [
        (training / "image_2", "*.png", params["num_source"]),
        (training / "label_2", "*.txt", params["num_source"]),
        (target / "leftImg8bit" / "train", "*/*_leftImg8bit.png", params["num_target_train"]),
        (target / "gtFine" / "train", "*/*_gtFine_polygons.json", params["num_target_train"]),
        (target / "leftImg8bit" / "val", "*/*_leftImg8bit.png", params["num_target_val"]),
        (target / "gtFine" / "val", "*/*_gtFine_polygons.json", params["num_target_val"]),
    ]
    return all(_count(d, pattern) == n for d, pattern, n in expected)


_OWN_ENTRIES = {"source", "target", METADATA_FILE}


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a directory that holds anything but a (partial) synthetic dataset."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a directory; choose another --out")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{root}: not a synthetic dataset (it contains {shown}); refusing to overwrite it. "
            "Choose an empty or new directory for --out, or delete this one.")


def _make_dirs(root: Path, tasks: Sequence[_Task]) -> None:
    training = root / "source" / "training"
    for sub in ("image_2", "label_2", "calib"):
        (training / sub).mkdir(parents=True, exist_ok=True)
    for task in tasks:
        if task.domain == TARGET_DOMAIN:
            split = "train" if task.split == TRAIN_SPLIT else "val"
            city, _ = _cityscapes_stem(task.split, task.index)
            for kind in ("leftImg8bit", "gtFine"):
                (root / "target" / kind / split / city).mkdir(parents=True, exist_ok=True)


def _tasks(num_source: int, num_target_train: int, num_target_val: int) -> list[_Task]:
    return ([_Task(SOURCE_DOMAIN, TRAIN_SPLIT, i) for i in range(num_source)]
            + [_Task(TARGET_DOMAIN, TRAIN_SPLIT, i) for i in range(num_target_train)]
            + [_Task(TARGET_DOMAIN, VAL_SPLIT, i) for i in range(num_target_val)])


def _run_tasks(root: Path, tasks: Sequence[_Task], seed: int, width: int, height: int,
               n_jobs: int, progress: bool) -> None:
    jobs = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=8)(
        delayed(_write_task)(root, task, seed, width, height) for task in tasks)
    with tqdm(total=len(tasks), desc="synthetic data", unit="img", disable=not progress) as bar:
        for _ in jobs:
            bar.update()


def _replace_dir(new: Path, root: Path) -> None:
    """Move ``new`` to ``root``; an old ``root`` is moved aside first and deleted after, so that
    ``root`` is never a half-written dataset."""
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, old / root.name)
    os.replace(new, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _validate(width: int, height: int, counts: Sequence[int], n_jobs: int) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"image size {width}x{height} is too small: use at least "
                         f"{MIN_WIDTH}x{MIN_HEIGHT}")
    if any(n < 0 for n in counts):
        raise ValueError(f"image counts must be >= 0, got {list(counts)}")
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive number of workers, or negative (joblib: "
                         "-1 = all cores)")


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    num_source: int = DEFAULT_NUM_SOURCE,
    num_target_train: int = DEFAULT_NUM_TARGET_TRAIN,
    num_target_val: int = DEFAULT_NUM_TARGET_VAL,
    n_jobs: int = 1,
    progress: bool = True,
) -> SyntheticDataset:
    """Write the two-domain synthetic dataset to ``out_dir`` and describe it.

    ``out_dir/source/training`` is a KITTI object ``training`` directory (``image_2``,
    ``label_2``, ``calib``); ``out_dir/target`` a Cityscapes root (``leftImg8bit``, ``gtFine``,
    splits ``train`` and ``val``); ``out_dir/synthetic.json`` records the parameters.

    Idempotent: if ``out_dir`` already holds a complete dataset made with the same parameters,
    nothing is written. Otherwise the dataset is generated in a temporary sibling directory and
    moved into place, so ``out_dir`` never holds a partial dataset. A directory that holds
    anything else than a synthetic dataset is never replaced (``FileExistsError``).
    """
    root = Path(out_dir).resolve()
    _validate(width, height, (num_source, num_target_train, num_target_val), n_jobs)
    params = _parameters(seed, width, height, num_source, num_target_train, num_target_val)
    if _is_complete(root, params):
        logger.info("%s: synthetic dataset already present, nothing to do", root)
        return _dataset(root, params)
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        tasks = _tasks(num_source, num_target_train, num_target_val)
        _make_dirs(work, tasks)
        _run_tasks(work, tasks, seed, width, height, n_jobs, progress)
        metadata = json.dumps({"parameters": params}, sort_keys=True, indent=2) + "\n"
        _write_text(work / METADATA_FILE, metadata)
        if _is_complete(root, params):  # a concurrent call got there first
            shutil.rmtree(work)
        else:
            _check_replaceable(root)
            _replace_dir(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("%s: wrote %d source and %d + %d target images", root, num_source,
                num_target_train, num_target_val)
    return _dataset(root, params)


# --------------------------------------------------------------------------------------------
# Command line: `pipeline synth`
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``pipeline synth`` subcommand."""
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory (created; replaced only if it holds an older "
                             "synthetic dataset)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                        help=f"image width in pixels (default: {DEFAULT_WIDTH})")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT,
                        help=f"image height in pixels (default: {DEFAULT_HEIGHT})")
    parser.add_argument("--num-source", type=int, default=DEFAULT_NUM_SOURCE,
                        help=f"source (KITTI) images (default: {DEFAULT_NUM_SOURCE})")
    parser.add_argument("--num-target-train", type=int, default=DEFAULT_NUM_TARGET_TRAIN,
                        help="target (Cityscapes) train images "
                             f"(default: {DEFAULT_NUM_TARGET_TRAIN})")
    parser.add_argument("--num-target-val", type=int, default=DEFAULT_NUM_TARGET_VAL,
                        help=f"target (Cityscapes) val images (default: {DEFAULT_NUM_TARGET_VAL})")
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel worker processes; -1 = all cores (default: 1); the "
                             "output does not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``pipeline synth``; returns the exit status."""
    try:
        dataset = generate(
            args.out, seed=args.seed, width=args.width, height=args.height,
            num_source=args.num_source, num_target_train=args.num_target_train,
            num_target_val=args.num_target_val, n_jobs=args.jobs,
            progress=not args.no_progress)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"source (KITTI layout):      {dataset.source_root}  "
          f"({dataset.num_source} images)")
    print(f"target (Cityscapes layout): {dataset.target_root}  "
          f"({dataset.num_target_train} train, {dataset.num_target_val} val images)")
    return 0

