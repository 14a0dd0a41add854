"""Source-domain palettes and object designs (cars, trucks, pedestrians, cyclists), in unit box
coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.synthetic.scene import Box, Part, RGB, Shape, _arc, _convex_hull, _rect

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
        shapes.append(Shape(shape.kind, pts, shape.colour, shape.lamp, shape.width, shape.role))
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
    shapes = [Shape("polygon", outline, paint, role="paint"), *windows, *lamps,
              *_wheels(wheels_u, cv, ru, rv)]
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
    shapes = [Shape("polygon", outline, paint, role="paint"), Shape("polygon", window, _GLASS),
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
    shapes = [Shape("polygon", outline, cab, role="cab"),
              Shape("polygon", _rect(0.0, 0.0, 0.70, 0.80), livery, role="livery"),
              Shape("polygon", _rect(0.0, 0.52, 0.70, 0.60), stripe, role="stripe"),
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
    shapes = [Shape("polygon", outline, livery, role="livery"),
              Shape("polygon", _rect(0.05, 0.84, 0.28, 1.0), _TYRE),
              Shape("polygon", _rect(0.72, 0.84, 0.95, 1.0), _TYRE)]
    if front:
        shapes += [Shape("polygon", _rect(0.0, 0.30, 1.0, 0.84), cab, role="cab"),
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
    shapes = (Shape("polygon", legs, trousers, role="trousers"),
              *(Shape("polygon", s, _SHOES) for s in shoes),
              Shape("polygon", upper, shirt, role="shirt"),
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
                         width=max(1, round(0.035 * height_px)), role="tyre")
                   for c in (rear, front)]
    bike_shapes += [Shape("line", np.array([a, b]), frame, width=tube, role="frame")
                    for a, b in frame_lines]
    bike_shapes.append(Shape("line", np.array([[0.31, 0.51], [0.42, 0.51]]), _SHOES, width=tube))
    bike_outline = np.concatenate([
        _arc(rear[0], cv, ru, rv, math.pi, 1.5 * math.pi, 6), [[0.31, 0.50], [0.42, 0.50]],
        [bar[0], bar[1]], _arc(front[0], cv, ru, rv, 1.5 * math.pi, 2.0 * math.pi, 6),
        _wheel_row((rear[0], front[0]), cv, ru, rv)])
    hr = 0.075
    hu = hr / aspect
    rider_shapes = [
        Shape("polygon", np.array([[0.35, 0.47], [0.43, 0.50], [0.58, 0.60], [0.55, 0.64]]),
              trousers, role="trousers"),
        Shape("polygon", np.array([[0.54, 0.58], [0.59, 0.62], [0.50, 0.86], [0.45, 0.85]]),
              trousers, role="trousers"),
        Shape("polygon", np.array([[0.50, 0.16], [0.63, 0.20], [0.44, 0.52], [0.33, 0.49]]),
              shirt, role="shirt"),
        Shape("polygon", np.array([[0.56, 0.18], [0.63, 0.21], [0.74, 0.47], [0.69, 0.48]]),
              shirt, role="shirt"),
        Shape("ellipse", np.array([[0.58 - hu, 0.0], [0.58 + hu, 2 * hr]]), skin),
        Shape("polygon", _arc(0.58, hr, hu * 1.05, hr * 1.05, math.pi, 2 * math.pi, 10), helmet,
              role="helmet"),
    ]
    rider_points = np.concatenate([s.points for s in rider_shapes[:4]]
                                  + [_arc(0.58, hr, hu, hr, 0.0, 2 * math.pi, 12)])
    return [_Design("bicycle", "bicycle", bike_outline, tuple(bike_shapes)),
            _Design("rider", "person", _convex_hull(rider_points), tuple(rider_shapes))]
