"""The description of a scene (what is where, in the source domain's colours) and the geometry
both domains share: camera, projection, polygons."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 2
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

# Random streams: [seed, domain, split, index]; DRAW_DOMAIN's are [seed, DRAW_DOMAIN, k, index],
# the k-th target-style draw of source scene ``index`` (the perfect translations).
SOURCE_DOMAIN, TARGET_DOMAIN, PAIRED_DOMAIN, DRAW_DOMAIN = 0, 1, 2, 3
DEFAULT_NUM_DRAWS = 3
PAIRED_DIR = "paired"
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
    it emits in a style whose lamps are on; ``role`` names the material whose colour the target
    domain draws anew for each object (``paint``, ``shirt``, ...; ``None``: a fixed material
    such as glass or tyres, which keeps its colour)."""

    kind: str  # "polygon" | "ellipse" | "ring" | "line"
    points: np.ndarray
    colour: RGB
    lamp: str | None = None
    width: int = 1
    role: str | None = None


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
class Mode:
    """One mode of a class's target-domain look (a paint family, a livery, a way of
    dressing): for each material role, the palette its colour is picked from, the jitter
    (8-bit sigma per channel) around the pick, and the chance that the object's lamps are on."""

    name: str
    palettes: dict[str, tuple[RGB, ...]]
    jitter: float = 10.0
    lit: float = 0.0


@dataclass(frozen=True)
class Light:
    """The ranges each image's light is drawn from (uniform): exposure, contrast about mid-grey,
    per-channel colour cast, an ambient term scaled by ``ambient_scale``, the chance of a wet
    road (darker, with stronger light pools), and the strength of every lamp."""

    exposure: tuple[float, float]
    contrast: tuple[float, float]
    cast: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    ambient: RGB
    ambient_scale: tuple[float, float]
    wet: float
    lamp_strength: tuple[float, float]


@dataclass(frozen=True)
class Style:
    """How a domain renders a scene (see the package docstring, "Appearance"). ``modes``: per
    appearance class, the modes of its look (empty: the scene's own colours); ``light``: the
    per-image light (``None``: daylight, the colours as drawn); ``lamps_on``: street lights,
    lit windows and lamps glow; ``object_lamps``: objects' lamps may be lit (each by its mode's
    rate; an object without modes has them lit), False: every object's lamps are off."""

    modes: dict[str, tuple[Mode, ...]]
    light: Light | None
    lamps_on: bool
    shadows: bool
    noise_sigma: float
    object_lamps: bool = True


@dataclass(frozen=True)
class Look:
    """One draw of a style for one scene: the light's affine map (3x3 matrix, bias), the lamp
    gain, whether the road is wet, each object part's material colours
    ``(part index, role) -> RGB`` and the parts whose lamps are off (indices into
    ``Scene.parts()``)."""

    light: tuple[np.ndarray, np.ndarray]
    lamp_gain: float
    wet: bool
    colours: dict[tuple[int, str], RGB]
    unlit: frozenset[int]


@dataclass
class Rendering:
    """A rendered scene. ``part_ids`` says who painted each pixel last (see
    :func:`render_scene`); ``painted`` / ``visible`` count each part's pixels inside the image
    right after it was painted / at the end; ``look`` is the style's draw it was rendered
    with."""

    image: np.ndarray
    part_ids: np.ndarray
    painted: np.ndarray
    visible: np.ndarray
    look: Look


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
