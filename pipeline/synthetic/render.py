"""Rendering a scene in a domain's style, and the paired renderings (the same scene in both
domains, or in several target draws) that give ground truth for a translator."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.synthetic.layout import sample_scene
from pipeline.synthetic.looks import (SOURCE_STYLE, TARGET_STYLE, WET_DARKENING, WET_GLOW,
                                      WET_SURFACES, draw_look)
from pipeline.synthetic.scene import (BACKDROP_ID, DRAW_DOMAIN, PAIRED_DOMAIN, RGB, Look,
                                      Rendering, SKY_ID, Scene, Shape, Style, TRAIN_SPLIT,
                                      _polygon_area)
from pipeline.synthetic.shapes import _LAMP_COLOURS, _SKYGLOW, _SODIUM


def _colour(colour: RGB, scale: float = 1.0) -> tuple[int, int, int]:
    r, g, b = (min(max(int(round(c * scale)), 0), 255) for c in colour)
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


def _lamp_colour(shape: Shape, gain: float) -> tuple[int, int, int]:
    """The light of a lamp at ``gain``; one smaller than a pixel still lights a whole pixel, so
    its light is scaled by its area to keep the energy of distant lamps right."""
    assert shape.lamp is not None
    return _colour(_LAMP_COLOURS[shape.lamp], gain * min(1.0, _shape_area(shape)))


def _paint(scene: Scene, style: Style, look: Look) -> tuple[Image.Image, Image.Image | None,
                                                           np.ndarray, np.ndarray]:
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

    def paint(shape: Shape, colour: RGB, owner: int, lit: bool, scale: float = 1.0) -> None:
        _draw(draw, shape, _colour(colour, scale))
        _draw(owner_draw, shape, owner)
        if emission_draw is not None:  # what is painted over a lamp hides its light
            light = _lamp_colour(shape, look.lamp_gain) if shape.lamp and lit else (0, 0, 0)
            _draw(emission_draw, shape, light)

    for part in scene.backdrop:
        scale = WET_DARKENING if look.wet and part.label in WET_SURFACES else 1.0
        for shape in part.shapes:
            paint(shape, shape.colour, BACKDROP_ID, True, scale)
    if style.shadows:
        for shape in scene.shadows:
            _draw(draw, shape, _colour(shape.colour))
    parts = scene.parts()
    painted = np.zeros(len(parts), dtype=np.int64)
    for k, (_, part) in enumerate(parts, start=1):
        lit = k - 1 not in look.unlit
        for shape in part.shapes:
            colour = look.colours.get((k - 1, shape.role), shape.colour)
            paint(shape, colour, k, lit)
        x0, y0, x1, y1 = _pixel_box(part.outline, *size)
        if x1 > x0 and y1 > y0:
            painted[k - 1] = np.count_nonzero(np.asarray(owners.crop((x0, y0, x1, y1))) == k)
    return canvas, emission, np.asarray(owners, dtype=np.int32), painted


def _add_lights(pixels: np.ndarray, scene: Scene, look: Look, emission: Image.Image,
                sky: np.ndarray) -> None:
    """Add street-light glow, sky glow and the lamps with their halo to ``pixels`` in place."""
    camera = scene.camera
    glow = look.lamp_gain * (WET_GLOW if look.wet else 1.0)
    pixels += (glow * _glow_field(scene))[..., None] * _SODIUM.astype(np.float32)
    rows = np.arange(camera.height, dtype=np.float32)
    band = np.exp(-0.5 * ((rows - camera.cy) / (0.15 * camera.height)) ** 2)
    pixels += (band[:, None] * sky)[..., None] * _SKYGLOW.astype(np.float32)
    halo = emission.filter(ImageFilter.GaussianBlur(max(1.0, camera.width / 200)))
    pixels += np.asarray(emission, dtype=np.float32) + np.asarray(halo, dtype=np.float32)


def render_scene(scene: Scene, style: Style, rng: np.random.Generator) -> Rendering:
    """Render ``scene`` in ``style``. ``rng`` draws the style's look for this scene
    (:func:`~pipeline.synthetic.looks.draw_look`) and the sensor noise, each from its own
    spawned stream.

    ``Rendering.part_ids`` is ``SKY_ID`` (0) on the sky, ``BACKDROP_ID`` (-1) on buildings and
    the ground, and 1 + the index into ``scene.parts()`` where a part was painted last.
    """
    look_stream, noise_stream = rng.spawn(2)
    look = draw_look(scene, style, look_stream)
    canvas, emission, part_ids, painted = _paint(scene, style, look)
    visible = np.bincount(np.maximum(part_ids, 0).ravel(), minlength=len(painted) + 1)[1:]
    matrix, bias = look.light
    pixels = np.asarray(canvas, dtype=np.float32) @ matrix.T.astype(np.float32)
    pixels += bias.astype(np.float32)
    if emission is not None:
        _add_lights(pixels, scene, look, emission, (part_ids == SKY_ID).astype(np.float32))
    pixels += noise_stream.standard_normal(pixels.shape, dtype=np.float32) * style.noise_sigma
    image = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Rendering(image, part_ids, painted, visible, look)


def scene_rng(seed: int, domain: int, split: int, index: int) -> np.random.Generator:
    """The generator of one image; its stream depends on nothing else."""
    return np.random.default_rng([seed, domain, split, index])


def draw_rng(seed: int, draw: int, index: int) -> np.random.Generator:
    """The generator of the ``draw``-th target-style rendering of source scene ``index`` (a
    perfect translation); independent of the scene's own stream and of the other draws."""
    return np.random.default_rng([seed, DRAW_DOMAIN, draw, index])


def paired_scenes(seed: int, count: int, width: int, height: int, *, start: int = 0,
                  draws: int = 1) -> Iterator[tuple[Scene, Rendering, tuple[Rendering, ...]]]:
    """Scenes ``start .. start + count - 1``, each rendered in the source style and in
    ``draws`` independent target-style draws: ground truth for what a translator should do.
    The scenes are not the dataset's: they have their own streams."""
    for index in range(start, start + count):
        rng = scene_rng(seed, PAIRED_DOMAIN, TRAIN_SPLIT, index)
        scene_stream, source_stream, *draw_streams = rng.spawn(2 + draws)
        scene = sample_scene(scene_stream, width, height)
        targets = tuple(render_scene(scene, TARGET_STYLE, stream) for stream in draw_streams)
        yield scene, render_scene(scene, SOURCE_STYLE, source_stream), targets
