"""The two domain styles and rendering a scene in one of them (and the paired renderings that
give ground truth for a translator)."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.synthetic.layout import sample_scene
from pipeline.synthetic.scene import (BACKDROP_ID, PAIRED_DOMAIN, RGB, Rendering, SKY_ID, Scene,
                                      Shape, Style, TRAIN_SPLIT, _polygon_area)
from pipeline.synthetic.shapes import _LAMP_COLOURS, _SKYGLOW, _SODIUM


def _appearance_transform(hue_deg: float, saturation: float, brightness: float,
                          bias: RGB) -> tuple[np.ndarray, np.ndarray]:
    """``x -> k (g(x) + s R (x - g(x))) + b`` as a 3x3 matrix and a bias (see the package
    docstring)."""
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
