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

from pipeline.synthetic.annotations import (cityscapes_annotation, kitti_calibration,
                                            kitti_label_lines)
from pipeline.synthetic.command import add_arguments, run_from_args
from pipeline.synthetic.layout import sample_scene
from pipeline.synthetic.render import (SOURCE_STYLE, TARGET_STYLE, paired_scenes, render_scene,
                                       scene_rng)
from pipeline.synthetic.scene import (FORMAT_VERSION, METADATA_FILE, PAIRED_DOMAIN,
                                      SOURCE_DOMAIN, TARGET_DOMAIN, Rendering, Scene, Style)
from pipeline.synthetic.writers import SyntheticDataset, generate

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "PAIRED_DOMAIN",
    "Rendering",
    "SOURCE_DOMAIN",
    "SOURCE_STYLE",
    "Scene",
    "Style",
    "SyntheticDataset",
    "TARGET_DOMAIN",
    "TARGET_STYLE",
    "add_arguments",
    "cityscapes_annotation",
    "generate",
    "kitti_calibration",
    "kitti_label_lines",
    "paired_scenes",
    "render_scene",
    "run_from_args",
    "sample_scene",
    "scene_rng",
]
