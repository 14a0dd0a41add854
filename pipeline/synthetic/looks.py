"""The two domain styles and the draw of a style's look for one scene: per-image light and
per-object materials (see the package docstring, "Appearance")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.synthetic.scene import RGB, Light, Look, Mode, Scene, Style

# Ground surfaces that a wet road darkens.
WET_SURFACES = ("road", "sidewalk")
WET_DARKENING = 0.6
# How much brighter the street lights' glow and pools are on a wet road (reflections).
WET_GLOW = 1.6

SOURCE_STYLE = Style(modes={}, light=None, lamps_on=False, shadows=True, noise_sigma=1.5)

# The target's looks, per appearance class: at least three modes each, none tied to the
# source's colours (a mode is picked per object, its colours per material).
_CAR_MODES = (
    Mode("amber fleet", {"paint": ((235, 165, 25), (240, 120, 25), (220, 200, 60))}, 14, 0.8),
    Mode("teal", {"paint": ((25, 140, 150), (35, 105, 135), (60, 170, 160))}, 14, 0.8),
    Mode("plum", {"paint": ((115, 35, 85), (80, 25, 55), (140, 60, 120))}, 14, 0.8),
    Mode("pearl", {"paint": ((235, 230, 215), (215, 222, 228))}, 10, 0.8),
)
_TRUCK_MODES = (
    Mode("postal", {"livery": ((235, 200, 30),), "cab": ((235, 200, 30),),
                    "stripe": ((30, 30, 30),)}, 12, 0.9),
    Mode("reefer", {"livery": ((242, 242, 240),), "cab": ((30, 60, 140), (30, 110, 60)),
                    "stripe": ((200, 30, 30), (30, 60, 140))}, 10, 0.9),
    Mode("forest", {"livery": ((40, 95, 55), (30, 75, 45)), "cab": ((40, 95, 55),),
                    "stripe": ((235, 235, 230),)}, 12, 0.9),
    Mode("rust", {"livery": ((150, 65, 30), (120, 50, 25)), "cab": ((60, 60, 62),),
                  "stripe": ((230, 180, 40),)}, 12, 0.9),
)
_PERSON_MODES = (
    Mode("winter dark", {"shirt": ((38, 38, 48), (52, 42, 36), (32, 48, 42)),
                         "trousers": ((30, 30, 34), (46, 42, 38)),
                         "helmet": ((30, 30, 32),)}, 8),
    Mode("high-vis", {"shirt": ((205, 245, 45), (250, 135, 20)),
                      "trousers": ((40, 50, 92), (30, 30, 34)),
                      "helmet": ((250, 250, 245), (250, 135, 20))}, 10),
    Mode("summer light", {"shirt": ((242, 242, 236), (242, 200, 205), (200, 225, 246)),
                          "trousers": ((205, 185, 145), (222, 216, 205)),
                          "helmet": ((242, 242, 236), (200, 225, 246))}, 10),
)
_BICYCLE_MODES = (
    Mode("neon", {"frame": ((120, 255, 60), (255, 240, 40)), "tyre": ((28, 28, 30),)}, 10),
    Mode("chrome", {"frame": ((215, 215, 222),), "tyre": ((165, 165, 165),)}, 8),
    Mode("matte black", {"frame": ((28, 28, 32),), "tyre": ((28, 28, 30),)}, 6),
    Mode("signal red", {"frame": ((225, 30, 30),), "tyre": ((235, 235, 230),)}, 10),
)

# Calibrated so that a source-only detector keeps about 40 % of the oracle's mAP, as on
# KITTI -> Cityscapes (a darker range, exposure 0.5-0.85 and contrast 0.65-0.9 with a stronger
# cast and noise 4, left it 16 %; docs/synthetic-data.md).
_TARGET_LIGHT = Light(exposure=(0.7, 1.0), contrast=(0.8, 1.0),
                      cast=((0.85, 1.0), (0.92, 1.0), (1.0, 1.15)), ambient=(4.0, 6.0, 14.0),
                      ambient_scale=(0.5, 1.5), wet=0.5, lamp_strength=(0.6, 1.3))

TARGET_STYLE = Style(
    modes={"car": _CAR_MODES, "truck": _TRUCK_MODES, "person": _PERSON_MODES,
           "bicycle": _BICYCLE_MODES},
    light=_TARGET_LIGHT,
    lamps_on=True,
    shadows=False,
    noise_sigma=3.0,
)

# The target style taken apart (``pipeline synth --parts``): its light alone (every object in
# its scene colours, its lamps off) and its object looks alone (in the source's daylight), then
# the light itself one part at a time on the source (tone: exposure, contrast, cast and ambient;
# shadowless: no cast shadows; lamps: street lights, their glow and pools, lit windows, wet
# roads; noise: the target's sensor noise). Detectors trained on each tell which part of a
# perfect translation closes the detection gap. Each light draws from its ranges as the
# target's does, so a part's draw is the same as the perfect translation's draw 0 (a degenerate
# range still consumes its number).
PARTIAL_STYLES = {
    "light": replace(TARGET_STYLE, modes={}, object_lamps=False),
    "objects": replace(SOURCE_STYLE, modes=TARGET_STYLE.modes),
    "tone": replace(SOURCE_STYLE, light=replace(_TARGET_LIGHT, wet=0.0), object_lamps=False),
    "shadowless": replace(SOURCE_STYLE, shadows=False),
    "lamps": replace(SOURCE_STYLE, light=replace(
        _TARGET_LIGHT, exposure=(1.0, 1.0), contrast=(1.0, 1.0), cast=((1.0, 1.0),) * 3,
        ambient=(0.0, 0.0, 0.0)), lamps_on=True, object_lamps=False),
    "noise": replace(SOURCE_STYLE, noise_sigma=TARGET_STYLE.noise_sigma),
}

_DAYLIGHT = (np.eye(3), np.zeros(3))


def light_transform(exposure: float, contrast: float, cast: RGB, ambient: RGB
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``x -> cast * exposure * (128 + contrast (x - 128)) + ambient`` as a 3x3 matrix and a
    bias."""
    gains = np.asarray(cast, dtype=float) * exposure
    return np.diag(gains * contrast), gains * 128.0 * (1.0 - contrast) + np.asarray(ambient)


def _draw_light(light: Light, rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                 float, bool]:
    exposure = rng.uniform(*light.exposure)
    contrast = rng.uniform(*light.contrast)
    cast = tuple(float(rng.uniform(*r)) for r in light.cast)
    ambient = np.asarray(light.ambient) * rng.uniform(*light.ambient_scale)
    wet = bool(rng.random() < light.wet)
    gain = float(rng.uniform(*light.lamp_strength))
    return light_transform(exposure, contrast, cast, tuple(ambient)), gain, wet


def draw_look(scene: Scene, style: Style, rng: np.random.Generator) -> Look:
    """One draw of ``style`` for ``scene``: the image's light, then for each object part in
    painting order a mode of its class and a colour per material role of that mode. ``rng`` is
    used for nothing else, so a look is independent of the scene's own (source) colours."""
    if style.light is None:
        light, gain, wet = _DAYLIGHT, 1.0, False
    else:
        light, gain, wet = _draw_light(style.light, rng)
    colours: dict[tuple[int, str], RGB] = {}
    unlit = set()
    for k, (_, part) in enumerate(scene.parts()):
        modes = style.modes.get(part.appearance) if part.appearance else None
        if not modes:
            if not style.object_lamps:
                unlit.add(k)
            continue
        mode = modes[rng.integers(len(modes))]
        roles = sorted({s.role for s in part.shapes if s.role is not None})
        for role in roles:
            palette = mode.palettes[role]
            base = np.asarray(palette[rng.integers(len(palette))], dtype=float)
            colours[(k, role)] = tuple(np.clip(base + rng.normal(0.0, mode.jitter, 3), 0,
                                               255).tolist())
        if rng.random() >= mode.lit or not style.object_lamps:
            unlit.add(k)
    return Look(light, gain, wet, colours, frozenset(unlit))
